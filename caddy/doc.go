// Package caddy is a client for the Caddy v2 admin API. It owns one server
// object (apps.http.servers.<server>) and in it one route per service
// (@id jailkeeper.route.<service>, its reverse_proxy handler
// jailkeeper.proxy.<service>; a service name has no dot, so no two IDs can
// collide), and leaves the rest of Caddy's config alone. Routes written with
// the @ids of older versions (jailkeeper_<service>) are read as
// jailkeeper's and rewritten by Ensure in one write.
//
// A route matches exact hostnames only, and a hostname belongs to one
// route: Set refuses wildcards, placeholders and a hostname another
// service's route has (ErrInvalid), so the order of the routes never
// decides which service answers a host.
//
// The admin API is reached over TCP or a unix socket. One goroutine owns all
// writes; Set, Remove and Ensure calls that are pending together go out as
// one write. Every conditional write uses the ETag of what it read with
// If-Match, so a concurrent change by someone else makes Caddy answer 412 and
// the client reads again instead of overwriting it.
//
// Switches without a reload (Config.UpstreamDir): every admin write makes
// Caddy re-provision its config, start new servers and Shutdown the old
// ones, and net/http's conn.serve returns without answering a request it
// reads after Server.Shutdown began (golang/go#65802). A connection the old
// server accepted just before, or had idle, thus loses its request; a client
// on a new connection sees EOF (BenchmarkRequestsLostAtSwitch: 0.41 per
// switch with a connection per request, even on an inherited socket). No
// Caddy setting closes that gap: the http app's shutdown_delay is honoured
// only for listeners that close (caddyhttp App.stop checks ListenerUsage),
// not on a reload that keeps them, and grace_period bounds how long old
// connections may take, not which requests are read. With
// an UpstreamDir, each route dials {file.<dir>/<service>}, a placeholder
// reverse_proxy resolves per request, and a switch renames a new file over
// that one: no admin write, no reload, no request lost. Writes that still
// reload (routes added, removed or changed, Ensure) are held for
// ReloadWindow after the previous one and merged; switches never wait.
//
// A canary route (Route.Canary, canary.go) splits a service's requests
// between two releases by percentage with slot files of its own, so that
// its steps are file writes too; entering and leaving a canary are one
// reload each.
//
// Every handler is written with an explicit transport, a stream_close_delay
// and load_balancing try_duration/try_interval, and without active health
// checks; DESIGN.md ("Caddy") has the measurements behind each. The package
// does not log: it returns errors that carry the method, path, status and
// body of the admin request that failed (*APIError).
package caddy
