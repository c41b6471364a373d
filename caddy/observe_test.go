package caddy_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jailkeeper/jailkeeper/caddy"
	"github.com/jailkeeper/jailkeeper/caddy/caddytest"
)

// adminCounter sits between a client and Caddy's admin API and counts the
// requests by method.
type adminCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

func (a *adminCounter) take() map[string]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.counts
	a.counts = map[string]int{}
	return c
}

// countedAdmin starts a TCP-admin Caddy behind an adminCounter and
// returns the Caddy, the counter and the admin address to give a client.
func countedAdmin(t *testing.T) (*caddytest.Instance, *adminCounter, string) {
	t.Helper()
	in := caddytest.Start(t, caddytest.TCPAdmin())
	target, err := url.Parse("http://" + in.Admin)
	if err != nil {
		t.Fatal(err)
	}
	ac := &adminCounter{counts: map[string]int{}}
	// Caddy's admin API checks the Host and Origin of each request.
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(target)
		r.Out.Host = target.Host
		if r.In.Header.Get("Origin") != "" {
			r.Out.Header.Set("Origin", "http://"+target.Host)
		}
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ac.mu.Lock()
		ac.counts[r.Method]++
		ac.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return in, ac, strings.TrimPrefix(srv.URL, "http://")
}

// EnsureRoutes reads Caddy's config once and writes nothing when
// jailkeeper's server is in place, and returns what Routes returns; when
// the server was changed behind its back it puts it back first.
func TestEnsureRoutesReadsOnce(t *testing.T) {
	in, ac, admin := countedAdmin(t)
	c, err := caddy.New(caddy.Config{Admin: admin, Listen: []string{in.Listen}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx := context.Background()

	// A fresh Caddy: the server is created.
	got, err := c.EnsureRoutes(ctx)
	if err != nil || len(got) != 0 {
		t.Fatalf("first EnsureRoutes = %v, %v; want no routes", got, err)
	}
	var routes []caddy.Route
	for _, s := range []string{"alpha", "beta", "gamma"} {
		routes = append(routes, caddy.Route{Service: s, Hostnames: []string{s + ".example.com"}, Upstream: backend(t, s)})
	}
	if err := c.Set(ctx, routes...); err != nil {
		t.Fatal(err)
	}
	want, err := c.Routes(ctx)
	if err != nil || len(want) != 3 {
		t.Fatalf("Routes = %v, %v", want, err)
	}

	ac.take()
	for range 3 {
		got, err := c.EnsureRoutes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("EnsureRoutes differs from Routes (-want +got):\n%s", diff)
		}
		if n := ac.take(); !cmp.Equal(n, map[string]int{"GET": 1}) {
			t.Errorf("EnsureRoutes with all in place sent %v, want one GET", n)
		}
	}

	// Someone turns automatic HTTPS back on: it is put back, and the
	// routes are still there.
	in.MustDo(t, "PATCH", "/config/apps/http/servers/jailkeeper/automatic_https/disable", "false")
	ac.take()
	got, err = c.EnsureRoutes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("after a repair (-want +got):\n%s", diff)
	}
	if n := ac.take(); n["PATCH"]+n["PUT"]+n["POST"] == 0 {
		t.Errorf("a changed server was not repaired: requests %v", n)
	}
	wantBody(t, in, "beta.example.com", "beta")
}
