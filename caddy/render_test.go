package caddy

import (
	"bytes"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jailkeeper/jailkeeper/internal/golden"
)

// assertJSON compares got (JSON), indented, with the golden file testdata/name.
func assertJSON(t *testing.T, name string, got []byte) {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Indent(&buf, got, "", "  "); err != nil {
		t.Fatalf("indent: %v", err)
	}
	buf.WriteByte('\n')
	golden.Assert(t, filepath.Join("testdata", name), buf.Bytes())
}

func TestRenderGolden(t *testing.T) {
	for _, tc := range []struct {
		file  string
		route Route
	}{
		{"route.json", Route{
			Service:   "hello",
			Hostnames: []string{"hello.example.com", "www.hello.example.com"},
			Upstream:  "127.77.0.2:8080",
		}},
		{"route_stream_close_delay.json", Route{
			Service:          "chat",
			Hostnames:        []string{"chat.example.com"},
			Upstream:         "[::1]:9000",
			StreamCloseDelay: 90 * time.Minute,
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b, err := tc.route.render()
			if err != nil {
				t.Fatal(err)
			}
			assertJSON(t, tc.file, b)
		})
	}
	t.Run("server.json", func(t *testing.T) {
		b, err := renderServer([]string{":8080"})
		if err != nil {
			t.Fatal(err)
		}
		assertJSON(t, "server.json", b)
	})
}

func TestDuration(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		text string
	}{
		{10 * time.Minute, "10m"},
		{5 * time.Second, "5s"},
		{250 * time.Millisecond, "250ms"},
		{time.Hour, "1h"},
		{90 * time.Minute, "1h30m"},
		{time.Hour + 30*time.Second, "1h0m30s"},
		{0, "0s"},
	} {
		if got := formatDuration(tc.d); got != tc.text {
			t.Errorf("formatDuration(%v) = %q, want %q", tc.d, got, tc.text)
		}
		got, err := parseDuration(tc.text)
		if err != nil || got != tc.d {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", tc.text, got, err, tc.d)
		}
	}
	for _, tc := range []struct {
		in   any
		want time.Duration
	}{
		{nil, 0},
		{float64(1e9), time.Second},
		{"1d", 24 * time.Hour},
		{"2d3h", 51 * time.Hour},
	} {
		got, err := parseDuration(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("parseDuration(%v) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []any{"soon", true, "xd"} {
		if _, err := parseDuration(bad); err == nil {
			t.Errorf("parseDuration(%v): no error", bad)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := Route{Service: "hello", Hostnames: []string{"a.example"}, Upstream: "127.0.0.1:1"}
	if err := ok.validate(); err != nil {
		t.Fatalf("valid route: %v", err)
	}
	for name, mut := range map[string]func(*Route){
		"empty service":   func(r *Route) { r.Service = "" },
		"upper service":   func(r *Route) { r.Service = "Hello" },
		"slash service":   func(r *Route) { r.Service = "a/b" },
		"no hostnames":    func(r *Route) { r.Hostnames = nil },
		"empty hostname":  func(r *Route) { r.Hostnames = []string{""} },
		"no port":         func(r *Route) { r.Upstream = "127.0.0.1" },
		"negative delay":  func(r *Route) { r.StreamCloseDelay = -time.Second },
		"space host name": func(r *Route) { r.Hostnames = []string{"a b"} },
		"wildcard":        func(r *Route) { r.Hostnames = []string{"*.example"} },
		"placeholder":     func(r *Route) { r.Hostnames = []string{"{http.request.host}"} },
		"host twice":      func(r *Route) { r.Hostnames = []string{"a.example", "a.example"} },
	} {
		r := ok
		mut(&r)
		if err := r.validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
}

func mustRender(t *testing.T, r Route) json.RawMessage {
	t.Helper()
	b, err := r.render()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseRoute(t *testing.T) {
	r := Route{Service: "hello", Hostnames: []string{"h.example"}, Upstream: "127.0.0.1:1"}
	svc, got, _, ok := parseRoute(mustRender(t, r))
	if !ok || svc != "hello" {
		t.Fatalf("parseRoute = %q, %v", svc, ok)
	}
	if diff := cmp.Diff(r.Normalize(), got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}

	// Caddy hands the config back with sorted keys: still not drifted.
	var v any
	json.Unmarshal(mustRender(t, r), &v)
	sorted, _ := json.Marshal(v)
	if _, got, _, _ := parseRoute(sorted); got.Drifted {
		t.Error("sorted keys: Drifted")
	}

	for name, raw := range map[string]string{
		"no transport":  `{"@id":"jailkeeper.route.hello","match":[{"host":["h.example"]}],"handle":[{"@id":"jailkeeper.proxy.hello","handler":"reverse_proxy","upstreams":[{"dial":"127.0.0.1:1"}],"load_balancing":{"try_duration":"5s","try_interval":"250ms"},"stream_close_delay":"10m"}],"terminal":true}`,
		"health checks": `{"@id":"jailkeeper.route.hello","match":[{"host":["h.example"]}],"handle":[{"@id":"jailkeeper.proxy.hello","handler":"reverse_proxy","upstreams":[{"dial":"127.0.0.1:1"}],"transport":{"protocol":"http","dial_timeout":"2s"},"load_balancing":{"try_duration":"5s","try_interval":"250ms"},"stream_close_delay":"10m","health_checks":{"active":{"uri":"/up"}}}],"terminal":true}`,
		"two handlers":  `{"@id":"jailkeeper.route.hello","match":[{"host":["h.example"]}],"handle":[{"handler":"headers"},{"@id":"jailkeeper.proxy.hello","handler":"reverse_proxy","upstreams":[{"dial":"127.0.0.1:1"}]}],"terminal":true}`,
	} {
		svc, got, _, ok := parseRoute(json.RawMessage(raw))
		if !ok || svc != "hello" || !got.Drifted {
			t.Errorf("%s: parseRoute = %q, %+v, %v; want hello, Drifted", name, svc, got, ok)
		}
	}

	for _, raw := range []string{
		`{"match":[{"host":["other.example"]}],"handle":[{"handler":"static_response"}]}`,
		`{"@id":"someone_else","handle":[]}`,
		`{"@id":"jailkeeper_"}`,
		`{"@id":"jailkeeper.route."}`,
		`{"@id":"jailkeeper.route.a.b"}`,
		`{"@id":"jailkeeper.proxy.hello"}`,
		`{"@id":"jailkeeper__fallback"}`,
		`"not an object"`,
	} {
		if _, _, _, ok := parseRoute(json.RawMessage(raw)); ok {
			t.Errorf("parseRoute(%s): ok for a route that is not ours", raw)
		}
	}
}

func TestPlan(t *testing.T) {
	route := func(svc, up string) Route {
		return Route{Service: svc, Hostnames: []string{svc + ".example"}, Upstream: up}.Normalize()
	}
	foreign := json.RawMessage(`{"match":[{"host":["x.example"]}],"handle":[{"handler":"static_response"}]}`)
	infos := func(rs ...any) []routeInfo {
		var out []routeInfo
		for _, r := range rs {
			switch r := r.(type) {
			case Route:
				out = append(out, routeInfo{raw: mustRender(t, r), service: r.Service, route: r})
			case json.RawMessage:
				out = append(out, routeInfo{raw: r})
			}
		}
		return out
	}
	set := func(r Route) change { return change{service: r.Service, route: &r} }
	remove := func(s string) change { return change{service: s} }
	a1, a2, b1 := route("a", "127.0.0.1:1"), route("a", "127.0.0.1:2"), route("b", "127.0.0.1:1")
	aHosts := a1
	aHosts.Hostnames = []string{"a.example", "www.a.example"}

	type want struct {
		changed  bool
		switchTo string   // upstream of switchOnly
		ids      []string // @id of the routes written, in order ("" for foreign)
	}
	for _, tc := range []struct {
		name    string
		cur     []routeInfo
		changes []change
		want    want
	}{
		{"no change", infos(a1, foreign), []change{set(a1)}, want{}},
		{"remove missing", infos(a1), []change{remove("zzz")}, want{}},
		{"one switch", infos(foreign, a1, b1), []change{set(a2)}, want{changed: true, switchTo: "127.0.0.1:2"}},
		{"hostnames change is a full write", infos(a1), []change{set(aHosts)}, want{changed: true, ids: []string{"jailkeeper.route.a"}}},
		{"two switches are one full write", infos(a1, foreign, route("b", "127.0.0.1:2")), []change{set(a2), set(b1)},
			want{changed: true, ids: []string{"jailkeeper.route.a", "", "jailkeeper.route.b"}}},
		{"new route appended", infos(foreign, a1), []change{set(b1)}, want{changed: true, ids: []string{"", "jailkeeper.route.a", "jailkeeper.route.b"}}},
		{"remove keeps foreign", infos(a1, foreign, b1), []change{remove("a")}, want{changed: true, ids: []string{"", "jailkeeper.route.b"}}},
		{"switch plus remove", infos(a1, b1), []change{set(a2), remove("b")}, want{changed: true, ids: []string{"jailkeeper.route.a"}}},
		{"drifted route rewritten", []routeInfo{{raw: json.RawMessage(`{"@id":"jailkeeper.route.a"}`), service: "a", route: Route{Service: "a", Drifted: true}}},
			[]change{set(a1)}, want{changed: true, ids: []string{"jailkeeper.route.a"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := plan(tc.cur, tc.changes)
			if err != nil {
				t.Fatal(err)
			}
			got := want{changed: p.changed}
			if p.switchOnly != nil {
				got.switchTo = p.switchOnly.Upstream
			}
			for _, r := range p.routes {
				var head struct {
					ID string `json:"@id"`
				}
				json.Unmarshal(r, &head)
				got.ids = append(got.ids, head.ID)
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(want{})); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
			for _, r := range p.routes {
				if bytes.Contains(r, []byte("static_response")) && !bytes.Equal(r, foreign) {
					t.Errorf("foreign route rewritten: %s", r)
				}
			}
		})
	}
}

func TestAPIErrorIs(t *testing.T) {
	e404 := error(&APIError{Method: "GET", Path: "/id/x", Status: 404, Body: `{"error":"unknown object ID 'x'"}`})
	e412 := error(&APIError{Method: "PATCH", Path: "/id/x", Status: 412})
	if !errors.Is(e404, ErrNotFound) || errors.Is(e404, ErrConflict) {
		t.Error("404 should be ErrNotFound only")
	}
	if !errors.Is(e412, ErrConflict) || errors.Is(e412, ErrNotFound) {
		t.Error("412 should be ErrConflict only")
	}
	want := `caddy admin GET /id/x: 404 Not Found: {"error":"unknown object ID 'x'"}`
	if e404.Error() != want {
		t.Errorf("Error() = %q, want %q", e404.Error(), want)
	}
}

func TestNewConfig(t *testing.T) {
	for _, tc := range []struct {
		admin, server string
		ok            bool
		base          string
	}{
		{"unix//run/caddy.sock", "", true, "http://caddy-admin"},
		{"127.0.0.1:2019", "", true, "http://127.0.0.1:2019"},
		{"http://localhost:2019", "jk", true, "http://localhost:2019"},
		{"", "", false, ""},
		{"unix/", "", false, ""},
		{"ftp://x:1", "", false, ""},
		{"127.0.0.1:2019", "bad/name", false, ""},
	} {
		c, err := New(Config{Admin: tc.admin, Server: tc.server})
		if !tc.ok {
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("New(%q, %q) err = %v, want ErrInvalid", tc.admin, tc.server, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("New(%q): %v", tc.admin, err)
			continue
		}
		if c.base != tc.base {
			t.Errorf("New(%q).base = %q, want %q", tc.admin, c.base, tc.base)
		}
		if c.cfg.Server == "" || len(c.cfg.Listen) != 1 || c.cfg.GracePeriod != DefaultGracePeriod {
			t.Errorf("New(%q): defaults not applied: %+v", tc.admin, c.cfg)
		}
		c.Close()
		c.Close()
		if err := c.Ensure(t.Context()); !errors.Is(err, ErrClosed) {
			t.Errorf("Ensure after Close: %v, want ErrClosed", err)
		}
	}
}
