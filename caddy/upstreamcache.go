package caddy

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// UpstreamRounds bounds how long an upstream file changed behind the
// client's back may go unseen by EnsureRoutes: each call stats the files
// of one in UpstreamRounds of the routes (in turn, so every file within
// UpstreamRounds calls) and reads again only those whose stat moved. A
// change that replaces a file (a rename into the directory, as every
// editor that writes atomically and this client do), creates or deletes
// one changes the directory, which EnsureRoutes stats on every call: then
// it stats every file at once. So only an in-place edit (`echo addr >
// file`) waits for its turn, UpstreamRounds calls at most: with an agent
// that polls every second, 8 s.
//
// Why not a stat of every file on every call: at 1,000 routes that is
// 1,000 system calls a pass for a change nobody makes, 5 ms of CPU a pass
// on the 2-core development VM (issue 11's idle budget is 50). Routes and
// the writer's reads (Set, Remove, a switch) stat every file: they decide
// what to write from what the files hold.
const UpstreamRounds = 8

// racyWindow: a file modified this close to when it was read may be
// modified again with the same size and the same modification time (the
// kernel's clock for file times is coarse), so its stat does not vouch
// for what was read: it is read again until it is older (git's "racily
// clean" entries).
const racyWindow = 2 * time.Second

// upstreamCache keeps what the client last read of each upstream file,
// with the file's stat. Safe for concurrent use.
type upstreamCache struct {
	mu    sync.Mutex
	dir   os.FileInfo // the UpstreamDir at the last EnsureRoutes; nil: unknown
	files map[string]upstreamStamp
	round int
	// stats and reads count file stats and reads, for tests.
	stats, reads int
}

// upstreamStamp is one file's content and the stat it was read under.
type upstreamStamp struct {
	info     os.FileInfo
	upstream string
	racy     bool // modified within racyWindow of the read: read it again
}

// sameFile reports whether fi is the file was, unchanged: the same file
// (device and inode), size and modification time.
func sameFile(was, fi os.FileInfo) bool {
	return was != nil && fi != nil && os.SameFile(was, fi) && was.Size() == fi.Size() && was.ModTime().Equal(fi.ModTime())
}

// fillUpstreams sets the Upstream of infos' file routes to their files'
// content. With all, it stats every file; without, only those of this
// call's round and those never read, unless the directory changed since
// the last call without all (UpstreamRounds says why).
func (c *Client) fillUpstreams(infos []routeInfo, all bool) error {
	if c.cfg.UpstreamDir == "" {
		return nil // no file routes
	}
	u := &c.upstreams
	round := 0
	if !all {
		fi, err := os.Stat(c.cfg.UpstreamDir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("upstream dir: %w", err)
		}
		u.mu.Lock()
		all = err != nil || !sameFile(u.dir, fi)
		u.dir = fi
		u.round++
		round = u.round
		if err != nil {
			// No directory, no files: nothing to stat.
			clear(u.files)
		}
		u.mu.Unlock()
		if err != nil {
			for i := range infos {
				if infos[i].file {
					infos[i].route.Upstream = ""
				}
			}
			return nil
		}
	}
	n := 0
	for i := range infos {
		if !infos[i].file {
			continue
		}
		n++
		var err error
		check := all || i%UpstreamRounds == round%UpstreamRounds
		if infos[i].route.Upstream, err = c.upstreamOf(infos[i].service, check); err != nil {
			return err
		}
	}
	if !all {
		u.mu.Lock()
		defer u.mu.Unlock()
		if len(u.files) > n {
			keep := make(map[string]bool, n)
			for _, ri := range infos {
				keep[ri.service] = ri.file
			}
			for s := range u.files {
				if !keep[s] {
					delete(u.files, s)
				}
			}
		}
	}
	return nil
}

// upstreamOf returns the content of service's upstream file as Caddy reads
// it (one trailing newline trimmed), or "" when there is no file. Unless
// check, a file read before answers from the cache without a stat.
func (c *Client) upstreamOf(service string, check bool) (string, error) {
	u := &c.upstreams
	u.mu.Lock()
	was, cached := u.files[service]
	u.mu.Unlock()
	if cached && !check && !was.racy {
		return was.upstream, nil
	}
	p := UpstreamFile(c.cfg.UpstreamDir, service)
	fi, err := os.Stat(p)
	u.mu.Lock()
	u.stats++
	u.mu.Unlock()
	if errors.Is(err, fs.ErrNotExist) {
		c.forgetUpstream(service)
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("upstream of %s: %w", service, err)
	}
	if cached && !was.racy && sameFile(was.info, fi) {
		return was.upstream, nil
	}
	// Stat, then read: a file replaced in between has another stat than
	// the one recorded, so it is read again next time.
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		c.forgetUpstream(service)
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("upstream of %s: %w", service, err)
	}
	s := strings.TrimSuffix(string(b), "\n")
	s = strings.TrimSuffix(s, "\r")
	u.mu.Lock()
	defer u.mu.Unlock()
	u.reads++
	if u.files == nil {
		u.files = map[string]upstreamStamp{}
	}
	u.files[service] = upstreamStamp{info: fi, upstream: s, racy: time.Since(fi.ModTime()) < racyWindow}
	return s, nil
}

// forgetUpstream drops what the cache knows of service's file: the client
// writes or removes it, or it is gone.
func (c *Client) forgetUpstream(service string) {
	c.upstreams.mu.Lock()
	defer c.upstreams.mu.Unlock()
	delete(c.upstreams.files, service)
}

// ensuredMemo remembers the last http app that ensuredRoutes found as
// Ensure wants it, by its JSON, with the routes parsed from it: an idle
// pass reads the same config every time, and decoding it (several times,
// the app, the servers, the server, the routes) was most of the cost of
// a read of 1,000 routes after the upstream files (issue 11). What Ensure
// checks depends only on the config and the client's Config, so the same
// JSON gets the same answer. Safe for concurrent use.
type ensuredMemo struct {
	mu    sync.Mutex
	body  []byte
	infos []routeInfo
}

// get returns a copy of the routes of body when body is the last one put.
func (m *ensuredMemo) get(body []byte) ([]routeInfo, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.body == nil || !bytes.Equal(m.body, body) {
		return nil, false
	}
	return slices.Clone(m.infos), true
}

// put remembers body, whose routes are infos, and takes both.
func (m *ensuredMemo) put(body []byte, infos []routeInfo) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.body, m.infos = body, slices.Clone(infos)
}
