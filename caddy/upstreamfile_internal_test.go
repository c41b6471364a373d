package caddy

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestPlanUpstreamDir: with an UpstreamDir, a change of upstream alone is
// a file write after nothing (no routes write); a file that no live route
// reads yet is written before the routes write; a removed route's file
// goes after it.
func TestPlanUpstreamDir(t *testing.T) {
	const dir = "/var/db/jailkeeper/upstreams"
	route := func(svc, up string) Route {
		return Route{Service: svc, Hostnames: []string{svc + ".example"}, Upstream: up}.Normalize()
	}
	// inFile is a route as Caddy has it with dir: dialling its file, whose
	// content is up.
	inFile := func(r Route) routeInfo {
		raw, err := r.renderIn(dir)
		if err != nil {
			t.Fatal(err)
		}
		return routeInfo{raw: raw, service: r.Service, route: r, file: true}
	}
	// atAddress is a route an older jailkeeper wrote: dialling the address.
	atAddress := func(r Route) routeInfo {
		return routeInfo{raw: mustRender(t, r), service: r.Service, route: r}
	}
	set := func(r Route) change { return change{service: r.Service, route: &r} }
	remove := func(s string) change { return change{service: s} }
	a1, a2, b1 := route("a", "127.0.0.1:1"), route("a", "127.0.0.1:2"), route("b", "127.0.0.1:1")
	aHosts := a2
	aHosts.Hostnames = []string{"a.example", "www.a.example"}

	type want struct {
		Changed       bool
		IDs           []string // routes written, nil: no routes write
		Before, After []fileWrite
		Gone          []string
	}
	for _, tc := range []struct {
		name    string
		cur     []routeInfo
		changes []change
		want    want
	}{
		{"as it is", []routeInfo{inFile(a1)}, []change{set(a1)}, want{}},
		{"switch is a file", []routeInfo{inFile(a1), inFile(b1)}, []change{set(a2)},
			want{Changed: true, After: []fileWrite{{"a", "127.0.0.1:2"}}}},
		{"new route: file first", []routeInfo{inFile(a1)}, []change{set(b1)},
			want{Changed: true, IDs: []string{"jailkeeper.route.a", "jailkeeper.route.b"}, Before: []fileWrite{{"b", "127.0.0.1:1"}}}},
		{"hostnames and upstream: file after", []routeInfo{inFile(a1)}, []change{set(aHosts)},
			want{Changed: true, IDs: []string{"jailkeeper.route.a"}, After: []fileWrite{{"a", "127.0.0.1:2"}}}},
		{"address route moves to its file", []routeInfo{atAddress(a1)}, []change{set(a1)},
			want{Changed: true, IDs: []string{"jailkeeper.route.a"}, Before: []fileWrite{{"a", "127.0.0.1:1"}}}},
		{"remove", []routeInfo{inFile(a1), inFile(b1)}, []change{remove("a")},
			want{Changed: true, IDs: []string{"jailkeeper.route.b"}, Gone: []string{"a"}}},
		{"missing file rewritten", []routeInfo{inFile(route("a", ""))}, []change{set(a1)},
			want{Changed: true, After: []fileWrite{{"a", "127.0.0.1:1"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := planIn(tc.cur, tc.changes, dir)
			if err != nil {
				t.Fatal(err)
			}
			if p.switchOnly != nil {
				t.Errorf("switchOnly %+v with an UpstreamDir", p.switchOnly)
			}
			got := want{Changed: p.changed, Before: p.before, After: p.after, Gone: p.gone}
			for _, r := range p.routes {
				var head struct {
					ID string `json:"@id"`
				}
				json.Unmarshal(r, &head)
				got.IDs = append(got.IDs, head.ID)
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(fileWrite{})); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
		})
	}
}

// TestParseRouteUpstreamDir: a route dialling its file under dir is not
// drifted; one dialling an address, or the file of another dir, is.
func TestParseRouteUpstreamDir(t *testing.T) {
	const dir = "/up"
	r := Route{Service: "hello", Hostnames: []string{"h.example"}, Upstream: "127.0.0.1:1"}
	inFile, err := r.renderIn(dir)
	if err != nil {
		t.Fatal(err)
	}
	otherDir, err := r.renderIn("/elsewhere")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name        string
		raw         []byte
		wantDrifted bool
		wantFile    bool
	}{
		{"file", inFile, false, true},
		{"address", mustRender(t, r), true, false},
		{"other dir", otherDir, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			infos, err := parseRoutesIn([]byte("["+string(tc.raw)+"]"), dir)
			if err != nil || len(infos) != 1 {
				t.Fatalf("parseRoutesIn: %v, %d routes", err, len(infos))
			}
			if ri := infos[0]; ri.route.Drifted != tc.wantDrifted || ri.file != tc.wantFile {
				t.Errorf("Drifted %v file %v, want %v %v", ri.route.Drifted, ri.file, tc.wantDrifted, tc.wantFile)
			}
		})
	}
}

// TestNewUpstreamDir: the directory must be one Caddy's placeholder syntax
// can name: absolute, clean, no braces or backslash.
func TestNewUpstreamDir(t *testing.T) {
	for dir, ok := range map[string]bool{
		"/var/db/jailkeeper/upstreams": true,
		"upstreams":                    false,
		"/var/db/../upstreams":         false,
		"/var/db/up/":                  false,
		"/var/{env.HOME}":              false,
		"/var/a}b":                     false,
		`/var/a\b`:                     false,
	} {
		c, err := New(Config{Admin: "127.0.0.1:2019", UpstreamDir: dir})
		if ok != (err == nil) || (!ok && !errors.Is(err, ErrInvalid)) {
			t.Errorf("New with UpstreamDir %q: %v, want ok %v", dir, err, ok)
		}
		if err == nil {
			if c.window != ReloadWindow {
				t.Errorf("UpstreamDir %q: window %s, want %s", dir, c.window, ReloadWindow)
			}
			c.Close()
		}
	}
}

// TestSwitchFiles: only routes in place as Set writes them switch without
// a reload; a file already holding the upstream is not rewritten, judged
// by what was written since the routes were read when there is such a
// write (a switch there and back in one round writes twice).
func TestSwitchFiles(t *testing.T) {
	const dir = "/up"
	route := func(svc, up string) Route {
		return Route{Service: svc, Hostnames: []string{svc + ".example"}, Upstream: up}.Normalize()
	}
	inFile := func(r Route) routeInfo {
		raw, err := r.renderIn(dir)
		if err != nil {
			t.Fatal(err)
		}
		return routeInfo{raw: raw, service: r.Service, route: r, file: true}
	}
	a1, a2 := route("a", "127.0.0.1:1"), route("a", "127.0.0.1:2")
	aHosts := a2
	aHosts.Hostnames = []string{"www.a.example"}
	infos := []routeInfo{inFile(a1)}
	for _, tc := range []struct {
		name    string
		infos   []routeInfo
		written map[string]string
		set     []Route
		files   []fileWrite
		ok      bool
	}{
		{"as it is", infos, nil, []Route{a1}, nil, true},
		{"switch", infos, nil, []Route{a2}, []fileWrite{{"a", "127.0.0.1:2"}}, true},
		{"back after a write this round", infos, map[string]string{"a": "127.0.0.1:2"}, []Route{a1}, []fileWrite{{"a", "127.0.0.1:1"}}, true},
		{"there and back in one call", infos, nil, []Route{a2, a1}, []fileWrite{{"a", "127.0.0.1:2"}, {"a", "127.0.0.1:1"}}, true},
		{"new route", infos, nil, []Route{route("b", "127.0.0.1:1")}, nil, false},
		{"hostnames change", infos, nil, []Route{aHosts}, nil, false},
		{"address route", []routeInfo{{raw: mustRender(t, a1), service: "a", route: a1}}, nil, []Route{a2}, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files, ok := switchFiles(tc.infos, tc.written, tc.set, dir)
			if ok != tc.ok || !cmp.Equal(files, tc.files, cmp.AllowUnexported(fileWrite{})) {
				t.Errorf("switchFiles = %v, %v; want %v, %v", files, ok, tc.files, tc.ok)
			}
		})
	}
}
