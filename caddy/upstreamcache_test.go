package caddy_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/caddy"
	"github.com/jailkeeper/jailkeeper/caddy/caddytest"
)

// TestEnsureRoutesUpstreamFiles: an idle EnsureRoutes reads no upstream
// file again and stats one in caddy.UpstreamRounds of them (issue 11),
// and still sees every change made behind the client's back: a file
// replaced (renamed over) or removed at the next call, a file edited in
// place within caddy.UpstreamRounds calls. Routes sees an edit at once.
func TestEnsureRoutesUpstreamFiles(t *testing.T) {
	in := caddytest.Start(t)
	dir := t.TempDir()
	c := newFileClientIn(t, in, dir)
	ctx := t.Context()
	const n = 2 * caddy.UpstreamRounds
	var routes []caddy.Route
	for i := range n {
		routes = append(routes, route(fmt.Sprintf("s%02d", i), fmt.Sprintf("127.0.0.1:%d", 10000+i)))
	}
	if err := c.Set(ctx, routes...); err != nil {
		t.Fatal(err)
	}
	// Files older than the racy window, as in an idle fleet: their stat
	// vouches for what was read.
	old := time.Now().Add(-time.Hour)
	age := func(p string) {
		t.Helper()
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range routes {
		age(caddy.UpstreamFile(dir, r.Service))
	}
	ensure := func(what string) map[string]caddy.Route {
		t.Helper()
		got, err := c.EnsureRoutes(ctx)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if len(got) != n {
			t.Fatalf("%s: %d routes, want %d", what, len(got), n)
		}
		return got
	}
	ensure("first")
	ensure("second")
	stats0, reads0 := caddy.UpstreamFileIO(c)
	for i := range caddy.UpstreamRounds {
		got := ensure("idle")
		for _, r := range routes {
			if got[r.Service].Upstream != r.Upstream {
				t.Fatalf("idle call %d: %s upstream %q, want %q", i, r.Service, got[r.Service].Upstream, r.Upstream)
			}
		}
	}
	stats, reads := caddy.UpstreamFileIO(c)
	if reads != reads0 || stats-stats0 != n {
		t.Errorf("%d idle EnsureRoutes stat'ed %d files and read %d, want %d and 0", caddy.UpstreamRounds, stats-stats0, reads-reads0, n)
	}

	// Edited in place: the directory does not change; seen within
	// UpstreamRounds calls.
	edited := caddy.UpstreamFile(dir, routes[3].Service)
	if err := os.WriteFile(edited, []byte("127.0.0.1:9\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	calls := 0
	for calls = 1; calls <= caddy.UpstreamRounds; calls++ {
		if ensure("after an edit")[routes[3].Service].Upstream == "127.0.0.1:9" {
			break
		}
	}
	if calls > caddy.UpstreamRounds {
		t.Errorf("an upstream file edited in place unseen after %d EnsureRoutes", caddy.UpstreamRounds)
	}
	if got, err := c.Routes(ctx); err != nil || got[routes[3].Service].Upstream != "127.0.0.1:9" {
		t.Errorf("Routes after an edit: %v, %v; want %s upstream 127.0.0.1:9", got[routes[3].Service], err, routes[3].Service)
	}
	// Routes stats every file: an edit is seen by the next Routes.
	if err := os.WriteFile(edited, []byte("127.0.0.1:8\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Routes(ctx); err != nil || got[routes[3].Service].Upstream != "127.0.0.1:8" {
		t.Errorf("Routes right after an edit: %v, %v; want %s upstream 127.0.0.1:8", got[routes[3].Service], err, routes[3].Service)
	}

	// Replaced by a rename, and removed: seen at the next call.
	tmp := filepath.Join(dir, ".new")
	if err := os.WriteFile(tmp, []byte("127.0.0.1:7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	age(tmp)
	if err := os.Rename(tmp, caddy.UpstreamFile(dir, routes[5].Service)); err != nil {
		t.Fatal(err)
	}
	if got := ensure("after a rename")[routes[5].Service].Upstream; got != "127.0.0.1:7" {
		t.Errorf("after a rename: %s upstream %q, want 127.0.0.1:7", routes[5].Service, got)
	}
	if err := os.Remove(caddy.UpstreamFile(dir, routes[6].Service)); err != nil {
		t.Fatal(err)
	}
	if got := ensure("after a removal")[routes[6].Service].Upstream; got != "" {
		t.Errorf("after a removal: %s upstream %q, want none", routes[6].Service, got)
	}
}
