package reconcile

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/artifact"
	"github.com/jailkeeper/jailkeeper/caddy"
	"github.com/jailkeeper/jailkeeper/jails"
	"github.com/jailkeeper/jailkeeper/manifest"
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
}

func newHarness(rels ...jails.Release) *harness {
	h := &harness{rt: newFakeRuntime(rels...), proxy: newFakeProxy(), prober: newFakeProber(), fetcher: &fakeFetcher{}, now: t0}
	h.exec = &Executor{Runtime: h.rt, Proxy: h.proxy, Prober: h.prober, Fetcher: h.fetcher, Parallel: 2,
		Now:    func() time.Time { h.mu.Lock(); defer h.mu.Unlock(); return h.now },
		Events: func(ev Event) { h.mu.Lock(); h.events = append(h.events, ev); h.mu.Unlock() }}
	return h
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

func mustState(t *testing.T, h *harness, name string, want jails.State, running bool) jails.Release {
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
	r1 := mustState(t, h, v1.ReleaseName(), jails.StateLive, true)
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
	r2 := mustState(t, h, v2.ReleaseName(), jails.StateLive, true)
	mustState(t, h, v1.ReleaseName(), jails.StateRetired, false)
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
	failed := mustState(t, h, v2.ReleaseName(), jails.StateFailed, false)
	if failed.Failures != 1 || failed.Reason == "" || !failed.FailedAt.Equal(t0) {
		t.Errorf("failed release = %+v", failed)
	}
	if got := h.proxy.upstream("hello"); got != r1.Addr() {
		t.Errorf("traffic moved to %q", got)
	}
	mustState(t, h, v1.ReleaseName(), jails.StateLive, true)
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
	if r := mustState(t, h, v2.ReleaseName(), jails.StateFailed, false); r.Failures != 2 {
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
	mustState(t, h, v2.ReleaseName(), jails.StateFailed, false)
	mustState(t, h, v1.ReleaseName(), jails.StateLive, true)
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
	mustState(t, h, v1.ReleaseName(), jails.StateLive, true)
	mustState(t, h, v2.ReleaseName(), jails.StateRetired, false)
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
		if !errors.As(err, &stalled) && !errors.Is(err, artifact.ErrChecksum) {
			t.Fatalf("err = %v, want a stalled checksum error", err)
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
	for !slices.Contains(h.rt.history(), "start "+v1.ReleaseName()) {
		time.Sleep(time.Millisecond)
	}
	h.exec.Preempt(Desired{Services: []manifest.Service{v2}})
	if err := <-done; !errors.Is(err, ErrPreempted) {
		t.Fatalf("err = %v, want ErrPreempted", err)
	}
	r := mustState(t, h, v1.ReleaseName(), jails.StateReady, false)
	_ = r
	// The next pass deploys v2 and removes the abandoned release.
	if _, err := h.pass(t, v2); err != nil {
		t.Fatal(err)
	}
	mustState(t, h, v2.ReleaseName(), jails.StateLive, true)
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
