// Package caddy is a client for the Caddy v2 admin API. It owns one server
// object (apps.http.servers.<server>) and in it one route per service, and
// leaves the rest of Caddy's config alone.
package caddy
