package process

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/jailkeeper/jailkeeper/release"
)

// ListRounds bounds how long a release's files changed behind the
// runtime's back may go unseen by List: List trusts what it read of a
// release's release.json and pidfile until this Runtime value writes or
// removes one of them (Start, Stop, Destroy, a status change), and checks
// the files of one release in ListRounds in turn (a stat of each, a read
// of what changed, the full identity of its process), so every release
// within ListRounds calls. A release directory that appears or goes is
// seen at once (List reads the root directory every time).
//
// Whether a release's process still runs is asked every time, and
// cheaply: a process this value started is its child, which it reaps, so
// it runs until its Wait returns (no system call; a child not reaped yet
// keeps its PID, so no other process can have it); another one (started
// by an earlier agent) is kill(pid, 0) (kill(2): signal 0 checks that the
// process exists), which sees it exit at once and a stranger that reused
// its PID on its turn. The files of a release are written only by the
// agent (and by hand, by mistake), so issue 11's idle pass at 1,000
// services (2,000 releases on disk, two files each) makes 2 × 2,000 / 8
// stats instead of 4,000 and reads no /proc entry.
const ListRounds = 8

// listCache keeps what List read of each release, release.json parsed
// and the pidfile's content, with the files' stat. Both files are replaced
// by a rename when written (atomicfile), so a change is another file, and
// a size or modification time that moved also counts as one.
// Only the releases of the last List are kept. Safe for concurrent use.
type listCache struct {
	mu sync.Mutex
	m  map[string]listed
	// gen counts forget calls; forgot holds the gen of the last forget
	// of a release, until an entry read after it is in m.
	gen    uint64
	forgot map[string]uint64
	active int // Lists running
	round  int
	// reads and stats count files read and stat'ed by List, for tests.
	reads, stats int
}

type listed struct {
	gen     uint64 // the cache's gen when the List that read it began
	relInfo os.FileInfo
	rel     release.Release
	pidInfo os.FileInfo // nil when the release had no pidfile
	pid     []byte
	// alive: the pidfile's process was alive and ours at the last check
	// of its identity (livePID); pidNum is its PID.
	alive  bool
	pidNum int
}

// unchanged reports whether fi is the file was, unchanged.
func unchanged(was, fi os.FileInfo) bool {
	return was != nil && fi != nil && os.SameFile(was, fi) && was.Size() == fi.Size() && was.ModTime().Equal(fi.ModTime())
}

// listRound is one List's view of the cache.
type listRound struct {
	prev, next map[string]listed
	forgot     map[string]uint64 // forgets before the List began
	gen        uint64
	round      int
	reads      int
	stats      int
}

// begin starts a List.
func (c *listCache) begin() *listRound {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.active++
	c.round++
	lr := &listRound{prev: c.m, next: make(map[string]listed, len(c.m)), gen: c.gen, round: c.round}
	if len(c.forgot) > 0 {
		lr.forgot = make(map[string]uint64, len(c.forgot))
		for k, v := range c.forgot {
			lr.forgot[k] = v
		}
	}
	return lr
}

// end installs what the List read.
func (c *listCache) end(lr *listRound) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.active--
	c.m = lr.next
	c.reads += lr.reads
	c.stats += lr.stats
	if c.active == 0 {
		for name, g := range c.forgot {
			if e, ok := lr.next[name]; !ok || e.gen >= g {
				delete(c.forgot, name)
			}
		}
	}
}

// forget makes List check release name's files at its next call: this
// Runtime value has just written or removed one of them. Call it after
// the change.
func (c *listCache) forget(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if c.forgot == nil {
		c.forgot = map[string]uint64{}
	}
	c.forgot[name] = c.gen
}

// listOne is List's read of release name, the i-th directory of the root:
// its release.json and whether it runs, from lr.prev when it is not this
// release's turn to be checked (ListRounds) and nothing forgot it. It
// records what it read in lr.next. readErr is why release.json could not
// be read, wrapping fs.ErrNotExist when name has none (not a release);
// err is why its pidfile could not be.
func (p *Runtime) listOne(lr *listRound, i int, name string) (r release.Release, readErr, err error) {
	was, known := lr.prev[name]
	if known && i%ListRounds != lr.round%ListRounds && lr.forgot[name] <= was.gen {
		r = was.rel
		if was.pid != nil {
			was.alive = p.stillAlive(name, was)
			r.Running = was.alive
		}
		lr.next[name] = was
		return r, nil, nil
	}
	dir := p.dir(name)
	now := listed{gen: lr.gen}
	lr.stats += 2
	fi, statErr := os.Stat(filepath.Join(dir, releaseFile))
	if statErr == nil && unchanged(was.relInfo, fi) {
		now.relInfo, now.rel = fi, was.rel
	} else {
		lr.reads++
		now.rel, readErr = p.read(name)
		if errors.Is(readErr, fs.ErrNotExist) {
			return release.Release{}, readErr, nil
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
		return r, readErr, err
	case unchanged(was.pidInfo, pfi):
		now.pidInfo, now.pid = pfi, was.pid
	default:
		lr.reads++
		b, err := os.ReadFile(filepath.Join(dir, pidFile))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return r, readErr, err
		}
		if err == nil {
			now.pidInfo, now.pid = pfi, b
		}
	}
	if now.pid != nil {
		pid, err := livePID(now.pid)
		if err != nil {
			return r, readErr, err
		}
		now.alive, now.pidNum = pid != 0, pid
		r.Running = now.alive
	}
	if readErr == nil {
		lr.next[name] = now
	}
	return r, readErr, nil
}

// stillAlive reports whether the process of l, alive and ours when its
// identity was last checked, still runs (ListRounds says how).
func (p *Runtime) stillAlive(name string, l listed) bool {
	if !l.alive {
		// Dead or a stranger: it stays so until the pidfile changes.
		return false
	}
	if rec := p.exit(name); rec != nil && rec.pid.Load() == int64(l.pidNum) {
		select {
		case <-rec.done:
			return false
		default:
			return true
		}
	}
	err := syscall.Kill(l.pidNum, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
