package caddy_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/caddy"
	"github.com/jailkeeper/jailkeeper/caddy/caddytest"
)

// Regression tests for issue 9, items 4 and 5: what a deploy repo can
// write must never make one service answer for another, and one service's
// route must never keep another's from being written.

// TestHostnamesAreExact: a wildcard or placeholder hostname is refused
// before anything reaches Caddy. Before the fix, `*.example.com` on aaa was
// written first, bbb.example.com was appended after it, and Caddy answered
// bbb's host with aaa's backend.
func TestHostnamesAreExact(t *testing.T) {
	in := caddytest.Start(t)
	c := newClient(t, in)
	a, b := backend(t, "A"), backend(t, "B")
	for _, h := range []string{"*.example.com", "*.com", "*", "bb?.example.com", "{http.request.host}", "{env.X}.example.com", "BBB.example.com", "bbb.example.com."} {
		r := caddy.Route{Service: "aaa", Hostnames: []string{"aaa.example.com", h}, Upstream: a}
		if err := c.Set(t.Context(), r); !errors.Is(err, caddy.ErrInvalid) {
			t.Errorf("Set with hostname %q: %v, want ErrInvalid", h, err)
		}
	}
	if err := c.Set(t.Context(), caddy.Route{Service: "bbb", Hostnames: []string{"bbb.example.com"}, Upstream: b}); err != nil {
		t.Fatal(err)
	}
	wantBody(t, in, "bbb.example.com", "B")
}

// TestHostnameClaimedOnce: a hostname already routed to one service is
// refused for another (ErrInvalid, naming both), whatever the order of the
// routes; the first keeps answering and the rest of the refused route is
// not written.
func TestHostnameClaimedOnce(t *testing.T) {
	in := caddytest.Start(t)
	c := newClient(t, in)
	a, b := backend(t, "A"), backend(t, "B")
	if err := c.Set(t.Context(), caddy.Route{Service: "aaa", Hostnames: []string{"shared.example.com"}, Upstream: a}); err != nil {
		t.Fatal(err)
	}
	err := c.Set(t.Context(), caddy.Route{Service: "bbb", Hostnames: []string{"bbb.example.com", "shared.example.com"}, Upstream: b})
	if !errors.Is(err, caddy.ErrInvalid) || !strings.Contains(err.Error(), "aaa") || !strings.Contains(err.Error(), "bbb") {
		t.Fatalf("Set of a hostname routed to another service: %v, want ErrInvalid naming aaa and bbb", err)
	}
	wantBody(t, in, "shared.example.com", "A")
	client := &http.Client{Timeout: 5 * time.Second}
	if code, _, err := getRetry(t, client, in.HTTPAddr, "bbb.example.com"); err != nil || code != http.StatusNotFound {
		t.Errorf("bbb.example.com: %d %v, want 404 (bbb's route refused as a whole)", code, err)
	}
	// Moving the hostname from aaa to bbb in one call is fine.
	if err := c.Set(t.Context(),
		caddy.Route{Service: "aaa", Hostnames: []string{"aaa.example.com"}, Upstream: a},
		caddy.Route{Service: "bbb", Hostnames: []string{"bbb.example.com", "shared.example.com"}, Upstream: b}); err != nil {
		t.Fatal(err)
	}
	wantBody(t, in, "shared.example.com", "B")
	wantBody(t, in, "aaa.example.com", "A")
}

// routeIDs returns the @id of every route of jailkeeper's server, and of
// each route's first handler, in order.
func routeIDs(t *testing.T, in *caddytest.Instance) (routes, handlers []string) {
	t.Helper()
	var rs []struct {
		ID     string `json:"@id"`
		Handle []struct {
			ID string `json:"@id"`
		} `json:"handle"`
	}
	if err := json.Unmarshal([]byte(in.MustDo(t, http.MethodGet, "/config/apps/http/servers/jailkeeper/routes", "").Body), &rs); err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		routes = append(routes, r.ID)
		if len(r.Handle) > 0 {
			handlers = append(handlers, r.Handle[0].ID)
		}
	}
	return routes, handlers
}

// TestIDsCannotCollide: service bbb_proxy next to bbb. Before the fix
// bbb_proxy's route and bbb's handler both had @id jailkeeper_bbb_proxy,
// Caddy refused the write with "duplicate ID", and every service in that
// batch (ccc too) stayed unrouted.
func TestIDsCannotCollide(t *testing.T) {
	in := caddytest.Start(t)
	c := newClient(t, in)
	b, p, cc := backend(t, "B"), backend(t, "P"), backend(t, "C")
	bbbProxy := func(up string) caddy.Route {
		return caddy.Route{Service: "bbb_proxy", Hostnames: []string{"bbb-proxy.example.com"}, Upstream: up}
	}
	if err := c.Set(t.Context(), route("bbb", b), bbbProxy(p), route("ccc", cc)); err != nil {
		t.Fatal(err)
	}
	wantBody(t, in, "bbb.example.com", "B")
	wantBody(t, in, "bbb-proxy.example.com", "P")
	wantBody(t, in, "ccc.example.com", "C")
	routes, handlers := routeIDs(t, in)
	want := []string{"jailkeeper.route.bbb", "jailkeeper.route.bbb_proxy", "jailkeeper.route.ccc"}
	if len(routes) != 4 || strings.Join(routes[:3], " ") != strings.Join(want, " ") {
		t.Errorf("route @ids = %v, want %v and the fallback", routes, want)
	}
	if len(handlers) < 3 || handlers[0] != "jailkeeper.proxy.bbb" || handlers[1] != "jailkeeper.proxy.bbb_proxy" {
		t.Errorf("handler @ids = %v", handlers)
	}
	// A switch goes through the new handler @id.
	if err := c.Set(t.Context(), bbbProxy(b)); err != nil {
		t.Fatal(err)
	}
	wantBody(t, in, "bbb-proxy.example.com", "B")
	if st := c.Stats(); st.Switches != 1 {
		t.Errorf("switches = %d, want 1", st.Switches)
	}
}

// legacyRoute is a route as jailkeeper wrote it before the @id change.
func legacyRoute(svc, host, upstream string) string {
	return `{"@id":"jailkeeper_` + svc + `","match":[{"host":["` + host + `"]}],"handle":[{"@id":"jailkeeper_` + svc +
		`_proxy","handler":"reverse_proxy","upstreams":[{"dial":"` + upstream + `"}],"transport":{"protocol":"http","dial_timeout":"2s"},` +
		`"load_balancing":{"try_duration":"5s","try_interval":"250ms"},"stream_close_delay":"10m"}],"terminal":true}`
}

// TestLegacyIDsReplacedAtomically: routes written by an older jailkeeper
// (@id jailkeeper_<service>) are taken over by Ensure, which the agent runs
// at start: one write of the routes array replaces them in place with the
// new @ids, so no request in between finds its host unrouted.
func TestLegacyIDsReplacedAtomically(t *testing.T) {
	in := caddytest.Start(t)
	a, b := backend(t, "A"), backend(t, "B")
	server := `{"listen":["` + in.HTTPAddr + `"],"automatic_https":{"disable":true},"routes":[` +
		legacyRoute("aaa", "aaa.example.com", a) + `,` + legacyRoute("bbb", "bbb.example.com", b) + `,` +
		`{"match":[{"host":["foreign.example.com"]}],"handle":[{"handler":"static_response","body":"F"}],"terminal":true},` +
		fallbackJSON + `]}`
	in.MustDo(t, http.MethodPut, "/config/apps/http", `{"grace_period":"30s","servers":{"jailkeeper":`+server+`}}`)
	wantBody(t, in, "aaa.example.com", "A")

	c := newClient(t, in)
	got, err := c.Routes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got["aaa"].Upstream != a || got["bbb"].Upstream != b {
		t.Fatalf("Routes before the take-over = %+v, want the legacy routes of aaa and bbb", got)
	}
	var writes []string
	caddy.SetTestHookBeforeWrite(c, func(method, path string) { writes = append(writes, method+" "+path) })

	// Clients keep asking for aaa and bbb during the take-over.
	var (
		stop    atomic.Bool
		wg      sync.WaitGroup
		wrong   atomic.Int64
		answers atomic.Int64
	)
	client := &http.Client{Timeout: 5 * time.Second}
	for _, host := range []string{"aaa.example.com", "bbb.example.com"} {
		want := map[string]string{"aaa.example.com": "A", "bbb.example.com": "B"}[host]
		wg.Go(func() {
			for !stop.Load() {
				code, body, err := get(t, client, in.HTTPAddr, host)
				if err != nil {
					continue // a connection dropped at the reload; see TestSwitchUnderLoad
				}
				answers.Add(1)
				if code != http.StatusOK || body != want {
					wrong.Add(1)
					t.Errorf("GET %s during the take-over: %d %q", host, code, body)
				}
			}
		})
	}
	for answers.Load() < 20 {
		time.Sleep(time.Millisecond)
	}
	err = c.Ensure(t.Context())
	for n := answers.Load(); answers.Load() < n+20; {
		time.Sleep(time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if len(writes) != 1 || writes[0] != "PATCH /config/apps/http/servers/jailkeeper/routes" {
		t.Errorf("writes = %q, want one PATCH of the routes array", writes)
	}
	routes, handlers := routeIDs(t, in)
	wantRoutes := "jailkeeper.route.aaa jailkeeper.route.bbb  jailkeeper__fallback"
	if strings.Join(routes, " ") != wantRoutes {
		t.Errorf("routes = %q, want %q", routes, wantRoutes)
	}
	if handlers[0] != "jailkeeper.proxy.aaa" || handlers[1] != "jailkeeper.proxy.bbb" {
		t.Errorf("handlers = %q", handlers)
	}
	wantBody(t, in, "foreign.example.com", "F")
	t.Logf("%d answers during the take-over, %d wrong", answers.Load(), wrong.Load())

	// Idempotent: nothing left to take over.
	writes = nil
	if err := c.Ensure(t.Context()); err != nil || len(writes) != 0 {
		t.Errorf("second Ensure: %v, writes %q", err, writes)
	}
}

// TestOneBadRouteFailsAlone: Caddy refuses the batch because of one route
// (a foreign handler holds the @id that route's handler needs); the other
// services of the batch are written anyway, and only the call that asked
// for the bad route gets the error.
func TestOneBadRouteFailsAlone(t *testing.T) {
	in := caddytest.Start(t)
	c := newClient(t, in)
	if err := c.Ensure(t.Context()); err != nil {
		t.Fatal(err)
	}
	squatter := `{"match":[{"host":["squat.example.com"]}],"handle":[{"@id":"jailkeeper.proxy.ddd","handler":"static_response","body":"S"}],"terminal":true}`
	in.MustDo(t, http.MethodPut, "/config/apps/http/servers/jailkeeper/routes/0", squatter)
	batches := c.Stats().Batches

	// Hold the first batch (a no-op Remove) until the two Sets are queued,
	// so that they go to Caddy together.
	held := make(chan struct{})
	var first atomic.Bool
	caddy.SetTestHookBatch(c, func(int) {
		if first.Swap(true) {
			return
		}
		close(held)
		deadline := time.Now().Add(20 * time.Second)
		for caddy.Pending(c) < 2 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	})
	var wg sync.WaitGroup
	wg.Go(func() { c.Remove(t.Context(), "nothing") })
	<-held
	var errCCC, errDDD error
	wg.Go(func() { errCCC = c.Set(t.Context(), route("ccc", backend(t, "C"))) })
	wg.Go(func() { errDDD = c.Set(t.Context(), route("ddd", backend(t, "D"))) })
	wg.Wait()
	if errCCC != nil {
		t.Errorf("Set ccc: %v, want nil: ddd's bad route must not fail it", errCCC)
	}
	if errDDD == nil || !strings.Contains(errDDD.Error(), "ddd") {
		t.Errorf("Set ddd: %v, want Caddy's refusal, naming ddd", errDDD)
	}
	wantBody(t, in, "ccc.example.com", "C")
	wantBody(t, in, "squat.example.com", "S")
	if n := c.Stats().Batches - batches; n != 2 {
		t.Errorf("batches = %d, want 2 (the Sets merged)", n)
	}
}
