package caddy_test

import (
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/caddy"
	"github.com/jailkeeper/jailkeeper/caddy/caddytest"
)

// TestFileSwitchReadsOnlyItsFile: a switch reads Caddy's routes and the
// upstream file of the service it switches, not every service's (issue
// 11: at 1,000 routes each switch read 1,000 files). Another service's
// file that cannot be read does not hold it up.
func TestFileSwitchReadsOnlyItsFile(t *testing.T) {
	in := caddytest.Start(t)
	dir := t.TempDir()
	c := newFileClientIn(t, in, dir)
	a, b := backend(t, "A"), backend(t, "B")
	if err := c.Set(t.Context(), route("web", a), route("api", a)); err != nil {
		t.Fatal(err)
	}
	// api's file becomes unreadable: a directory in its place.
	api := caddy.UpstreamFile(dir, "api")
	if err := os.Remove(api); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(api, 0o755); err != nil {
		t.Fatal(err)
	}
	st := c.Stats()
	if err := c.Set(t.Context(), route("web", b)); err != nil {
		t.Fatalf("switch of web with api's file unreadable: %v", err)
	}
	if after := c.Stats(); after.Writes != st.Writes || after.Files != st.Files+1 {
		t.Errorf("switch: %d admin writes, %d files; want 0 and 1", after.Writes-st.Writes, after.Files-st.Files)
	}
	wantBody(t, in, "web.example.com", "B")
}

// TestFileSwitchesWriteTogether: switches that reach the writer together
// write their files at once, not one after another (issue 11: under load
// a file write took 13 ms median and 90 ms at the 90th percentile, and a
// round of 70 switches took seconds); each still gets its own result.
func TestFileSwitchesWriteTogether(t *testing.T) {
	in := caddytest.Start(t)
	c := newFileClient(t, in)
	a, b := backend(t, "A"), backend(t, "B")
	const n = 6
	var routes []caddy.Route
	for i := range n {
		routes = append(routes, route(fmt.Sprintf("s%d", i), a))
	}
	if err := c.Set(t.Context(), routes...); err != nil {
		t.Fatal(err)
	}
	// The first switch's write waits until the others are submitted, so
	// that they reach the writer together, in its next round; those
	// then wait for each other, up to a second, counting how many write
	// at once.
	base := c.Stats().Calls
	var mu sync.Mutex
	first, inFlight, most := true, 0, 0
	caddy.SetTestHookFileWrite(c, func(string) {
		mu.Lock()
		if first {
			first = false
			mu.Unlock()
			for c.Stats().Calls < base+n || caddy.Pending(c) < n-1 {
				time.Sleep(time.Millisecond)
			}
			return
		}
		inFlight++
		most = max(most, inFlight)
		mu.Unlock()
		for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			mu.Lock()
			all := most == n-1
			mu.Unlock()
			if all {
				break
			}
		}
		mu.Lock()
		inFlight--
		mu.Unlock()
	})
	errs := make(chan error, n)
	for i := range n {
		go func() { errs <- c.Set(t.Context(), route(fmt.Sprintf("s%d", i), b)) }()
		if i == 0 { // the first goes alone: the writer has taken it
			for c.Stats().Calls < base+1 || caddy.Pending(c) > 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if most != n-1 {
		t.Errorf("%d of the %d switches of one round wrote their files at once, want all", most, n-1)
	}
	for i := range n {
		wantBody(t, in, fmt.Sprintf("s%d.example.com", i), "B")
	}
}
