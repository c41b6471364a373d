package agent

import (
	"context"
	"sync"

	"github.com/jailkeeper/jailkeeper/caddy"
)

// passProxy is the Proxy the executor uses: the caddy.Client, except that
// the routes a pass read when it made sure of jailkeeper's server
// (caddy.Client.EnsureRoutes) answer that pass's first Routes, so that an
// idle pass reads Caddy's config once (issue 11). Safe for concurrent use.
type passProxy struct {
	*caddy.Client

	mu     sync.Mutex
	primed map[string]caddy.Route // nil: none
}

// ensure makes sure of jailkeeper's server and, when prime is set, keeps
// the routes it read for the next Routes. The caller primes only when no
// step of an earlier pass is in flight: the executor reads its memory
// before the routes, so that a step that ends meanwhile is seen in flight
// or in what it left, and routes read earlier than that memory are
// current only when nothing else could move them.
func (p *passProxy) ensure(ctx context.Context, prime bool) error {
	if !prime {
		p.forget()
		return p.Ensure(ctx)
	}
	routes, err := p.EnsureRoutes(ctx)
	p.mu.Lock()
	p.primed = routes
	p.mu.Unlock()
	return err
}

// forget drops routes that no Routes took.
func (p *passProxy) forget() {
	p.mu.Lock()
	p.primed = nil
	p.mu.Unlock()
}

// Routes returns the routes ensure read, once, else reads them.
func (p *passProxy) Routes(ctx context.Context) (map[string]caddy.Route, error) {
	p.mu.Lock()
	r := p.primed
	p.primed = nil
	p.mu.Unlock()
	if r != nil {
		return r, nil
	}
	return p.Client.Routes(ctx)
}
