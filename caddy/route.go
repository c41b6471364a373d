package caddy

import "time"

// DefaultStreamCloseDelay is the stream_close_delay Set writes for a Route
// whose StreamCloseDelay is zero.
const DefaultStreamCloseDelay = 10 * time.Minute

// Route is jailkeeper's view of one service's route in Caddy.
type Route struct {
	Service   string
	Hostnames []string
	Upstream  string // host:port of the live release
	// StreamCloseDelay keeps WebSockets open across config reloads.
	// Zero means DefaultStreamCloseDelay; Routes reports the value in
	// Caddy's config, so compare with Normalize()d routes.
	StreamCloseDelay time.Duration
	// Drifted is set by Routes when the route in Caddy differs in any way
	// from what Set would write for the other fields (a handler setting
	// edited by hand, a missing transport, an extra matcher). Set ignores
	// it; setting the route again rewrites it.
	Drifted bool
	// Canary, when set, splits the requests between Upstream and
	// Canary.Upstream (see Canary). Routes reports a canary route with
	// Drifted set: outside a canary it is a leftover, and setting the
	// plain route ends it.
	Canary *Canary
}
