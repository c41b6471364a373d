package jails_test

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/caddy"
	"github.com/jailkeeper/jailkeeper/internal/golden"
	"github.com/jailkeeper/jailkeeper/internal/testenv"
	"github.com/jailkeeper/jailkeeper/jails"
	"github.com/jailkeeper/jailkeeper/jails/jailstest"
	"github.com/jailkeeper/jailkeeper/manifest"
	"github.com/jailkeeper/jailkeeper/reconcile"
	"github.com/jailkeeper/jailkeeper/release"
)

// Hot standby on the FreeBSD path: the reconcile Executor drives the jail
// runtime over the fake host (jailstest), as the agent does. The release a
// deploy replaces keeps its jail and is stored as standby in its ZFS
// properties; an agent restarted after that (a new Executor and runtime
// value) rolls back to it with one probe and one route write, running no
// jail(8) and no zfs(8) command but the status update, as the golden
// transcript shows; once the standby has passed, its jail is removed and
// it is retired.
func TestFreeBSDStandbyRollback(t *testing.T) {
	testenv.Root(t) // install chowns the env file to the jail's www
	ctx := context.Background()
	host, newRT, spec := fakeHostRuntime(t)
	clock := &testClock{now: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)}
	proxy, prober := &memProxy{routes: map[string]caddy.Route{}}, &okProber{}
	newExec := func() *reconcile.Executor {
		return reconcile.NewExecutor(reconcile.Options{Runtime: newRT(), Proxy: proxy, Prober: prober,
			Fetcher: fixedFetcher(spec.Artifact), Now: clock.Now, Parallel: 2})
	}
	const standby = 10 * time.Minute
	desire := func(s manifest.Service) reconcile.Desired {
		return reconcile.Desired{Revision: s.SHA, Services: []manifest.Service{s}, DefaultStandby: standby}
	}
	v1, v2 := standbySvc(strings.Repeat("1", 40)), standbySvc(strings.Repeat("2", 40))
	n1, n2 := v1.ReleaseName(), v2.ReleaseName()

	exec := newExec()
	for _, v := range []manifest.Service{v1, v2} {
		if _, err := exec.Pass(ctx, desire(v)); err != nil {
			t.Fatal(err)
		}
		clock.advance(time.Minute)
	}
	since := clock.Now().Add(-time.Minute)
	props := func(name string) map[string]string {
		t.Helper()
		d, ok := host.Dataset("zroot/jails/containers/" + name)
		if !ok {
			t.Fatalf("no dataset of %s", name)
		}
		return d.Props
	}
	if p := props(n1); p[release.PropState] != "standby" || p[release.PropStandbySince] != since.Format(time.RFC3339Nano) {
		t.Errorf("%s props: state %q standby_since %q, want standby since %s", n1, p[release.PropState], p[release.PropStandbySince], since.Format(time.RFC3339Nano))
	}
	if !jailRunning(host, n1) || !jailRunning(host, n2) {
		t.Fatalf("jails %v, want %s (standby) and %s (live) running", host.Jails(), n1, n2)
	}

	// The agent restarts; a revert comes.
	exec = newExec()
	mark, probes := len(host.Calls()), prober.count()
	res, err := exec.Pass(ctx, desire(v1))
	if err != nil {
		t.Fatal(err)
	}
	if s := res.Steps[0]; s.Kind != reconcile.KindRollback || !s.Hot {
		t.Errorf("step = %s, want a hot rollback", s)
	}
	rollback := host.Calls()[mark:]
	for _, c := range rollback {
		if c.Argv[0] == "jail" || c.Argv[0] == "ifconfig" {
			t.Errorf("hot rollback ran %s", strings.Join(c.Argv, " "))
		}
	}
	var b strings.Builder
	for _, c := range rollback {
		b.WriteString(strings.ReplaceAll(strings.Join(c.Argv, " "), host.Dir(), "<tmp>") + "\n")
	}
	golden.Assert(t, "testdata/freebsd/golden/standby-rollback.transcript", []byte(b.String()))
	r1, _ := findRelease(t, newRT(), n1)
	if got := prober.count() - probes; got != 1 {
		t.Errorf("rollback probed %d times, want 1", got)
	}
	if up := proxy.upstream("hello"); up != r1.Addr() {
		t.Errorf("route -> %s, want %s", up, r1.Addr())
	}
	if r1.State != release.StateLive || !r1.Running {
		t.Errorf("%s: %s running %v, want live and running", n1, r1.State, r1.Running)
	}
	r2, _ := findRelease(t, newRT(), n2)
	if r2.State != release.StateStandby || !r2.Running || !r2.StandbySince.Equal(clock.Now()) {
		t.Errorf("%s: %+v, want standby since %s, running", n2, r2, clock.Now())
	}

	// After its standby the next pass removes v2's jail and retires it;
	// the leftover standby_since is ignored.
	clock.advance(standby + time.Second)
	if _, err := newExec().Pass(ctx, desire(v1)); err != nil {
		t.Fatal(err)
	}
	if jailRunning(host, n2) {
		t.Errorf("%s's jail still runs after its standby", n2)
	}
	r2, _ = findRelease(t, newRT(), n2)
	if r2.State != release.StateRetired || !r2.StandbySince.IsZero() {
		t.Errorf("%s after its standby: %+v, want retired with no standby time", n2, r2)
	}
}

func standbySvc(sha string) manifest.Service {
	return manifest.Service{
		Service: "hello", SHA: sha,
		Artifact:  manifest.Artifact{URL: "https://ci.example.com/hello.tar.gz", SHA256: strings.Repeat("a", 64)},
		Hostnames: []string{"hello.example.com"}, Port: 8080, Command: []string{"/usr/local/bin/hello"}, User: "www",
		Template: "14.3-RELEASE",
		Health:   manifest.Health{Path: "/up", Interval: time.Millisecond, Timeout: time.Second, Threshold: 2, Deadline: time.Second},
		Retain:   1,
	}
}

func jailRunning(h *jailstest.Host, name string) bool {
	return slices.ContainsFunc(h.Jails(), func(j jailstest.JailInfo) bool { return j.Name == name })
}

func findRelease(t *testing.T, rt *jails.FreeBSD, name string) (release.Release, bool) {
	t.Helper()
	rels, err := rt.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(rels, func(r release.Release) bool { return r.Name == name })
	if i < 0 {
		t.Fatalf("release %s not listed", name)
	}
	return rels[i], true
}

type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// memProxy is Caddy's routes in memory: the Caddy client has tests of its
// own against a real Caddy.
type memProxy struct {
	mu     sync.Mutex
	routes map[string]caddy.Route
}

func (p *memProxy) Routes(context.Context) (map[string]caddy.Route, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]caddy.Route{}
	for k, v := range p.routes {
		out[k] = v
	}
	return out, nil
}

func (p *memProxy) Set(_ context.Context, routes ...caddy.Route) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range routes {
		p.routes[r.Service] = r
	}
	return nil
}

func (p *memProxy) Remove(_ context.Context, services ...string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range services {
		delete(p.routes, s)
	}
	return nil
}

func (p *memProxy) Drain(context.Context, string, time.Duration) error { return nil }

func (p *memProxy) upstream(svc string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.routes[svc].Upstream
}

// okProber answers every probe healthy and counts them: no app runs in
// the fake host's jails.
type okProber struct {
	mu sync.Mutex
	n  int
}

func (p *okProber) Probe(_ context.Context, u string, _ time.Duration) error {
	if _, err := url.Parse(u); err != nil {
		return err
	}
	p.mu.Lock()
	p.n++
	p.mu.Unlock()
	return nil
}

func (p *okProber) count() int { p.mu.Lock(); defer p.mu.Unlock(); return p.n }

// fixedFetcher hands out one local artifact.
type fixedFetcher string

func (f fixedFetcher) Fetch(context.Context, string, string) (string, error) { return string(f), nil }
