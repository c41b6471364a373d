package agent

import (
	"errors"
	"slices"
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
	phaseSeconds      *prometheus.HistogramVec

	// The state the collector reports: the last pass's, updated by the
	// running pass as it learns the desired services and as their deploys
	// move on, so the gauges follow a pass, not only its end.
	mu       sync.Mutex
	revision string
	services []reconcile.ServiceStatus
	releases []release.Release
	// service -> live release and SHA before a switch, for a switch back.
	beforeSwitch map[string][2]string
	// suspensions feeds jailkeeper_service_suspended; nil: none.
	suspensions *Suspensions
	// inited holds the services whose counters initService has set.
	inited sync.Map
	// rebase feeds the jailkeeper_rebase_* series (rebase.go).
	rebase []reconcile.RebaseStatus
	canary canaryMetrics // canary.go
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
	m.phaseSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "jailkeeper_deploy_phase_seconds", Help: "Duration of each phase of a deploy (fetch, create, start, migrate, gate, canary, switch, watch, drain).", Buckets: durationBuckets,
	}, []string{"phase"})
	m.Registry.MustRegister(m.phaseSeconds, m.reconcileTotal, m.reconcileDuration, m.deploysTotal, m.deployDuration,
		m.commitToLive, m.rollbacksTotal, m.healthFailures, m.fetchTotal, m.lastSuccess, m.sigFailures,
		stateCollector{m}, suspendCollector{m}, rebaseCollector{m},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Series that exist from the start, so increase() and alerts see the
	// first increment.
	for _, r := range []string{"ok", "error"} {
		m.reconcileTotal.WithLabelValues(r)
		m.fetchTotal.WithLabelValues(r)
	}
	for _, p := range reconcile.Phases {
		m.phaseSeconds.WithLabelValues(string(p))
	}
	m.registerCanary()
	return m
}

// deployResults are the values of jailkeeper_deploys_total's result label.
var deployResults = []string{"success", "failed", "reverted"}

// initService creates a service's counter series at zero, so the first
// failed deploy of a service is an increase a rule can see.
func (m *Metrics) initService(service string) {
	if _, done := m.inited.LoadOrStore(service, true); done {
		return // once: an idle pass at 1,000 services looked up 10,000 series
	}
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
	m.rebase = res.Rebase
	m.mu.Unlock()
}

// desired makes every service of d known to the scrape as a pass starts:
// a new one reads not converged, with its counters at zero, before its
// first deploy has even begun; one whose SHA changed reads not converged.
func (m *Metrics) desired(d reconcile.Desired) {
	for i := range d.Services {
		m.initService(d.Services[i].Service)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	// By index, not a search per service (issue 11: that was quadratic),
	// and no copy when nothing changes, the case of every idle pass.
	at := make(map[string]int, len(m.services))
	for j, r := range m.services {
		at[r.Service] = j
	}
	var rows []reconcile.ServiceStatus
	for i := range d.Services {
		s := &d.Services[i]
		j, ok := at[s.Service]
		if ok && m.services[j].DesiredSHA == s.SHA {
			continue
		}
		if rows == nil {
			rows = slices.Clone(m.services)
		}
		if !ok {
			rows = append(rows, reconcile.ServiceStatus{Service: s.Service, DesiredSHA: s.SHA, State: "pending"})
			continue
		}
		rows[j].DesiredSHA, rows[j].Converged = s.SHA, false
	}
	if rows != nil {
		m.services = rows
	}
}

// updateService applies fn to service's row of the collector's state; the
// caller holds m.mu.
func (m *Metrics) updateServiceLocked(service string, fn func(*reconcile.ServiceStatus)) {
	rows := slices.Clone(m.services)
	j := slices.IndexFunc(rows, func(r reconcile.ServiceStatus) bool { return r.Service == service })
	if j < 0 {
		rows = append(rows, reconcile.ServiceStatus{Service: service, State: "pending"})
		j = len(rows) - 1
	}
	fn(&rows[j])
	m.services = rows
}

// setReleaseLocked sets the state of release name (adding it) in the
// collector's state; the caller holds m.mu.
func (m *Metrics) setReleaseLocked(service, name string, st release.State) {
	if name == "" {
		return
	}
	rels := slices.Clone(m.releases)
	j := slices.IndexFunc(rels, func(r release.Release) bool { return r.Name == name })
	if j < 0 {
		rels = append(rels, release.Release{Name: name, Service: service})
		j = len(rels) - 1
	}
	rels[j].State = st
	m.releases = rels
}

// phase records a deploy phase as it ends, and moves the gauges with it:
// a created target counts as a ready release, a switched one is the live
// release (not converged until its watch has passed).
func (m *Metrics) phase(p reconcile.PhaseTiming) {
	m.phaseSeconds.WithLabelValues(string(p.Phase)).Observe(p.Duration.Seconds())
	m.mu.Lock()
	defer m.mu.Unlock()
	switch p.Phase {
	case reconcile.PhaseCreate:
		if !slices.ContainsFunc(m.releases, func(r release.Release) bool { return r.Name == p.Release }) {
			m.setReleaseLocked(p.Service, p.Release, release.StateReady)
		}
	case reconcile.PhaseSwitch:
		m.updateServiceLocked(p.Service, func(s *reconcile.ServiceStatus) {
			if m.beforeSwitch == nil {
				m.beforeSwitch = map[string][2]string{}
			}
			m.beforeSwitch[p.Service] = [2]string{s.LiveRelease, s.LiveSHA}
			s.LiveRelease, s.LiveSHA, s.Converged = p.Release, s.DesiredSHA, false
		})
	}
}

// stateEvent moves the collector's state with a deploy's outcome.
func (m *Metrics) stateEvent(ev reconcile.Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch ev.Kind {
	case reconcile.EventLive, reconcile.EventRolledBack:
		m.updateServiceLocked(ev.Service, func(s *reconcile.ServiceStatus) {
			s.LiveRelease, s.LiveSHA, s.Converged, s.State = ev.Release, ev.SHA, true, string(release.StateLive)
		})
		m.setReleaseLocked(ev.Service, ev.Release, release.StateLive)
		prev := release.StateRetired
		if ev.Standby > 0 {
			prev = release.StateStandby
		}
		m.setReleaseLocked(ev.Service, ev.Previous, prev)
	case reconcile.EventFailed:
		if slices.ContainsFunc(m.releases, func(r release.Release) bool { return r.Name == ev.Release }) {
			m.setReleaseLocked(ev.Service, ev.Release, release.StateFailed)
		}
	case reconcile.EventCanaryAborted: // traffic never left the live release for good
		m.setReleaseLocked(ev.Service, ev.Release, release.StateFailed)
	case reconcile.EventReverted:
		m.setReleaseLocked(ev.Service, ev.Release, release.StateFailed)
		before := m.beforeSwitch[ev.Service]
		m.updateServiceLocked(ev.Service, func(s *reconcile.ServiceStatus) {
			s.LiveRelease, s.LiveSHA, s.Converged = before[0], before[1], false
		})
	}
	delete(m.beforeSwitch, ev.Service)
}

func (m *Metrics) event(ev reconcile.Event) {
	m.stateEvent(ev)
	m.canaryEvent(ev)
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
var releaseStates = []release.State{release.StateCreating, release.StateReady, release.StateLive, release.StateRetired, release.StateFailed, release.StateStandby}

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
