package caddy_test

import (
	"os"
	"testing"

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
	c, err := caddy.New(caddy.Config{Admin: in.Admin, Listen: []string{in.Listen}, UpstreamDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
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
