package caddy_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jailkeeper/jailkeeper/caddy"
	"github.com/jailkeeper/jailkeeper/caddy/caddytest"
)

// failingBackend answers its name with status 500 on every request.
func failingBackend(t testing.TB, name string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, name)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func canaryRoute(svc, live, next string, step int) caddy.Route {
	r := route(svc, live)
	r.Canary = &caddy.Canary{Upstream: next, Steps: []int{10, 50}, Step: step, MaxFails: 1000, FailDuration: time.Minute}
	return r
}

// split sends n requests through Caddy and counts the answers by body;
// any failed request fails the test.
func split(t *testing.T, in *caddytest.Instance, host string, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for range n {
		// getRetry: a connection Caddy resets or drops at the reload of a
		// Set just before is never served, so it counts for no upstream.
		st, body, err := getRetry(t, http.DefaultClient, in.HTTPAddr, host)
		if err != nil {
			t.Fatalf("GET: %v", err)
		}
		if st != http.StatusOK && st != http.StatusInternalServerError {
			t.Fatalf("GET: status %d %q", st, body)
		}
		got[body]++
	}
	return got
}

// TestCanaryStepsAreFileWrites: entering a canary is one admin write; each
// step, the promotion's traffic move and an abort are file writes only,
// and the split Caddy makes is exactly the step's percentage; leaving the
// canary is one more admin write, which removes the slot files.
func TestCanaryStepsAreFileWrites(t *testing.T) {
	in := caddytest.Start(t)
	dir := t.TempDir()
	c := newFileClientIn(t, in, dir)
	a, b := backend(t, "A"), backend(t, "B")
	ctx := t.Context()
	if err := c.Set(ctx, route("web", a)); err != nil {
		t.Fatal(err)
	}
	writes := c.Stats().Writes
	if err := c.Set(ctx, canaryRoute("web", a, b, 1)); err != nil {
		t.Fatal(err)
	}
	if got := c.Stats().Writes - writes; got != 1 {
		t.Errorf("entering the canary: %d admin writes, want 1", got)
	}
	want := []string{"{file." + dir + "/web.0}", "{file." + dir + "/web.1}", "{file." + dir + "/web}"}
	if got := dials(t, in, "web"); !cmp.Equal(got, want) {
		t.Fatalf("canary dials %v, want %v", got, want)
	}
	writes = c.Stats().Writes
	for step, pct := range map[int]int{1: 10, 2: 50, 0: 0} {
		if err := c.Set(ctx, canaryRoute("web", a, b, step)); err != nil {
			t.Fatal(err)
		}
		got := split(t, in, "web.example.com", 200)
		if got["A"] != 200-2*pct || got["B"] != 2*pct {
			t.Errorf("step %d: split %v, want %d %% B", step, got, pct)
		}
		routes, err := c.Routes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		r := routes["web"]
		if r.Canary == nil || r.Canary.Step != step || r.Upstream != a || !r.Drifted {
			t.Errorf("step %d: Routes says %+v canary %+v", step, r, r.Canary)
		}
	}
	// Promotion: the service's file to the new release, then the plain route.
	if err := c.Set(ctx, canaryRoute("web", b, b, 2)); err != nil {
		t.Fatal(err)
	}
	if got := split(t, in, "web.example.com", 20); got["B"] != 20 {
		t.Errorf("promoted: split %v, want all B", got)
	}
	if got := c.Stats().Writes - writes; got != 0 {
		t.Errorf("steps: %d admin writes, want 0", got)
	}
	if err := c.Set(ctx, route("web", b)); err != nil {
		t.Fatal(err)
	}
	if got := c.Stats().Writes - writes; got != 1 {
		t.Errorf("leaving the canary: %d admin writes, want 1", got)
	}
	if got := dials(t, in, "web"); !cmp.Equal(got, []string{"{file." + dir + "/web}"}) {
		t.Errorf("after the canary: dials %v", got)
	}
	for _, f := range []string{"web.0", "web.1"} {
		if _, err := os.Stat(caddy.UpstreamFile(dir, f)); !os.IsNotExist(err) {
			t.Errorf("slot file %s after the canary: %v", f, err)
		}
	}
	wantBody(t, in, "web.example.com", "B")
}

// TestCanaryFails: Caddy's passive health counts the 5xx answers of the
// slots in force, under their placeholders, and CanaryFails adds them up;
// the live release's slot is not counted.
func TestCanaryFails(t *testing.T) {
	for _, file := range []bool{true, false} {
		t.Run(map[bool]string{true: "file", false: "dial"}[file], func(t *testing.T) {
			in := caddytest.Start(t)
			c := newClient(t, in)
			if file {
				c = newFileClient(t, in)
			}
			a, bad := backend(t, "A"), failingBackend(t, "B")
			ctx := t.Context()
			if err := c.Set(ctx, canaryRoute("web", a, bad, 2)); err != nil {
				t.Fatal(err)
			}
			got := split(t, in, "web.example.com", 100)
			if got["B"] != 50 {
				t.Fatalf("split %v, want 50 B", got)
			}
			routes, err := c.Routes(ctx)
			if err != nil {
				t.Fatal(err)
			}
			r := routes["web"]
			r.Canary.Upstream, r.Canary.Step = bad, 2
			n, err := c.CanaryFails(ctx, r)
			if err != nil || n != 50 {
				t.Errorf("CanaryFails = %d, %v; want 50", n, err)
			}
		})
	}
}
