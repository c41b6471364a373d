package caddy

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/jailkeeper/jailkeeper/internal/atomicfile"
)

// Upstream files (Config.UpstreamDir): one file per service holding its
// live upstream, which Caddy reads on every request, so that a switch is a
// rename and not a config reload. See the package doc for why.

// ReloadWindow is the least time between two admin writes of different
// batches when the client has an UpstreamDir: calls that need Caddy to
// reload its config (a new route, a removed one, other hostnames, Ensure)
// and come within it of the last write wait for its end, and go out
// together as one write. The first write after a quiet spell goes at once.
//
// Why a window at all: every admin write re-provisions Caddy's whole config
// (about 1 ms at 1 route, 140 ms at 1,000) and restarts its servers, and
// each restart can drop a request that arrives on a new connection at that
// moment, on every site Caddy serves (see the package doc). When many
// services deploy at once (a fleet-wide change, `parallel` gates ending
// together) a window turns a stream of reloads into a few. Why 200 ms: it
// is longer than one reload at 1,000 routes, so reloads never keep Caddy
// busy more than about 70 % of the time, and it adds at most 200 ms to a
// route creation, which follows a health gate of threshold × interval
// (seconds by default).
//
// What never waits for it: a switch. With an UpstreamDir, a call that only
// changes upstreams of routes that are in place is a file write with no
// reload, done at once while other calls wait out the window (unless one
// of them is for the same service: calls for a service keep their order).
// A rollback, a switch back to a release that still runs, is such a call.
// A call that switches an existing route's upstream and needs a reload
// too (a revert that restores hostnames with the release) does not wait
// either: it and whatever is held go out at once.
// Without an UpstreamDir every switch is a reload itself, so there is no
// window: calls pending while a write is in flight are merged, as before.
const ReloadWindow = 200 * time.Millisecond

// reloadWindowFor is the Client's window for Config.UpstreamDir dir.
func reloadWindowFor(dir string) time.Duration {
	if dir == "" {
		return 0
	}
	return ReloadWindow
}

// UpstreamFile is the file that holds a service's upstream (host:port)
// under Config.UpstreamDir dir. Caddy reads it on every request through
// the dial placeholder {file.<UpstreamFile>}.
func UpstreamFile(dir, service string) string { return filepath.Join(dir, service) }

// filePlaceholder is the dial of a service's upstream under dir: Caddy's
// global {file.*} placeholder (since 2.8.0, caddyserver/caddy#5463, so in
// every Caddy jailkeeper supports), which reads the file (up to 1 MiB, one
// trailing newline trimmed) each time it is replaced; reverse_proxy
// replaces the placeholders of a dial once per request and per retry
// (Upstream.fillDialInfo).
func filePlaceholder(dir, service string) string {
	return "{file." + UpstreamFile(dir, service) + "}"
}

// switchNow carries out at once the ops that only switch upstreams of
// routes that are in place, which with an UpstreamDir is a file write and
// no reload, and returns held with the other ops appended in order. An op
// for a service that a held op also names is held too, so that the later
// call still wins. urgent becomes true when a held op moves traffic too
// (it switches an existing route's upstream and changes more, such as a
// revert that restores both a release and its hostnames) or when Caddy's
// routes could not be read (nothing to gain from waiting): the writer then
// writes without waiting out the window. Without an UpstreamDir it holds
// every op.
func (c *Client) switchNow(held, ops []*op, urgent bool) ([]*op, bool) {
	dir := c.cfg.UpstreamDir
	if dir == "" {
		return append(held, ops...), urgent
	}
	waiting := map[string]bool{}
	note := func(o *op) {
		for _, r := range o.set {
			waiting[r.Service] = true
		}
		for _, s := range o.remove {
			waiting[s] = true
		}
	}
	for _, o := range held {
		note(o)
	}
	hold := func(o *op) {
		held = append(held, o)
		note(o)
	}
	var (
		infos   []routeInfo
		read    bool
		readErr error
		// written holds the files written in this round: infos, read
		// once, does not show them.
		written = map[string]string{}
		// wb: the switches whose files are being written together.
		wb switchWrites
	)
	for _, o := range ops {
		if err := o.ctx.Err(); err != nil {
			o.finish(err)
			continue
		}
		now := !o.ensure && len(o.remove) == 0 && len(o.set) > 0
		for _, r := range o.set {
			now = now && !waiting[r.Service]
		}
		if len(o.set) > 0 && !read {
			infos, _, readErr = c.readRoutesOf(c.ctx, setServices(ops))
			read = true
		}
		if wb.names(o.set) {
			// A later call for a service: after the earlier one's file.
			wb.flush(c, written)
		}
		var files []fileWrite
		if now {
			// A failed read holds the op: the batch reads again and
			// reports the error, or re-creates a missing server.
			files, now = switchFiles(infos, written, o.set, dir)
			now = now && readErr == nil
		}
		if !now {
			urgent = urgent || (len(o.set) > 0 && (readErr != nil || movesTraffic(infos, o.set)))
			hold(o)
			continue
		}
		wb.add(o, files)
	}
	wb.flush(c, written)
	return held, urgent
}

// switchWrites are the file switches of one round of switchNow, written
// together: one after another, each waited for under load (13 ms median,
// 90 ms at the 90th percentile in a change of 200 services on two busy
// cores), a round of 70 switches took seconds (issue 11).
type switchWrites struct {
	ops      []*op
	files    [][]fileWrite
	services map[string]bool
}

// maxFileWrites bounds the upstream files written at once.
const maxFileWrites = 16

// names reports whether a switch in wb is for one of the services of set.
func (wb *switchWrites) names(set []Route) bool {
	for _, r := range set {
		if wb.services[r.Service] {
			return true
		}
	}
	return false
}

func (wb *switchWrites) add(o *op, files []fileWrite) {
	if wb.services == nil {
		wb.services = map[string]bool{}
	}
	for _, r := range o.set {
		wb.services[r.Service] = true
	}
	wb.ops = append(wb.ops, o)
	wb.files = append(wb.files, files)
}

// flush writes the files of wb's switches, at most maxFileWrites at once,
// finishes each switch with its error in order, notes what was written in
// written, and empties wb.
func (wb *switchWrites) flush(c *Client, written map[string]string) {
	errs := make([]error, len(wb.ops))
	done := make([]int, len(wb.ops)) // files written, in order
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxFileWrites)
	for i, files := range wb.files {
		if len(files) == 0 {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			for _, f := range files {
				if errs[i] = c.writeUpstream(f.service, f.upstream); errs[i] != nil {
					return
				}
				done[i]++
			}
		}()
	}
	wg.Wait()
	for i, o := range wb.ops {
		for _, f := range wb.files[i][:done[i]] {
			written[f.service] = f.upstream
		}
		o.finish(errs[i])
	}
	*wb = switchWrites{}
}

// setServices returns the services the ops set routes for: the only
// upstream files switchNow needs to read.
func setServices(ops []*op) map[string]bool {
	out := map[string]bool{}
	for _, o := range ops {
		for _, r := range o.set {
			out[r.Service] = true
		}
	}
	return out
}

// movesTraffic reports whether a route in set exists in infos with another
// upstream: setting it is a switch, whatever else it changes.
func movesTraffic(infos []routeInfo, set []Route) bool {
	for _, r := range set {
		for _, ri := range infos {
			if ri.service == r.Service && ri.route.Upstream != r.Upstream {
				return true
			}
		}
	}
	return false
}

// fileWrite is one upstream file to write: service is the file's name
// under the UpstreamDir (a service, or a canary slot: SlotFile), upstream
// the host:port it holds.
type fileWrite struct{ service, upstream string }

// switchFiles returns the file writes that make the routes in set live,
// and ok when nothing else is needed: each route is in Caddy's config as
// Set would write it for dir, so only its upstream file (and a canary
// route's slot files) may change. Files that already hold the upstream
// are not rewritten; written, the files written since infos was read,
// says what they hold where infos is stale.
func switchFiles(infos []routeInfo, written map[string]string, set []Route, dir string) (files []fileWrite, ok bool) {
	byService := map[string]routeInfo{}
	for _, ri := range infos {
		if ri.service != "" {
			if _, dup := byService[ri.service]; !dup {
				byService[ri.service] = ri
			}
		}
	}
	// current is what each file holds after the writes chosen so far.
	current := map[string]string{}
	maps.Copy(current, written)
	for _, r := range set {
		ri, exists := byService[r.Service]
		if !exists || !ri.file {
			return nil, false
		}
		want, err := r.renderIn(dir)
		if err != nil || !sameJSON(ri.raw, want) {
			return nil, false
		}
		cur, seen := current[r.Service]
		if !seen {
			cur = ri.route.Upstream
		}
		if cur != r.Upstream {
			files = append(files, fileWrite{r.Service, r.Upstream})
			current[r.Service] = r.Upstream
		}
		for _, f := range slotChanges(ri.slots, current, r) {
			files = append(files, f)
			current[f.service] = f.upstream
		}
	}
	return files, true
}

// writeUpstream replaces service's upstream file with upstream, atomically
// (internal/atomicfile: write, rename), so that Caddy reads either the old
// address or the new one, never a part. From the next request on, Caddy
// dials the new one; requests in flight finish where they are. There is
// no fsync: it took 3 to 15 ms here, more than the rest of a rollback's
// switch, and it buys nothing: a crash of the machine stops Caddy and
// every release with it, and after the reboot the agent starts them and
// sets each route, rewriting a file that lost its content (an empty or
// stale upstream reads as a route to fix).
func (c *Client) writeUpstream(service, upstream string) error {
	if c.testHookFileWrite != nil {
		c.testHookFileWrite(service)
	}
	if err := os.MkdirAll(c.cfg.UpstreamDir, 0o755); err != nil {
		return fmt.Errorf("caddy switch %s: %w", service, err)
	}
	err := atomicfile.WriteFileUnsynced(UpstreamFile(c.cfg.UpstreamDir, service), []byte(upstream+"\n"), 0o644)
	c.forgetUpstream(service) // read again, as written
	if err != nil {
		return fmt.Errorf("caddy switch %s: %w", service, err)
	}
	c.stats.files.Add(1)
	return nil
}

// removeUpstream deletes service's upstream file once no route reads it.
// A missing file is not an error.
func (c *Client) removeUpstream(service string) error {
	err := os.Remove(UpstreamFile(c.cfg.UpstreamDir, service))
	c.forgetUpstream(service)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("caddy remove %s: %w", service, err)
	}
	return nil
}
