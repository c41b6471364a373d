package agent

import (
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/jailkeeper/jailkeeper/agent/gitsource"
	"github.com/jailkeeper/jailkeeper/reconcile"
	"github.com/jailkeeper/jailkeeper/release"
)

// durationBuckets reach 600 s: a deploy with a slow health gate can take minutes.
var durationBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}

// Metrics holds the agent's Prometheus metrics on a registry of its own.
// Events feed the counters; per-service state comes from a collector over the
// last pass, so a pruned service leaves the scrape. Safe for concurrent use.
type Metrics struct {
	Registry *prometheus.Registry

	reconcileTotal    *prometheus.CounterVec
	reconcileDuration prometheus.Histogram
	deploysTotal      *prometheus.CounterVec
	deployDuration    *prometheus.HistogramVec
	commitToLive      *prometheus.HistogramVec
	rollbacksTotal    *prometheus.CounterVec
	healthFailures    *prometheus.CounterVec
	fetchTotal        *prometheus.CounterVec
	lastSuccess       prometheus.Gauge
	sigFailures       prometheus.Counter

	mu       sync.Mutex
	revision string
	services []reconcile.ServiceStatus
	releases []release.Release
}

// NewMetrics registers every jailkeeper metric plus the Go and process
// collectors on a new registry.
func NewMetrics() *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry()}
	m.reconcileTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "jailkeeper_reconcile_total", Help: "Reconcile passes by result (ok, error).",
	}, []string{"result"})
	m.reconcileDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "jailkeeper_reconcile_duration_seconds", Help: "Duration of reconcile passes.", Buckets: durationBuckets,
	})
	m.deploysTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "jailkeeper_deploys_total", Help: "Finished deploys by service and result (success, failed, reverted).",
	}, []string{"service", "result"})
	m.deployDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "jailkeeper_deploy_duration_seconds", Help: "Duration from deploy start to live.", Buckets: durationBuckets,
	}, []string{"service"})
	m.commitToLive = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "jailkeeper_commit_to_live_seconds", Help: "Time from the deploy-repo commit to the release being live.", Buckets: durationBuckets,
	}, []string{"service"})
	m.rollbacksTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "jailkeeper_rollbacks_total", Help: "Deploys whose target was a retained release.",
	}, []string{"service"})
	m.healthFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "jailkeeper_health_check_failures_total", Help: "Releases that failed their health gate or watch.",
	}, []string{"service"})
	m.fetchTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "jailkeeper_source_fetch_total", Help: "Polls of the deploy repo by result (ok, error).",
	}, []string{"result"})
	m.lastSuccess = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "jailkeeper_source_last_success_timestamp_seconds", Help: "Time of the last successful poll of the deploy repo.",
	})
	m.sigFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "jailkeeper_signature_verification_failures_total", Help: "Deploy-repo heads refused for a missing or bad signature.",
	})
	m.Registry.MustRegister(m.reconcileTotal, m.reconcileDuration, m.deploysTotal, m.deployDuration,
		m.commitToLive, m.rollbacksTotal, m.healthFailures, m.fetchTotal, m.lastSuccess, m.sigFailures,
		stateCollector{m},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Series that exist from the start, so increase() and alerts see the
	// first increment.
	for _, r := range []string{"ok", "error"} {
		m.reconcileTotal.WithLabelValues(r)
		m.fetchTotal.WithLabelValues(r)
	}
	return m
}

// deployResults are the values of jailkeeper_deploys_total's result label.
var deployResults = []string{"success", "failed", "reverted"}

// initService creates a service's counter series at zero, so the first
// failed deploy of a service is an increase a rule can see.
func (m *Metrics) initService(service string) {
	for _, r := range deployResults {
		m.deploysTotal.WithLabelValues(service, r)
	}
	m.rollbacksTotal.WithLabelValues(service)
	m.healthFailures.WithLabelValues(service)
}

func (m *Metrics) sourceFetched(snap gitsource.Snapshot, err error, now time.Time) {
	// On error the snapshot is the last good one: its revision is still
	// the one in effect.
	if snap.Revision != "" {
		m.mu.Lock()
		m.revision = snap.Revision
		m.mu.Unlock()
	}
	if err != nil {
		m.fetchTotal.WithLabelValues("error").Inc()
		if errors.Is(err, gitsource.ErrSignature) {
			m.sigFailures.Inc()
		}
		return
	}
	m.fetchTotal.WithLabelValues("ok").Inc()
	m.lastSuccess.Set(float64(now.UnixNano()) / 1e9)
}

func (m *Metrics) passDone(res reconcile.Result, err error, d time.Duration) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.reconcileTotal.WithLabelValues(result).Inc()
	m.reconcileDuration.Observe(d.Seconds())
	if res.Services == nil && err != nil {
		return
	}
	for _, s := range res.Services {
		m.initService(s.Service)
	}
	m.mu.Lock()
	m.services = res.Services
	m.releases = res.Releases
	m.mu.Unlock()
}

func (m *Metrics) event(ev reconcile.Event) {
	switch ev.Kind {
	case reconcile.EventDeployStarted:
		m.initService(ev.Service)
	case reconcile.EventLive, reconcile.EventRolledBack:
		m.deploysTotal.WithLabelValues(ev.Service, "success").Inc()
		m.deployDuration.WithLabelValues(ev.Service).Observe(ev.Duration.Seconds())
		if !ev.CommitTime.IsZero() {
			// A clock behind the committer's counts as zero, not negative.
			m.commitToLive.WithLabelValues(ev.Service).Observe(max(ev.Time.Sub(ev.CommitTime), 0).Seconds())
		}
		if ev.Rollback {
			m.rollbacksTotal.WithLabelValues(ev.Service).Inc()
		}
	case reconcile.EventFailed:
		m.deploysTotal.WithLabelValues(ev.Service, "failed").Inc()
	case reconcile.EventReverted:
		m.deploysTotal.WithLabelValues(ev.Service, "reverted").Inc()
	}
	if ev.HealthFailure {
		m.healthFailures.WithLabelValues(ev.Service).Inc()
	}
}

var (
	convergedDesc = prometheus.NewDesc("jailkeeper_service_converged",
		"1 when the service's live release has the desired spec and runs.", []string{"service"}, nil)
	infoDesc = prometheus.NewDesc("jailkeeper_service_info",
		"The live release of each service (value 1).", []string{"service", "sha", "release"}, nil)
	releasesDesc = prometheus.NewDesc("jailkeeper_releases",
		"Releases on this host by service and state.", []string{"service", "state"}, nil)
	revisionDesc = prometheus.NewDesc("jailkeeper_source_revision_info",
		"The deploy-repo commit last fetched (value 1).", []string{"revision"}, nil)
)

// releaseStates are the values of jailkeeper_releases' state label.
var releaseStates = []release.State{release.StateCreating, release.StateReady, release.StateLive, release.StateRetired, release.StateFailed}

// stateCollector reports the last pass's snapshot, so series of a pruned
// service disappear with it.
type stateCollector struct{ m *Metrics }

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- convergedDesc
	ch <- infoDesc
	ch <- releasesDesc
	ch <- revisionDesc
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	for _, s := range c.m.services {
		v := 0.0
		if s.Converged {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(convergedDesc, prometheus.GaugeValue, v, s.Service)
		if s.LiveRelease != "" {
			ch <- prometheus.MustNewConstMetric(infoDesc, prometheus.GaugeValue, 1, s.Service, s.LiveSHA, s.LiveRelease)
		}
	}
	// Every state of every known service, zeros included, so a state
	// that empties reads 0 rather than vanishing while the service exists.
	counts := map[string]map[release.State]int{}
	for _, s := range c.m.services {
		counts[s.Service] = map[release.State]int{}
	}
	for _, r := range c.m.releases {
		if counts[r.Service] == nil {
			counts[r.Service] = map[release.State]int{}
		}
		counts[r.Service][r.State]++
	}
	for svc, byState := range counts {
		for _, st := range releaseStates {
			ch <- prometheus.MustNewConstMetric(releasesDesc, prometheus.GaugeValue, float64(byState[st]), svc, string(st))
		}
	}
	if c.m.revision != "" {
		ch <- prometheus.MustNewConstMetric(revisionDesc, prometheus.GaugeValue, 1, c.m.revision)
	}
}
