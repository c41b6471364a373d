package agent_test

import (
	"os"
	"strings"
	"testing"
	"time"
)

// adminGETs counts the admin API GET requests in the Caddy log.
func (e *env) adminGETs() int {
	e.t.Helper()
	b, err := os.ReadFile(e.caddy.LogPath)
	if err != nil {
		e.t.Fatal(err)
	}
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, `"logger":"admin.api"`) && strings.Contains(l, `"msg":"received request"`) && strings.Contains(l, `"method":"GET"`) {
			n++
		}
	}
	return n
}

// An idle pass costs one read of Caddy's config, however many services
// there are (issue 11): not one to make sure of the server, one before
// and one after the steps. Counted from Caddy's own log of its admin API.
func TestE2EIdlePassReadsCaddyOnce(t *testing.T) {
	f := newFleet(t, 4, "@every 1h", "{path: /up, interval: 100ms, timeout: 1s, threshold: 2, deadline: 30s, watch: 300ms}", "")
	rev := f.commitAll("fleet v1", "v1", "")
	f.runAgent()
	f.waitConverged(rev, time.Now(), 2*time.Minute)
	// A pass that deployed may still be observed by the next one: start
	// counting from a settled host.
	f.passesAfter(f.passes())
	f.quiet()

	p0, g0 := f.passes(), f.adminGETs()
	for range 3 {
		f.passesAfter(f.passes())
	}
	f.quiet()
	p1, g1 := f.passes(), f.adminGETs()
	if p1-p0 < 3 {
		t.Fatalf("%d passes ran, want 3", p1-p0)
	}
	if gets := g1 - g0; gets != p1-p0 {
		t.Errorf("%d idle passes sent %d GETs to Caddy's admin API, want one each", p1-p0, gets)
	}
	if n := f.convergedAt(rev); n != len(f.names) {
		t.Errorf("%d of %d services converged after idle passes", n, len(f.names))
	}
}

// passesAfter waits until more than n passes have run.
func (e *env) passesAfter(n int) {
	e.t.Helper()
	e.sync()
	e.waitFor("a pass", 30*time.Second, func() bool { return e.passes() > n })
}

// quiet waits until no pass has run for 2s (more than the agent's least
// time between two polls), so that none is half done when passes are
// counted. The poll is an hour away; only syncs start passes.
func (e *env) quiet() {
	e.t.Helper()
	e.waitFor("no pass for 2s", time.Minute, func() bool {
		n := e.passes()
		time.Sleep(2 * time.Second)
		return e.passes() == n
	})
}
