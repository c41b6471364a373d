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
// change is its upstream) with 1 and 100 routes in the server: "reload" is
// GET routes, GET upstreams, PATCH with If-Match and Caddy's reload; "file"
// (Config.UpstreamDir) is GET routes and an atomic rename of the upstream
// file, with no reload.
func BenchmarkSwitch(b *testing.B) {
	for _, file := range []bool{false, true} {
		for _, n := range []int{1, 100} {
			mode := "reload"
			if file {
				mode = "file"
			}
			b.Run(fmt.Sprintf("%s/routes=%d", mode, n), func(b *testing.B) {
				in := caddytest.Start(b)
				newC := newClient
				if file {
					newC = newFileClient
				}
				c := newC(b, in)
				ups := []string{backend(b, "A"), backend(b, "B")}
				routes := make([]caddy.Route, n)
				for i := range routes {
					routes[i] = route(fmt.Sprintf("svc%03d", i), ups[0])
				}
				if err := c.Set(b.Context(), routes...); err != nil {
					b.Fatal(err)
				}
				st := c.Stats()
				i := 0
				for b.Loop() {
					i++
					if err := c.Set(b.Context(), route("svc000", ups[i%2])); err != nil {
						b.Fatal(err)
					}
				}
				after := c.Stats()
				if done := after.Switches + after.Files - st.Switches - st.Files; done < uint64(i) {
					b.Fatalf("%d switches for %d Set calls", done, i)
				}
				if file && after.Writes != st.Writes {
					b.Fatalf("%d admin writes for %d file switches", after.Writes-st.Writes, i)
				}
			})
		}
	}
}

// BenchmarkRequestsLostAtSwitch measures what a switch costs the clients:
// while switches run, 4 goroutines send requests through Caddy, and
// lost/switch reports how many failed (EOF or reset) per switch.
//
// The mechanism, when the switch is an admin write (reload): Caddy builds
// new servers for the new config and calls Shutdown on the old ones.
// net/http's Server.Shutdown sets inShutdown before it closes the listener,
// and conn.serve, after reading a request, returns without answering when
// shuttingDown() (net/http server.go, golang/go#65802). So a connection the
// old server accepted just before its listener closed (or had idle) gets
// its request read and then closed: the client sees EOF before any byte of
// an answer. Over a kept-alive connection net/http's client retries such a
// request by itself; over a new one it cannot know it is safe, and fails.
// On Linux each reload of a Caddy that binds the address itself also binds
// a new SO_REUSEPORT socket and drops what is queued on the old one, which
// an inherited socket (fd/3) avoids.
//
// Sub-benchmarks: new connection per request or keep-alive; Caddy binding
// the address, inheriting the socket, or inheriting it with switches done
// through upstream files (Config.UpstreamDir: no reload at all).
func BenchmarkRequestsLostAtSwitch(b *testing.B) {
	for _, keepAlive := range []bool{false, true} {
		name := "fresh"
		if keepAlive {
			name = "keepalive"
		}
		b.Run(name+"/address", func(b *testing.B) { benchFreshConnections(b, keepAlive, false) })
		b.Run(name+"/fd", func(b *testing.B) { benchFreshConnections(b, keepAlive, false, caddytest.InheritListener()) })
		b.Run(name+"/fd+file", func(b *testing.B) { benchFreshConnections(b, keepAlive, true, caddytest.InheritListener()) })
	}
}

func benchFreshConnections(b *testing.B, keepAlive, file bool, opts ...caddytest.Option) {
	in := caddytest.Start(b, opts...)
	newC := newClient
	if file {
		newC = newFileClient
	}
	c := newC(b, in)
	ups := []string{backend(b, "A"), backend(b, "B")}
	if err := c.Set(b.Context(), route("web", ups[0])); err != nil {
		b.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: !keepAlive}, Timeout: 30 * time.Second}
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
