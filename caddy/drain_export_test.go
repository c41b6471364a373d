package caddy

import (
	"context"
	"time"
)

// Test hooks of Drain for the external tests.

// DrainObserved is Drain that calls observe after every poll with what the
// poll found ("busy", "idle", "absent", "unknown") and what Drain does next
// ("poll", "idle", "wait-max").
func DrainObserved(ctx context.Context, c *Client, upstream string, max time.Duration, observe func(found, next string)) error {
	return c.drain(ctx, upstream, max, func(st upstreamState, step drainStep) {
		observe(st.String(), step.String())
	})
}

// ListsInFlight is what c makes of its Caddy's version: "yes" (2.11.2 or
// newer), "no" or "unknown".
func ListsInFlight(ctx context.Context, c *Client) string {
	return c.listing(ctx).String()
}
