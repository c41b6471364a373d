package caddy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"
)

// op is one Set, Remove or Ensure call waiting for the writer.
type op struct {
	ctx    context.Context
	ensure bool
	set    []Route
	remove []string
	done   chan error // buffered 1; receives exactly one result
}

func (o *op) finish(err error) { o.done <- err }

// change is the merged intent for one service: a route, or removal.
type change struct {
	service string
	route   *Route // nil: remove
}

// Ensure makes sure Caddy has the http app and jailkeeper's server object:
// it creates what is missing (listen addresses, an empty routes list,
// automatic HTTPS off so the server speaks plain HTTP on any port), puts the
// server's listen and automatic_https back to the Config's when they were
// changed, and sets the http app's grace_period when the app has none. It
// never touches other servers, other apps, or existing routes. Idempotent:
// nothing is written when all is in place. Safe for concurrent use; it runs
// in the writer goroutine. Set calls it by itself when the server is gone.
func (c *Client) Ensure(ctx context.Context) error {
	return c.submit(ctx, &op{ensure: true})
}

// Set creates or updates the services' routes (@id
// jailkeeper.route.<service>). A hostname that is not an exact DNS name, or
// that another service's route has, is refused with ErrInvalid: the order
// of routes never decides which service answers a host.
// A route already as asked is not rewritten. When the only change is one
// route's upstream, it is switched by PATCHing that handler's upstreams with
// If-Match; any other change is one conditional write of the server's routes
// array, which keeps routes that are not jailkeeper's as they are. Calls
// pending together are merged (the later call wins for a service) into as
// few writes as possible, and a 412 (someone else changed the config between
// read and write) is retried after a fresh read; after maxAttempts the error
// matches ErrConflict. If the server object is missing (Caddy restarted
// without --resume), Set runs Ensure first and re-creates the routes.
// When Caddy refuses a merged write (400) or one route conflicts, each
// service is written alone, so a call gets an error only for its own
// services' routes. When ctx ends first Set returns ctx.Err(); the write
// may still happen.
func (c *Client) Set(ctx context.Context, routes ...Route) error {
	for _, r := range routes {
		if err := r.validate(); err != nil {
			return err
		}
	}
	if len(routes) == 0 {
		return nil
	}
	return c.submit(ctx, &op{set: slices.Clone(routes)})
}

// Remove deletes the services' routes; a service without a route is not an
// error. Merged and retried like Set.
func (c *Client) Remove(ctx context.Context, services ...string) error {
	if len(services) == 0 {
		return nil
	}
	return c.submit(ctx, &op{remove: slices.Clone(services)})
}

// Routes returns jailkeeper's routes in Caddy by service. A missing server
// object (Caddy restarted without --resume) gives an empty map and no error.
// Safe for concurrent use; it reads directly, not through the writer.
func (c *Client) Routes(ctx context.Context) (map[string]Route, error) {
	infos, _, err := c.readRoutes(ctx)
	if errors.Is(err, errServerMissing) {
		return map[string]Route{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := make(map[string]Route, len(infos))
	for _, ri := range infos {
		if ri.service != "" {
			out[ri.service] = ri.route
		}
	}
	return out, nil
}

func (c *Client) submit(ctx context.Context, o *op) error {
	c.stats.calls.Add(1)
	o.ctx = ctx
	o.done = make(chan error, 1)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	c.pending = append(c.pending, o)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	select {
	case err := <-o.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// writer is the one goroutine that writes Caddy's config (and the upstream
// files). Switches that need no reload are done as they come (switchNow);
// the other calls are held until ReloadWindow has passed since the last
// write, then merged into one batch.
func (c *Client) writer() {
	defer close(c.done)
	var (
		held   []*op
		urgent bool // a held op moves traffic: no waiting
		window <-chan time.Time
	)
	for {
		select {
		case <-c.ctx.Done():
			for _, o := range held {
				o.finish(ErrClosed)
			}
			return
		case <-c.wake:
		case <-window:
			window = nil
		}
		c.mu.Lock()
		ops := c.pending
		c.pending = nil
		c.mu.Unlock()
		held, urgent = c.switchNow(held, ops, urgent)
		if len(held) == 0 {
			continue
		}
		if wait := time.Until(c.lastWrite.Add(c.window)); wait > 0 && !urgent {
			if window == nil {
				window = time.After(wait)
			}
			continue
		}
		window = nil
		writes := c.stats.writes.Load()
		c.batch(held)
		held, urgent = nil, false
		if c.stats.writes.Load() != writes {
			c.lastWrite = time.Now()
		}
	}
}

// batch merges the ops and applies them as one.
func (c *Client) batch(ops []*op) {
	live := ops[:0]
	for _, o := range ops {
		if err := o.ctx.Err(); err != nil {
			o.finish(err)
			continue
		}
		live = append(live, o)
	}
	if len(live) == 0 {
		return
	}
	c.stats.batches.Add(1)
	if c.testHookBatch != nil {
		c.testHookBatch(len(live))
	}
	ensure := false
	var order []string
	merged := map[string]*Route{}
	note := func(svc string, r *Route) {
		if _, ok := merged[svc]; !ok {
			order = append(order, svc)
		}
		merged[svc] = r
	}
	for _, o := range live {
		ensure = ensure || o.ensure
		for i := range o.set {
			r := o.set[i].Normalize()
			note(r.Service, &r)
		}
		for _, s := range o.remove {
			note(s, nil)
		}
	}
	changes := make([]change, 0, len(order))
	for _, s := range order {
		changes = append(changes, change{service: s, route: merged[s]})
	}
	err := c.apply(c.ctx, ensure, changes)
	var perService map[string]error
	if len(changes) > 1 && refused(err) {
		// One route can make Caddy (or plan) refuse the whole write. Write
		// each change alone, so only the services whose own route is bad
		// get an error.
		err, perService = nil, map[string]error{}
		for _, ch := range changes {
			if e := c.apply(c.ctx, false, []change{ch}); e != nil {
				perService[ch.service] = e
			}
		}
	}
	if err != nil && c.ctx.Err() != nil {
		err = fmt.Errorf("%w: %w", ErrClosed, err)
	}
	for _, o := range live {
		if err != nil {
			o.finish(err)
			continue
		}
		var errs []error
		for _, r := range o.set {
			errs = append(errs, perService[r.Service])
		}
		for _, s := range o.remove {
			errs = append(errs, perService[s])
		}
		o.finish(errors.Join(errs...))
	}
}

// refused reports whether err is a refusal of the content of a write (the
// admin API's 400, or a conflict plan found), as opposed to Caddy being
// unreachable or the config changing underneath.
func refused(err error) bool {
	return errors.Is(err, ErrInvalid) || isStatus(err, http.StatusBadRequest)
}

// apply carries out one batch: Ensure if asked, then the route changes.
func (c *Client) apply(ctx context.Context, ensure bool, changes []change) error {
	if ensure {
		if err := c.ensure(ctx); err != nil {
			return err
		}
	}
	if len(changes) == 0 {
		return nil
	}
	routesPath := c.srvPath + "/routes"
	for attempt := 0; attempt < maxAttempts; attempt++ {
		infos, etag, err := c.readRoutes(ctx)
		if errors.Is(err, errServerMissing) {
			if err := c.ensure(ctx); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		p, err := planIn(infos, changes, c.cfg.UpstreamDir)
		if err != nil {
			return err
		}
		if !p.changed {
			return nil
		}
		if p.switchOnly != nil {
			err := c.switchUpstream(ctx, p.switchOnly.Service, p.switchOnly.Upstream)
			if errors.Is(err, ErrNotFound) {
				continue // the route vanished since the read: re-read, re-create
			}
			return err
		}
		// Files no route in Caddy reads yet go first, so that a route is
		// never live before its file; files that live routes read go
		// after the routes write (they are the switch), so that a write
		// Caddy refuses leaves the traffic where it was.
		for _, f := range p.before {
			if err := c.writeUpstream(f.service, f.upstream); err != nil {
				return err
			}
		}
		if p.routes != nil {
			body, err := json.Marshal(p.routes)
			if err != nil {
				return fmt.Errorf("caddy set routes: %w", err)
			}
			err = c.write(ctx, http.MethodPatch, routesPath, body, etag)
			if isStatus(err, http.StatusPreconditionFailed) || errors.Is(err, ErrNotFound) {
				if isStatus(err, http.StatusPreconditionFailed) {
					c.stats.conflicts.Add(1)
				}
				continue
			}
			if err != nil {
				return fmt.Errorf("caddy set routes: %w", err)
			}
		}
		for _, f := range p.after {
			if err := c.writeUpstream(f.service, f.upstream); err != nil {
				return err
			}
		}
		for _, s := range p.gone {
			if err := c.removeUpstream(s); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("caddy set routes: %d attempts: %w", maxAttempts, ErrConflict)
}

// routePlan is what apply writes for a batch.
type routePlan struct {
	changed    bool
	switchOnly *Route            // set when the one change is an upstream switch
	routes     []json.RawMessage // the whole new routes array, or nil: no routes write
	// With an UpstreamDir: upstream files to write before the routes
	// write (no route in Caddy reads them yet) and after it (live routes
	// read them: the switch), and files (of services, of canary slots)
	// that go once no route reads them.
	before, after []fileWrite
	gone          []string
}

// plan computes the new routes array from the current one. Routes that are
// not jailkeeper's keep their place and content; changed routes keep their
// place; new routes go at the end, and the fallback route after them.
func plan(infos []routeInfo, changes []change) (routePlan, error) {
	return planIn(infos, changes, "")
}

// planIn is plan for Config.UpstreamDir dir. With dir, routes dial their
// upstream files, and a change of upstream alone is a file write, not a
// routes write.
func planIn(infos []routeInfo, changes []change, dir string) (routePlan, error) {
	idx := make(map[string]int, len(infos))
	fallback := -1
	for i, ri := range infos {
		if ri.service != "" {
			idx[ri.service] = i
		}
		if fallback < 0 && isFallback(ri.raw) {
			fallback = i
		}
	}
	var added []json.RawMessage
	routes := make([]json.RawMessage, len(infos))
	for i, ri := range infos {
		routes[i] = ri.raw
	}
	removed := map[int]bool{}
	var p routePlan
	n := 0
	var sw *Route
	for _, ch := range changes {
		i, exists := idx[ch.service]
		if ch.route == nil {
			if exists && !removed[i] {
				removed[i] = true
				n++
				if dir != "" {
					p.gone = append(p.gone, ch.service)
					p.gone = append(p.gone, staleSlots(infos[i], nil)...)
				}
			}
			continue
		}
		want, err := ch.route.renderIn(dir)
		if err != nil {
			return routePlan{}, fmt.Errorf("caddy route %s: %w", ch.service, err)
		}
		file := fileWrite{ch.service, ch.route.Upstream}
		if !exists {
			added = append(added, want)
			n++
			if dir != "" {
				p.before = append(p.before, file)
				p.before = append(p.before, ch.route.slotFiles()...)
			}
			continue
		}
		cur := infos[i]
		same := sameJSON(cur.raw, want)
		if dir != "" {
			switch {
			case !cur.file:
				p.before = append(p.before, file)
			case cur.route.Upstream != ch.route.Upstream:
				p.after = append(p.after, file)
			}
			// A canary's slot files: rewritten after the routes write
			// when the route reads them already (a step), before it
			// when the write makes it read them (a canary begins);
			// removed after the write once no route reads them.
			slots := slotChanges(cur.slots, nil, *ch.route)
			if same {
				p.after = append(p.after, slots...)
			} else {
				p.before = append(p.before, slots...)
			}
			p.gone = append(p.gone, staleSlots(cur, ch.route)...)
		}
		if same {
			continue
		}
		if dir == "" && onlyUpstreamDiffers(cur.route, *ch.route) {
			sw = ch.route
		}
		routes[i] = want
		n++
	}
	if n == 0 {
		p.changed = len(p.after) > 0 || len(p.gone) > 0
		return p, nil
	}
	if err := claimedOnce(infos, changes, removed); err != nil {
		return routePlan{}, err
	}
	p.changed = true
	if n == 1 && sw != nil {
		p.switchOnly = sw
		return p, nil
	}
	p.routes = make([]json.RawMessage, 0, len(routes)+len(added))
	for i, r := range routes {
		if !removed[i] && i != fallback {
			p.routes = append(p.routes, r)
		}
	}
	p.routes = append(p.routes, added...)
	if fallback >= 0 {
		// Last, whatever was appended after it meanwhile.
		p.routes = append(p.routes, routes[fallback])
	}
	return p, nil
}

// claimedOnce checks the routes as they would be after changes: no
// hostname may be routed to two services, so that the order of the routes
// never decides which service answers a host. A conflict that involves a
// service being set is an ErrInvalid naming both services; conflicts among
// routes that stay as they are (edited by hand) are left to whoever made
// them.
func claimedOnce(infos []routeInfo, changes []change, removed map[int]bool) error {
	after := map[string]Route{}
	for i, ri := range infos {
		if ri.service != "" && !removed[i] {
			after[ri.service] = ri.route
		}
	}
	setting := map[string]bool{}
	for _, ch := range changes {
		if ch.route == nil {
			delete(after, ch.service)
			continue
		}
		after[ch.service] = *ch.route
		setting[ch.service] = true
	}
	services := slices.Sorted(maps.Keys(after))
	owner := map[string]string{}
	var errs []error
	for _, svc := range services {
		for _, h := range after[svc].Hostnames {
			other, taken := owner[h]
			if !taken {
				owner[h] = svc
				continue
			}
			switch {
			case setting[svc]:
				errs = append(errs, fmt.Errorf("caddy route %s: hostname %s is routed to service %s already: %w", svc, h, other, ErrInvalid))
			case setting[other]:
				errs = append(errs, fmt.Errorf("caddy route %s: hostname %s is routed to service %s already: %w", other, h, svc, ErrInvalid))
			}
		}
	}
	return errors.Join(errs...)
}

// isFallback reports whether raw is the route with @id FallbackID.
func isFallback(raw json.RawMessage) bool {
	var head struct {
		ID string `json:"@id"`
	}
	return json.Unmarshal(raw, &head) == nil && head.ID == FallbackID
}

// onlyUpstreamDiffers reports whether want is cur with another upstream.
// cur must not have drifted: its JSON is then exactly what render gives.
func onlyUpstreamDiffers(cur, want Route) bool {
	if cur.Drifted || cur.Canary != nil || want.Canary != nil {
		return false
	}
	cur, want = cur.Normalize(), want.Normalize()
	return cur.Upstream != want.Upstream &&
		slices.Equal(cur.Hostnames, want.Hostnames) &&
		cur.StreamCloseDelay == want.StreamCloseDelay
}

// switchUpstream points one handler at a new upstream: GET its upstreams to
// learn the ETag, then PATCH with If-Match, so a concurrent change of that
// handler (or routes moving under the @id) is never overwritten blindly.
// 412: read again and retry. 404: the route is gone (ErrNotFound).
func (c *Client) switchUpstream(ctx context.Context, service, upstream string) error {
	path := "/id/" + HandlerID(service) + "/upstreams"
	for attempt := 0; attempt < maxAttempts; attempt++ {
		cur, err := c.do(ctx, http.MethodGet, path, nil, "")
		if err != nil {
			return fmt.Errorf("caddy switch %s: %w", service, err)
		}
		err = c.write(ctx, http.MethodPatch, path, upstreamsJSON(upstream), cur.etag)
		if isStatus(err, http.StatusPreconditionFailed) {
			c.stats.conflicts.Add(1)
			continue
		}
		if err != nil {
			return fmt.Errorf("caddy switch %s: %w", service, err)
		}
		c.stats.switches.Add(1)
		return nil
	}
	return fmt.Errorf("caddy switch %s: %d attempts: %w", service, maxAttempts, ErrConflict)
}

// write sends one admin write request.
func (c *Client) write(ctx context.Context, method, path string, body []byte, ifMatch string) error {
	if c.testHookBeforeWrite != nil {
		c.testHookBeforeWrite(method, path)
	}
	_, err := c.do(ctx, method, path, body, ifMatch)
	return err
}

// errServerMissing: the server object or its routes list is not in Caddy's
// config.
var errServerMissing = errors.New("caddy: server missing")

// readRoutes GETs the server's routes with their ETag.
func (c *Client) readRoutes(ctx context.Context) ([]routeInfo, string, error) {
	return c.readRoutesOf(ctx, nil)
}

// readRoutesOf is readRoutes reading the upstream files of the services
// in only, or of all when only is nil: the others' Upstream is left
// empty. A switch needs its own service's file, not the fleet's.
func (c *Client) readRoutesOf(ctx context.Context, only map[string]bool) ([]routeInfo, string, error) {
	path := c.srvPath + "/routes"
	resp, err := c.do(ctx, http.MethodGet, path, nil, "")
	var ae *APIError
	if errors.As(err, &ae) && ae.Status == http.StatusBadRequest && strings.Contains(ae.Body, "invalid traversal path") {
		// A parent of the path (apps, http, servers, the server) is absent.
		return nil, "", errServerMissing
	}
	if err != nil {
		return nil, "", fmt.Errorf("caddy read routes: %w", err)
	}
	if b := bytes.TrimSpace(resp.body); bytes.Equal(b, []byte("null")) {
		return nil, "", errServerMissing
	}
	infos, err := c.memo.parseRoutes(resp.body, c.cfg.UpstreamDir)
	if err != nil {
		return nil, "", fmt.Errorf("caddy read routes: %w", err)
	}
	if only == nil {
		if err := c.fillUpstreams(infos, true); err != nil {
			return nil, "", fmt.Errorf("caddy read routes: %w", err)
		}
	}
	for i := range infos {
		if infos[i].file && only != nil && only[infos[i].service] {
			if infos[i].route.Upstream, err = c.upstreamOf(infos[i].service, true); err != nil {
				return nil, "", fmt.Errorf("caddy read routes: %w", err)
			}
		}
	}
	if err := c.fillCanaries(infos, only); err != nil {
		return nil, "", fmt.Errorf("caddy read routes: %w", err)
	}
	return infos, resp.etag, nil
}

func isStatus(err error, status int) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == status
}
