package caddy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Canary routes (Route.Canary): a route that splits its service's
// requests between the live release (Route.Upstream) and a new one
// (Canary.Upstream) by percentage, for a canary rollout.
//
// How a step avoids a reload. The handler has one upstream per step plus
// one for the rest, picked by Caddy's weighted_round_robin policy with
// weights that are the differences between consecutive steps: steps
// [10, 50] give weights [10, 40, 50]. With an UpstreamDir, upstream i < k
// dials the slot file {file.<dir>/<service>.<i>} and the last one the
// service's own upstream file. Slot i holds the new release's address
// once step i+1 is in force and the live release's before, so step j
// sends exactly Steps[j-1] % of the requests to the new release, and
// moving to the next step rewrites one slot file: no admin write, no
// reload. Since the weights follow the manifest's steps, any percentage
// from 1 to 99 is exact, and the slots that hold the new release only ever
// grow, so Caddy's per-upstream failure counts of those slots are the new
// release's alone. Entering the canary (the route gains the slots and the
// passive health checks) and leaving it (back to one upstream) change the
// handler and are one reload each; promotion first points the service's
// own file at the new release, so that traffic is all on it before the
// reload that ends the canary, and an abort first points every slot back
// at the live release.
//
// Without an UpstreamDir the slots dial addresses, and every step is a
// write of the routes (a reload).
//
// Caddy keys an upstream's health state by its dial as written, so
// /reverse_proxy/upstreams reports each slot under its placeholder
// ({file.<dir>/<service>.<i>}), not under the address the file holds:
// CanaryFails adds up the slots in force.

// Canary is the split of a canary route. Steps, MaxFails and FailDuration
// shape the handler; Upstream and Step only say what the slot files (or,
// without an UpstreamDir, the dials) hold, so that moving from step to
// step is a file write.
type Canary struct {
	// Upstream is the new release's host:port.
	Upstream string
	// Steps are the percentages of requests the new release gets, step by
	// step: strictly increasing, each 1 to 99.
	Steps []int
	// Step is how many steps are in force: 0 sends nothing to Upstream,
	// len(Steps) sends Steps[len(Steps)-1] %. Set the route's own Upstream
	// to the new release as well to send it everything.
	Step int
	// MaxFails is Caddy's passive health max_fails: a slot with that many
	// failed requests within FailDuration gets no more requests until they
	// expire.
	MaxFails int
	// FailDuration is how long Caddy remembers a failed request (a 5xx
	// answer or a failed connection) of an upstream.
	FailDuration time.Duration
}

// Percent is the share of requests the new release gets at c's Step.
func (c Canary) Percent() int {
	if c.Step <= 0 || len(c.Steps) == 0 {
		return 0
	}
	return c.Steps[min(c.Step, len(c.Steps))-1]
}

// weights are the weighted_round_robin weights of the slots and the rest.
func (c Canary) weights() []int {
	w := make([]int, 0, len(c.Steps)+1)
	prev := 0
	for _, s := range c.Steps {
		w = append(w, s-prev)
		prev = s
	}
	return append(w, 100-prev)
}

// SlotFile is the name of slot i of service's canary route under
// Config.UpstreamDir: <service>.<i>. A service name has no dot, so it never
// names another service's file.
func SlotFile(service string, i int) string { return service + "." + strconv.Itoa(i) }

func (c *Canary) validate(service string) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("caddy route %s: canary: %s: %w", service, fmt.Sprintf(format, args...), ErrInvalid)
	}
	if _, _, err := net.SplitHostPort(c.Upstream); err != nil {
		return bad("upstream %q: want host:port", c.Upstream)
	}
	if len(c.Steps) == 0 {
		return bad("no steps")
	}
	prev := 0
	for _, s := range c.Steps {
		if s <= prev || s > 99 {
			return bad("steps %v: want strictly increasing percentages from 1 to 99", c.Steps)
		}
		prev = s
	}
	if c.Step < 0 || c.Step > len(c.Steps) {
		return bad("step %d of %d", c.Step, len(c.Steps))
	}
	if c.MaxFails < 1 {
		return bad("max_fails %d: want at least 1", c.MaxFails)
	}
	if c.FailDuration <= 0 {
		return bad("fail_duration %s: want more than 0", c.FailDuration)
	}
	return nil
}

// slotUpstream is what slot i holds at the canary's step: the new release
// once step i+1 is in force, else the live release.
func (r Route) slotUpstream(i int) string {
	if i < r.Canary.Step {
		return r.Canary.Upstream
	}
	return r.Upstream
}

// slotFiles are the slot files of r's canary under an UpstreamDir, with
// what each must hold.
func (r Route) slotFiles() []fileWrite {
	if r.Canary == nil {
		return nil
	}
	out := make([]fileWrite, len(r.Canary.Steps))
	for i := range out {
		out[i] = fileWrite{SlotFile(r.Service, i), r.slotUpstream(i)}
	}
	return out
}

// canaryHandlerJSON is a canary route's reverse_proxy handler.
type canaryHandlerJSON struct {
	ID               string           `json:"@id"`
	Handler          string           `json:"handler"`
	Upstreams        []upstreamJSON   `json:"upstreams"`
	Transport        transportJSON    `json:"transport"`
	LoadBalancing    canaryLBJSON     `json:"load_balancing"`
	HealthChecks     healthChecksJSON `json:"health_checks"`
	StreamCloseDelay string           `json:"stream_close_delay"`
}

type canaryLBJSON struct {
	SelectionPolicy selectionJSON `json:"selection_policy"`
	TryDuration     string        `json:"try_duration"`
	TryInterval     string        `json:"try_interval"`
}

type selectionJSON struct {
	Policy  string `json:"policy"`
	Weights []int  `json:"weights"`
}

type healthChecksJSON struct {
	Passive passiveJSON `json:"passive"`
}

// passiveJSON is Caddy's passive health check: unhealthy_status 5 counts
// every 5xx answer as a failure (caddyhttp.StatusCodeMatches reads a
// number below 100 as a class).
type passiveJSON struct {
	FailDuration    string `json:"fail_duration"`
	MaxFails        int    `json:"max_fails"`
	UnhealthyStatus []int  `json:"unhealthy_status"`
}

// renderCanary renders r, which has a Canary, for Config.UpstreamDir dir.
func (r Route) renderCanary(dir string) ([]byte, error) {
	r = r.Normalize()
	c := r.Canary
	ups := make([]upstreamJSON, 0, len(c.Steps)+1)
	for i := range c.Steps {
		dial := r.slotUpstream(i)
		if dir != "" {
			dial = filePlaceholder(dir, SlotFile(r.Service, i))
		}
		ups = append(ups, upstreamJSON{Dial: dial})
	}
	last := r.Upstream
	if dir != "" {
		last = filePlaceholder(dir, r.Service)
	}
	ups = append(ups, upstreamJSON{Dial: last})
	h := canaryHandlerJSON{
		ID:        HandlerID(r.Service),
		Handler:   "reverse_proxy",
		Upstreams: ups,
		Transport: transportJSON{Protocol: "http", DialTimeout: formatDuration(DialTimeout)},
		LoadBalancing: canaryLBJSON{
			SelectionPolicy: selectionJSON{Policy: "weighted_round_robin", Weights: c.weights()},
			TryDuration:     formatDuration(TryDuration),
			TryInterval:     formatDuration(TryInterval),
		},
		HealthChecks: healthChecksJSON{Passive: passiveJSON{
			FailDuration:    formatDuration(c.FailDuration),
			MaxFails:        c.MaxFails,
			UnhealthyStatus: []int{5},
		}},
		StreamCloseDelay: formatDuration(r.StreamCloseDelay),
	}
	return json.Marshal(struct {
		ID       string              `json:"@id"`
		Match    []matchJSON         `json:"match"`
		Handle   []canaryHandlerJSON `json:"handle"`
		Terminal bool                `json:"terminal"`
	}{RouteID(r.Service), []matchJSON{{Host: r.Hostnames}}, []canaryHandlerJSON{h}, true})
}

// parseCanaryRoute reads raw as a canary route of service, as a client
// with Config.UpstreamDir dir wrote it. ok is false when raw is no canary
// route (its handler does not pick by weighted_round_robin). The route is
// always Drifted: a canary route is only right while a canary step runs,
// and a Set of the plain route ends it. With dir, Upstream is the
// placeholder of the service's file, and Canary.Upstream and Step are
// filled in from the slot files by readFiles.
func parseCanaryRoute(raw json.RawMessage, service, dir string) (Route, bool) {
	var head struct {
		Match  []struct{ Host []string } `json:"match"`
		Handle []struct {
			Upstreams     []struct{ Dial string } `json:"upstreams"`
			LoadBalancing struct {
				SelectionPolicy selectionJSON `json:"selection_policy"`
			} `json:"load_balancing"`
			HealthChecks struct {
				Passive struct {
					FailDuration any `json:"fail_duration"`
					MaxFails     int `json:"max_fails"`
				} `json:"passive"`
			} `json:"health_checks"`
			StreamCloseDelay any `json:"stream_close_delay"`
		} `json:"handle"`
	}
	if json.Unmarshal(raw, &head) != nil || len(head.Handle) != 1 {
		return Route{}, false
	}
	h := head.Handle[0]
	sp := h.LoadBalancing.SelectionPolicy
	if sp.Policy != "weighted_round_robin" || len(h.Upstreams) < 2 || len(sp.Weights) != len(h.Upstreams) {
		return Route{}, false
	}
	r := Route{Service: service, Drifted: true}
	if len(head.Match) > 0 {
		r.Hostnames = head.Match[0].Host
	}
	r.StreamCloseDelay, _ = parseDuration(h.StreamCloseDelay)
	c := &Canary{MaxFails: h.HealthChecks.Passive.MaxFails}
	c.FailDuration, _ = parseDuration(h.HealthChecks.Passive.FailDuration)
	sum := 0
	for _, w := range sp.Weights[:len(sp.Weights)-1] {
		sum += w
		c.Steps = append(c.Steps, sum)
	}
	k := len(c.Steps)
	r.Upstream = h.Upstreams[k].Dial
	if dir == "" {
		// The slots dial addresses: those that differ from the rest's
		// are the new release's.
		for i := range k {
			if d := h.Upstreams[i].Dial; d != r.Upstream && (c.Upstream == "" || d == c.Upstream) {
				c.Upstream, c.Step = d, i+1
			}
		}
	}
	r.Canary = c
	return r, true
}

// fillCanary sets a file route's canary from the content of its slot
// files (slots) and of its service file (ri.route.Upstream): the new
// release is what slot 0 holds when it differs from the service file,
// and Step counts the slots that hold it. The Canary is copied first: the
// memo shares the parsed one.
func (ri *routeInfo) fillCanary(slots []string) {
	c := *ri.route.Canary
	c.Steps = slices.Clone(c.Steps)
	c.Upstream, c.Step = "", 0
	if len(slots) > 0 && slots[0] != ri.route.Upstream {
		c.Upstream = slots[0]
		for _, s := range slots {
			if s != c.Upstream {
				break
			}
			c.Step++
		}
	}
	ri.route.Canary = &c
	ri.slots = slots
}

// fillCanaries fills in the slots of infos' canary routes (of the
// services in only; nil: all), read from their files every time: unlike a
// service's upstream file (fillUpstreams), a slot is not cached, as the
// step a canary is at is read from them.
func (c *Client) fillCanaries(infos []routeInfo, only map[string]bool) error {
	for i := range infos {
		ri := &infos[i]
		if !ri.file || ri.route.Canary == nil || (only != nil && !only[ri.service]) {
			continue
		}
		slots := make([]string, len(ri.route.Canary.Steps))
		for i := range slots {
			var err error
			if slots[i], err = c.readUpstream(SlotFile(ri.service, i)); err != nil {
				return err
			}
		}
		ri.fillCanary(slots)
	}
	return nil
}

// readUpstream returns the content of an upstream file as Caddy reads it
// (one trailing newline trimmed), or "" when there is no file; uncached.
func (c *Client) readUpstream(name string) (string, error) {
	b, err := os.ReadFile(UpstreamFile(c.cfg.UpstreamDir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("upstream of %s: %w", name, err)
	}
	s := strings.TrimSuffix(string(b), "\n")
	return strings.TrimSuffix(s, "\r"), nil
}

// slotChanges returns the slot files of r whose content must change,
// given what the slots of its current route hold (held, as read); written
// overrides it for files written since that read.
func slotChanges(held []string, written map[string]string, r Route) []fileWrite {
	var out []fileWrite
	for i, f := range r.slotFiles() {
		now, seen := written[f.service]
		if !seen && i < len(held) {
			now, seen = held[i], true
		}
		if !seen || now != f.upstream {
			out = append(out, f)
		}
	}
	return out
}

// upstreamStatus is one element of GET /reverse_proxy/upstreams.
type upstreamStatus struct {
	Address     string `json:"address"`
	NumRequests int    `json:"num_requests"`
	Fails       int    `json:"fails"`
}

// CanaryFails returns the failed requests Caddy counts now for the new
// release of r's canary: the passive health "fails" of the slots in force
// (r.Canary.Step of them), from GET /reverse_proxy/upstreams. Caddy
// forgets a failure after the canary's FailDuration. Without an
// UpstreamDir the slots dial the new release's address, one upstream to
// Caddy. A route without a canary, or at step 0, has none. Safe for
// concurrent use.
func (c *Client) CanaryFails(ctx context.Context, r Route) (int, error) {
	if r.Canary == nil || r.Canary.Step == 0 {
		return 0, nil
	}
	want := map[string]bool{}
	for i := range r.Canary.Step {
		if c.cfg.UpstreamDir != "" {
			want[filePlaceholder(c.cfg.UpstreamDir, SlotFile(r.Service, i))] = true
		} else {
			want[r.Canary.Upstream] = true
		}
	}
	resp, err := c.do(ctx, http.MethodGet, "/reverse_proxy/upstreams", nil, "")
	if err != nil {
		return 0, fmt.Errorf("caddy canary fails of %s: %w", r.Service, err)
	}
	var ups []upstreamStatus
	if err := json.Unmarshal(resp.body, &ups); err != nil {
		return 0, fmt.Errorf("caddy canary fails of %s: decoding upstreams: %w", r.Service, err)
	}
	n := 0
	for _, u := range ups {
		if want[u.Address] {
			n += u.Fails
			delete(want, u.Address) // an address listed twice counts once
		}
	}
	return n, nil
}

// staleSlots returns the slot files of cur's canary that no route reads
// once cur is replaced by next (nil: removed).
func staleSlots(cur routeInfo, next *Route) []string {
	if !cur.file || cur.route.Canary == nil {
		return nil
	}
	keep := 0
	if next != nil && next.Canary != nil {
		keep = len(next.Canary.Steps)
	}
	var out []string
	for i := keep; i < len(cur.route.Canary.Steps); i++ {
		out = append(out, SlotFile(cur.service, i))
	}
	return out
}
