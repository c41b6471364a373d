package caddy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jailkeeper/jailkeeper/caddy"
	"github.com/jailkeeper/jailkeeper/caddy/caddytest"
)

// newFileClient returns a client for in that switches upstreams through
// files in a fresh directory (Config.UpstreamDir).
func newFileClient(t testing.TB, in *caddytest.Instance) *caddy.Client {
	t.Helper()
	return newFileClientIn(t, in, t.TempDir())
}

// newFileClientIn is newFileClient with its upstream files in dir, for
// tests that look at them.
func newFileClientIn(t testing.TB, in *caddytest.Instance, dir string) *caddy.Client {
	t.Helper()
	c, err := caddy.New(caddy.Config{Admin: in.Admin, Listen: []string{in.Listen}, UpstreamDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// dials returns the dial of each upstream of service's handler in Caddy.
func dials(t *testing.T, in *caddytest.Instance, service string) []string {
	t.Helper()
	var ups []struct{ Dial string }
	body := in.MustDo(t, http.MethodGet, "/id/"+caddy.HandlerID(service)+"/upstreams", "").Body
	if err := json.Unmarshal([]byte(body), &ups); err != nil {
		t.Fatalf("upstreams %s: %v", body, err)
	}
	var out []string
	for _, u := range ups {
		out = append(out, u.Dial)
	}
	return out
}

// TestFileSwitchNoReload: with an UpstreamDir, the route dials its file,
// and a switch rewrites the file and writes nothing to Caddy; Routes reads
// the upstream from the file; Remove deletes the file with the route.
func TestFileSwitchNoReload(t *testing.T) {
	in := caddytest.Start(t)
	dir := t.TempDir()
	c := newFileClientIn(t, in, dir)
	a, b := backend(t, "A"), backend(t, "B")
	if err := c.Set(t.Context(), route("web", a)); err != nil {
		t.Fatal(err)
	}
	file := caddy.UpstreamFile(dir, "web")
	if got, want := dials(t, in, "web"), []string{"{file." + file + "}"}; !cmp.Equal(got, want) {
		t.Fatalf("dials %v, want %v", got, want)
	}
	wantBody(t, in, "web.example.com", "A")

	st := c.Stats()
	for i, up := range []string{b, a, b} {
		if err := c.Set(t.Context(), route("web", up)); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(file); err != nil || string(b) != up+"\n" {
			t.Fatalf("switch %d: file %q %v, want %q", i, b, err, up+"\n")
		}
		st, body, err := get(t, http.DefaultClient, in.HTTPAddr, "web.example.com")
		if want := map[string]string{a: "A", b: "B"}[up]; err != nil || st != 200 || body != want {
			t.Fatalf("switch %d: GET %d %q %v, want 200 %q", i, st, body, err, want)
		}
	}
	if after := c.Stats(); after.Writes != st.Writes || after.Files != st.Files+3 {
		t.Errorf("3 switches: %d admin writes, %d files; want 0 and 3", after.Writes-st.Writes, after.Files-st.Files)
	}
	routes, err := c.Routes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(route("web", b).Normalize(), routes["web"]); diff != "" {
		t.Errorf("Routes (-want +got):\n%s", diff)
	}
	// Set as it is: nothing written, not even the file.
	st = c.Stats()
	if err := c.Set(t.Context(), route("web", b)); err != nil {
		t.Fatal(err)
	}
	if after := c.Stats(); after.Writes != st.Writes || after.Files != st.Files {
		t.Errorf("Set of the route as it is wrote: %+v then %+v", st, after)
	}
	if err := c.Remove(t.Context(), "web"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("upstream file after Remove: %v", err)
	}
}

// TestFileModeTakesOverAddressRoute: a route written by a client without
// an UpstreamDir (an earlier jailkeeper) is Drifted for a client with one,
// with its address as Upstream, and the next Set moves it to the file in
// one write, the file written first.
func TestFileModeTakesOverAddressRoute(t *testing.T) {
	in := caddytest.Start(t)
	old, c := newClient(t, in), newFileClient(t, in)
	a, b := backend(t, "A"), backend(t, "B")
	if err := old.Set(t.Context(), route("web", a)); err != nil {
		t.Fatal(err)
	}
	routes, err := c.Routes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got := routes["web"]; got.Upstream != a || !got.Drifted {
		t.Fatalf("address route seen by a file client: %+v, want Upstream %s, Drifted", got, a)
	}
	var writes []string
	caddy.SetTestHookBeforeWrite(c, func(method, path string) { writes = append(writes, method+" "+path) })
	if err := c.Set(t.Context(), route("web", b)); err != nil {
		t.Fatal(err)
	}
	wantBody(t, in, "web.example.com", "B")
	if diff := cmp.Diff([]string{"PATCH /config/apps/http/servers/jailkeeper/routes"}, writes); diff != "" {
		t.Errorf("writes (-want +got):\n%s", diff)
	}
	if routes, err = c.Routes(t.Context()); err != nil || routes["web"].Drifted || routes["web"].Upstream != b {
		t.Errorf("after take-over: %+v %v", routes["web"], err)
	}
}

// TestFileSwitchUnderLoad switches one upstream back and forth while
// clients send requests through Caddy, on a new connection each and over
// kept-alive ones, and wants every request answered 2xx at the first try:
// no retry, no tolerance. It is the test that fails when a switch reloads
// Caddy (a client without UpstreamDir loses about one request in two
// switches on new connections: BenchmarkRequestsLostAtSwitch).
func TestFileSwitchUnderLoad(t *testing.T) {
	in := caddytest.Start(t, caddytest.InheritListener())
	c := newFileClient(t, in)
	a, b := backend(t, "A"), backend(t, "B")
	if err := c.Set(t.Context(), route("web", a)); err != nil {
		t.Fatal(err)
	}
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}
	kept := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}, Timeout: 30 * time.Second}
	t.Cleanup(kept.CloseIdleConnections)

	const switches = 100
	var stop atomic.Bool
	var ok, failed atomic.Int64
	var seen sync.Map
	var mu sync.Mutex
	var failures []string
	var wg sync.WaitGroup
	for i := range 4 {
		client := fresh
		if i%2 == 1 {
			client = kept
		}
		wg.Go(func() {
			for !stop.Load() {
				st, body, err := get(t, client, in.HTTPAddr, "web.example.com")
				if err != nil || st != http.StatusOK {
					failed.Add(1)
					mu.Lock()
					failures = append(failures, fmt.Sprintf("%d %q %v", st, body, err))
					mu.Unlock()
					continue
				}
				ok.Add(1)
				seen.Store(body, true)
			}
		})
	}
	st := c.Stats()
	for i := range switches {
		up := []string{b, a}[i%2]
		if err := c.Set(t.Context(), route("web", up)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	after := c.Stats()
	t.Logf("%d switches under load: %d ok, %d failed; %d admin writes", switches, ok.Load(), failed.Load(), after.Writes-st.Writes)
	if failed.Load() != 0 {
		t.Errorf("%d requests failed, want 0:\n%s", failed.Load(), strings.Join(failures[:min(len(failures), 20)], "\n"))
	}
	if _, sawA := seen.Load("A"); !sawA || ok.Load() < switches {
		t.Errorf("load did not cover the switches: %d ok", ok.Load())
	}
	if _, sawB := seen.Load("B"); !sawB {
		t.Error("B never answered")
	}
	if after.Writes != st.Writes {
		t.Errorf("%d admin writes during switches, want 0", after.Writes-st.Writes)
	}
}

// TestReloadWindow: calls that need a reload and come within ReloadWindow
// of the last admin write wait for the window's end and go out together;
// two such writes are never closer than the window.
func TestReloadWindow(t *testing.T) {
	in := caddytest.Start(t)
	c := newFileClient(t, in)
	a := backend(t, "A")
	var mu sync.Mutex
	var at []time.Time
	caddy.SetTestHookBeforeWrite(c, func(method, path string) {
		mu.Lock()
		at = append(at, time.Now())
		mu.Unlock()
	})
	if err := c.Ensure(t.Context()); err != nil {
		t.Fatal(err)
	}
	// 20 new services, one started every 10 ms: a 200 ms stream of route
	// creations.
	const n = 20
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs <- c.Set(t.Context(), route(fmt.Sprintf("svc%02d", i), a)) })
		time.Sleep(10 * time.Millisecond)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("Ensure and %d route creations: %d admin writes", n, len(at))
	for i := 1; i < len(at); i++ {
		// Ensure on an empty Caddy is one write, so every write here is a
		// batch of its own.
		if gap := at[i].Sub(at[i-1]); gap < caddy.ReloadWindow {
			t.Errorf("writes %d and %d are %s apart, less than the window %s", i-1, i, gap, caddy.ReloadWindow)
		}
	}
	if len(at) >= n {
		t.Errorf("%d admin writes for %d route creations: not coalesced", len(at), n)
	}
	routes, err := c.Routes(t.Context())
	if err != nil || len(routes) != n {
		t.Fatalf("%d routes, %v; want %d", len(routes), err, n)
	}
	wantBody(t, in, "svc13.example.com", "A")
}

// heldByWriter waits until c has had calls calls and the writer has taken
// them all.
func heldByWriter(t *testing.T, c *caddy.Client, calls uint64) {
	t.Helper()
	for c.Stats().Calls < calls || caddy.Pending(c) != 0 {
		time.Sleep(time.Millisecond)
	}
}

// TestRollbackNotHeldByWindow: a switch back to a running release is done
// while a route creation waits out the reload window, and never waits for
// it.
func TestRollbackNotHeldByWindow(t *testing.T) {
	in := caddytest.Start(t)
	c := newFileClient(t, in)
	caddy.SetReloadWindow(c, 3*time.Second) // long enough to be sure the switch came inside it
	a, b := backend(t, "A"), backend(t, "B")
	if err := c.Set(t.Context(), route("web", a)); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(t.Context(), route("web", b)); err != nil {
		t.Fatal(err)
	}
	wantBody(t, in, "web.example.com", "B")
	// The Set of web made a write just now: a new route waits ~3 s.
	created := make(chan error, 1)
	calls := c.Stats().Calls
	go func() { created <- c.Set(t.Context(), route("late", a)) }()
	heldByWriter(t, c, calls+1)
	// Roll back: web to A again.
	if err := c.Set(t.Context(), route("web", a)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-created:
		t.Fatalf("the route creation finished (%v) before the rollback: it did not wait for the window, or the rollback waited for it", err)
	default:
	}
	st, body, err := get(t, http.DefaultClient, in.HTTPAddr, "web.example.com")
	if err != nil || st != 200 || body != "A" {
		t.Fatalf("after rollback: GET %d %q %v, want 200 A", st, body, err)
	}
	if err := <-created; err != nil {
		t.Fatal(err)
	}
	wantBody(t, in, "late.example.com", "A")
}

// TestSwitchWithReloadNotHeld: a switch that needs a reload too (new
// hostnames with the old release back) does not wait out the window, and
// takes what was held with it.
func TestSwitchWithReloadNotHeld(t *testing.T) {
	in := caddytest.Start(t)
	c := newFileClient(t, in)
	caddy.SetReloadWindow(c, time.Hour) // held calls would outlive the test
	a, b := backend(t, "A"), backend(t, "B")
	if err := c.Set(t.Context(), route("web", a)); err != nil {
		t.Fatal(err)
	}
	created := make(chan error, 1)
	calls := c.Stats().Calls
	go func() { created <- c.Set(t.Context(), route("late", a)) }()
	heldByWriter(t, c, calls+1)
	back := route("web", b)
	back.Hostnames = append(back.Hostnames, "www.web.example.com")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := c.Set(ctx, back); err != nil {
		t.Fatalf("switch with new hostnames: %v (held by the window?)", err)
	}
	wantBody(t, in, "www.web.example.com", "B")
	if err := <-created; err != nil {
		t.Fatal(err)
	}
	wantBody(t, in, "late.example.com", "A")
}
