package caddy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// drainPoll is how often Drain asks Caddy about in-flight requests.
const drainPoll = 100 * time.Millisecond

// listsInFlightSince is the first Caddy release whose GET
// /reverse_proxy/upstreams also lists an address that no config uses any
// more, for as long as requests to it are in flight, and drops it when the
// count reaches 0 (caddyserver/caddy#7517, for issue #7277). Before it, the
// list holds only the addresses of the loaded config: one that left the
// config is gone at once, requests in flight or not.
const listsInFlightSince = "v2.11.2"

// caddyModule is the module path of Caddy v2; Caddy's admin /metrics
// reports it, with its version, in go_build_info when it is the main module
// of the binary (release builds, `go build` or `go install` of
// github.com/caddyserver/caddy/v2/cmd/caddy).
const caddyModule = "github.com/caddyserver/caddy/v2"

// Drain waits until Caddy has no request in flight to upstream (host:port),
// or max has passed, or ctx is done (then it returns ctx.Err()). Call it
// once no route sends new requests to upstream any more. Safe for
// concurrent use; it never writes.
//
// Drain returns before max only on positive evidence, from GET
// /reverse_proxy/upstreams polled every 100 ms, that nothing is in flight:
//   - upstream is listed with num_requests 0, or
//   - upstream is not listed and this Caddy is 2.11.2 or newer (read from
//     go_build_info on the admin /metrics endpoint): such a Caddy lists an
//     address while requests to it are in flight, config or not, or
//   - upstream is not listed and this Drain saw it listed with requests in
//     flight earlier, and the version is not known to be older than 2.11.2:
//     an older Caddy lists only addresses of the loaded config, and
//     upstream has left it, so seeing it listed is itself the newer
//     behaviour.
//
// Without such evidence it waits the whole of max: against Caddy older than
// 2.11.2 (an address leaves the list as soon as it leaves the config, so
// "not listed" says nothing), a Caddy whose version it cannot read (a
// custom build whose main module is not Caddy's), a Caddy without the
// upstreams endpoint or its num_requests field, and while the admin API does
// not answer. At max it returns nil, or the error of the last poll if that
// poll failed; reaching max is never early, so callers may ignore that error.
func (c *Client) Drain(ctx context.Context, upstream string, max time.Duration) error {
	return c.drain(ctx, upstream, max, nil)
}

// drain is Drain; observe, when not nil, is called after every poll with
// what the poll found and what Drain does next.
func (c *Client) drain(ctx context.Context, upstream string, max time.Duration, observe func(upstreamState, drainStep)) error {
	timer := time.NewTimer(max)
	defer timer.Stop()
	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
	var (
		d       drainState
		lastErr error
	)
	version := func() listing { return c.listing(ctx) }
	for {
		st, err := c.upstreamState(ctx, upstream)
		step := drainPolling
		if err != nil {
			lastErr = err
		} else {
			lastErr = nil
			step = d.next(st, version)
		}
		if observe != nil {
			observe(st, step)
		}
		if step == drainIdle {
			return nil
		}
		if step == drainWaitMax {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			return lastErr
		case <-tick.C:
		}
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// upstreamState is what one GET /reverse_proxy/upstreams says about an
// address.
type upstreamState int

const (
	// upstreamUnknown: no such endpoint, or its entries have no
	// num_requests; this Caddy does not say.
	upstreamUnknown upstreamState = iota
	// upstreamAbsent: the address is not listed.
	upstreamAbsent
	// upstreamIdle: listed with num_requests 0.
	upstreamIdle
	// upstreamBusy: listed with num_requests > 0.
	upstreamBusy
)

func (s upstreamState) String() string {
	switch s {
	case upstreamAbsent:
		return "absent"
	case upstreamIdle:
		return "idle"
	case upstreamBusy:
		return "busy"
	}
	return "unknown"
}

// listing says whether a Caddy lists addresses with requests in flight that
// no config uses (2.11.2 and later).
type listing int

const (
	listingUnknown listing = iota // version not readable
	listingNo                     // older than 2.11.2
	listingYes                    // 2.11.2 or newer
)

func (l listing) String() string {
	switch l {
	case listingNo:
		return "no"
	case listingYes:
		return "yes"
	}
	return "unknown"
}

// drainStep is what Drain does after a poll.
type drainStep int

const (
	drainPolling drainStep = iota // no answer yet: ask again
	drainIdle                     // nothing in flight: return now
	drainWaitMax                  // Caddy cannot tell: stop asking, wait out max
)

func (s drainStep) String() string {
	switch s {
	case drainIdle:
		return "idle"
	case drainWaitMax:
		return "wait-max"
	}
	return "poll"
}

// drainState is what one Drain has learnt from the polls so far. The zero
// value is a Drain that has not polled yet.
type drainState struct {
	seenBusy bool    // upstream was listed with requests in flight
	asked    bool    // version was called
	listing  listing // its answer
}

// next decides what Drain does after a poll found st. It calls version at
// most once per drainState, and only when the answer depends on Caddy's
// version (the address is not listed).
//
// Right after the switch, a 2.11.2+ Caddy that does not list the address has
// nothing in flight to it, so an idle old release is released at the first
// poll. A request that Caddy has already routed to upstream but that has not
// yet reached the proxy's counter (still in an earlier handler, or between
// the retries of try_duration) is not counted; the callers drain only after
// their watch period, long after the switch, which makes that window moot.
func (d *drainState) next(st upstreamState, version func() listing) drainStep {
	switch st {
	case upstreamUnknown:
		return drainWaitMax
	case upstreamIdle:
		return drainIdle
	case upstreamBusy:
		d.seenBusy = true
		return drainPolling
	}
	if !d.asked {
		d.asked, d.listing = true, version()
	}
	switch {
	case d.listing == listingYes:
		return drainIdle
	case d.listing == listingUnknown && d.seenBusy:
		return drainIdle
	}
	return drainWaitMax
}

// upstreamState asks Caddy about upstream. A 404 (no reverse_proxy admin
// module) and entries without num_requests are upstreamUnknown, not errors.
func (c *Client) upstreamState(ctx context.Context, upstream string) (upstreamState, error) {
	resp, err := c.do(ctx, http.MethodGet, "/reverse_proxy/upstreams", nil, "")
	if errors.Is(err, ErrNotFound) {
		return upstreamUnknown, nil
	}
	if err != nil {
		return upstreamUnknown, fmt.Errorf("caddy drain %s: %w", upstream, err)
	}
	var list []map[string]json.RawMessage
	if err := json.Unmarshal(resp.body, &list); err != nil {
		return upstreamUnknown, fmt.Errorf("caddy drain %s: decoding upstreams: %w", upstream, err)
	}
	st := upstreamAbsent
	for _, u := range list {
		n, ok := u["num_requests"]
		if !ok {
			return upstreamUnknown, nil
		}
		var addr string
		if err := json.Unmarshal(u["address"], &addr); err != nil || addr != upstream {
			continue
		}
		var num int
		if err := json.Unmarshal(n, &num); err != nil {
			return upstreamUnknown, fmt.Errorf("caddy drain %s: num_requests %s: %w", upstream, n, err)
		}
		if num > 0 {
			return upstreamBusy, nil
		}
		st = upstreamIdle
	}
	return st, nil
}

// listing reads Caddy's version from go_build_info on the admin /metrics
// endpoint. Any failure (no endpoint, no Caddy main module, a version that
// is not semver such as "(devel)") is listingUnknown: Drain then waits
// rather than guess.
func (c *Client) listing(ctx context.Context) listing {
	resp, err := c.do(ctx, http.MethodGet, "/metrics", nil, "")
	if err != nil {
		return listingUnknown
	}
	return parseListing(bytes.NewReader(resp.body))
}

// buildInfoRE matches Prometheus' go_build_info sample in the text format;
// labelRE one label in it. Go module paths and versions hold no quote or
// backslash, so no unescaping is needed.
var (
	buildInfoRE = regexp.MustCompile(`^go_build_info\{(.*)\}`)
	labelRE     = regexp.MustCompile(`(\w+)="([^"\\]*)"`)
)

// parseListing finds go_build_info in a Prometheus text exposition and says
// whether its Caddy lists in-flight addresses.
func parseListing(r io.Reader) listing {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		m := buildInfoRE.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		var path, version string
		for _, l := range labelRE.FindAllStringSubmatch(m[1], -1) {
			switch l[1] {
			case "path":
				path = l[2]
			case "version":
				version = l[2]
			}
		}
		if path != caddyModule {
			return listingUnknown
		}
		atLeast, ok := semverAtLeast(version, listsInFlightSince)
		switch {
		case !ok:
			return listingUnknown
		case atLeast:
			return listingYes
		}
		return listingNo
	}
	return listingUnknown
}

// semverAtLeast reports whether v >= min, both "vMAJOR.MINOR.PATCH" with an
// optional -prerelease and +build. A prerelease (Go pseudo-versions
// included) sorts before its release, as in semver. ok is false when v does
// not parse.
func semverAtLeast(v, min string) (atLeast, ok bool) {
	a, apre, ok := parseSemver(v)
	if !ok {
		return false, false
	}
	b, bpre, _ := parseSemver(min)
	for i := range a {
		if a[i] != b[i] {
			return a[i] > b[i], true
		}
	}
	// Same MAJOR.MINOR.PATCH; min has no prerelease here.
	return !apre || bpre, true
}

// parseSemver splits "v1.2.3[-pre][+build]" into its numbers and whether it
// has a prerelease.
func parseSemver(v string) (n [3]int, pre, ok bool) {
	v, found := strings.CutPrefix(v, "v")
	if !found {
		return n, false, false
	}
	v, _, _ = strings.Cut(v, "+")
	v, p, pre := strings.Cut(v, "-")
	if pre && p == "" {
		return n, false, false
	}
	parts := strings.Split(v, ".")
	if len(parts) != 3 {
		return n, false, false
	}
	for i, s := range parts {
		x, err := strconv.Atoi(s)
		if err != nil || x < 0 || s != strconv.Itoa(x) {
			return n, false, false
		}
		n[i] = x
	}
	return n, pre, true
}
