// Package caddy is a client for the Caddy v2 admin API. It owns one server
// object (apps.http.servers.<server>) and in it one route per service
// (@id jailkeeper_<service>, its reverse_proxy handler
// jailkeeper_<service>_proxy), and leaves the rest of Caddy's config alone.
//
// The admin API is reached over TCP or a unix socket. One goroutine owns all
// writes; Set, Remove and Ensure calls that are pending together go out as
// one write. Every conditional write uses the ETag of what it read with
// If-Match, so a concurrent change by someone else makes Caddy answer 412 and
// the client reads again instead of overwriting it.
//
// Every handler is written with an explicit transport, a stream_close_delay
// and load_balancing try_duration/try_interval, and without active health
// checks; DESIGN.md ("Caddy") has the measurements behind each. The package
// does not log: it returns errors that carry the method, path, status and
// body of the admin request that failed (*APIError).
package caddy
