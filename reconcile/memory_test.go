package reconcile

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/jailkeeper/jailkeeper/artifact"
	"github.com/jailkeeper/jailkeeper/internal/golden"
	"github.com/jailkeeper/jailkeeper/manifest"
	"github.com/jailkeeper/jailkeeper/release"
)

// For a stalled spec and for a create in backoff, the plan shows what the
// next pass does: the pass carries out the same steps and neither fetches
// nor creates.
func TestPlanShowsWhatThePassDoes(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		kind Kind
	}{
		{"executor-stalled", fmt.Errorf("fetch file:///artifacts/hello: %w", artifact.ErrChecksum), KindStalled},
		{"executor-create-backoff", fmt.Errorf("fetch file:///artifacts/hello: %w: HTTP status 404 Not Found", artifact.ErrFetch), KindBackoff},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v1, v2 := svc("hello", sha1), svc("hello", sha2)
			live := rel(v1, 11, release.StateLive, t0.Add(-time.Hour), true)
			h := newHarness(live)
			h.proxy.routes["hello"] = DesiredRoute(&v1, live)
			h.fetcher.err = tc.err
			if _, err := h.pass(t, v2); err == nil {
				t.Fatal("a pass with a failing fetch reported no error")
			}
			h.advance(10 * time.Second)
			d := Desired{Revision: "r", Services: []manifest.Service{v2}}
			plan, err := h.exec.PlanPass(context.Background(), d)
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			for _, s := range plan {
				b.WriteString(s.String() + "\n")
			}
			golden.Assert(t, filepath.Join("testdata", "plans", tc.name+".golden"), []byte(b.String()))
			if plan[0].Kind != tc.kind {
				t.Errorf("plan = %s, want %s", plan[0], tc.kind)
			}

			fetches, calls := h.fetcher.fetches, len(h.rt.history())
			res, err := h.exec.Pass(context.Background(), d)
			if err == nil {
				t.Error("the pass reported no error for a spec it does not deploy")
			}
			if diff := cmp.Diff(plan, res.Steps, cmpopts.IgnoreFields(Step{}, "Spec")); diff != "" {
				t.Errorf("the pass planned otherwise than plan (-plan +pass):\n%s", diff)
			}
			if h.fetcher.fetches != fetches {
				t.Errorf("the pass fetched again")
			}
			if after := h.rt.history(); len(after) != calls {
				t.Errorf("the pass acted on the runtime: %v", after[calls:])
			}
			if got := h.proxy.upstream("hello"); got != live.Addr() {
				t.Errorf("route -> %q, want the live %q", got, live.Addr())
			}
		})
	}
}

// A slow create of one service (blocked here until released) holds back
// neither the pass nor a deploy of another service pushed while it runs.
func TestSlowCreateDoesNotHoldBackAnotherService(t *testing.T) {
	h := newHarness()
	a1, b1, b2 := svc("alpha", sha1), svc("beta", sha1), svc("beta", sha2)
	if _, err := h.pass(t, b1); err != nil {
		t.Fatal(err)
	}
	unblock := h.rt.holdCreate("alpha")
	t.Cleanup(func() { unblock(); h.exec.Wait() })

	first := make(chan error, 1)
	go func() {
		_, err := h.exec.Pass(context.Background(), Desired{Seq: 1, Services: []manifest.Service{a1, b1}})
		first <- err
	}()
	select {
	case <-h.rt.creating:
	case <-time.After(10 * time.Second):
		t.Fatal("alpha's create never started")
	}
	// beta v2 is pushed while alpha's create hangs. The agent polls and
	// hands the newer state to the executor, then runs the next pass as
	// soon as the running one returns.
	d2 := Desired{Seq: 2, Services: []manifest.Service{a1, b2}}
	h.exec.Preempt(d2)
	select {
	case err := <-first:
		if err != nil {
			t.Fatalf("first pass: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the pass still waits for alpha's create after a newer commit")
	}
	// beta's step of the first pass may have outlived it too; it ends at
	// once, and its kick is what makes the agent run the next pass.
	waitInFlight(t, h.exec, "alpha")
	res, err := h.exec.Pass(context.Background(), d2)
	if err != nil {
		t.Fatalf("second pass: %v", err)
	}
	b := mustState(t, h, b2.ReleaseName(), release.StateLive, true)
	if got := h.proxy.upstream("beta"); got != b.Addr() {
		t.Errorf("beta routed to %q, want %q", got, b.Addr())
	}
	if res.Steps[0].Service != "alpha" || res.Steps[0].Kind != KindBusy {
		t.Errorf("alpha's step = %s, want busy", res.Steps[0])
	}
	if _, ok := h.rt.get(a1.ReleaseName()); ok {
		t.Fatal("alpha's create finished before it was released; the test shows nothing")
	}

	// Released, alpha's deploy finishes on its own and asks for a pass.
	unblock()
	h.exec.Wait()
	mustState(t, h, a1.ReleaseName(), release.StateLive, true)
	h.mu.Lock()
	kicks := h.kicks
	h.mu.Unlock()
	if kicks == 0 {
		t.Error("no kick for the deploy that outlived its pass")
	}
	if m := h.exec.Memory(); len(m.InFlight) != 0 {
		t.Errorf("in flight after Wait: %+v", m.InFlight)
	}
}

// waitInFlight waits until only the services named have a step in flight.
func waitInFlight(t *testing.T, e *Executor, services ...string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		var got []string
		for _, f := range e.Memory().InFlight {
			got = append(got, f.Service)
		}
		if slices.Equal(got, services) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("in flight = %v, want %v", got, services)
		}
	}
}

// A newer commit for a service whose deploy outlived its pass cancels it
// there too; the pass after it deploys the newer spec.
func TestNewerCommitCancelsDeployThatOutlivedItsPass(t *testing.T) {
	h := newHarness()
	a1, a2 := svc("alpha", sha1), svc("alpha", sha2)
	unblock := h.rt.holdCreate("alpha")
	t.Cleanup(func() { unblock(); h.exec.Wait() })
	first := make(chan error, 1)
	go func() {
		_, err := h.exec.Pass(context.Background(), Desired{Seq: 1, Services: []manifest.Service{a1}})
		first <- err
	}()
	<-h.rt.creating
	h.exec.Preempt(Desired{Seq: 2, Services: []manifest.Service{a1}}) // same specs: alpha goes on
	if err := <-first; err != nil {
		t.Fatalf("first pass: %v", err)
	}
	if m := h.exec.Memory(); len(m.InFlight) != 1 || m.InFlight[0].Service != "alpha" {
		t.Fatalf("in flight = %+v, want alpha's deploy", m.InFlight)
	}
	// alpha v2: the pass cancels the create it no longer wants, leaves
	// alpha busy, and the pass after it deploys v2.
	d3 := Desired{Seq: 3, Services: []manifest.Service{a2}}
	res, err := h.exec.Pass(context.Background(), d3)
	if err != nil {
		t.Fatal(err)
	}
	if res.Steps[0].Kind != KindBusy {
		t.Errorf("alpha's step = %s, want busy", res.Steps[0])
	}
	h.exec.Wait()
	h.rt.mu.Lock()
	delete(h.rt.hold, "alpha")
	h.rt.mu.Unlock()
	if _, err := h.exec.Pass(context.Background(), d3); err != nil {
		t.Fatal(err)
	}
	mustState(t, h, a2.ReleaseName(), release.StateLive, true)
	if _, ok := h.rt.get(a1.ReleaseName()); ok {
		t.Error("the superseded create left a release")
	}
	for _, k := range h.kinds() {
		if k == "failed alpha" {
			t.Errorf("a cancelled create was reported failed: %v", h.kinds())
		}
	}
}

// Runtime.Create gets a deadline: a create that never returns fails there
// and backs off like any failed create.
func TestCreateHasDeadline(t *testing.T) {
	h := newHarness()
	o := h.options()
	o.CreateTimeout = 20 * time.Millisecond
	h.exec = NewExecutor(o)
	t.Cleanup(h.rt.holdCreate("hello")) // released only at the end
	_, err := h.pass(t, svc("hello", sha1))
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "not done within 20ms") {
		t.Fatalf("err = %v, want the create deadline", err)
	}
	m := h.exec.Memory()
	if len(m.CreateFailures) != 1 || m.CreateFailures[0].Failures != 1 || m.CreateFailures[0].Stalled {
		t.Fatalf("create failures = %+v, want one to back off", m.CreateFailures)
	}
	res, _ := h.pass(t, svc("hello", sha1))
	if res.Steps[0].Kind != KindBackoff {
		t.Errorf("next step = %s, want backoff", res.Steps[0])
	}
}
