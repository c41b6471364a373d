package reconcile

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/artifact"
	"github.com/jailkeeper/jailkeeper/caddy"
	"github.com/jailkeeper/jailkeeper/manifest"
	"github.com/jailkeeper/jailkeeper/release"
)

type harness struct {
	rt      *fakeRuntime
	proxy   *fakeProxy
	prober  *fakeProber
	fetcher *fakeFetcher
	exec    *Executor
	mu      sync.Mutex
	events  []Event
	now     time.Time
	kicks   int
	wakes   []time.Duration // retry wake-ups asked for (Options.AfterFunc)
	jitter  float64         // what Options.Jitter returns
}

func newHarness(rels ...release.Release) *harness {
	h := &harness{rt: newFakeRuntime(rels...), proxy: newFakeProxy(), prober: newFakeProber(), fetcher: &fakeFetcher{}, now: t0}
	h.exec = NewExecutor(h.options())
	return h
}

func (h *harness) options() Options {
	return Options{Runtime: h.rt, Proxy: h.proxy, Prober: h.prober, Fetcher: h.fetcher, Parallel: 2,
		Now:    func() time.Time { h.mu.Lock(); defer h.mu.Unlock(); return h.now },
		Events: func(ev Event) { h.mu.Lock(); h.events = append(h.events, ev); h.mu.Unlock() },
		Kick:   func() { h.mu.Lock(); h.kicks++; h.mu.Unlock() },
		AfterFunc: func(d time.Duration, _ func()) {
			h.mu.Lock()
			h.wakes = append(h.wakes, d)
			h.mu.Unlock()
		},
		Jitter: func() float64 { h.mu.Lock(); defer h.mu.Unlock(); return h.jitter }}
}

func (h *harness) advance(d time.Duration) { h.mu.Lock(); h.now = h.now.Add(d); h.mu.Unlock() }

func (h *harness) kinds() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, e := range h.events {
		out = append(out, string(e.Kind)+" "+e.Service)
	}
	return out
}

func (h *harness) pass(t *testing.T, svcs ...manifest.Service) (Result, error) {
	t.Helper()
	return h.exec.Pass(context.Background(), Desired{Revision: "r", Services: svcs})
}

func mustState(t *testing.T, h *harness, name string, want release.State, running bool) release.Release {
	t.Helper()
	r, ok := h.rt.get(name)
	if !ok {
		t.Fatalf("release %s does not exist", name)
	}
	if r.State != want || r.Running != running {
		t.Fatalf("%s: state %s running %v, want %s running %v", name, r.State, r.Running, want, running)
	}
	return r
}

func TestFirstDeployThenUpgrade(t *testing.T) {
	h := newHarness()
	v1, v2 := svc("hello", sha1), svc("hello", sha2)
	res, err := h.pass(t, v1)
	if err != nil {
		t.Fatal(err)
	}
	r1 := mustState(t, h, v1.ReleaseName(), release.StateLive, true)
	if got := h.proxy.upstream("hello"); got != r1.Addr() {
		t.Fatalf("route -> %q, want %q", got, r1.Addr())
	}
	if len(res.Services) != 1 || !res.Services[0].Converged || res.Services[0].LiveSHA != sha1 {
		t.Fatalf("status = %+v", res.Services)
	}

	h.advance(time.Minute)
	if _, err := h.pass(t, v2); err != nil {
		t.Fatal(err)
	}
	r2 := mustState(t, h, v2.ReleaseName(), release.StateLive, true)
	mustState(t, h, v1.ReleaseName(), release.StateRetired, false)
	if got := h.proxy.upstream("hello"); got != r2.Addr() {
		t.Fatalf("route -> %q, want %q", got, r2.Addr())
	}
	want := []string{"deploy_started hello", "live hello", "deploy_started hello", "live hello"}
	if got := h.kinds(); !slices.Equal(got, want) {
		t.Errorf("events = %v, want %v", got, want)
	}
	// A pass with nothing to do changes nothing.
	before := len(h.rt.history())
	if _, err := h.pass(t, v2); err != nil {
		t.Fatal(err)
	}
	if after := h.rt.history(); len(after) != before {
		t.Errorf("converged pass acted: %v", after[before:])
	}
}

func TestGateFailureKeepsTrafficAndBacksOff(t *testing.T) {
	h := newHarness()
	v1, v2 := svc("hello", sha1), svc("hello", sha2)
	if _, err := h.pass(t, v1); err != nil {
		t.Fatal(err)
	}
	r1, _ := h.rt.get(v1.ReleaseName())
	h.prober.bad["127.77.0.12:8080"] = true // the next release's address
	res, err := h.pass(t, v2)
	if err == nil {
		t.Fatal("pass succeeded with a failing gate")
	}
	failed := mustState(t, h, v2.ReleaseName(), release.StateFailed, false)
	if failed.Failures != 1 || failed.Reason == "" || !failed.FailedAt.Equal(t0) {
		t.Errorf("failed release = %+v", failed)
	}
	if got := h.proxy.upstream("hello"); got != r1.Addr() {
		t.Errorf("traffic moved to %q", got)
	}
	mustState(t, h, v1.ReleaseName(), release.StateLive, true)
	if st := res.Services[0]; st.State != "failed" || st.Message == "" || st.LiveSHA != sha1 {
		t.Errorf("status = %+v", st)
	}

	// Within the backoff nothing is retried.
	starts := countPrefix(h.rt.history(), "start "+v2.ReleaseName())
	h.advance(30 * time.Second)
	if _, err := h.pass(t, v2); err == nil {
		t.Error("backoff pass reported no error")
	}
	if n := countPrefix(h.rt.history(), "start "+v2.ReleaseName()); n != starts {
		t.Errorf("retried during backoff: %d starts, want %d", n, starts)
	}
	// After it, the same release is tried again (no new fetch) and fails twice.
	fetches := h.fetcher.fetches
	h.advance(time.Minute)
	if _, err := h.pass(t, v2); err == nil {
		t.Error("retry passed with a failing gate")
	}
	if h.fetcher.fetches != fetches {
		t.Errorf("retry fetched again")
	}
	if r := mustState(t, h, v2.ReleaseName(), release.StateFailed, false); r.Failures != 2 {
		t.Errorf("failures = %d, want 2", r.Failures)
	}
}

func countPrefix(calls []string, p string) int {
	n := 0
	for _, c := range calls {
		if c == p {
			n++
		}
	}
	return n
}

func TestWatchFailureSwitchesBack(t *testing.T) {
	h := newHarness()
	v1, v2 := svc("hello", sha1), svc("hello", sha2)
	if _, err := h.pass(t, v1); err != nil {
		t.Fatal(err)
	}
	r1, _ := h.rt.get(v1.ReleaseName())
	h.prober.failAfter["127.77.0.12:8080"] = v2.Health.Threshold // passes the gate, then fails
	if _, err := h.pass(t, v2); err == nil {
		t.Fatal("pass succeeded although the watch failed")
	}
	mustState(t, h, v2.ReleaseName(), release.StateFailed, false)
	mustState(t, h, v1.ReleaseName(), release.StateLive, true)
	if got := h.proxy.upstream("hello"); got != r1.Addr() {
		t.Errorf("route -> %q, want back to %q", got, r1.Addr())
	}
	if got := h.kinds(); got[len(got)-1] != "reverted hello" {
		t.Errorf("last event = %v", got)
	}
}

func TestRollbackUsesRetainedRelease(t *testing.T) {
	h := newHarness()
	v1, v2 := svc("hello", sha1), svc("hello", sha2)
	for _, v := range []manifest.Service{v1, v2} {
		if _, err := h.pass(t, v); err != nil {
			t.Fatal(err)
		}
		h.advance(time.Minute)
	}
	fetches, creates := h.fetcher.fetches, countPrefix(h.rt.history(), "create "+v1.ReleaseName())
	if _, err := h.pass(t, v1); err != nil {
		t.Fatal(err)
	}
	if h.fetcher.fetches != fetches || countPrefix(h.rt.history(), "create "+v1.ReleaseName()) != creates {
		t.Error("rollback fetched or created")
	}
	mustState(t, h, v1.ReleaseName(), release.StateLive, true)
	mustState(t, h, v2.ReleaseName(), release.StateRetired, false)
	h.mu.Lock()
	last := h.events[len(h.events)-1]
	h.mu.Unlock()
	if last.Kind != EventRolledBack || !last.Rollback {
		t.Errorf("last event = %+v", last)
	}
}

func TestRetainDestroysOldReleases(t *testing.T) {
	h := newHarness()
	shas := []string{sha1, sha2, sha3}
	for _, s := range shas {
		if _, err := h.pass(t, svc("hello", s)); err != nil {
			t.Fatal(err)
		}
		h.advance(time.Minute)
	}
	rels, _ := h.rt.List(context.Background())
	if len(rels) != 2 { // live + retain 1
		t.Fatalf("releases = %d, want 2: %+v", len(rels), rels)
	}
	if old := svc("hello", sha1); func() bool { _, ok := h.rt.get(old.ReleaseName()); return ok }() {
		t.Error("oldest release kept beyond retain")
	}
}

func TestChecksumMismatchIsNotRetried(t *testing.T) {
	h := newHarness()
	h.fetcher.err = fmt.Errorf("fetch x: %w", artifact.ErrChecksum)
	for range 2 {
		_, err := h.pass(t, svc("hello", sha1))
		var stalled *StalledError
		if !errors.As(err, &stalled) || !errors.Is(err, artifact.ErrChecksum) {
			t.Fatalf("err = %v, want a StalledError wrapping ErrChecksum", err)
		}
	}
	if h.fetcher.fetches != 1 {
		t.Errorf("fetches = %d, want 1", h.fetcher.fetches)
	}
	if rels, _ := h.rt.List(context.Background()); len(rels) != 0 {
		t.Errorf("releases created: %+v", rels)
	}
}

func TestPreemptCancelsGate(t *testing.T) {
	h := newHarness()
	v1, v2 := svc("hello", sha1), svc("hello", sha2)
	v1.Health.Deadline = time.Hour
	h.prober.bad["127.77.0.11:8080"] = true
	done := make(chan error)
	go func() {
		_, err := h.exec.Pass(context.Background(), Desired{Services: []manifest.Service{v1}})
		done <- err
	}()
	// Wait until the gate runs, then a newer commit arrives.
	for deadline := time.Now().Add(10 * time.Second); !slices.Contains(h.rt.history(), "start "+v1.ReleaseName()); {
		if time.Now().After(deadline) {
			t.Fatal("the gate never started")
		}
		time.Sleep(time.Millisecond)
	}
	h.exec.Preempt(Desired{Services: []manifest.Service{v2}})
	if err := <-done; !errors.Is(err, ErrPreempted) {
		t.Fatalf("err = %v, want ErrPreempted", err)
	}
	mustState(t, h, v1.ReleaseName(), release.StateReady, false)
	// The next pass deploys v2 and removes the abandoned release.
	if _, err := h.pass(t, v2); err != nil {
		t.Fatal(err)
	}
	mustState(t, h, v2.ReleaseName(), release.StateLive, true)
	if _, ok := h.rt.get(v1.ReleaseName()); ok {
		t.Error("abandoned release was kept")
	}
}

func TestPruneAndRestoreRoute(t *testing.T) {
	h := newHarness()
	a, b := svc("alpha", sha1), svc("beta", sha2)
	if _, err := h.pass(t, a, b); err != nil {
		t.Fatal(err)
	}
	// Caddy restarted without --resume: routes are gone.
	h.proxy.mu.Lock()
	h.proxy.routes = map[string]caddy.Route{}
	h.proxy.mu.Unlock()
	if _, err := h.pass(t, a, b); err != nil {
		t.Fatal(err)
	}
	if h.proxy.upstream("alpha") == "" || h.proxy.upstream("beta") == "" {
		t.Fatal("routes not restored")
	}
	if _, err := h.pass(t, a); err != nil {
		t.Fatal(err)
	}
	if h.proxy.upstream("beta") != "" {
		t.Error("pruned service still routed")
	}
	if _, ok := h.rt.get(b.ReleaseName()); ok {
		t.Error("pruned release kept")
	}
	if _, err := h.pass(t); !errors.Is(err, ErrPruneAll) {
		t.Errorf("pruning everything: err = %v", err)
	}
	if h.proxy.upstream("alpha") == "" {
		t.Error("refused prune removed a route")
	}
}

// A reboot while the desired spec backs off: the last known-good release is
// started and routed again, and stays live.
func TestBackoffRestoresKnownGoodAfterReboot(t *testing.T) {
	v2, v3 := svc("hello", sha2), svc("hello", sha3)
	good := rel(v2, 12, release.StateLive, t0.Add(-time.Hour), false)
	bad := rel(v3, 13, release.StateFailed, t0.Add(-time.Minute), false)
	bad.Failures, bad.FailedAt, bad.Reason = 1, t0.Add(-10*time.Second), "health gate: 503"
	h := newHarness(good, bad)
	if _, err := h.pass(t, v3); err == nil {
		t.Fatal("a backoff pass reported no error")
	}
	mustState(t, h, good.Name, release.StateLive, true)
	if got := h.proxy.upstream("hello"); got != good.Addr() {
		t.Errorf("route -> %q, want the known-good %q", got, good.Addr())
	}
	mustState(t, h, bad.Name, release.StateFailed, false)
}

// Caddy lost its route and a new commit arrives: traffic goes back to the
// live release before the new one is even fetched; if the new one fails its
// gate, the old one keeps serving.
func TestDeployRestoresRouteFirst(t *testing.T) {
	v2, v3 := svc("hello", sha2), svc("hello", sha3)
	good := rel(v2, 12, release.StateLive, t0.Add(-time.Hour), true)
	h := newHarness(good)
	h.rt.nextIP = 12
	h.prober.bad["127.77.0.13:8080"] = true
	if _, err := h.pass(t, v3); err == nil {
		t.Fatal("pass succeeded with a failing gate")
	}
	if got := h.proxy.upstream("hello"); got != good.Addr() {
		t.Errorf("route -> %q, want %q", got, good.Addr())
	}
	if w := h.proxy.writes; len(w) == 0 || w[0] != "set hello "+good.Addr() {
		t.Errorf("first proxy write = %v, want the restore", w)
	}
}

// An agent stop during the watch: the next pass watches again and then
// retires the previous release (or would switch back to it).
func TestInterruptedWatchResumes(t *testing.T) {
	v2, v3 := svc("hello", sha2), svc("hello", sha3)
	prev := rel(v2, 12, release.StateLive, t0.Add(-time.Hour), true)
	next := rel(v3, 13, release.StateReady, t0, true)
	h := newHarness(prev, next)
	h.proxy.routes["hello"] = DesiredRoute(&v3, next)
	res, err := h.pass(t, v3)
	if err != nil {
		t.Fatal(err)
	}
	if res.Steps[0].Kind != KindWatch {
		t.Errorf("step = %s, want a watch", res.Steps[0])
	}
	mustState(t, h, next.Name, release.StateLive, true)
	mustState(t, h, prev.Name, release.StateRetired, false)

	// The same situation with a target that fails its watch switches back.
	h2 := newHarness(prev, next)
	h2.proxy.routes["hello"] = DesiredRoute(&v3, next)
	h2.prober.bad[next.Addr()] = true
	if _, err := h2.pass(t, v3); err == nil {
		t.Fatal("a failed watch reported no error")
	}
	mustState(t, h2, next.Name, release.StateFailed, false)
	if got := h2.proxy.upstream("hello"); got != prev.Addr() {
		t.Errorf("route -> %q, want back to %q", got, prev.Addr())
	}
}

// A newer commit while the artifact is still downloading cancels the
// download: the superseded spec is neither created nor marked failed.
func TestPreemptDuringFetch(t *testing.T) {
	h := newHarness()
	v1, v2 := svc("hello", sha1), svc("hello", sha2)
	h.fetcher.block = make(chan struct{})
	h.fetcher.started = make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := h.exec.Pass(context.Background(), Desired{Services: []manifest.Service{v1}})
		done <- err
	}()
	select {
	case <-h.fetcher.started:
	case <-time.After(10 * time.Second):
		t.Fatal("fetch never started")
	}
	h.exec.Preempt(Desired{Services: []manifest.Service{v2}})
	if err := <-done; !errors.Is(err, ErrPreempted) {
		t.Fatalf("err = %v, want ErrPreempted", err)
	}
	if rels, _ := h.rt.List(context.Background()); len(rels) != 0 {
		t.Errorf("superseded release created: %+v", rels)
	}
	for _, k := range h.kinds() {
		if k == "failed hello" {
			t.Errorf("a preempted deploy reported a failure: %v", h.kinds())
		}
	}
}

// A start error on a retained release (an address still held) is no verdict
// on it: it is not marked failed, so it stays a rollback target.
func TestStartErrorOnRollbackIsRetried(t *testing.T) {
	v1, v2 := svc("hello", sha1), svc("hello", sha2)
	old := rel(v1, 11, release.StateRetired, t0.Add(-2*time.Hour), false)
	cur := rel(v2, 12, release.StateLive, t0.Add(-time.Hour), true)
	h := newHarness(old, cur)
	h.proxy.routes["hello"] = DesiredRoute(&v2, cur)
	h.rt.startErr = errors.New("SIOCAIFADDR: File exists")
	if _, err := h.pass(t, v1); err == nil {
		t.Fatal("pass succeeded although start failed")
	}
	mustState(t, h, old.Name, release.StateRetired, false)
	mustState(t, h, cur.Name, release.StateLive, true)
}

// A 404 artifact backs off and reports its failure once.
func TestFetchFailureBacksOff(t *testing.T) {
	h := newHarness()
	h.fetcher.err = fmt.Errorf("fetch x: %w: HTTP status 404 Not Found", artifact.ErrFetch)
	v := svc("hello", sha1)
	for range 3 {
		if _, err := h.pass(t, v); err == nil {
			t.Fatal("pass succeeded with a failing fetch")
		}
	}
	if h.fetcher.fetches != 1 {
		t.Errorf("fetches = %d, want 1 within the backoff", h.fetcher.fetches)
	}
	h.advance(2 * time.Minute)
	if _, err := h.pass(t, v); err == nil {
		t.Fatal("pass succeeded with a failing fetch")
	}
	if h.fetcher.fetches != 2 {
		t.Errorf("fetches = %d, want 2 after the backoff", h.fetcher.fetches)
	}
	n := 0
	for _, k := range h.kinds() {
		if k == "failed hello" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d failed events for one unchanged failure, want 1", n)
	}
}

// A release that failed once and then went live starts its failure record
// again: its next failure backs off 1m, not 2m.
func TestLiveResetsFailures(t *testing.T) {
	v1 := svc("hello", sha1)
	r := rel(v1, 11, release.StateFailed, t0.Add(-time.Hour), false)
	r.Failures, r.FailedAt, r.Reason = 1, t0.Add(-10*time.Minute), "health gate: 503"
	h := newHarness(r)
	if _, err := h.pass(t, v1); err != nil {
		t.Fatal(err)
	}
	if got := mustState(t, h, r.Name, release.StateLive, true); got.Failures != 0 || !got.FailedAt.IsZero() {
		t.Errorf("live release keeps failures=%d failed_at=%s", got.Failures, got.FailedAt)
	}
}

// A newer desired state that arrives while an older pass is starting wins,
// whatever order the calls land in.
func TestPreemptBeforePassInstallsWins(t *testing.T) {
	h := newHarness()
	v1, v2 := svc("hello", sha1), svc("hello", sha2)
	h.exec.Preempt(Desired{Seq: 2, Services: []manifest.Service{v2}})
	_, err := h.exec.Pass(context.Background(), Desired{Seq: 1, Services: []manifest.Service{v1}})
	if !errors.Is(err, ErrPreempted) {
		t.Fatalf("stale pass: err = %v, want ErrPreempted", err)
	}
	if rels, _ := h.rt.List(context.Background()); len(rels) != 0 {
		t.Errorf("the stale spec was deployed: %+v", rels)
	}
	if _, err := h.exec.Pass(context.Background(), Desired{Seq: 2, Services: []manifest.Service{v2}}); err != nil {
		t.Fatal(err)
	}
	mustState(t, h, v2.ReleaseName(), release.StateLive, true)
}

// failedMarks lists the releases the executor marked failed.
func failedMarks(h *harness) []string {
	var out []string
	for _, c := range h.rt.history() {
		if strings.HasPrefix(c, "set ") && strings.HasSuffix(c, " failed") {
			out = append(out, c)
		}
	}
	return out
}

// A release whose address a stray process holds is not marked failed: its
// app dies at once, the runtime says the address was in use, and the deploy
// goes on with a new create on another address.
func TestAddressInUseRetriesOnAnotherAddress(t *testing.T) {
	h := newHarness()
	v1 := svc("hello", sha1)
	h.rt.held[netip.MustParseAddr("127.77.0.11")] = true // the first address handed out
	if _, err := h.pass(t, v1); err != nil {
		t.Fatalf("pass: %v", err)
	}
	r := mustState(t, h, v1.ReleaseName(), release.StateLive, true)
	if r.IP.String() == "127.77.0.11" {
		t.Fatalf("live on the held address %s", r.IP)
	}
	if got := h.proxy.upstream("hello"); got != r.Addr() {
		t.Errorf("route -> %q, want %q", got, r.Addr())
	}
	if got := failedMarks(h); got != nil {
		t.Errorf("marked failed: %v", got)
	}
	for _, k := range h.kinds() {
		if k == "failed hello" {
			t.Errorf("events %v report a failure", h.kinds())
		}
	}
}

// When every address it gets is taken, the deploy tries three addresses,
// then backs off with no failure verdict, and deploys once an address is
// free again.
func TestAddressInUseBacksOffWithoutVerdict(t *testing.T) {
	h := newHarness()
	v1 := svc("hello", sha1)
	h.rt.heldAll = true
	_, err := h.pass(t, v1)
	if !errors.Is(err, release.ErrAddressInUse) {
		t.Fatalf("pass = %v, want release.ErrAddressInUse", err)
	}
	creates := 0
	for _, c := range h.rt.history() {
		if strings.HasPrefix(c, "create ") {
			creates++
		}
	}
	if creates != 3 {
		t.Errorf("%d creates, want 3: %v", creates, h.rt.history())
	}
	if got := failedMarks(h); got != nil {
		t.Errorf("marked failed: %v", got)
	}
	if _, ok := h.rt.get(v1.ReleaseName()); ok {
		t.Errorf("release %s left behind on a held address", v1.ReleaseName())
	}
	steps, err := h.exec.PlanPass(context.Background(), Desired{Services: []manifest.Service{v1}})
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 1 || steps[0].Kind != KindBackoff || !strings.Contains(steps[0].Reason, "address in use") {
		t.Fatalf("plan after 3 tries = %+v, want a backoff that says why", steps)
	}
	h.rt.heldAll = false
	h.advance(Backoff(1))
	if _, err := h.pass(t, v1); err != nil {
		t.Fatalf("pass once addresses are free: %v", err)
	}
	mustState(t, h, v1.ReleaseName(), release.StateLive, true)
}

// An executable busy at start (ETXTBSY that lasted) is no verdict: the
// release stays ready and the next pass starts it.
func TestHostBusyIsNoVerdict(t *testing.T) {
	h := newHarness()
	v1 := svc("hello", sha1)
	h.rt.startErr = fmt.Errorf("start x: %w: fork/exec x: text file busy", release.ErrHostBusy)
	if _, err := h.pass(t, v1); !errors.Is(err, release.ErrHostBusy) {
		t.Fatalf("pass = %v, want release.ErrHostBusy", err)
	}
	mustState(t, h, v1.ReleaseName(), release.StateReady, false)
	h.rt.startErr = nil
	if _, err := h.pass(t, v1); err != nil {
		t.Fatal(err)
	}
	mustState(t, h, v1.ReleaseName(), release.StateLive, true)
	if got := failedMarks(h); got != nil {
		t.Errorf("marked failed: %v", got)
	}
}

// An app that exits on its own fails the gate, and the reason says why:
// the runtime's exit status and last log lines.
func TestGateReasonSaysWhyTheAppDied(t *testing.T) {
	h := newHarness()
	v1 := svc("hello", sha1)
	h.rt.dieOnStart["hello"] = true
	h.rt.exits[v1.ReleaseName()] = errors.New("exit status 3; log: config: bad value")
	if _, err := h.pass(t, v1); err == nil {
		t.Fatal("pass succeeded with an app that exits")
	}
	r := mustState(t, h, v1.ReleaseName(), release.StateFailed, false)
	if !strings.Contains(r.Reason, "is not running: exit status 3; log: config: bad value") {
		t.Errorf("reason %q does not say why", r.Reason)
	}
}

// A Start that fails because the address is taken (the jail runtime: jail -c
// meets an alias added meanwhile, or another jail holds the address) is the
// same host fault: three addresses, then a backoff, and nothing failed.
func TestStartAddressInUseIsNoVerdict(t *testing.T) {
	h := newHarness()
	v1 := svc("hello", sha1)
	h.rt.startErr = fmt.Errorf("start x: %w: 172.16.0.2: jail -f x -c x: exit status 1: ifconfig: ioctl (SIOCAIFADDR): File exists", release.ErrAddressInUse)
	if _, err := h.pass(t, v1); !errors.Is(err, release.ErrAddressInUse) {
		t.Fatalf("pass = %v, want release.ErrAddressInUse", err)
	}
	var creates, destroys int
	for _, c := range h.rt.history() {
		creates += btoi(strings.HasPrefix(c, "create "))
		destroys += btoi(strings.HasPrefix(c, "destroy "))
	}
	if creates != AddressTries || destroys != AddressTries {
		t.Errorf("%d creates and %d destroys, want %d each: %v", creates, destroys, AddressTries, h.rt.history())
	}
	if got := failedMarks(h); got != nil {
		t.Errorf("marked failed: %v", got)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
