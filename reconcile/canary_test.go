package reconcile

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jailkeeper/jailkeeper/caddy"
	"github.com/jailkeeper/jailkeeper/manifest"
	"github.com/jailkeeper/jailkeeper/release"
)

// canaryProxy is a fakeProxy that counts a canary's failed requests
// (CanaryCounter) and records each route it is given in short form:
// "plain <upstream>" or "canary <step> <upstream> <new>".
type canaryProxy struct {
	*fakeProxy
	mu    sync.Mutex
	log   []string
	fails func(r caddy.Route) int // nil: none
	// onSet runs after each Set, outside the lock.
	onSet func(r caddy.Route)
}

func (p *canaryProxy) Set(ctx context.Context, routes ...caddy.Route) error {
	for _, r := range routes {
		p.mu.Lock()
		if c := r.Canary; c != nil {
			p.log = append(p.log, fmt.Sprintf("canary %d %s %s", c.Step, r.Upstream, c.Upstream))
		} else {
			p.log = append(p.log, "plain "+r.Upstream)
		}
		on := p.onSet
		p.mu.Unlock()
		if err := p.fakeProxy.Set(ctx, r); err != nil {
			return err
		}
		if on != nil {
			on(r)
		}
	}
	return nil
}

func (p *canaryProxy) CanaryFails(_ context.Context, r caddy.Route) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fails == nil {
		return 0, nil
	}
	return p.fails(r), nil
}

func (p *canaryProxy) routes() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.log)
}

// newCanaryHarness is a harness whose proxy counts canary failures, with
// hold as its Options.Hold (nil: none).
func newCanaryHarness(hold HoldFunc, rels ...release.Release) (*harness, *canaryProxy) {
	h := &harness{rt: newFakeRuntime(rels...), proxy: newFakeProxy(), prober: newFakeProber(), fetcher: &fakeFetcher{}, now: t0}
	cp := &canaryProxy{fakeProxy: h.proxy}
	o := h.options()
	o.Proxy = cp
	o.Hold = hold
	h.exec = NewExecutor(o)
	return h, cp
}

// withCanary returns s with a canary of steps, each lasting interval.
func withCanary(s manifest.Service, interval time.Duration, maxFailures int, steps ...int) manifest.Service {
	s.Canary = &manifest.Canary{Steps: steps, Interval: interval, MaxFailures: maxFailures}
	return s
}

// deployed returns a harness with v1 of hello live at 127.77.0.1.
func canaryStart(t *testing.T, hold HoldFunc) (*harness, *canaryProxy, manifest.Service) {
	t.Helper()
	h, cp := newCanaryHarness(hold)
	v1 := svc("hello", sha1)
	if _, err := h.pass(t, v1); err != nil {
		t.Fatal(err)
	}
	return h, cp, v1
}

func (h *harness) canaryEvents() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, e := range h.events {
		if strings.HasPrefix(string(e.Kind), "canary_") {
			out = append(out, fmt.Sprintf("%s %d %d", e.Kind, e.CanaryStep, e.Percent))
		} else {
			out = append(out, string(e.Kind))
		}
	}
	return out
}

const (
	addr1 = "127.77.0.11:8080" // v1, the first release of a harness
	addr2 = "127.77.0.12:8080" // v2
)

// TestCanaryWalksStepsAndPromotes: a healthy canary puts each step in
// force for its interval, then every request on the target, then the
// plain route; the target goes live and the previous release retires.
func TestCanaryWalksStepsAndPromotes(t *testing.T) {
	h, cp, v1 := canaryStart(t, nil)
	v2 := withCanary(svc("hello", sha2), 20*time.Millisecond, 3, 10, 50)
	if _, err := h.pass(t, v2); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"plain " + addr1, // the first deploy
		"canary 1 " + addr1 + " " + addr2,
		"canary 2 " + addr1 + " " + addr2,
		"canary 2 " + addr2 + " " + addr2, // promoted: all on v2
		"plain " + addr2,                  // the switch ends the canary
	}
	if diff := cmp.Diff(want, cp.routes()); diff != "" {
		t.Errorf("routes (-want +got):\n%s", diff)
	}
	wantEv := []string{"deploy_started", "live", "deploy_started", "canary_step 1 10", "canary_step 2 50", "canary_promoted 2 100", "live"}
	if diff := cmp.Diff(wantEv, h.canaryEvents()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	mustState(t, h, v2.ReleaseName(), release.StateLive, true)
	mustState(t, h, v1.ReleaseName(), release.StateRetired, false)
	if ld := h.exec.Memory(); len(ld.InFlight) != 0 {
		t.Errorf("in flight after the deploy: %+v", ld.InFlight)
	}
	h.exec.mu.Lock()
	got := h.exec.lastDeployLocked("hello")
	h.exec.mu.Unlock()
	if _, timed := got.Phases[PhaseCanary]; got == nil || !timed {
		t.Errorf("last deploy %+v: no canary phase", got)
	}
}

// TestCanaryAborts: more than max_failures failed requests (Caddy's
// count) and probes, threshold failed probes in a row, or a target that
// stops, abort the canary: the slots go back to the live release first,
// then the plain route; the target is failed and stopped.
func TestCanaryAborts(t *testing.T) {
	for _, tc := range []struct {
		name   string
		setup  func(h *harness, cp *canaryProxy)
		reason string
		step   int
	}{
		{"caddy counts failed requests at step 2", func(_ *harness, cp *canaryProxy) {
			cp.fails = func(r caddy.Route) int {
				if r.Canary.Step == 2 {
					return 4
				}
				return 1
			}
		}, "4 failed requests and 0 failed probes, more than max_failures 3", 2},
		{"probes fail", func(h *harness, _ *canaryProxy) {
			h.prober.mu.Lock()
			h.prober.failAfter[addr2] = 2 // the gate's two probes pass
			h.prober.mu.Unlock()
		}, "2 consecutive failed checks", 1},
		{"failed requests and probes add up", func(h *harness, cp *canaryProxy) {
			cp.fails = func(caddy.Route) int { return 3 }
			h.prober.mu.Lock()
			h.prober.failAfter[addr2] = 2
			h.prober.mu.Unlock()
		}, "3 failed requests and 1 failed probes, more than max_failures 3", 1},
		{"target stops", func(h *harness, cp *canaryProxy) {
			v2 := svc("hello", sha2)
			cp.onSet = func(r caddy.Route) {
				if r.Canary != nil && r.Canary.Step == 1 {
					_ = h.rt.Stop(context.Background(), v2.ReleaseName())
				}
			}
		}, "is not running", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, cp, v1 := canaryStart(t, nil)
			tc.setup(h, cp)
			v2 := withCanary(svc("hello", sha2), 20*time.Millisecond, 3, 10, 50)
			_, err := h.pass(t, v2)
			if err == nil || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("pass: %v, want the canary aborted: %s", err, tc.reason)
			}
			got := cp.routes()
			back := []string{fmt.Sprintf("canary 0 %s %s", addr1, addr2), "plain " + addr1}
			if len(got) < 2 || !slices.Equal(got[len(got)-2:], back) {
				t.Errorf("routes %v, want them to end with %v", got, back)
			}
			if got := h.proxy.upstream("hello"); got != addr1 {
				t.Errorf("route -> %s, want back on %s", got, addr1)
			}
			r2 := mustState(t, h, v2.ReleaseName(), release.StateFailed, false)
			if !strings.Contains(r2.Reason, fmt.Sprintf("canary at step %d", tc.step)) {
				t.Errorf("reason %q, want the step", r2.Reason)
			}
			mustState(t, h, v1.ReleaseName(), release.StateLive, true)
			ev := h.canaryEvents()
			if last := ev[len(ev)-1]; !strings.HasPrefix(last, fmt.Sprintf("canary_aborted %d", tc.step)) {
				t.Errorf("events %v, want canary_aborted at step %d last", ev, tc.step)
			}
			// The failed spec backs off: the next pass leaves v1 live.
			if _, err := h.pass(t, v2); err != nil && !strings.Contains(err.Error(), "canary") {
				t.Fatal(err)
			}
			if got := h.proxy.upstream("hello"); got != addr1 {
				t.Errorf("after the next pass: route -> %s", got)
			}
		})
	}
}

// waitCanary waits until the Executor shows hello's canary at step.
func waitCanary(t *testing.T, h *harness, step int, held bool) CanaryStatus {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		for _, f := range h.exec.Memory().InFlight {
			if c := f.Canary; f.Service == "hello" && c != nil && c.Step == step && (c.Held != "") == held {
				return *c
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("hello's canary never at step %d (held %v): %+v", step, held, h.exec.Memory().InFlight)
		}
	}
}

// TestCanaryPreemptedByNewCommit: a newer commit during the canary puts
// every request back on the live release and stops the target, with no
// verdict on it; the newer commit then deploys.
func TestCanaryPreemptedByNewCommit(t *testing.T) {
	h, cp, v1 := canaryStart(t, nil)
	v2 := withCanary(svc("hello", sha2), time.Hour, 3, 10, 50)
	done := make(chan error, 1)
	go func() {
		_, err := h.exec.Pass(context.Background(), Desired{Seq: 1, Services: []manifest.Service{v2}})
		done <- err
	}()
	st := waitCanary(t, h, 1, false)
	if st.Percent != 10 || st.Release != v2.ReleaseName() || st.MaxFailures != 3 {
		t.Errorf("canary status %+v", st)
	}
	v3 := svc("hello", sha3)
	h.exec.Preempt(Desired{Seq: 2, Services: []manifest.Service{v3}})
	if err := <-done; err == nil || !strings.Contains(err.Error(), ErrPreempted.Error()) {
		t.Fatalf("pass: %v, want preempted", err)
	}
	h.exec.Wait()
	if got := h.proxy.upstream("hello"); got != addr1 {
		t.Errorf("route -> %s, want back on %s", got, addr1)
	}
	if r := cp.routes(); r[len(r)-1] != "plain "+addr1 {
		t.Errorf("routes %v, want the plain route to v1 last", r)
	}
	mustState(t, h, v2.ReleaseName(), release.StateReady, false)
	mustState(t, h, v1.ReleaseName(), release.StateLive, true)
	if ev := h.canaryEvents(); ev[len(ev)-1] != "canary_preempted 1 10" {
		t.Errorf("events %v, want canary_preempted last", ev)
	}
	if _, err := h.pass(t, v3); err != nil {
		t.Fatal(err)
	}
	mustState(t, h, v3.ReleaseName(), release.StateLive, true)
}

// TestCanaryHeldByWindowAndSuspend: a sync window that starts during a
// canary holds its next step (the canary stays at its weight, status says
// why), and so does a suspend, which does not abandon a canary; once
// nothing holds, the canary goes on and is promoted.
func TestCanaryHeldByWindowAndSuspend(t *testing.T) {
	var (
		mu                sync.Mutex
		window, suspended bool
	)
	hold := func(service string, now time.Time) Hold {
		mu.Lock()
		defer mu.Unlock()
		var h Hold
		if window {
			h.Window = &WindowWait{Until: now.Add(time.Hour), Window: "deny test"}
		}
		if suspended {
			h.Suspended = &Suspension{Reason: "test", Since: t0}
		}
		return h
	}
	h, cp, _ := canaryStart(t, hold)
	cp.onSet = func(r caddy.Route) {
		if r.Canary != nil && r.Canary.Step == 1 {
			mu.Lock()
			window = true // a deny window opens during the first step
			mu.Unlock()
		}
	}
	v2 := withCanary(svc("hello", sha2), 20*time.Millisecond, 3, 10, 50)
	done := make(chan error, 1)
	go func() {
		_, err := h.exec.Pass(context.Background(), Desired{Services: []manifest.Service{v2}})
		done <- err
	}()
	st := waitCanary(t, h, 1, true)
	if !strings.HasPrefix(st.Held, "waiting for window until") || st.Percent != 10 {
		t.Errorf("held canary status %+v", st)
	}
	mu.Lock()
	suspended = true
	mu.Unlock()
	h.exec.Suspended("hello")
	for deadline := time.Now().Add(10 * time.Second); !strings.HasPrefix(st.Held, "suspended since"); st = waitCanary(t, h, 1, true) {
		if time.Now().After(deadline) {
			t.Fatalf("held canary status %+v, want suspended", st)
		}
		time.Sleep(time.Millisecond)
	}
	mu.Lock()
	suspended, window = false, false
	mu.Unlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mustState(t, h, v2.ReleaseName(), release.StateLive, true)
	ev := h.canaryEvents()
	for _, want := range []string{"canary_held 1 10", "canary_step 2 50", "canary_promoted 2 100"} {
		if !slices.Contains(ev, want) {
			t.Errorf("events %v, want %q", ev, want)
		}
	}
}

// TestNoCanary: a first deploy (nothing to split with), a rollback to a
// retained release, and a proxy that cannot count failures switch at
// once.
func TestNoCanary(t *testing.T) {
	t.Run("first deploy", func(t *testing.T) {
		h, cp := newCanaryHarness(nil)
		if _, err := h.pass(t, withCanary(svc("hello", sha1), time.Hour, 3, 10)); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"plain " + addr1}, cp.routes()); diff != "" {
			t.Errorf("routes (-want +got):\n%s", diff)
		}
	})
	t.Run("rollback", func(t *testing.T) {
		h, cp, v1 := canaryStart(t, nil)
		if _, err := h.pass(t, svc("hello", sha2)); err != nil {
			t.Fatal(err)
		}
		if _, err := h.pass(t, withCanary(v1, time.Hour, 3, 10)); err != nil {
			t.Fatal(err)
		}
		if got := cp.routes(); got[len(got)-1] != "plain "+addr1 || slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, "canary") }) {
			t.Errorf("routes %v, want a plain switch back to v1", got)
		}
	})
	t.Run("proxy without a count", func(t *testing.T) {
		h := newHarness()
		if _, err := h.pass(t, svc("hello", sha1)); err != nil {
			t.Fatal(err)
		}
		v2 := withCanary(svc("hello", sha2), time.Hour, 3, 10)
		if _, err := h.pass(t, v2); err != nil {
			t.Fatal(err)
		}
		mustState(t, h, v2.ReleaseName(), release.StateLive, true)
	})
}

// TestCanaryAgentStop: an agent that stops during a canary puts every
// request back on the live release before it goes; the target keeps its
// state (no verdict), for the next start to deploy again.
func TestCanaryAgentStop(t *testing.T) {
	h, cp, v1 := canaryStart(t, nil)
	v2 := withCanary(svc("hello", sha2), time.Hour, 3, 10, 50)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := h.exec.Pass(ctx, Desired{Services: []manifest.Service{v2}})
		done <- err
	}()
	waitCanary(t, h, 1, false)
	cancel()
	if err := <-done; err == nil {
		t.Fatal("pass: no error, want ctx's")
	}
	h.exec.Wait()
	if got := cp.routes(); got[len(got)-1] != "plain "+addr1 {
		t.Errorf("routes %v, want the plain route to v1 last", got)
	}
	if r, _ := h.rt.get(v2.ReleaseName()); r.State != release.StateReady {
		t.Errorf("target %s after the stop, want ready", r.State)
	}
	mustState(t, h, v1.ReleaseName(), release.StateLive, true)
}

// TestPlanRewritesLeftoverCanaryRoute: a canary route that outlived its
// canary (an agent killed during one) reads as drifted, to the release
// its own upstream names; a converged service gets the plain route back.
func TestPlanRewritesLeftoverCanaryRoute(t *testing.T) {
	v1, v2 := svc("hello", sha1), svc("hello", sha2)
	r1 := rel(v1, 11, release.StateLive, t0, true)
	r2 := rel(v2, 12, release.StateReady, t0, true)
	leftover := routeTo(v1, r1)
	leftover.Drifted = true
	leftover.Canary = &caddy.Canary{Upstream: r2.Addr(), Steps: []int{10, 50}, Step: 1, MaxFails: 4, FailDuration: time.Minute}
	steps, err := Plan(Desired{Services: []manifest.Service{v1}},
		Observed{Releases: []release.Release{r1, r2}, Routes: map[string]caddy.Route{"hello": leftover}}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 1 || steps[0].Kind != KindNone || steps[0].Route == nil {
		t.Fatalf("steps %+v, want the route fixed", steps)
	}
	if want := routeTo(v1, r1); !cmp.Equal(*steps[0].Route, want) {
		t.Errorf("route %+v, want %+v", *steps[0].Route, want)
	}
}

// failingSetProxy refuses canary routes after the first n.
type failingSetProxy struct {
	*canaryProxy
	n atomic.Int32
}

func (p *failingSetProxy) Set(ctx context.Context, routes ...caddy.Route) error {
	for _, r := range routes {
		if r.Canary != nil && r.Canary.Step > 0 && p.n.Add(-1) < 0 {
			return errors.New("caddy admin PATCH: 500 Internal Server Error")
		}
	}
	return p.canaryProxy.Set(ctx, routes...)
}

// TestCanaryProxyFaultIsNoVerdict: Caddy refusing a step is the host's
// fault: the route goes back to the live release and the target is
// stopped, not failed.
func TestCanaryProxyFaultIsNoVerdict(t *testing.T) {
	h, cp, v1 := canaryStart(t, nil)
	fp := &failingSetProxy{canaryProxy: cp}
	fp.n.Store(1) // step 1 goes through, step 2 fails
	o := h.options()
	o.Proxy = fp
	h.exec = NewExecutor(o)
	v2 := withCanary(svc("hello", sha2), 20*time.Millisecond, 3, 10, 50)
	_, err := h.pass(t, v2)
	var he *HostError
	if !errors.As(err, &he) {
		t.Fatalf("pass: %v, want a host error", err)
	}
	if got := h.proxy.upstream("hello"); got != addr1 {
		t.Errorf("route -> %s, want back on %s", got, addr1)
	}
	mustState(t, h, v2.ReleaseName(), release.StateReady, false)
	mustState(t, h, v1.ReleaseName(), release.StateLive, true)
}

// TestCanaryPlanLine: `jailkeeper plan` says that a deploy runs a canary,
// and a first deploy does not.
func TestCanaryPlanLine(t *testing.T) {
	v1 := svc("hello", sha1)
	v2 := withCanary(svc("hello", sha2), 2*time.Minute, 5, 10, 50)
	r1 := rel(v1, 11, release.StateLive, t0, true)
	for _, tc := range []struct {
		name string
		obs  Observed
		want string
	}{
		{"upgrade", Observed{Releases: []release.Release{r1}, Routes: map[string]caddy.Route{"hello": routeTo(v1, r1)}},
			"hello: deploy " + v2.ReleaseName() + " replacing " + r1.Name + "; canary 10%, 50% for 2m0s each"},
		{"first deploy", Observed{}, "hello: deploy " + v2.ReleaseName()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			steps, err := Plan(Desired{Services: []manifest.Service{v2}}, tc.obs, t0)
			if err != nil || len(steps) != 1 {
				t.Fatalf("Plan: %v, %v", steps, err)
			}
			if got := steps[0].String(); !strings.HasPrefix(got, tc.want) || (tc.name == "first deploy" && strings.Contains(got, "canary")) {
				t.Errorf("plan line %q, want it to start with %q", got, tc.want)
			}
		})
	}
}
