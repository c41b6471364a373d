package caddy

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The memo answers what parseRoutes answers, for routes as jailkeeper
// writes them, drifted ones, legacy ones and strangers', on a first read
// and on reads that change some routes.
func TestRouteMemoParsesAsParseRoutes(t *testing.T) {
	render := func(r Route) json.RawMessage {
		t.Helper()
		b, err := r.render()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a := Route{Service: "alpha", Hostnames: []string{"alpha.example.com"}, Upstream: "127.0.0.1:8001", StreamCloseDelay: 10 * time.Minute}
	b := Route{Service: "beta", Hostnames: []string{"beta.example.com", "b.example.com"}, Upstream: "127.0.0.1:8002", StreamCloseDelay: time.Hour}
	drifted := `{"@id":"jailkeeper.route.gamma","match":[{"host":["gamma.example.com"]}],"handle":[{"@id":"jailkeeper.proxy.gamma","handler":"reverse_proxy","upstreams":[{"dial":"127.0.0.1:8003"}],"flush_interval":-1}]}`
	legacy := `{"@id":"jailkeeper_delta","match":[{"host":["delta.example.com"]}],"handle":[{"@id":"jailkeeper_delta_proxy","handler":"reverse_proxy","upstreams":[{"dial":"127.0.0.1:8004"}]}]}`
	stranger := `{"match":[{"host":["other.example.com"]}],"handle":[{"handler":"static_response","body":"hi"}]}`
	b2 := b
	b2.Upstream = "127.0.0.1:9002"
	reads := [][]json.RawMessage{
		{render(a), render(b), json.RawMessage(drifted), json.RawMessage(legacy), json.RawMessage(stranger), fallbackRoute},
		{render(a), render(b), json.RawMessage(drifted), json.RawMessage(legacy), json.RawMessage(stranger), fallbackRoute},
		{render(a), render(b2), json.RawMessage(legacy), fallbackRoute},
	}
	// A client with an upstream directory: a route that dials its file.
	const dir = "/var/db/jailkeeper/upstreams"
	fileA, err := a.renderIn(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"", dir} {
		testRouteMemo(t, d, append(reads, []json.RawMessage{fileA, render(b2), fallbackRoute}))
	}
}

func testRouteMemo(t *testing.T, dir string, reads [][]json.RawMessage) {
	t.Helper()
	var m routeMemo
	for i, raws := range reads {
		body, err := json.Marshal(raws)
		if err != nil {
			t.Fatal(err)
		}
		want, err := parseRoutesIn(body, dir)
		if err != nil {
			t.Fatal(err)
		}
		got, err := m.parseRoutes(body, dir)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got, cmp.AllowUnexported(routeInfo{})); diff != "" {
			t.Errorf("dir %q read %d (-parseRoutesIn +memo):\n%s", dir, i, diff)
		}
		if n := len(m.last); n != len(raws) {
			t.Errorf("read %d: memo holds %d routes, want the %d of this read", i, n, len(raws))
		}
	}
}
