package caddy

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func testCanaryRoute() Route {
	return Route{
		Service:   "hello",
		Hostnames: []string{"hello.example.com"},
		Upstream:  "127.77.0.2:8080",
		Canary: &Canary{Upstream: "127.77.0.3:8080", Steps: []int{10, 50}, Step: 1,
			MaxFails: 6, FailDuration: 6 * time.Minute},
	}
}

// TestRenderCanaryGolden: a canary route as Set writes it, with an
// UpstreamDir (slots dial files) and without (slots dial addresses).
func TestRenderCanaryGolden(t *testing.T) {
	for _, tc := range []struct{ file, dir string }{
		{"route_canary_file.json", "/upstreams"},
		{"route_canary_dial.json", ""},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b, err := testCanaryRoute().renderIn(tc.dir)
			if err != nil {
				t.Fatal(err)
			}
			assertJSON(t, tc.file, b)
		})
	}
}

// TestParseCanaryRoute: what a canary route reads back as, before and
// after its files are read; it is always drifted, and a route that only
// looks alike (another policy) is no canary.
func TestParseCanaryRoute(t *testing.T) {
	r := testCanaryRoute()
	const dir = "/u"
	raw, err := r.renderIn(dir)
	if err != nil {
		t.Fatal(err)
	}
	infos, err := parseRoutesIn([]byte("["+string(raw)+"]"), dir)
	if err != nil || len(infos) != 1 {
		t.Fatalf("parse: %v %v", infos, err)
	}
	ri := infos[0]
	if !ri.file || !ri.route.Drifted || ri.route.Canary == nil {
		t.Fatalf("parsed %+v", ri)
	}
	ri.route.Upstream = r.Upstream
	ri.fillCanary([]string{r.Canary.Upstream, r.Upstream})
	want := r
	want.Drifted = true
	want.StreamCloseDelay = DefaultStreamCloseDelay
	if diff := cmp.Diff(want, ri.route); diff != "" {
		t.Errorf("route (-want +got):\n%s", diff)
	}
	// Without a dir the slots' dials say it all.
	raw, _ = r.renderIn("")
	_, got, _, ok := parseRouteIn(raw, "")
	if !ok || got.Canary == nil || got.Canary.Step != 1 || got.Canary.Upstream != r.Canary.Upstream || got.Upstream != r.Upstream {
		t.Errorf("dial canary parsed as %+v %+v", got, got.Canary)
	}
	plain, _ := Route{Service: "hello", Hostnames: []string{"hello.example.com"}, Upstream: "127.77.0.2:8080"}.render()
	if _, got, _, _ := parseRouteIn(plain, ""); got.Canary != nil {
		t.Errorf("a plain route parsed as a canary: %+v", got.Canary)
	}
}

// TestCanaryValidate: Set refuses a canary it could not render right.
func TestCanaryValidate(t *testing.T) {
	for name, mod := range map[string]func(*Canary){
		"no upstream":     func(c *Canary) { c.Upstream = "" },
		"no steps":        func(c *Canary) { c.Steps = nil },
		"step 100":        func(c *Canary) { c.Steps = []int{10, 100} },
		"steps decrease":  func(c *Canary) { c.Steps = []int{50, 10} },
		"step past end":   func(c *Canary) { c.Step = 3 },
		"no max_fails":    func(c *Canary) { c.MaxFails = 0 },
		"no fail window":  func(c *Canary) { c.FailDuration = 0 },
		"negative step":   func(c *Canary) { c.Step = -1 },
		"zero first step": func(c *Canary) { c.Steps = []int{0, 10} },
	} {
		r := testCanaryRoute()
		mod(r.Canary)
		if err := r.validate(); err == nil {
			t.Errorf("%s: validate accepted %+v", name, r.Canary)
		}
	}
	if err := testCanaryRoute().validate(); err != nil {
		t.Errorf("a good canary: %v", err)
	}
}
