package caddy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/jailkeeper/jailkeeper/release"
)

// Handler settings written on every route. See DESIGN.md "Caddy" for why
// each one is there.
const (
	// DialTimeout is the transport's dial_timeout. The explicit transport
	// matters more than its value: a reverse_proxy handler without one
	// leaks its idle upstream connections on every config reload.
	DialTimeout = 2 * time.Second
	// TryDuration and TryInterval make a request that finds no available
	// upstream wait and retry instead of failing at once.
	TryDuration = 5 * time.Second
	TryInterval = 250 * time.Millisecond
)

// The @ids of jailkeeper's objects in Caddy's config. A service name never
// contains a dot (release.ValidService), so no route ID can equal a handler
// ID or another service's ID, whatever the services are called.
const (
	routePrefix   = "jailkeeper.route."
	handlerPrefix = "jailkeeper.proxy."
	// legacyPrefix is the @id prefix of routes written by jailkeeper
	// before 2026-11 (jailkeeper_<service>, handler
	// jailkeeper_<service>_proxy), which let service bbb_proxy's route
	// collide with bbb's handler. Such routes are still read as
	// jailkeeper's, and Ensure rewrites them with the new @ids.
	legacyPrefix = "jailkeeper_"
)

// FallbackID is the @id of the last route of jailkeeper's server: a 404 for
// hosts no service claims. Without it Caddy answers a request that matches
// no route with an empty 200, so a hostname whose route is missing would
// look healthy. It has no dot, so it can equal no route or handler @id of
// a service; it is the same as before the @id change, so it needs no
// take-over.
const FallbackID = legacyPrefix + "_fallback"

// fallbackRoute is the route with @id FallbackID.
var fallbackRoute = mustJSON(map[string]any{
	"@id": FallbackID,
	"handle": []any{map[string]any{
		"handler":     "static_response",
		"status_code": 404,
		"body":        "no service for this host\n",
	}},
	"terminal": true,
})

// RouteID is the @id of a service's route in Caddy's config:
// jailkeeper.route.<service>.
func RouteID(service string) string { return routePrefix + service }

// HandlerID is the @id of a service's reverse_proxy handler:
// jailkeeper.proxy.<service>.
func HandlerID(service string) string { return handlerPrefix + service }

// routeJSON is one route as Caddy's JSON config has it. Field order is the
// order of the rendered JSON.
type routeJSON struct {
	ID       string        `json:"@id"`
	Match    []matchJSON   `json:"match"`
	Handle   []handlerJSON `json:"handle"`
	Terminal bool          `json:"terminal"`
}

type matchJSON struct {
	Host []string `json:"host"`
}

type handlerJSON struct {
	ID               string         `json:"@id"`
	Handler          string         `json:"handler"`
	Upstreams        []upstreamJSON `json:"upstreams"`
	Transport        transportJSON  `json:"transport"`
	LoadBalancing    lbJSON         `json:"load_balancing"`
	StreamCloseDelay string         `json:"stream_close_delay"`
}

type upstreamJSON struct {
	Dial string `json:"dial"`
}

type transportJSON struct {
	Protocol    string `json:"protocol"`
	DialTimeout string `json:"dial_timeout"`
}

type lbJSON struct {
	TryDuration string `json:"try_duration"`
	TryInterval string `json:"try_interval"`
}

type serverJSON struct {
	Listen         []string          `json:"listen"`
	Routes         []json.RawMessage `json:"routes"`
	AutomaticHTTPS autoHTTPSJSON     `json:"automatic_https"`
}

type autoHTTPSJSON struct {
	Disable bool `json:"disable"`
}

// validate checks what Caddy would otherwise refuse or misread. Hostnames
// must be exact DNS names (release.ValidHostname): Caddy's host matcher
// reads "*" as a wildcard and {...} as a placeholder, and a pattern route
// would answer another service's host depending on the order of routes.
func (r Route) validate() error {
	if err := release.ValidService(r.Service); err != nil {
		return fmt.Errorf("caddy route: %w: %w", err, ErrInvalid)
	}
	if len(r.Hostnames) == 0 {
		return fmt.Errorf("caddy route %s: no hostnames: %w", r.Service, ErrInvalid)
	}
	seen := map[string]bool{}
	for i, h := range r.Hostnames {
		if err := release.ValidHostname(h); err != nil {
			return fmt.Errorf("caddy route %s: hostname %d %w: %w", r.Service, i, err, ErrInvalid)
		}
		if seen[h] {
			return fmt.Errorf("caddy route %s: hostname %s listed twice: %w", r.Service, h, ErrInvalid)
		}
		seen[h] = true
	}
	if _, _, err := net.SplitHostPort(r.Upstream); err != nil {
		return fmt.Errorf("caddy route %s: upstream %q: want host:port: %w", r.Service, r.Upstream, ErrInvalid)
	}
	if r.StreamCloseDelay < 0 {
		return fmt.Errorf("caddy route %s: negative stream close delay: %w", r.Service, ErrInvalid)
	}
	if r.Canary != nil {
		return r.Canary.validate(r.Service)
	}
	return nil
}

// Normalize returns r with the defaults that Set applies filled in
// (StreamCloseDelay), and Drifted cleared: the value Routes reports once r
// has been set.
func (r Route) Normalize() Route {
	if r.StreamCloseDelay == 0 {
		r.StreamCloseDelay = DefaultStreamCloseDelay
	}
	r.Hostnames = append([]string(nil), r.Hostnames...)
	r.Drifted = false
	if r.Canary != nil {
		c := *r.Canary
		c.Steps = append([]int(nil), c.Steps...)
		r.Canary = &c
	}
	return r
}

// render returns the route as Caddy config JSON (compact), its upstream
// dialled at r.Upstream.
func (r Route) render() ([]byte, error) { return r.renderIn("") }

// renderIn renders the route as Set writes it for Config.UpstreamDir dir:
// with dir, its upstream is dialled at the file placeholder (UpstreamFile);
// without, at r.Upstream. A canary route is rendered by renderCanary.
func (r Route) renderIn(dir string) ([]byte, error) {
	if r.Canary != nil {
		return r.renderCanary(dir)
	}
	if dir == "" {
		return r.renderDial(r.Upstream)
	}
	return r.renderDial(filePlaceholder(dir, r.Service))
}

// renderDial returns the route as Caddy config JSON with dial as its
// upstream's dial address.
func (r Route) renderDial(dial string) ([]byte, error) {
	r = r.Normalize()
	rj := routeJSON{
		ID:    RouteID(r.Service),
		Match: []matchJSON{{Host: r.Hostnames}},
		Handle: []handlerJSON{{
			ID:               HandlerID(r.Service),
			Handler:          "reverse_proxy",
			Upstreams:        []upstreamJSON{{Dial: dial}},
			Transport:        transportJSON{Protocol: "http", DialTimeout: formatDuration(DialTimeout)},
			LoadBalancing:    lbJSON{TryDuration: formatDuration(TryDuration), TryInterval: formatDuration(TryInterval)},
			StreamCloseDelay: formatDuration(r.StreamCloseDelay),
		}},
		Terminal: true,
	}
	return json.Marshal(rj)
}

// renderServer returns the server object Ensure creates: listen, only the
// fallback route, plain HTTP.
func renderServer(listen []string) ([]byte, error) {
	return json.Marshal(serverJSON{
		Listen:         listen,
		Routes:         []json.RawMessage{fallbackRoute},
		AutomaticHTTPS: autoHTTPSJSON{Disable: true},
	})
}

// upstreamsJSON is the body of a switch: the handler's upstreams array.
func upstreamsJSON(upstream string) []byte {
	b, _ := json.Marshal([]upstreamJSON{{Dial: upstream}})
	return b
}

// canonical re-encodes JSON the way Caddy stores and returns it: decoded into
// generic values and encoded again, so object keys are sorted and numbers
// are float64. Two configs are the same to Caddy when their canonical forms
// are equal.
func canonical(b []byte) ([]byte, error) {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

// routeInfo is one element of the server's routes array as read from Caddy.
type routeInfo struct {
	raw     json.RawMessage
	service string // "" when the route is not jailkeeper's
	route   Route  // parsed, when service != ""
	legacy  bool   // written with the @ids of before the change (legacyPrefix)
	// file: the route dials its service's upstream file (UpstreamFile);
	// route.Upstream is then that file's content, "" when it is missing.
	file bool
	// slots: what a file canary route's slot files hold, in order.
	slots []string
}

// parseRoutesIn reads the server's routes array as a client with
// Config.UpstreamDir dir sees it. Routes without a jailkeeper @id are kept
// as they are and never touched. With dir, a route that dials its
// service's upstream file under dir is not drifted, and is marked file
// (its Upstream is left empty for the caller to read).
func parseRoutesIn(b []byte, dir string) ([]routeInfo, error) {
	var raws []json.RawMessage
	if err := json.Unmarshal(b, &raws); err != nil {
		return nil, fmt.Errorf("decoding routes: %w", err)
	}
	out := make([]routeInfo, 0, len(raws))
	for _, raw := range raws {
		ri := routeInfo{raw: raw}
		if svc, r, legacy, ok := parseRouteIn(raw, dir); ok {
			ri.service, ri.route, ri.legacy = svc, r, legacy
			if dir != "" && r.Upstream == filePlaceholder(dir, svc) {
				ri.file, ri.route.Upstream = true, ""
			}
		}
		out = append(out, ri)
	}
	return out, nil
}

// serviceOfID returns the service of a route @id jailkeeper wrote, and
// whether it has the legacy form. ok is false for any other @id.
func serviceOfID(id string) (service string, legacy, ok bool) {
	if svc, cut := strings.CutPrefix(id, routePrefix); cut && release.ValidService(svc) == nil {
		return svc, false, true
	}
	if svc, cut := strings.CutPrefix(id, legacyPrefix); cut && id != FallbackID && release.ValidService(svc) == nil {
		return svc, true, true
	}
	return "", false, false
}

// parseRoute reads back a route jailkeeper wrote. ok is false for a route
// that is not jailkeeper's. A jailkeeper route whose JSON differs in any way
// from what Set would write for the parsed values has Drifted set; so has
// every legacy route.
func parseRoute(raw json.RawMessage) (service string, r Route, legacy, ok bool) {
	return parseRouteIn(raw, "")
}

// parseRouteIn is parseRoute with drift judged against what Set writes for
// Config.UpstreamDir dir. Upstream is the dial as written, placeholder
// included.
func parseRouteIn(raw json.RawMessage, dir string) (service string, r Route, legacy, ok bool) {
	var head struct {
		ID     string                    `json:"@id"`
		Match  []struct{ Host []string } `json:"match"`
		Handle []struct {
			ID               string                  `json:"@id"`
			Handler          string                  `json:"handler"`
			Upstreams        []struct{ Dial string } `json:"upstreams"`
			StreamCloseDelay any                     `json:"stream_close_delay"`
		} `json:"handle"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return "", Route{}, false, false
	}
	service, legacy, ok = serviceOfID(head.ID)
	if !ok {
		return "", Route{}, false, false
	}
	if cr, isCanary := parseCanaryRoute(raw, service, dir); isCanary {
		return service, cr, legacy, true
	}
	r.Service = service
	if len(head.Match) > 0 {
		r.Hostnames = head.Match[0].Host
	}
	drifted := legacy || len(head.Match) != 1 || len(head.Handle) != 1
	if len(head.Handle) > 0 {
		h := head.Handle[0]
		if len(h.Upstreams) > 0 {
			r.Upstream = h.Upstreams[0].Dial
		}
		d, err := parseDuration(h.StreamCloseDelay)
		if err != nil {
			drifted = true
		}
		r.StreamCloseDelay = d
	}
	if !drifted {
		// With dir, a route that dials an address, not its file, is
		// drifted: the next Set moves it to the file.
		want, err := r.renderIn(dir)
		if err != nil {
			drifted = true
		} else if !sameJSON(raw, want) {
			drifted = true
		}
	}
	r.Drifted = drifted
	return service, r, legacy, true
}

// sameJSON reports whether a and b are the same config to Caddy.
func sameJSON(a, b []byte) bool {
	ca, err := canonical(a)
	if err != nil {
		return false
	}
	cb, err := canonical(b)
	if err != nil {
		return false
	}
	return bytes.Equal(ca, cb)
}

// formatDuration writes d the way a person would in Caddy's config: "10m",
// "5s", "250ms", "1h30m" (Go duration syntax, which caddy.ParseDuration
// accepts), without the "0s" and "0m" tails that time.Duration.String adds.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// parseDuration reads a caddy.Duration from decoded JSON: a string in Go
// duration syntax (Caddy also allows a "d" unit: whole days) or a number of
// nanoseconds. A missing value is zero.
func parseDuration(v any) (time.Duration, error) {
	switch x := v.(type) {
	case nil:
		return 0, nil
	case float64:
		return time.Duration(x), nil
	case string:
		if i := strings.Index(x, "d"); i > 0 {
			// caddy.ParseDuration: "1d" is 24h; only a leading day count.
			var days int
			if _, err := fmt.Sscanf(x[:i], "%d", &days); err != nil {
				return 0, fmt.Errorf("duration %q: %w", x, err)
			}
			rest := time.Duration(0)
			if x[i+1:] != "" {
				var err error
				if rest, err = time.ParseDuration(x[i+1:]); err != nil {
					return 0, err
				}
			}
			return time.Duration(days)*24*time.Hour + rest, nil
		}
		return time.ParseDuration(x)
	}
	return 0, fmt.Errorf("duration: unexpected JSON %T", v)
}
