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

var (
	denied = Hold{Window: &WindowWait{Until: t0.Add(5 * time.Hour), Window: `deny "0 9 * * 1-5" for 8h0m0s`}}
	frozen = Hold{Suspended: &Suspension{Reason: "incident 42", Since: t0.Add(-time.Hour)}}
)

// TestPlanHoldGolden: what `jailkeeper plan` prints for a service held by
// a sync window or a suspend.
func TestPlanHoldGolden(t *testing.T) {
	v1, v2, v3 := svc("hello", sha1), svc("hello", sha2), svc("hello", sha3)
	r1 := rel(v1, 11, release.StateRetired, t0.Add(-3*time.Hour), false)
	r2 := rel(v2, 12, release.StateLive, t0.Add(-2*time.Hour), true)
	failed := rel(v3, 13, release.StateFailed, t0.Add(-time.Hour), true)
	failed.Failures, failed.FailedAt, failed.Reason = 2, t0.Add(-90*time.Second), "health gate: 503"
	old := rel(svc("hello", strings.Repeat("4", 40)), 15, release.StateRetired, t0.Add(-5*time.Hour), false)
	other := svc("other", sha1)
	ro := rel(other, 20, release.StateLive, t0.Add(-time.Hour), true)
	routed := map[string]caddy.Route{"hello": routeTo(v2, r2)}
	both := map[string]caddy.Route{"hello": routeTo(v2, r2), "other": routeTo(other, ro)}
	hello := func(h Hold) map[string]Hold { return map[string]Hold{"hello": h} }

	tests := []struct {
		name string
		d    []manifest.Service
		o    Observed
	}{
		// A deny window: a new deploy waits, the live release keeps
		// serving and is cleaned up as usual.
		{"window-upgrade", []manifest.Service{v3}, Observed{Releases: []release.Release{old, r1, r2}, Routes: routed, Holds: hello(denied)}},
		{"window-first-deploy", []manifest.Service{v1}, Observed{Holds: hello(denied)}},
		// A rollback to a retained release goes through.
		{"window-rollback", []manifest.Service{v1}, Observed{Releases: []release.Release{r1, r2}, Routes: routed, Holds: hello(denied)}},
		// Nothing to deploy: the window changes nothing.
		{"window-converged", []manifest.Service{v2}, Observed{Releases: []release.Release{r1, r2}, Holds: hello(denied)}},
		// The live release stopped (a reboot): it is brought back.
		{"window-live-crashed", []manifest.Service{v3}, Observed{Releases: []release.Release{stopped(r2)}, Routes: routed, Holds: hello(denied)}},
		{"window-prune", []manifest.Service{v2}, Observed{Releases: []release.Release{r2, ro}, Routes: both, Holds: map[string]Hold{"other": denied}}},
		{"window-no-opening", []manifest.Service{v3}, Observed{Releases: []release.Release{r2}, Routes: routed,
			Holds: hello(Hold{Window: &WindowWait{Window: `deny "* * * * *" for 1h0m0s`}})}},
		// A suspend freezes the service: no deploy, no rollback, no
		// cleanup, no prune.
		{"suspended-upgrade", []manifest.Service{v3}, Observed{Releases: []release.Release{old, r1, r2}, Routes: routed, Holds: hello(frozen)}},
		{"suspended-rollback", []manifest.Service{v1}, Observed{Releases: []release.Release{r1, r2}, Routes: routed, Holds: hello(frozen)}},
		{"suspended-converged", []manifest.Service{v2}, Observed{Releases: []release.Release{old, r1, r2}, Routes: routed, Holds: hello(frozen)}},
		{"suspended-backoff", []manifest.Service{v3}, Observed{Releases: []release.Release{r2, failed}, Routes: routed, Holds: hello(frozen)}},
		{"suspended-prune", []manifest.Service{v2}, Observed{Releases: []release.Release{r2, ro}, Routes: both, Holds: map[string]Hold{"other": frozen}}},
		// It keeps serving: a route Caddy lost is written again, a live
		// release a reboot stopped is started again.
		{"suspended-route-lost", []manifest.Service{v2}, Observed{Releases: []release.Release{r2}, Holds: hello(frozen)}},
		{"suspended-live-crashed", []manifest.Service{v3}, Observed{Releases: []release.Release{stopped(r2)}, Routes: routed, Holds: hello(frozen)}},
		// Both: the suspend says why.
		{"suspended-in-window", []manifest.Service{v3}, Observed{Releases: []release.Release{r2}, Routes: routed,
			Holds: hello(Hold{Suspended: frozen.Suspended, Window: denied.Window})}},
		// A deploy in flight is left alone; a watch past its switch ends.
		{"suspended-watch-interrupted", []manifest.Service{v3}, Observed{Releases: []release.Release{r2, rel(v3, 13, release.StateReady, t0, true)},
			Routes: map[string]caddy.Route{"hello": routeTo(v3, rel(v3, 13, release.StateReady, t0, true))}, Holds: hello(frozen)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			steps, err := Plan(Desired{Revision: "abc", Services: tt.d}, tt.o, t0)
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

func TestHoldBlocks(t *testing.T) {
	both := Hold{Suspended: frozen.Suspended, Window: denied.Window}
	for _, tt := range []struct {
		h    Hold
		c    Change
		want bool
	}{
		{Hold{}, ChangeDeploy, false},
		{Hold{}, ChangePrune, false},
		{denied, ChangeDeploy, true},
		{denied, ChangeRebase, true},
		{denied, ChangeCanary, true},
		{denied, ChangePrune, true},
		{denied, ChangeRollback, false},
		{frozen, ChangeDeploy, true},
		{frozen, ChangeRollback, true},
		{frozen, ChangeRebase, true},
		{frozen, ChangeCanary, true},
		{frozen, ChangePrune, true},
		{both, ChangeRollback, true},
	} {
		why, got := tt.h.Blocks(tt.c)
		if got != tt.want {
			t.Errorf("%+v blocks %s = %v, want %v", tt.h, tt.c, got, tt.want)
		}
		if got && why == "" {
			t.Errorf("%+v blocks %s without saying why", tt.h, tt.c)
		}
	}
	if why, _ := denied.Blocks(ChangeDeploy); why != `waiting for window until 2026-11-25T17:00:00Z: deny "0 9 * * 1-5" for 8h0m0s` {
		t.Errorf("window reason = %q", why)
	}
	if why, _ := both.Blocks(ChangeDeploy); why != "suspended since 2026-11-25T11:00:00Z: incident 42" {
		t.Errorf("suspend reason = %q", why)
	}
}

// clockHold is a HoldFunc over an injected clock: service hello is held
// by a deny window until open, and by a suspend while suspended.
type clockHold struct {
	mu        sync.Mutex
	open      time.Time
	suspended bool
}

func (c *clockHold) fn(service string, now time.Time) Hold {
	c.mu.Lock()
	defer c.mu.Unlock()
	var h Hold
	if service != "hello" {
		return h
	}
	if now.Before(c.open) {
		h.Window = &WindowWait{Until: c.open, Window: "deny test"}
	}
	if c.suspended {
		h.Suspended = &Suspension{Reason: "test", Since: t0}
	}
	return h
}

func newHeldHarness(c *clockHold, rels ...release.Release) *harness {
	h := &harness{rt: newFakeRuntime(rels...), proxy: newFakeProxy(), prober: newFakeProber(), fetcher: &fakeFetcher{}, now: t0}
	o := h.options()
	o.Hold = c.fn
	h.exec = NewExecutor(o)
	return h
}

// TestWindowHoldsDeployUntilItOpens: with an injected clock, a deploy in
// a deny window waits (status says until when, one wake-up is asked for
// the opening), a rollback goes through, and once the clock passes the
// opening the deploy runs.
func TestWindowHoldsDeployUntilItOpens(t *testing.T) {
	c := &clockHold{}
	h := newHeldHarness(c)
	v1, v2 := svc("hello", sha1), svc("hello", sha2)
	for _, v := range []manifest.Service{v1, v2} {
		if _, err := h.pass(t, v); err != nil {
			t.Fatal(err)
		}
		h.advance(time.Minute)
	}
	c.mu.Lock()
	c.open = h.now.Add(2 * time.Hour)
	c.mu.Unlock()
	v3 := svc("hello", sha3)
	res, err := h.pass(t, v3)
	if err != nil {
		t.Fatalf("a pass that waits for a window is no error: %v", err)
	}
	if _, ok := h.rt.get(v3.ReleaseName()); ok || h.fetcher.fetches != 2 {
		t.Fatalf("the deploy ran inside the window (fetches %d)", h.fetcher.fetches)
	}
	mustState(t, h, v2.ReleaseName(), release.StateLive, true)
	st := res.Services[0]
	if st.State != "waiting" || !strings.HasPrefix(st.Message, "waiting for window until 2026-11-25T14:02:00Z") || st.Hold == nil || st.Hold.Window == nil {
		t.Errorf("status = %+v, want waiting for window until 14:02", st)
	}
	if len(h.wakes) != 1 || h.wakes[0] != 2*time.Hour {
		t.Errorf("wake-ups = %v, want one in 2h", h.wakes)
	}
	// The next pass does not ask for the same wake-up again.
	if _, err := h.pass(t, v3); err != nil {
		t.Fatal(err)
	}
	if len(h.wakes) != 1 {
		t.Errorf("wake-ups = %v, want still one", h.wakes)
	}

	// A rollback to the retained v1 goes through the window.
	if _, err := h.pass(t, v1); err != nil {
		t.Fatal(err)
	}
	mustState(t, h, v1.ReleaseName(), release.StateLive, true)

	h.advance(2 * time.Hour)
	res, err = h.pass(t, v3)
	if err != nil {
		t.Fatal(err)
	}
	mustState(t, h, v3.ReleaseName(), release.StateLive, true)
	if st := res.Services[0]; st.Hold != nil || st.State != "live" {
		t.Errorf("status after the window = %+v", st)
	}
}

// TestSuspendFreezesService: a suspended service keeps its live release
// through a new commit, a rollback commit and the removal of its
// manifest; its status says so; resumed, it deploys.
func TestSuspendFreezesService(t *testing.T) {
	c := &clockHold{}
	h := newHeldHarness(c)
	v1, v2 := svc("hello", sha1), svc("hello", sha2)
	other := svc("other", sha1)
	if _, err := h.pass(t, v1, other); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	c.suspended = true
	c.mu.Unlock()
	before := len(h.rt.history())
	res, err := h.pass(t, v2, other)
	if err != nil {
		t.Fatal(err)
	}
	if got := h.rt.history()[before:]; len(got) != 0 {
		t.Errorf("suspended service acted: %v", got)
	}
	mustState(t, h, v1.ReleaseName(), release.StateLive, true)
	if st := res.Services[0]; st.State != "suspended" || st.Message != "suspended since 2026-11-25T12:00:00Z: test; "+v2.ReleaseName()+" waits" {
		t.Errorf("status = %+v", st)
	}
	// Its manifest removed: the prune waits too; the status keeps a row.
	res, err = h.pass(t, other)
	if err != nil {
		t.Fatal(err)
	}
	mustState(t, h, v1.ReleaseName(), release.StateLive, true)
	if h.proxy.upstream("hello") == "" {
		t.Error("the route of a suspended service was removed")
	}
	if i := slices.IndexFunc(res.Services, func(s ServiceStatus) bool { return s.Service == "hello" }); i < 0 || res.Services[i].State != "suspended" {
		t.Errorf("statuses = %+v, want a suspended row for hello", res.Services)
	}

	c.mu.Lock()
	c.suspended = false
	c.mu.Unlock()
	if _, err := h.pass(t, v2, other); err != nil {
		t.Fatal(err)
	}
	mustState(t, h, v2.ReleaseName(), release.StateLive, true)
}

// TestSuspendAbandonsDeployInFlight: a deploy still before its switch
// when its service is suspended is abandoned; traffic stays.
func TestSuspendAbandonsDeployInFlight(t *testing.T) {
	c := &clockHold{}
	h := newHeldHarness(c)
	v1, v2 := svc("hello", sha1), svc("hello", sha2)
	if _, err := h.pass(t, v1); err != nil {
		t.Fatal(err)
	}
	v2.Health.Deadline = time.Hour
	h.prober.bad["127.77.0.2:8080"] = true
	done := make(chan error)
	go func() {
		_, err := h.exec.Pass(context.Background(), Desired{Services: []manifest.Service{v2}})
		done <- err
	}()
	for deadline := time.Now().Add(10 * time.Second); !slices.Contains(h.rt.history(), "start "+v2.ReleaseName()); {
		if time.Now().After(deadline) {
			t.Fatal("the gate never started")
		}
		time.Sleep(time.Millisecond)
	}
	c.mu.Lock()
	c.suspended = true
	c.mu.Unlock()
	h.exec.Suspended("hello")
	err := <-done
	if err == nil || !strings.Contains(err.Error(), "suspended") {
		t.Fatalf("err = %v, want the deploy abandoned for the suspend", err)
	}
	mustState(t, h, v2.ReleaseName(), release.StateReady, false)
	mustState(t, h, v1.ReleaseName(), release.StateLive, true)
}

// TestGate: the hook a rebase or a canary step asks before each change.
func TestGate(t *testing.T) {
	c := &clockHold{}
	h := newHeldHarness(c)
	c.open = t0.Add(time.Hour)
	for _, ch := range []Change{ChangeRebase, ChangeCanary, ChangeDeploy} {
		if why, ok := h.exec.Gate("hello", ch); !ok || why != "waiting for window until 2026-11-25T13:00:00Z: deny test" {
			t.Errorf("Gate(hello, %s) = %q, %v; want held by the window", ch, why, ok)
		}
	}
	if _, ok := h.exec.Gate("hello", ChangeRollback); ok {
		t.Error("a window holds a rollback")
	}
	if _, ok := h.exec.Gate("other", ChangeRebase); ok {
		t.Error("a service no window names is held")
	}
	h.advance(time.Hour)
	if _, ok := h.exec.Gate("hello", ChangeCanary); ok {
		t.Error("held after the window opened")
	}
	c.suspended = true
	if why, ok := h.exec.Gate("hello", ChangeRollback); !ok || !strings.HasPrefix(why, "suspended since") {
		t.Errorf("Gate(suspended, rollback) = %q, %v", why, ok)
	}
	if _, ok := newHarness().exec.Gate("hello", ChangeDeploy); ok {
		t.Error("an Executor without Options.Hold holds")
	}
}
