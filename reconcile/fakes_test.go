package reconcile

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jailkeeper/jailkeeper/caddy"
	"github.com/jailkeeper/jailkeeper/release"
)

// fakeRuntime keeps releases in memory and records what was done to them.
type fakeRuntime struct {
	mu       sync.Mutex
	rels     map[string]*release.Release
	calls    []string
	nextIP   int
	startErr error
	// hold makes Create of a service wait until its channel closes or
	// ctx ends; creating receives the release name as Create begins.
	hold     map[string]chan struct{}
	creating chan string
	// held are addresses a stray process holds: a release started on
	// one dies at once, and Exit says its address was in use. heldAll
	// holds every address. exits are what Exit says of other releases
	// that died (dieOnStart: at once).
	held       map[netip.Addr]bool
	heldAll    bool
	exits      map[string]error
	dieOnStart map[string]bool
	lists      int // List calls
}

func newFakeRuntime(rels ...release.Release) *fakeRuntime {
	f := &fakeRuntime{rels: map[string]*release.Release{}, nextIP: 10,
		held: map[netip.Addr]bool{}, exits: map[string]error{}, dieOnStart: map[string]bool{}}
	for _, r := range rels {
		f.rels[r.Name] = &r
	}
	return f
}

func (f *fakeRuntime) record(format string, args ...any) {
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
}

func (f *fakeRuntime) List(context.Context) ([]release.Release, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists++
	var out []release.Release
	for _, r := range f.rels {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// holdCreate makes creates of service wait until the returned func is
// called (or their ctx ends); each create sends its name on f.creating.
func (f *fakeRuntime) holdCreate(service string) (release func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.hold == nil {
		f.hold = map[string]chan struct{}{}
	}
	c := make(chan struct{})
	f.hold[service] = c
	f.creating = make(chan string, 16)
	var once sync.Once
	return func() { once.Do(func() { close(c) }) }
}

func (f *fakeRuntime) Create(ctx context.Context, s release.Spec) (release.Release, error) {
	f.mu.Lock()
	hold, creating := f.hold[s.Service], f.creating
	f.mu.Unlock()
	if hold != nil {
		creating <- s.Name
		select {
		case <-hold:
		case <-ctx.Done():
			return release.Release{}, fmt.Errorf("create %s: %w", s.Name, ctx.Err())
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("create %s", s.Name)
	f.nextIP++
	r := &release.Release{Name: s.Name, Service: s.Service, SHA: s.SHA, Spec: s.Spec, Port: s.Port,
		IP: netip.AddrFrom4([4]byte{127, 77, 0, byte(f.nextIP)}), State: release.StateReady, Created: s.Created}
	f.rels[s.Name] = r
	return *r, nil
}

func (f *fakeRuntime) Start(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("start %s", name)
	if f.startErr != nil {
		return f.startErr
	}
	r := f.rels[name]
	if r.Running {
		return nil
	}
	if f.heldAll || f.held[r.IP] {
		// The app starts, fails to bind and exits: Start cannot tell.
		f.exits[name] = fmt.Errorf("%w: %s: the app could not bind it (exit status 1; log: listen tcp %s: bind: address already in use)",
			release.ErrAddressInUse, r.Addr(), r.Addr())
		return nil
	}
	if f.dieOnStart[r.Service] {
		return nil
	}
	r.Running = true
	return nil
}

// Exit is reconcile.Exiter: why a release that is not running died.
func (f *fakeRuntime) Exit(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r, ok := f.rels[name]; !ok || r.Running {
		return nil
	}
	return f.exits[name]
}

func (f *fakeRuntime) Stop(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("stop %s", name)
	if r, ok := f.rels[name]; ok {
		r.Running = false
	}
	return nil
}

func (f *fakeRuntime) Running(_ context.Context, name string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.rels[name]
	return ok && r.Running, nil
}

func (f *fakeRuntime) SetStatus(_ context.Context, name string, st release.Status) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("set %s %s", name, st.State)
	r := f.rels[name]
	r.State, r.Reason, r.Failures, r.FailedAt = st.State, st.Reason, st.Failures, st.FailedAt
	r.StandbySince = time.Time{}
	if st.State == release.StateStandby {
		r.StandbySince = st.StandbySince
	}
	return nil
}

func (f *fakeRuntime) Destroy(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("destroy %s", name)
	delete(f.rels, name)
	return nil
}

func (f *fakeRuntime) get(name string) (release.Release, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.rels[name]
	if !ok {
		return release.Release{}, false
	}
	return *r, true
}

func (f *fakeRuntime) history() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// fakeProxy keeps routes in memory and records every write.
type fakeProxy struct {
	mu     sync.Mutex
	routes map[string]caddy.Route
	writes []string
}

func newFakeProxy() *fakeProxy { return &fakeProxy{routes: map[string]caddy.Route{}} }

func (p *fakeProxy) Routes(context.Context) (map[string]caddy.Route, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]caddy.Route{}
	for k, v := range p.routes {
		out[k] = v
	}
	return out, nil
}

func (p *fakeProxy) Set(_ context.Context, routes ...caddy.Route) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range routes {
		p.routes[r.Service] = r
		p.writes = append(p.writes, "set "+r.Service+" "+r.Upstream)
	}
	return nil
}

func (p *fakeProxy) Remove(_ context.Context, services ...string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range services {
		delete(p.routes, s)
		p.writes = append(p.writes, "remove "+s)
	}
	return nil
}

func (p *fakeProxy) Drain(context.Context, string, time.Duration) error { return nil }

func (p *fakeProxy) upstream(svc string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.routes[svc].Upstream
}

// fakeProber answers by address: a url whose host is in bad fails; after
// failAfter probes of a host it fails too (for watch failures).
type fakeProber struct {
	mu        sync.Mutex
	bad       map[string]bool
	failAfter map[string]int
	count     map[string]int
}

func newFakeProber() *fakeProber {
	return &fakeProber{bad: map[string]bool{}, failAfter: map[string]int{}, count: map[string]int{}}
}

func (p *fakeProber) Probe(_ context.Context, url string, _ time.Duration) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for host := range p.bad {
		if containsHost(url, host) {
			return fmt.Errorf("GET %s: 503 Service Unavailable", url)
		}
	}
	for host, n := range p.failAfter {
		if containsHost(url, host) {
			p.count[host]++
			if p.count[host] > n {
				return fmt.Errorf("GET %s: 503 Service Unavailable", url)
			}
		}
	}
	return nil
}

func containsHost(url, host string) bool { return strings.Contains(url, "//"+host+"/") }

// fakeFetcher hands out a path per sum and counts fetches. With block set,
// Fetch waits for it to close or for ctx.
type fakeFetcher struct {
	mu      sync.Mutex
	fetches int
	err     error
	block   chan struct{}
	started chan struct{}
}

func (f *fakeFetcher) Fetch(ctx context.Context, _ string, sum string) (string, error) {
	f.mu.Lock()
	f.fetches++
	err, block, started := f.err, f.block, f.started
	f.mu.Unlock()
	if started != nil {
		close(started)
	}
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return "", context.Cause(ctx)
		}
	}
	if err != nil {
		return "", err
	}
	return "/cache/" + sum, nil
}
