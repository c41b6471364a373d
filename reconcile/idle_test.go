package reconcile

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/jailkeeper/jailkeeper/caddy"
	"github.com/jailkeeper/jailkeeper/manifest"
	"github.com/jailkeeper/jailkeeper/release"
)

// countingRuntime counts the calls that read the host.
type countingRuntime struct {
	Runtime
	lists, runnings atomic.Int64
}

func (c *countingRuntime) List(ctx context.Context) ([]release.Release, error) {
	c.lists.Add(1)
	return c.Runtime.List(ctx)
}

func (c *countingRuntime) Running(ctx context.Context, name string) (bool, error) {
	c.runnings.Add(1)
	return c.Runtime.Running(ctx, name)
}

// countingProxy counts reads of Caddy's routes.
type countingProxy struct {
	Proxy
	reads atomic.Int64
}

func (c *countingProxy) Routes(ctx context.Context) (map[string]caddy.Route, error) {
	c.reads.Add(1)
	return c.Proxy.Routes(ctx)
}

// A pass in which nothing changes lists the releases once, asks no
// release whether it runs, and reads Caddy's routes once, however many
// services there are; a pass that deploys observes again after.
func TestIdlePassObservesOnce(t *testing.T) {
	h := newHarness()
	rt, proxy := &countingRuntime{Runtime: h.rt}, &countingProxy{Proxy: h.proxy}
	o := h.options()
	o.Runtime, o.Proxy = rt, proxy
	h.exec = NewExecutor(o)
	var svcs []manifest.Service
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		svcs = append(svcs, svc(n, sha1))
	}
	if _, err := h.pass(t, svcs...); err != nil {
		t.Fatal(err)
	}
	if got := proxy.reads.Load(); got < 2 {
		t.Fatalf("a pass that deployed read the routes %d times, want them read again after its steps", got)
	}
	for i := range 3 {
		rt.lists.Store(0)
		rt.runnings.Store(0)
		proxy.reads.Store(0)
		res, err := h.pass(t, svcs...)
		if err != nil {
			t.Fatal(err)
		}
		if !idle(res.Steps) {
			t.Fatalf("pass %d: steps %v, want all idle", i, res.Steps)
		}
		if l, r, p := rt.lists.Load(), rt.runnings.Load(), proxy.reads.Load(); l != 1 || r != 0 || p != 1 {
			t.Errorf("idle pass %d: %d List, %d Running, %d route reads; want 1, 0, 1", i, l, r, p)
		}
		for _, s := range res.Services {
			if !s.Converged {
				t.Errorf("idle pass %d: %s not converged: %+v", i, s.Service, s)
			}
		}
		if len(res.Releases) != len(svcs) {
			t.Errorf("idle pass %d: %d releases in the result, want %d", i, len(res.Releases), len(svcs))
		}
	}
}
