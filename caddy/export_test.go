package caddy

import "time"

// Test hooks for the external tests. Set them before the first call that
// writes; the writer goroutine reads them.

// SetTestHookBeforeWrite makes c call f before every admin write request.
func SetTestHookBeforeWrite(c *Client, f func(method, path string)) { c.testHookBeforeWrite = f }

// SetTestHookBatch makes c call f at the start of every batch.
func SetTestHookBatch(c *Client, f func(n int)) { c.testHookBatch = f }

// SetTestHookFileWrite makes c call f before it writes an upstream file.
func SetTestHookFileWrite(c *Client, f func(service string)) { c.testHookFileWrite = f }

// Pending returns how many calls wait for the writer.
func Pending(c *Client) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

// SetReloadWindow sets c's reload window (ReloadWindow with an
// UpstreamDir). Call it before the first call that writes.
func SetReloadWindow(c *Client, d time.Duration) { c.window = d }

// UpstreamFileIO returns how many upstream files c has stat'ed and read.
func UpstreamFileIO(c *Client) (stats, reads int) {
	c.upstreams.mu.Lock()
	defer c.upstreams.mu.Unlock()
	return c.upstreams.stats, c.upstreams.reads
}
