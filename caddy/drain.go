package caddy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// drainPoll is how often Drain asks Caddy about in-flight requests.
const drainPoll = 100 * time.Millisecond

// Drain waits until Caddy has no request in flight to upstream (host:port),
// or max has passed, or ctx is done (then it returns ctx.Err()). Reaching
// max is not an error. It polls GET /reverse_proxy/upstreams: from Caddy
// 2.11.2 an address that left the config stays listed with its
// num_requests while requests to it are in flight. When the answer has no
// num_requests field, or the endpoint does not exist, Drain cannot tell and
// waits the whole of max. Safe for concurrent use; it never writes.
//
// Caddy before 2.11.2 drops an address from that list as soon as no config
// uses it, in-flight requests or not; against such a Caddy Drain returns
// early. Operators there should give the manifest's drain time to the
// caller's own wait.
func (c *Client) Drain(ctx context.Context, upstream string, max time.Duration) error {
	timer := time.NewTimer(max)
	defer timer.Stop()
	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
	for {
		idle, known, err := c.upstreamIdle(ctx, upstream)
		if err != nil {
			return err
		}
		if !known {
			break // no way to tell: wait max
		}
		if idle {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			return nil
		case <-tick.C:
		}
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// upstreamIdle reports whether Caddy lists no request in flight to
// upstream. known is false when this Caddy does not say.
func (c *Client) upstreamIdle(ctx context.Context, upstream string) (idle, known bool, err error) {
	resp, err := c.do(ctx, http.MethodGet, "/reverse_proxy/upstreams", nil, "")
	if errors.Is(err, ErrNotFound) {
		return false, false, nil
	}
	if err != nil {
		return false, false, fmt.Errorf("caddy drain %s: %w", upstream, err)
	}
	var list []map[string]json.RawMessage
	if err := json.Unmarshal(resp.body, &list); err != nil {
		return false, false, fmt.Errorf("caddy drain %s: decoding upstreams: %w", upstream, err)
	}
	idle = true
	for _, u := range list {
		n, ok := u["num_requests"]
		if !ok {
			return false, false, nil
		}
		var addr string
		if err := json.Unmarshal(u["address"], &addr); err != nil || addr != upstream {
			continue
		}
		var num int
		if err := json.Unmarshal(n, &num); err != nil {
			return false, false, fmt.Errorf("caddy drain %s: num_requests %s: %w", upstream, n, err)
		}
		if num > 0 {
			idle = false
		}
	}
	return idle, true, nil
}
