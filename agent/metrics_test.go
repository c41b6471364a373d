package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	dto "github.com/prometheus/client_model/go"

	"github.com/jailkeeper/jailkeeper/agent/gitsource"
	"github.com/jailkeeper/jailkeeper/internal/testenv"
	"github.com/jailkeeper/jailkeeper/manifest"
	"github.com/jailkeeper/jailkeeper/reconcile"
	"github.com/jailkeeper/jailkeeper/release"
)

// designMetrics is DESIGN.md's "Metrics" table: the names, types and labels
// are part of the contract.
var designMetrics = []struct {
	name   string
	typ    dto.MetricType
	labels []string
}{
	{"jailkeeper_reconcile_total", dto.MetricType_COUNTER, []string{"result"}},
	{"jailkeeper_reconcile_duration_seconds", dto.MetricType_HISTOGRAM, nil},
	{"jailkeeper_deploys_total", dto.MetricType_COUNTER, []string{"result", "service"}},
	{"jailkeeper_deploy_duration_seconds", dto.MetricType_HISTOGRAM, []string{"service"}},
	{"jailkeeper_commit_to_live_seconds", dto.MetricType_HISTOGRAM, []string{"service"}},
	{"jailkeeper_rollbacks_total", dto.MetricType_COUNTER, []string{"service"}},
	{"jailkeeper_health_check_failures_total", dto.MetricType_COUNTER, []string{"service"}},
	{"jailkeeper_service_converged", dto.MetricType_GAUGE, []string{"service"}},
	{"jailkeeper_service_info", dto.MetricType_GAUGE, []string{"release", "service", "sha"}},
	{"jailkeeper_releases", dto.MetricType_GAUGE, []string{"service", "state"}},
	{"jailkeeper_source_fetch_total", dto.MetricType_COUNTER, []string{"result"}},
	{"jailkeeper_source_revision_info", dto.MetricType_GAUGE, []string{"revision"}},
	{"jailkeeper_source_last_success_timestamp_seconds", dto.MetricType_GAUGE, nil},
	{"jailkeeper_signature_verification_failures_total", dto.MetricType_COUNTER, nil},
	{"jailkeeper_deploy_phase_seconds", dto.MetricType_HISTOGRAM, []string{"phase"}},
	{"jailkeeper_service_suspended", dto.MetricType_GAUGE, []string{"service"}},
	// Template rebase (issue 13); DESIGN.md's table is to list them too.
	{"jailkeeper_rebase_services", dto.MetricType_GAUGE, []string{"state", "template"}},
	{"jailkeeper_rebase_paused", dto.MetricType_GAUGE, []string{"template"}},
	{"jailkeeper_template_snapshot_info", dto.MetricType_GAUGE, []string{"snapshot", "template"}},
	// Issue 13's canary adds its own series (docs/metrics.md).
	{"jailkeeper_canary_total", dto.MetricType_COUNTER, []string{"result", "service"}},
	{"jailkeeper_canary_step", dto.MetricType_GAUGE, []string{"service"}},
	{"jailkeeper_canary_weight_percent", dto.MetricType_GAUGE, []string{"service"}},
	{"jailkeeper_canary_failures", dto.MetricType_GAUGE, []string{"service"}},
	{"jailkeeper_canary_max_failures", dto.MetricType_GAUGE, []string{"service"}},
}

const (
	testSHA  = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
	testRev  = "0123456789abcdef0123456789abcdef01234567"
	testRel  = "hello_4b825dc642cb_9f86d0"
	testRel2 = "hello_1111111111aa_9f86d0"
)

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// exercise feeds m one of everything, so every family has a sample.
func exercise(m *Metrics) {
	m.sourceFetched(gitsource.Snapshot{Revision: testRev}, nil, t0)
	m.sourceFetched(gitsource.Snapshot{Revision: testRev}, fmt.Errorf("poll: %w", gitsource.ErrSignature), t0)
	m.event(reconcile.Event{Kind: reconcile.EventDeployStarted, Service: "hello", Release: testRel, SHA: testSHA})
	m.event(reconcile.Event{Kind: reconcile.EventLive, Time: t0, Service: "hello", Release: testRel, SHA: testSHA,
		Duration: 3 * time.Second, CommitTime: t0.Add(-20 * time.Second), Rollback: true})
	m.event(reconcile.Event{Kind: reconcile.EventFailed, Service: "hello", Release: testRel2, SHA: testSHA,
		Reason: "health gate: GET /up: 503 Service Unavailable", HealthFailure: true})
	m.passDone(reconcile.Result{
		Services: []reconcile.ServiceStatus{{Service: "hello", DesiredSHA: testSHA, LiveSHA: testSHA, LiveRelease: testRel, Converged: true, State: "live"}},
		Releases: []release.Release{{Name: testRel, Service: "hello", SHA: testSHA, State: release.StateLive}},
		Rebase:   []reconcile.RebaseStatus{{Template: "14.3-RELEASE", Snapshot: "20261129T150405Z", Current: 1}},
	}, nil, 4*time.Second)
	m.event(reconcile.Event{Kind: reconcile.EventCanaryPromoted, Service: "hello", Release: testRel, CanaryStep: 2, Percent: 100})
	m.watchCanaries(func() reconcile.Memory {
		return reconcile.Memory{InFlight: []reconcile.InFlight{{Service: "hello", Release: testRel2, Step: reconcile.KindDeploy,
			Canary: &reconcile.CanaryStatus{Release: testRel2, Step: 1, Steps: []int{10, 50}, Percent: 10, Failures: 2, MaxFailures: 5, Since: t0}}}}
	})
}

func gather(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

func labelNames(m *dto.Metric) []string {
	var names []string
	for _, l := range m.GetLabel() {
		names = append(names, l.GetName())
	}
	sort.Strings(names)
	return names
}

func labelMap(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// value returns the value of the series of family name with exactly labels.
func value(t *testing.T, m *Metrics, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	mf := gather(t, m)[name]
	for _, s := range mf.GetMetric() {
		if !cmp.Equal(labelMap(s), labels) {
			continue
		}
		switch mf.GetType() {
		case dto.MetricType_COUNTER:
			return s.GetCounter().GetValue(), true
		case dto.MetricType_GAUGE:
			return s.GetGauge().GetValue(), true
		case dto.MetricType_HISTOGRAM:
			return float64(s.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// series lists the label sets of family name, rendered and sorted.
func series(t *testing.T, m *Metrics, name string) []string {
	t.Helper()
	var out []string
	for _, s := range gather(t, m)[name].GetMetric() {
		var kv []string
		for _, l := range s.GetLabel() {
			kv = append(kv, l.GetName()+"="+l.GetValue())
		}
		out = append(out, strings.Join(kv, ","))
	}
	sort.Strings(out)
	return out
}

func TestMetricsMatchDesign(t *testing.T) {
	m := NewMetrics()
	exercise(m)
	fams := gather(t, m)
	want := map[string]bool{}
	for _, d := range designMetrics {
		want[d.name] = true
		t.Run(d.name, func(t *testing.T) {
			mf, ok := fams[d.name]
			if !ok {
				t.Fatalf("%s not exposed", d.name)
			}
			if mf.GetType() != d.typ {
				t.Errorf("type = %s, want %s", mf.GetType(), d.typ)
			}
			if mf.GetHelp() == "" {
				t.Error("no HELP text")
			}
			for _, s := range mf.GetMetric() {
				if diff := cmp.Diff(d.labels, labelNames(s)); diff != "" {
					t.Errorf("labels (-want +got):\n%s", diff)
				}
				if h := s.GetHistogram(); h != nil {
					bounds := h.GetBucket()
					if top := bounds[len(bounds)-1].GetUpperBound(); top != 600 {
						t.Errorf("largest bucket = %v, want 600", top)
					}
				}
			}
		})
	}
	for name := range fams {
		if strings.HasPrefix(name, "jailkeeper_") && !want[name] {
			t.Errorf("%s is not in DESIGN.md's table", name)
		}
	}
	for _, name := range []string{"go_goroutines", "process_start_time_seconds"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("%s missing: the Go and process collectors are part of the registry", name)
		}
	}
}

// Counters and histograms take only bounded labels: never a SHA, a
// revision or error text, which would make a series per deploy.
func TestCounterLabelsAreBounded(t *testing.T) {
	m := NewMetrics()
	exercise(m)
	m.event(reconcile.Event{Kind: reconcile.EventReverted, Service: "hello", Release: testRel2, SHA: testSHA,
		Revision: testRev, Reason: "watch: GET /up: connection refused", HealthFailure: true})
	// phase: DESIGN's fixed set (migrate comes with migrations, canary
	// with canaries); result: canary_total's too.
	allowed := map[string][]string{"result": {"ok", "error", "success", "failed", "reverted", "promoted", "aborted", "preempted"}, "service": {"hello"},
		"phase": {"fetch", "create", "start", "migrate", "gate", "canary", "switch", "watch", "drain"}}
	for name, mf := range gather(t, m) {
		if !strings.HasPrefix(name, "jailkeeper_") {
			continue
		}
		if mf.GetType() != dto.MetricType_COUNTER && mf.GetType() != dto.MetricType_HISTOGRAM {
			continue
		}
		for _, s := range mf.GetMetric() {
			for _, l := range s.GetLabel() {
				vals, ok := allowed[l.GetName()]
				if !ok {
					t.Errorf("%s has label %s", name, l.GetName())
					continue
				}
				if !slices.Contains(vals, l.GetValue()) {
					t.Errorf("%s{%s=%q}: value not in %v", name, l.GetName(), l.GetValue(), vals)
				}
			}
		}
	}
}

func TestMetricsEvents(t *testing.T) {
	type key struct {
		name   string
		labels string
	}
	hello := func(extra ...string) string { return strings.Join(append([]string{"service=hello"}, extra...), ",") }
	tests := []struct {
		name   string
		events []reconcile.Event
		want   map[key]float64
	}{{
		name: "deploy started creates the service's counters at zero",
		events: []reconcile.Event{
			{Kind: reconcile.EventDeployStarted, Service: "hello", Release: testRel},
		},
		want: map[key]float64{
			{"jailkeeper_deploys_total", "result=success," + hello()}:  0,
			{"jailkeeper_deploys_total", "result=failed," + hello()}:   0,
			{"jailkeeper_deploys_total", "result=reverted," + hello()}: 0,
			{"jailkeeper_rollbacks_total", hello()}:                    0,
			{"jailkeeper_health_check_failures_total", hello()}:        0,
		},
	}, {
		name: "live counts a success, its duration and commit-to-live",
		events: []reconcile.Event{
			{Kind: reconcile.EventLive, Time: t0, Service: "hello", Duration: 2 * time.Second, CommitTime: t0.Add(-time.Minute)},
		},
		want: map[key]float64{
			{"jailkeeper_deploys_total", "result=success," + hello()}: 1,
			{"jailkeeper_deploy_duration_seconds", hello()}:           1,
			{"jailkeeper_commit_to_live_seconds", hello()}:            1,
		},
	}, {
		name: "rolled back is a success and a rollback",
		events: []reconcile.Event{
			{Kind: reconcile.EventRolledBack, Time: t0, Service: "hello", Rollback: true},
		},
		want: map[key]float64{
			{"jailkeeper_deploys_total", "result=success," + hello()}: 1,
			{"jailkeeper_deploy_duration_seconds", hello()}:           1,
			{"jailkeeper_rollbacks_total", hello()}:                   1,
		},
	}, {
		name: "failed gate",
		events: []reconcile.Event{
			{Kind: reconcile.EventFailed, Service: "hello", Reason: "gate", HealthFailure: true},
			{Kind: reconcile.EventFailed, Service: "hello", Reason: "fetch artifact: 404"},
		},
		want: map[key]float64{
			{"jailkeeper_deploys_total", "result=failed," + hello()}: 2,
			{"jailkeeper_health_check_failures_total", hello()}:      1,
		},
	}, {
		name: "reverted during watch",
		events: []reconcile.Event{
			{Kind: reconcile.EventReverted, Service: "hello", Reason: "watch", HealthFailure: true},
		},
		want: map[key]float64{
			{"jailkeeper_deploys_total", "result=reverted," + hello()}: 1,
			{"jailkeeper_health_check_failures_total", hello()}:        1,
		},
	}, {
		name: "pruned and route restored count nothing",
		events: []reconcile.Event{
			{Kind: reconcile.EventPruned, Service: "hello"},
			{Kind: reconcile.EventRouteRestored, Service: "hello"},
		},
		want: map[key]float64{},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMetrics()
			for _, ev := range tt.events {
				m.event(ev)
			}
			got := map[key]float64{}
			for name, mf := range gather(t, m) {
				if !strings.HasPrefix(name, "jailkeeper_deploy") && !strings.HasPrefix(name, "jailkeeper_rollbacks") &&
					!strings.HasPrefix(name, "jailkeeper_health") && !strings.HasPrefix(name, "jailkeeper_commit") {
					continue
				}
				for _, s := range mf.GetMetric() {
					var kv []string
					for _, l := range s.GetLabel() {
						kv = append(kv, l.GetName()+"="+l.GetValue())
					}
					k := key{name, strings.Join(kv, ",")}
					switch {
					case s.GetCounter() != nil:
						if v := s.GetCounter().GetValue(); v != 0 || hasKey(tt.want, k) {
							got[k] = v
						}
					case s.GetHistogram() != nil:
						if v := float64(s.GetHistogram().GetSampleCount()); v != 0 || hasKey(tt.want, k) {
							got[k] = v
						}
					}
				}
			}
			for k := range tt.want {
				if _, ok := got[k]; !ok {
					got[k] = -1 // a missing series
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("series (-want +got):\n%s", diff)
			}
		})
	}
}

func hasKey[K comparable, V any](m map[K]V, k K) bool { _, ok := m[k]; return ok }

func TestCommitToLiveNeverNegative(t *testing.T) {
	m := NewMetrics()
	// The host's clock is behind the committer's.
	m.event(reconcile.Event{Kind: reconcile.EventLive, Time: t0, Service: "hello", CommitTime: t0.Add(time.Minute)})
	for _, s := range gather(t, m)["jailkeeper_commit_to_live_seconds"].GetMetric() {
		if sum := s.GetHistogram().GetSampleSum(); sum != 0 {
			t.Errorf("commit_to_live sum = %v, want 0", sum)
		}
	}
}

func TestPrunedServiceLeavesScrape(t *testing.T) {
	m := NewMetrics()
	two := reconcile.Result{
		Services: []reconcile.ServiceStatus{
			{Service: "hello", LiveSHA: testSHA, LiveRelease: testRel, Converged: true, State: "live"},
			{Service: "x", LiveSHA: testSHA, LiveRelease: "x_4b825dc642cb_9f86d0", Converged: false, State: "ready"},
		},
		Releases: []release.Release{
			{Name: testRel, Service: "hello", State: release.StateLive},
			{Name: "x_4b825dc642cb_9f86d0", Service: "x", State: release.StateLive},
			{Name: "x_1111111111aa_9f86d0", Service: "x", State: release.StateRetired},
		},
	}
	m.passDone(two, nil, time.Second)
	if v, ok := value(t, m, "jailkeeper_service_converged", map[string]string{"service": "x"}); !ok || v != 0 {
		t.Fatalf(`service_converged{service="x"} = %v, %v; want 0, true`, v, ok)
	}
	if v, ok := value(t, m, "jailkeeper_releases", map[string]string{"service": "x", "state": "retired"}); !ok || v != 1 {
		t.Fatalf(`releases{service="x",state="retired"} = %v, %v; want 1, true`, v, ok)
	}

	// The next pass pruned x.
	one := reconcile.Result{Services: two.Services[:1], Releases: two.Releases[:1]}
	m.passDone(one, nil, time.Second)
	for _, name := range []string{"jailkeeper_service_converged", "jailkeeper_service_info", "jailkeeper_releases"} {
		for _, s := range series(t, m, name) {
			if strings.Contains(s, "service=x") {
				t.Errorf("%s{%s} still scraped after prune", name, s)
			}
		}
	}
	want := []string{"service=hello,state=creating", "service=hello,state=failed", "service=hello,state=live",
		"service=hello,state=ready", "service=hello,state=retired", "service=hello,state=standby"}
	if diff := cmp.Diff(want, series(t, m, "jailkeeper_releases")); diff != "" {
		t.Errorf("releases series (-want +got):\n%s", diff)
	}
	if v, _ := value(t, m, "jailkeeper_releases", map[string]string{"service": "hello", "state": "live"}); v != 1 {
		t.Errorf(`releases{service="hello",state="live"} = %v, want 1`, v)
	}
}

func TestStateCollector(t *testing.T) {
	m := NewMetrics()
	m.passDone(reconcile.Result{
		Services: []reconcile.ServiceStatus{
			{Service: "hello", DesiredSHA: testSHA, LiveSHA: testSHA, LiveRelease: testRel, Converged: true, State: "live"},
			{Service: "fresh", DesiredSHA: testSHA, State: "pending"}, // nothing live yet
		},
	}, nil, time.Second)
	if diff := cmp.Diff([]string{"release=" + testRel + ",service=hello,sha=" + testSHA}, series(t, m, "jailkeeper_service_info")); diff != "" {
		t.Errorf("service_info (-want +got):\n%s", diff)
	}
	if v, _ := value(t, m, "jailkeeper_service_converged", map[string]string{"service": "hello"}); v != 1 {
		t.Errorf(`converged{service="hello"} = %v, want 1`, v)
	}
	if v, ok := value(t, m, "jailkeeper_service_converged", map[string]string{"service": "fresh"}); !ok || v != 0 {
		t.Errorf(`converged{service="fresh"} = %v, %v; want 0, true`, v, ok)
	}
	if v, ok := value(t, m, "jailkeeper_releases", map[string]string{"service": "fresh", "state": "live"}); !ok || v != 0 {
		t.Errorf(`releases{service="fresh",state="live"} = %v, %v; want 0, true`, v, ok)
	}

	// A pass that failed before it observed anything keeps the last state.
	m.passDone(reconcile.Result{}, errors.New("observe: caddy: connection refused"), time.Second)
	if v, _ := value(t, m, "jailkeeper_service_converged", map[string]string{"service": "hello"}); v != 1 {
		t.Errorf(`after a failed pass converged{service="hello"} = %v, want 1`, v)
	}
	if v, _ := value(t, m, "jailkeeper_reconcile_total", map[string]string{"result": "error"}); v != 1 {
		t.Errorf(`reconcile_total{result="error"} = %v, want 1`, v)
	}
	if v, _ := value(t, m, "jailkeeper_reconcile_total", map[string]string{"result": "ok"}); v != 1 {
		t.Errorf(`reconcile_total{result="ok"} = %v, want 1`, v)
	}
}

func TestSourceMetrics(t *testing.T) {
	m := NewMetrics()
	// Before any poll: both results exist at zero, no revision, no success.
	for _, r := range []string{"ok", "error"} {
		if v, ok := value(t, m, "jailkeeper_source_fetch_total", map[string]string{"result": r}); !ok || v != 0 {
			t.Errorf(`source_fetch_total{result=%q} = %v, %v; want 0, true`, r, v, ok)
		}
	}
	if s := series(t, m, "jailkeeper_source_revision_info"); len(s) != 0 {
		t.Errorf("revision_info before a poll = %v", s)
	}

	m.sourceFetched(gitsource.Snapshot{Revision: testRev}, nil, t0)
	if v, _ := value(t, m, "jailkeeper_source_last_success_timestamp_seconds", map[string]string{}); v != float64(t0.Unix()) {
		t.Errorf("last success = %v, want %v", v, t0.Unix())
	}
	// Unreachable: an error, no signature failure, the last good revision stays.
	m.sourceFetched(gitsource.Snapshot{Revision: testRev}, fmt.Errorf("ls-remote: %w", gitsource.ErrUnreachable), t0.Add(time.Minute))
	// A badly signed head.
	m.sourceFetched(gitsource.Snapshot{Revision: testRev}, fmt.Errorf("head: %w", gitsource.ErrSignature), t0.Add(2*time.Minute))
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"jailkeeper_source_fetch_total", map[string]string{"result": "ok"}, 1},
		{"jailkeeper_source_fetch_total", map[string]string{"result": "error"}, 2},
		{"jailkeeper_signature_verification_failures_total", map[string]string{}, 1},
		{"jailkeeper_source_last_success_timestamp_seconds", map[string]string{}, float64(t0.Unix())},
		{"jailkeeper_source_revision_info", map[string]string{"revision": testRev}, 1},
	}
	for _, c := range checks {
		if v, ok := value(t, m, c.name, c.labels); !ok || v != c.want {
			t.Errorf("%s%v = %v, %v; want %v", c.name, c.labels, v, ok, c.want)
		}
	}
}

// metricRE finds metric names in PromQL and prose.
var metricRE = regexp.MustCompile(`\b(?:jailkeeper|go|process)_[a-z0-9_]*[a-z0-9]`)

// checkMetricsExist fails for each metric name in text that the agent's
// registry does not expose (histogram series names map to their family).
func checkMetricsExist(t *testing.T, what, text string) {
	t.Helper()
	m := NewMetrics()
	exercise(m)
	fams := gather(t, m)
	names := map[string]bool{}
	for _, name := range metricRE.FindAllString(text, -1) {
		names[name] = true
	}
	if len(names) == 0 {
		t.Fatalf("%s names no metric", what)
	}
	for name := range names {
		if _, ok := fams[name]; ok {
			continue
		}
		found := false
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if mf, ok := fams[strings.TrimSuffix(name, suffix)]; ok && strings.HasSuffix(name, suffix) && mf.GetType() == dto.MetricType_HISTOGRAM {
				found = true
			}
		}
		if !found {
			t.Errorf("%s queries %s, which the agent does not expose", what, name)
		}
	}
}

func repoFile(t *testing.T, rel string) string {
	t.Helper()
	return filepath.Join(testenv.RepoRoot(t), filepath.FromSlash(rel))
}

func readRepoFile(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(repoFile(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// docs/alerts.yml is valid, its rules behave (agent/testdata/alerts_test.yml),
// it queries only real metrics, and docs/metrics.md shows it verbatim.
func TestAlertRules(t *testing.T) {
	promtool := testenv.Command(t, "promtool")
	for _, args := range [][]string{
		{"check", "rules", repoFile(t, "docs/alerts.yml")},
		{"test", "rules", repoFile(t, "agent/testdata/alerts_test.yml")},
	} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args[:2], " "), err, out)
		}
	}
	rules := readRepoFile(t, "docs/alerts.yml")
	checkMetricsExist(t, "docs/alerts.yml", rules)
	doc := readRepoFile(t, "docs/metrics.md")
	if !strings.Contains(doc, "```yaml\n"+rules+"```\n") {
		t.Error("docs/metrics.md does not include docs/alerts.yml verbatim in a yaml block")
	}
	for _, want := range []string{"JailkeeperDeployFailed", "JailkeeperNotConverged", "JailkeeperSourceStale"} {
		if !strings.Contains(rules, "alert: "+want+"\n") {
			t.Errorf("docs/alerts.yml has no %s", want)
		}
	}
}

// docs/metrics.md's table lists exactly the jailkeeper metrics the agent
// exposes.
func TestMetricsDocTable(t *testing.T) {
	doc := readRepoFile(t, "docs/metrics.md")
	var documented []string
	for _, line := range strings.Split(doc, "\n") {
		if name, ok := strings.CutPrefix(line, "| `jailkeeper_"); ok {
			documented = append(documented, "jailkeeper_"+name[:strings.Index(name, "`")])
		}
	}
	sort.Strings(documented)
	m := NewMetrics()
	exercise(m)
	var exposed []string
	for name := range gather(t, m) {
		if strings.HasPrefix(name, "jailkeeper_") {
			exposed = append(exposed, name)
		}
	}
	sort.Strings(exposed)
	if diff := cmp.Diff(exposed, documented); diff != "" {
		t.Errorf("docs/metrics.md table (-exposed +documented):\n%s", diff)
	}
}

// dashboardExprs walks a Grafana dashboard and returns every "expr" and
// every templating "query" string.
func dashboardExprs(v any) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && (k == "expr" || k == "query" || k == "definition") {
				out = append(out, s)
				continue
			}
			out = append(out, dashboardExprs(x)...)
		}
	case []any:
		for _, x := range v {
			out = append(out, dashboardExprs(x)...)
		}
	}
	return out
}

func TestGrafanaDashboard(t *testing.T) {
	var dash map[string]any
	if err := json.Unmarshal([]byte(readRepoFile(t, "docs/grafana-dashboard.json")), &dash); err != nil {
		t.Fatalf("docs/grafana-dashboard.json: %v", err)
	}
	panels, _ := dash["panels"].([]any)
	if len(panels) == 0 {
		t.Fatal("dashboard has no panels")
	}
	ids := map[float64]bool{}
	for i, p := range panels {
		p, _ := p.(map[string]any)
		if title, _ := p["title"].(string); title == "" {
			t.Errorf("panel %d has no title", i)
		}
		id, _ := p["id"].(float64)
		if ids[id] {
			t.Errorf("panel %d: duplicate id %v", i, id)
		}
		ids[id] = true
		if p["type"] == "row" {
			continue
		}
		targets, _ := p["targets"].([]any)
		if len(targets) == 0 {
			t.Errorf("panel %q has no query", p["title"])
		}
	}
	exprs := dashboardExprs(dash)
	checkMetricsExist(t, "docs/grafana-dashboard.json", strings.Join(exprs, "\n"))
	// Every DESIGN metric is on the dashboard somewhere.
	all := strings.Join(exprs, "\n")
	for _, d := range designMetrics {
		if !strings.Contains(all, d.name) {
			t.Errorf("dashboard does not show %s", d.name)
		}
	}
}

// The gauges follow a pass: a desired service is known before its deploy
// ends, a switch makes the target the live release (not converged until
// its watch passes), live makes it converged, a revert switches back.
func TestGaugesFollowThePass(t *testing.T) {
	m := NewMetrics()
	m.passDone(reconcile.Result{
		Services: []reconcile.ServiceStatus{{Service: "web", DesiredSHA: testSHA, LiveSHA: testSHA, LiveRelease: "web_1", Converged: true}},
		Releases: []release.Release{{Name: "web_1", Service: "web", State: release.StateLive}},
	}, nil, time.Second)
	m.desired(reconcile.Desired{Services: []manifest.Service{{Service: "web", SHA: testSHA}, {Service: "hello", SHA: testSHA}}})
	conv := func(svc string) float64 {
		t.Helper()
		v, ok := value(t, m, "jailkeeper_service_converged", map[string]string{"service": svc})
		if !ok {
			return -1
		}
		return v
	}
	if got := conv("hello"); got != 0 {
		t.Errorf("hello converged = %v before its deploy, want 0", got)
	}
	if got := conv("web"); got != 1 {
		t.Errorf("web converged = %v, want 1 (unchanged)", got)
	}
	if v, ok := value(t, m, "jailkeeper_deploys_total", map[string]string{"service": "hello", "result": "failed"}); !ok || v != 0 {
		t.Errorf("hello deploys_total{failed} = %v, %v; want 0, present", v, ok)
	}
	m.phase(reconcile.PhaseTiming{Service: "hello", Release: testRel, Phase: reconcile.PhaseCreate, Duration: time.Second})
	if v, _ := value(t, m, "jailkeeper_releases", map[string]string{"service": "hello", "state": "ready"}); v != 1 {
		t.Errorf("hello releases{ready} = %v after create, want 1", v)
	}
	m.phase(reconcile.PhaseTiming{Service: "hello", Release: testRel, Phase: reconcile.PhaseSwitch, Duration: time.Millisecond})
	if got := series(t, m, "jailkeeper_service_info"); !slices.Contains(got, "release="+testRel+",service=hello,sha="+testSHA) {
		t.Errorf("service_info after switch = %v, want hello's target", got)
	}
	if got := conv("hello"); got != 0 {
		t.Errorf("hello converged = %v during its watch, want 0", got)
	}
	m.event(reconcile.Event{Kind: reconcile.EventLive, Service: "hello", Release: testRel, SHA: testSHA})
	if got := conv("hello"); got != 1 {
		t.Errorf("hello converged = %v once live, want 1", got)
	}
	if v, _ := value(t, m, "jailkeeper_releases", map[string]string{"service": "hello", "state": "live"}); v != 1 {
		t.Errorf("hello releases{live} = %v, want 1", v)
	}
	// A revert puts the release live before the switch back.
	m.phase(reconcile.PhaseTiming{Service: "web", Release: "web_2", Phase: reconcile.PhaseSwitch})
	m.event(reconcile.Event{Kind: reconcile.EventReverted, Service: "web", Release: "web_2", Previous: "web_1"})
	if got := series(t, m, "jailkeeper_service_info"); !slices.Contains(got, "release=web_1,service=web,sha="+testSHA) {
		t.Errorf("service_info after revert = %v, want web_1", got)
	}
	if v, ok := value(t, m, "jailkeeper_deploy_phase_seconds", map[string]string{"phase": "switch"}); !ok || v != 2 {
		t.Errorf("deploy_phase_seconds{switch} count = %v, want 2", v)
	}
}
