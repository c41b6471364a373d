package caddy

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestDrainDecision feeds drainState the polls of one Drain and checks what
// Drain does after each, against Caddy versions before and after 2.11.2.
func TestDrainDecision(t *testing.T) {
	const (
		unknown = upstreamUnknown
		absent  = upstreamAbsent
		idle    = upstreamIdle
		busy    = upstreamBusy
	)
	for _, tc := range []struct {
		name    string
		listing listing
		polls   []upstreamState
		want    []drainStep
		asks    int // calls of version
	}{
		// Older Caddy drops an address from the list as soon as it leaves
		// the config: "absent" says nothing, so wait max.
		{"old caddy, absent at once", listingNo,
			[]upstreamState{absent}, []drainStep{drainWaitMax}, 1},
		{"old caddy, busy then absent", listingNo,
			[]upstreamState{busy, busy, absent}, []drainStep{drainPolling, drainPolling, drainWaitMax}, 1},
		{"old caddy, listed with 0", listingNo,
			[]upstreamState{busy, idle}, []drainStep{drainPolling, drainIdle}, 0},
		// Version unreadable: only having seen it listed is evidence.
		{"unknown version, absent at once", listingUnknown,
			[]upstreamState{absent}, []drainStep{drainWaitMax}, 1},
		{"unknown version, busy then absent", listingUnknown,
			[]upstreamState{busy, absent}, []drainStep{drainPolling, drainIdle}, 1},
		{"unknown version, listed with 0", listingUnknown,
			[]upstreamState{idle}, []drainStep{drainIdle}, 0},
		// 2.11.2+: absent means nothing in flight.
		{"new caddy, absent at once", listingYes,
			[]upstreamState{absent}, []drainStep{drainIdle}, 1},
		{"new caddy, busy until absent", listingYes,
			[]upstreamState{busy, busy, busy, absent}, []drainStep{drainPolling, drainPolling, drainPolling, drainIdle}, 1},
		{"new caddy, busy then 0", listingYes,
			[]upstreamState{busy, idle}, []drainStep{drainPolling, drainIdle}, 0},
		// No num_requests or no endpoint: nothing to go on, whatever came before.
		{"no endpoint", listingYes,
			[]upstreamState{unknown}, []drainStep{drainWaitMax}, 0},
		{"busy then unknown", listingUnknown,
			[]upstreamState{busy, unknown}, []drainStep{drainPolling, drainWaitMax}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d drainState
			asks := 0
			version := func() listing { asks++; return tc.listing }
			var got []drainStep
			for _, st := range tc.polls {
				got = append(got, d.next(st, version))
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("steps (-want +got):\n%s", diff)
			}
			if asks != tc.asks {
				t.Errorf("version asked %d times, want %d", asks, tc.asks)
			}
		})
	}
}

// TestDrainVersionAskedOnce: a Drain that polls "absent" again (it never
// does after wait-max, but the state must not depend on that) asks the
// version once.
func TestDrainVersionAskedOnce(t *testing.T) {
	var d drainState
	asks := 0
	version := func() listing { asks++; return listingNo }
	d.next(upstreamAbsent, version)
	d.next(upstreamAbsent, version)
	if asks != 1 {
		t.Errorf("version asked %d times, want 1", asks)
	}
}

func TestParseListing(t *testing.T) {
	// Captured from the admin /metrics endpoint of bin/caddy, Caddy 2.11.9
	// built from tools/go.mod (`curl <admin>/metrics`).
	f, err := os.Open("testdata/admin-metrics-2.11.9.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := parseListing(f); got != listingYes {
		t.Errorf("Caddy 2.11.9 metrics: %v, want yes", got)
	}

	line := func(path, version string) string {
		return "# HELP go_build_info Build information about the main Go module.\n" +
			"# TYPE go_build_info gauge\n" +
			`go_build_info{checksum="",path="` + path + `",version="` + version + "\"} 1\n"
	}
	for _, tc := range []struct {
		name, in string
		want     listing
	}{
		{"2.11.2", line(caddyModule, "v2.11.2"), listingYes},
		{"2.12.0", line(caddyModule, "v2.12.0"), listingYes},
		{"3.0.0", line(caddyModule, "v3.0.0"), listingYes},
		{"2.11.1", line(caddyModule, "v2.11.1"), listingNo},
		{"2.10.2", line(caddyModule, "v2.10.2"), listingNo},
		{"2.8.4", line(caddyModule, "v2.8.4"), listingNo},
		{"2.11.2 beta", line(caddyModule, "v2.11.2-beta.1"), listingNo},
		{"pseudo-version before 2.11.2", line(caddyModule, "v2.11.2-0.20260301000000-0123456789ab"), listingNo},
		{"pseudo-version after 2.11.9", line(caddyModule, "v2.11.10-0.20260401000000-0123456789ab+dirty"), listingYes},
		{"build metadata", line(caddyModule, "v2.11.2+dirty"), listingYes},
		{"xcaddy build", line("caddy", "(devel)"), listingUnknown},
		{"devel", line(caddyModule, "(devel)"), listingUnknown},
		{"other main module", line("example.com/proxy", "v9.0.0"), listingUnknown},
		{"no build info", "# HELP go_info Information about the Go environment.\ngo_info{version=\"go1.26.8\"} 1\n", listingUnknown},
		{"empty", "", listingUnknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := parseListing(strings.NewReader(tc.in)); got != tc.want {
				t.Errorf("parseListing = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSemverAtLeast(t *testing.T) {
	for _, tc := range []struct {
		v           string
		atLeast, ok bool
	}{
		{"v2.11.2", true, true},
		{"v2.11.10", true, true},
		{"v2.11.1", false, true},
		{"v2.9.99", false, true},
		{"v1.99.99", false, true},
		{"v2.11.2-rc.1", false, true},
		{"v2.11.3-rc.1", true, true},
		{"2.11.2", false, false},
		{"v2.11", false, false},
		{"v2.11.x", false, false},
		{"v2.011.2", false, false},
		{"v2.11.2-", false, false},
		{"(devel)", false, false},
		{"", false, false},
	} {
		atLeast, ok := semverAtLeast(tc.v, listsInFlightSince)
		if atLeast != tc.atLeast || ok != tc.ok {
			t.Errorf("semverAtLeast(%q, %s) = %v, %v; want %v, %v", tc.v, listsInFlightSince, atLeast, ok, tc.atLeast, tc.ok)
		}
	}
}
