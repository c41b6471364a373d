package caddy_test

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/caddy"
	"github.com/jailkeeper/jailkeeper/caddy/caddytest"
)

// BenchmarkSwitch measures one upstream switch (Set of one route whose only
// change is its upstream: GET routes, GET upstreams, PATCH with If-Match and
// Caddy's reload) with 1 and 100 routes in the server.
func BenchmarkSwitch(b *testing.B) {
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			in := caddytest.Start(b)
			c := newClient(b, in)
			ups := []string{backend(b, "A"), backend(b, "B")}
			routes := make([]caddy.Route, n)
			for i := range routes {
				routes[i] = route(fmt.Sprintf("svc%03d", i), ups[0])
			}
			if err := c.Set(b.Context(), routes...); err != nil {
				b.Fatal(err)
			}
			i := 0
			for b.Loop() {
				i++
				if err := c.Set(b.Context(), route("svc000", ups[i%2])); err != nil {
					b.Fatal(err)
				}
			}
			if st := c.Stats(); st.Switches < uint64(i) {
				b.Fatalf("%d switches by PATCH for %d Set calls", st.Switches, i)
			}
		})
	}
}

// BenchmarkFreshConnectionsDuringSwitch measures a Caddy behaviour, not the
// client: while switches run, 4 goroutines send requests through Caddy each
// on a new TCP connection, and lost/switch reports how many of them failed
// (EOF or reset) per switch. Caddy 2.11.9 loses some: a connection accepted
// by the old server at the moment of the reload is closed after its request
// is read (net/http drops requests read once Shutdown has begun). With
// keep-alive connections TestSwitchUnderLoad sees none lost.
// BenchmarkFreshConnectionsDuringSwitch counts requests on fresh connections
// that get no answer across switches, with Caddy binding the address itself
// (a new SO_REUSEPORT socket per reload on Linux) and with the socket
// inherited as fd/3 (one socket for all reloads).
func BenchmarkFreshConnectionsDuringSwitch(b *testing.B) {
	b.Run("address", func(b *testing.B) { benchFreshConnections(b) })
	b.Run("fd", func(b *testing.B) { benchFreshConnections(b, caddytest.InheritListener()) })
}

func benchFreshConnections(b *testing.B, opts ...caddytest.Option) {
	in := caddytest.Start(b, opts...)
	c := newClient(b, in)
	ups := []string{backend(b, "A"), backend(b, "B")}
	if err := c.Set(b.Context(), route("web", ups[0])); err != nil {
		b.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}
	var stop atomic.Bool
	var sent, lost atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				sent.Add(1)
				if _, _, err := get(b, client, in.HTTPAddr, "web.example.com"); err != nil {
					lost.Add(1)
				}
			}
		})
	}
	i := 0
	for b.Loop() {
		i++
		if err := c.Set(b.Context(), route("web", ups[i%2])); err != nil {
			b.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	b.ReportMetric(float64(lost.Load())/float64(i), "lost/switch")
	b.ReportMetric(float64(sent.Load())/float64(i), "requests/switch")
}
