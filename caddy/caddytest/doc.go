// Package caddytest runs a real Caddy (the pinned bin/caddy, see
// testenv.Caddy) for tests: Start launches it with an admin endpoint on a
// unix socket or a loopback TCP port, waits until the admin API answers,
// and stops it when the test ends. Caddy's output goes to a file in the
// test's temporary directory and its tail is printed when the test fails.
package caddytest
