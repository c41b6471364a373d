package process

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/jailkeeper/jailkeeper/release"
)

// listCache keeps what List read of each release, release.json parsed
// and the pidfile's content, with the files' stat: a List in which
// nothing changed stats those two files and reads only the process's
// /proc entry (its identity, to tell it alive and ours), instead of
// reading and decoding both files of every release on every pass
// (issue 11: an idle pass does constant work per service). Both files are
// replaced by a rename when written (atomicfile), so a change is another
// file, and a size or modification time that moved also counts as one.
// Only the releases of the last List are kept. Safe for concurrent use.
type listCache struct {
	mu sync.Mutex
	m  map[string]listed
	// reads counts files read (not stat'ed) by List, for tests.
	reads int
}

type listed struct {
	relInfo os.FileInfo
	rel     release.Release
	pidInfo os.FileInfo // nil when the release had no pidfile
	pid     []byte
}

// unchanged reports whether fi is the file was, unchanged.
func unchanged(was, fi os.FileInfo) bool {
	return was != nil && fi != nil && os.SameFile(was, fi) && was.Size() == fi.Size() && was.ModTime().Equal(fi.ModTime())
}

// begin starts a List: it returns the cache of the last one and a new
// map that end installs.
func (c *listCache) begin() (prev, next map[string]listed) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m, map[string]listed{}
}

func (c *listCache) end(next map[string]listed, reads int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m = next
	c.reads += reads
}

// listOne is List's read of release name: its release.json and whether
// it runs, from prev when its files are unchanged. It records what it
// read in next and returns how many files it read. readErr is why
// release.json could not be read, wrapping fs.ErrNotExist when name has
// none (not a release); err is why its pidfile could not be.
func (p *Runtime) listOne(name string, prev, next map[string]listed) (r release.Release, reads int, readErr, err error) {
	dir := p.dir(name)
	was := prev[name]
	var now listed
	fi, statErr := os.Stat(filepath.Join(dir, releaseFile))
	if statErr == nil && unchanged(was.relInfo, fi) {
		now.relInfo, now.rel = fi, was.rel
	} else {
		reads++
		now.rel, readErr = p.read(name)
		if errors.Is(readErr, fs.ErrNotExist) {
			return release.Release{}, reads, readErr, nil
		}
		if readErr == nil && statErr == nil {
			now.relInfo = fi
		}
	}
	r = now.rel
	pfi, err := os.Stat(filepath.Join(dir, pidFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// Not started, or stopped.
	case err != nil:
		return r, reads, readErr, err
	case unchanged(was.pidInfo, pfi):
		now.pidInfo, now.pid = pfi, was.pid
	default:
		reads++
		b, err := os.ReadFile(filepath.Join(dir, pidFile))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return r, reads, readErr, err
		}
		if err == nil {
			now.pidInfo, now.pid = pfi, b
		}
	}
	if now.pid != nil {
		pid, err := livePID(now.pid)
		if err != nil {
			return r, reads, readErr, err
		}
		r.Running = pid != 0
	}
	if readErr == nil {
		next[name] = now
	}
	return r, reads, readErr, nil
}
