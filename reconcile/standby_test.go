package reconcile

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/caddy"
	"github.com/jailkeeper/jailkeeper/internal/golden"
	"github.com/jailkeeper/jailkeeper/manifest"
	"github.com/jailkeeper/jailkeeper/release"
)

const testStandby = 10 * time.Minute

// standbyPass is a pass whose agent default standby is testStandby.
func (h *harness) standbyPass(t *testing.T, svcs ...manifest.Service) (Result, error) {
	t.Helper()
	return h.exec.Pass(context.Background(), Desired{Revision: "r", Services: svcs, DefaultStandby: testStandby})
}

// countingProber counts probes by address and fails the first fail[addr]
// of them.
type countingProber struct {
	mu    sync.Mutex
	n     map[string]int
	fail  map[string]int
	inner Prober
}

func newCountingProber(inner Prober) *countingProber {
	return &countingProber{n: map[string]int{}, fail: map[string]int{}, inner: inner}
}

func (p *countingProber) Probe(ctx context.Context, url string, timeout time.Duration) error {
	p.mu.Lock()
	host := strings.TrimPrefix(url, "http://")
	host, _, _ = strings.Cut(host, "/")
	p.n[host]++
	failing := p.n[host] <= p.fail[host]
	p.mu.Unlock()
	if failing {
		return &probeError{url}
	}
	return p.inner.Probe(ctx, url, timeout)
}

func (p *countingProber) count(addr string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n[addr]
}

type probeError struct{ url string }

func (e *probeError) Error() string { return "GET " + e.url + ": 503 Service Unavailable" }

// standbyHarness deploys v1 then v2 with standby on: v1 is on standby.
func standbyHarness(t *testing.T, v1, v2 manifest.Service) (*harness, *countingProber) {
	t.Helper()
	h := newHarness()
	cp := newCountingProber(h.prober)
	o := h.options()
	o.Prober = cp
	h.exec = NewExecutor(o)
	if _, err := h.standbyPass(t, v1); err != nil {
		t.Fatal(err)
	}
	h.advance(time.Minute)
	if _, err := h.standbyPass(t, v2); err != nil {
		t.Fatal(err)
	}
	return h, cp
}

func TestStandbyKeepsPreviousRunningUntilItEnds(t *testing.T) {
	v1, v2 := svc("hello", sha1), svc("hello", sha2)
	h, _ := standbyHarness(t, v1, v2)
	since := t0.Add(time.Minute)
	r1 := mustState(t, h, v1.ReleaseName(), release.StateStandby, true)
	if !r1.StandbySince.Equal(since) {
		t.Errorf("standby since %s, want %s", r1.StandbySince, since)
	}
	mustState(t, h, v2.ReleaseName(), release.StateLive, true)
	h.mu.Lock()
	last, wakes := h.events[len(h.events)-1], slices.Clone(h.wakes)
	h.mu.Unlock()
	if last.Kind != EventLive || last.Previous != v1.ReleaseName() || last.Standby != testStandby {
		t.Errorf("last event = %+v, want live with %s on standby for %s", last, v1.ReleaseName(), testStandby)
	}
	// A pass is asked for when the standby ends, so the stop does not
	// wait for the next poll.
	if !slices.Contains(wakes, testStandby+10*time.Millisecond) {
		t.Errorf("wake-ups %v, want one at the standby's end", wakes)
	}

	// Within the window, converged passes keep it running, and say so.
	h.advance(testStandby - time.Second)
	res, err := h.standbyPass(t, v2)
	if err != nil {
		t.Fatal(err)
	}
	mustState(t, h, v1.ReleaseName(), release.StateStandby, true)
	until := since.Add(testStandby)
	if st := res.Services[0]; st.Standby != v1.ReleaseName() || !st.StandbyUntil.Equal(until) || !st.Converged {
		t.Errorf("status = %+v, want %s on standby until %s", st, v1.ReleaseName(), until)
	}
	if s := res.Steps[0]; s.Standby == nil || s.Standby.Name != v1.ReleaseName() || len(s.Stop) != 0 {
		t.Errorf("step = %s", s)
	}

	// Once it has passed, the next pass stops and retires it.
	h.advance(time.Second)
	res, err = h.standbyPass(t, v2)
	if err != nil {
		t.Fatal(err)
	}
	mustState(t, h, v1.ReleaseName(), release.StateRetired, false)
	if st := res.Services[0]; st.Standby != "" || !st.StandbyUntil.IsZero() {
		t.Errorf("status after the standby = %+v", st)
	}
}

func TestRollbackToStandbyIsOneProbeAndOneSwitch(t *testing.T) {
	v1, v2 := svc("hello", sha1), svc("hello", sha2)
	v1.Health.Watch, v2.Health.Watch = 0, 0 // count the rollback's probes alone
	h, cp := standbyHarness(t, v1, v2)
	r1, _ := h.rt.get(v1.ReleaseName())
	probes, calls := cp.count(r1.Addr()), len(h.rt.history())
	h.proxy.mu.Lock()
	writes := len(h.proxy.writes)
	h.proxy.mu.Unlock()
	fetches := h.fetcher.fetches

	h.advance(time.Minute)
	res, err := h.standbyPass(t, v1)
	if err != nil {
		t.Fatal(err)
	}
	if s := res.Steps[0]; s.Kind != KindRollback || !s.Hot {
		t.Fatalf("step = %s, want a hot rollback", s)
	}
	if n := cp.count(r1.Addr()) - probes; n != 1 {
		t.Errorf("rollback probed %s %d times, want 1", v1.ReleaseName(), n)
	}
	h.proxy.mu.Lock()
	got := slices.Clone(h.proxy.writes[writes:])
	h.proxy.mu.Unlock()
	if want := []string{"set hello " + r1.Addr()}; !slices.Equal(got, want) {
		t.Errorf("route writes = %v, want %v", got, want)
	}
	for _, c := range h.rt.history()[calls:] {
		if strings.HasPrefix(c, "start ") || strings.HasPrefix(c, "create ") || strings.HasPrefix(c, "stop "+v1.ReleaseName()) {
			t.Errorf("hot rollback called %q", c)
		}
	}
	if h.fetcher.fetches != fetches {
		t.Error("hot rollback fetched")
	}
	mustState(t, h, v1.ReleaseName(), release.StateLive, true)
	// The release rolled back from goes on standby in turn: rolling
	// forward again is as quick.
	mustState(t, h, v2.ReleaseName(), release.StateStandby, true)
	h.mu.Lock()
	last := h.events[len(h.events)-1]
	h.mu.Unlock()
	if last.Kind != EventRolledBack || !last.Rollback {
		t.Errorf("last event = %+v", last)
	}
}

func TestStandbyFailingItsProbeIsRestartedAndGated(t *testing.T) {
	v1, v2 := svc("hello", sha1), svc("hello", sha2)
	h, cp := standbyHarness(t, v1, v2)
	r1, _ := h.rt.get(v1.ReleaseName())
	r2, _ := h.rt.get(v2.ReleaseName())
	cp.mu.Lock()
	cp.fail[r1.Addr()] = cp.n[r1.Addr()] + 1 // its next probe fails
	cp.mu.Unlock()
	calls := len(h.rt.history())

	h.advance(time.Minute)
	if _, err := h.standbyPass(t, v1); err != nil {
		t.Fatal(err)
	}
	got := h.rt.history()[calls:]
	stop, start := slices.Index(got, "stop "+r1.Name), slices.Index(got, "start "+r1.Name)
	if stop < 0 || start < stop {
		t.Errorf("calls %v, want %s stopped and started again", got, r1.Name)
	}
	mustState(t, h, v1.ReleaseName(), release.StateLive, true)
	if up := h.proxy.upstream("hello"); up != r1.Addr() {
		t.Errorf("route -> %s, want %s", up, r1.Addr())
	}

	// A standby that answers nothing at all fails the full gate: it is
	// marked failed and traffic stays where it was.
	h.advance(time.Minute)
	if _, err := h.standbyPass(t, v2); err != nil { // roll forward: v1 goes on standby
		t.Fatal(err)
	}
	mustState(t, h, v1.ReleaseName(), release.StateStandby, true)
	h.prober.bad[r1.Addr()] = true
	h.advance(time.Minute)
	if _, err := h.standbyPass(t, v1); err == nil || !strings.Contains(err.Error(), "health gate") {
		t.Fatalf("err = %v, want a failed health gate", err)
	}
	mustState(t, h, v1.ReleaseName(), release.StateFailed, false)
	if up := h.proxy.upstream("hello"); up != r2.Addr() {
		t.Errorf("route -> %s, want it kept on %s", up, r2.Addr())
	}
}

func TestStandbySurvivesAgentRestart(t *testing.T) {
	v1, v2 := svc("hello", sha1), svc("hello", sha2)
	h, _ := standbyHarness(t, v1, v2)
	// A new Executor knows nothing but what the runtime stores.
	h.exec = NewExecutor(h.options())
	h.advance(time.Minute)
	steps, err := h.exec.PlanPass(context.Background(), Desired{Services: []manifest.Service{v1}, DefaultStandby: testStandby})
	if err != nil {
		t.Fatal(err)
	}
	if s := steps[0]; s.Kind != KindRollback || !s.Hot {
		t.Errorf("after a restart: step = %s, want a hot rollback", s)
	}
	// Past the window, the same revert is an ordinary rollback.
	h.advance(testStandby)
	steps, err = h.exec.PlanPass(context.Background(), Desired{Services: []manifest.Service{v1}, DefaultStandby: testStandby})
	if err != nil {
		t.Fatal(err)
	}
	if s := steps[0]; s.Kind != KindRollback || s.Hot {
		t.Errorf("after the standby: step = %s, want a rollback that starts and gates", s)
	}
}

func TestStandbyIsNeverDestroyedByRetain(t *testing.T) {
	v1, v2 := svc("hello", sha1), svc("hello", sha2)
	v1.Retain, v2.Retain = 0, 0
	h, _ := standbyHarness(t, v1, v2)
	mustState(t, h, v1.ReleaseName(), release.StateStandby, true)
	h.advance(time.Minute)
	if _, err := h.standbyPass(t, v2); err != nil {
		t.Fatal(err)
	}
	mustState(t, h, v1.ReleaseName(), release.StateStandby, true)
	// After its standby, retain 0 keeps no retired release.
	h.advance(testStandby)
	if _, err := h.standbyPass(t, v2); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.rt.get(v1.ReleaseName()); ok {
		t.Error("retain 0 kept the release after its standby")
	}
}

func TestOneStandbyPerService(t *testing.T) {
	v1, v2, v3 := svc("hello", sha1), svc("hello", sha2), svc("hello", sha3)
	v1.Retain, v2.Retain, v3.Retain = 2, 2, 2
	h, _ := standbyHarness(t, v1, v2)
	h.advance(time.Minute)
	if _, err := h.standbyPass(t, v3); err != nil {
		t.Fatal(err)
	}
	mustState(t, h, v1.ReleaseName(), release.StateRetired, false)
	mustState(t, h, v2.ReleaseName(), release.StateStandby, true)
	mustState(t, h, v3.ReleaseName(), release.StateLive, true)
}

func TestStandbyOffAndNotRunning(t *testing.T) {
	v1, v2 := svc("hello", sha1), svc("hello", sha2)
	off := time.Duration(0)
	v2.Standby = &off // the manifest turns the agent's default off
	h, _ := standbyHarness(t, v1, v2)
	mustState(t, h, v1.ReleaseName(), release.StateRetired, false)

	// A standby release found stopped (a reboot) is retired at once.
	v3 := svc("hello", sha3)
	if _, err := h.standbyPass(t, v3); err != nil {
		t.Fatal(err)
	}
	mustState(t, h, v2.ReleaseName(), release.StateStandby, true)
	if err := h.rt.Stop(context.Background(), v2.ReleaseName()); err != nil {
		t.Fatal(err)
	}
	if _, err := h.standbyPass(t, v3); err != nil {
		t.Fatal(err)
	}
	mustState(t, h, v2.ReleaseName(), release.StateRetired, false)
}

func TestPlanStandbyGolden(t *testing.T) {
	v1, v2, v3 := svc("hello", sha1), svc("hello", sha2), svc("hello", sha3)
	sb := func(r release.Release, since time.Time) release.Release {
		r.State, r.StandbySince = release.StateStandby, since
		return r
	}
	r1 := rel(v1, 11, release.StateRetired, t0.Add(-3*time.Hour), false)
	r2 := rel(v2, 12, release.StateLive, t0.Add(-2*time.Hour), true)
	r3 := rel(v3, 13, release.StateLive, t0.Add(-time.Hour), true)
	onStandby := sb(rel(v2, 12, release.StateLive, t0.Add(-2*time.Hour), true), t0.Add(-5*time.Minute))
	expired := sb(rel(v2, 12, release.StateLive, t0.Add(-2*time.Hour), true), t0.Add(-11*time.Minute))
	routes := func(s manifest.Service, r release.Release) map[string]caddy.Route {
		return map[string]caddy.Route{"hello": routeTo(s, r)}
	}
	tests := []struct {
		name string
		d    manifest.Service
		o    Observed
	}{
		{"standby-upgrade", v3, Observed{Releases: []release.Release{r1, r2}, Routes: routes(v2, r2)}},
		{"standby-converged", v3, Observed{Releases: []release.Release{r1, onStandby, r3}, Routes: routes(v3, r3)}},
		{"standby-expired", v3, Observed{Releases: []release.Release{r1, expired, r3}, Routes: routes(v3, r3)}},
		{"standby-stopped", v3, Observed{Releases: []release.Release{r1, stopped(onStandby), r3}, Routes: routes(v3, r3)}},
		{"standby-rollback", v2, Observed{Releases: []release.Release{r1, onStandby, r3}, Routes: routes(v3, r3)}},
		{"standby-rollback-expired", v2, Observed{Releases: []release.Release{r1, expired, r3}, Routes: routes(v3, r3)}},
		{"standby-upgrade-retires-older", svc("hello", strings.Repeat("4", 40)), Observed{Releases: []release.Release{r1, onStandby, r3}, Routes: routes(v3, r3)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			steps, err := Plan(Desired{Revision: "abc", Services: []manifest.Service{tt.d}, DefaultStandby: testStandby}, tt.o, t0)
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			for _, s := range steps {
				b.WriteString(s.String() + "\n")
			}
			golden.Assert(t, filepath.Join("testdata", "plans", tt.name+".golden"), []byte(b.String()))
		})
	}
}
