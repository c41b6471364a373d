package caddy_test

import (
	"fmt"
	"testing"

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
