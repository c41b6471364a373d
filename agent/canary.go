package agent

import (
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jailkeeper/jailkeeper/reconcile"
)

// Canary metrics: jailkeeper_canary_total counts how canaries ended, by
// event; the gauges come from the executor's memory at scrape time, one
// series per service while its canary runs, so they leave the scrape with
// it.
var (
	canaryStepDesc = prometheus.NewDesc("jailkeeper_canary_step",
		"The step in force of a service's canary (1 is the first); 0 once every request goes to the new release.", []string{"service"}, nil)
	canaryPercentDesc = prometheus.NewDesc("jailkeeper_canary_weight_percent",
		"The percentage of a service's requests that its canary release gets.", []string{"service"}, nil)
	canaryFailuresDesc = prometheus.NewDesc("jailkeeper_canary_failures",
		"Failed requests (Caddy's count) and failed probes of a service's canary release so far.", []string{"service"}, nil)
	canaryMaxDesc = prometheus.NewDesc("jailkeeper_canary_max_failures",
		"The failures past which a service's canary is aborted (the manifest's max_failures).", []string{"service"}, nil)
)

// canaryResults are the values of jailkeeper_canary_total's result label.
var canaryResults = map[reconcile.EventKind]string{
	reconcile.EventCanaryPromoted:  "promoted",
	reconcile.EventCanaryAborted:   "aborted",
	reconcile.EventCanaryPreempted: "preempted",
}

// canaryMetrics are the canary's part of Metrics.
type canaryMetrics struct {
	total *prometheus.CounterVec
	// memory is the executor's Memory, set once the executor exists;
	// nil reports no gauges.
	memory func() reconcile.Memory
}

func (m *Metrics) registerCanary() {
	m.canary.total = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "jailkeeper_canary_total", Help: "Canaries that ended, by service and result (promoted, aborted, preempted).",
	}, []string{"service", "result"})
	m.Registry.MustRegister(m.canary.total, canaryCollector{m})
}

// watchCanaries makes the canary gauges read mem at each scrape.
func (m *Metrics) watchCanaries(mem func() reconcile.Memory) {
	m.mu.Lock()
	m.canary.memory = mem
	m.mu.Unlock()
}

// canaryEvent counts a canary's end. An aborted canary is a reverted
// deploy too: its release had traffic and failed.
func (m *Metrics) canaryEvent(ev reconcile.Event) {
	if ev.Kind == reconcile.EventDeployStarted {
		for _, r := range canaryResults {
			m.canary.total.WithLabelValues(ev.Service, r)
		}
	}
	if r, ok := canaryResults[ev.Kind]; ok {
		m.canary.total.WithLabelValues(ev.Service, r).Inc()
	}
	if ev.Kind == reconcile.EventCanaryAborted {
		m.deploysTotal.WithLabelValues(ev.Service, "reverted").Inc()
	}
}

type canaryCollector struct{ m *Metrics }

func (c canaryCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- canaryStepDesc
	ch <- canaryPercentDesc
	ch <- canaryFailuresDesc
	ch <- canaryMaxDesc
}

func (c canaryCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	mem := c.m.canary.memory
	c.m.mu.Unlock()
	if mem == nil {
		return
	}
	for _, f := range mem().InFlight {
		cn := f.Canary
		if cn == nil {
			continue
		}
		ch <- prometheus.MustNewConstMetric(canaryStepDesc, prometheus.GaugeValue, float64(cn.Step), f.Service)
		ch <- prometheus.MustNewConstMetric(canaryPercentDesc, prometheus.GaugeValue, float64(cn.Percent), f.Service)
		ch <- prometheus.MustNewConstMetric(canaryFailuresDesc, prometheus.GaugeValue, float64(cn.Failures), f.Service)
		ch <- prometheus.MustNewConstMetric(canaryMaxDesc, prometheus.GaugeValue, float64(cn.MaxFailures), f.Service)
	}
}

// showCanaries makes the status rows of services whose canary runs say
// so: State "canary" and the step, the split and the failures as Message.
func showCanaries(rows []reconcile.ServiceStatus, mem reconcile.Memory) {
	for _, f := range mem.InFlight {
		if f.Canary == nil {
			continue
		}
		for i := range rows {
			if rows[i].Service == f.Service {
				rows[i].State, rows[i].Message = "canary", canaryMessage(*f.Canary)
			}
		}
	}
}

// canaryMessage is a canary's status line, such as "canary step 1/2: 10%
// of requests to hello_..., 0 of max 5 failures".
func canaryMessage(c reconcile.CanaryStatus) string {
	var b strings.Builder
	if c.Step == 0 {
		fmt.Fprintf(&b, "canary done: %d%% of requests to %s", c.Percent, c.Release)
	} else {
		fmt.Fprintf(&b, "canary step %d/%d: %d%% of requests to %s", c.Step, len(c.Steps), c.Percent, c.Release)
	}
	fmt.Fprintf(&b, ", %d of max %d failures", c.Failures, c.MaxFailures)
	if c.Held != "" {
		b.WriteString("; next step held: " + c.Held)
	}
	return b.String()
}
