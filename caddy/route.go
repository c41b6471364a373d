package caddy

import "time"

// Route is jailkeeper's view of one service's route in Caddy.
type Route struct {
	Service   string
	Hostnames []string
	Upstream  string // host:port of the live release
	// StreamCloseDelay keeps WebSockets open across config reloads.
	StreamCloseDelay time.Duration
}
