package gitsource

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
)

func newSource(t testing.TB, cfg Config) *Source {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = filepath.Join(t.TempDir(), "state", "repo")
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// want is what one Poll should return.
type want struct {
	rev     string
	time    time.Time
	changed bool
	files   map[string]string // the snapshot's FS; nil: not checked
	stats   Stats
	err     error // errors.Is target; nil: no error
}

func checkPoll(t testing.TB, s *Source, w want) Snapshot {
	t.Helper()
	snap, err := s.Poll(context.Background())
	switch {
	case w.err == nil && err != nil:
		t.Fatalf("Poll: %v", err)
	case w.err != nil && !errors.Is(err, w.err):
		t.Fatalf("Poll error = %v, want one wrapping %q", err, w.err)
	}
	if snap.Revision != w.rev {
		t.Errorf("Revision = %q, want %q", snap.Revision, w.rev)
	}
	if !snap.Time.Equal(w.time) {
		t.Errorf("Time = %v, want %v", snap.Time, w.time)
	}
	if snap.Changed != w.changed {
		t.Errorf("Changed = %v, want %v", snap.Changed, w.changed)
	}
	if w.files != nil {
		if diff := cmp.Diff(w.files, files(t, snap.FS)); diff != "" {
			t.Errorf("FS (-want +got):\n%s", diff)
		}
	}
	if diff := cmp.Diff(w.stats, s.Stats()); diff != "" {
		t.Errorf("Stats (-want +got):\n%s", diff)
	}
	return snap
}

const (
	helloV1 = "service: hello\nsha: 1111111111111111111111111111111111111111\n"
	helloV2 = "service: hello\nsha: 2222222222222222222222222222222222222222\n"
	helloV3 = "service: hello\nsha: 3333333333333333333333333333333333333333\n"
	worldV1 = "service: world\nsha: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"
)

// TestPollHistory walks a deploy repo through what operators do to it: the
// first clone, a poll with nothing new, a new commit, git revert, force
// pushes (to a new commit and back to one the clone already has).
func TestPollHistory(t *testing.T) {
	f := newFixture(t)
	f.write(map[string]string{"services/hello.yaml": helloV1, "README.md": "deploy repo\n"})
	c1 := f.commit("hello v1")
	f.push(false)

	s := newSource(t, Config{URL: f.bare})
	v1 := map[string]string{"hello.yaml": helloV1}

	// First Poll clones.
	checkPoll(t, s, want{rev: c1, time: commitTime(0), changed: true, files: v1,
		stats: Stats{Polls: 1, Lists: 1, Fetches: 1}})

	// Nothing moved: a listing, no fetch.
	checkPoll(t, s, want{rev: c1, time: commitTime(0), changed: false, files: v1,
		stats: Stats{Polls: 2, Lists: 2, Fetches: 1}})

	// A new commit deploys a new SHA and adds a service.
	f.write(map[string]string{"services/hello.yaml": helloV2, "services/world.yaml": worldV1})
	c2 := f.commit("hello v2, world")
	f.push(false)
	v2 := map[string]string{"hello.yaml": helloV2, "world.yaml": worldV1}
	checkPoll(t, s, want{rev: c2, time: commitTime(1), changed: true, files: v2,
		stats: Stats{Polls: 3, Lists: 3, Fetches: 2}})

	// Rolling back is git revert: a new commit with the old content.
	f.runEnv(f.work, f.nextDate(), "revert", "--no-edit", "HEAD")
	c3 := f.head()
	f.push(false)
	checkPoll(t, s, want{rev: c3, time: commitTime(2), changed: true, files: v1,
		stats: Stats{Polls: 4, Lists: 4, Fetches: 3}})

	// A force push rewrites the branch; it is followed.
	f.run(f.work, "reset", "--quiet", "--hard", c1)
	f.write(map[string]string{"services/hello.yaml": helloV3})
	c4 := f.commit("hello v3, rewritten")
	f.push(true)
	checkPoll(t, s, want{rev: c4, time: commitTime(3), changed: true,
		files: map[string]string{"hello.yaml": helloV3},
		stats: Stats{Polls: 5, Lists: 5, Fetches: 4}})

	// Force-pushed back to a commit the clone already has.
	f.run(f.work, "reset", "--quiet", "--hard", c2)
	f.push(true)
	checkPoll(t, s, want{rev: c2, time: commitTime(1), changed: true, files: v2,
		stats: Stats{Polls: 6, Lists: 6, Fetches: 5}})
	checkPoll(t, s, want{rev: c2, time: commitTime(1), changed: false, files: v2,
		stats: Stats{Polls: 7, Lists: 7, Fetches: 5}})
}

// TestPollUnreachable: the last good snapshot stays in effect while the
// remote is away, and the error says so.
func TestPollUnreachable(t *testing.T) {
	f := newFixture(t)
	f.write(map[string]string{"services/hello.yaml": helloV1})
	c1 := f.commit("hello v1")
	f.push(false)
	s := newSource(t, Config{URL: "file://" + f.bare})
	v1 := map[string]string{"hello.yaml": helloV1}
	checkPoll(t, s, want{rev: c1, time: commitTime(0), changed: true, files: v1,
		stats: Stats{Polls: 1, Lists: 1, Fetches: 1}})

	away := f.bare + ".away"
	if err := os.Rename(f.bare, away); err != nil {
		t.Fatal(err)
	}
	checkPoll(t, s, want{rev: c1, time: commitTime(0), changed: false, files: v1, err: ErrUnreachable,
		stats: Stats{Polls: 2, Lists: 1, Fetches: 1}})
	_, err := s.Poll(context.Background())
	if err == nil || !strings.Contains(err.Error(), f.bare) {
		t.Errorf("error %v does not name the remote %s", err, f.bare)
	}

	// Back, with a new commit.
	if err := os.Rename(away, f.bare); err != nil {
		t.Fatal(err)
	}
	f.write(map[string]string{"services/hello.yaml": helloV2})
	c2 := f.commit("hello v2")
	f.push(false)
	checkPoll(t, s, want{rev: c2, time: commitTime(1), changed: true,
		files: map[string]string{"hello.yaml": helloV2},
		stats: Stats{Polls: 4, Lists: 2, Fetches: 2}})
}

// TestPollUnreachableFirst: no last good snapshot yet: the zero Snapshot.
func TestPollUnreachableFirst(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	s := newSource(t, Config{URL: filepath.Join(t.TempDir(), "missing.git"), Dir: dir})
	snap, err := s.Poll(context.Background())
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("Poll error = %v, want ErrUnreachable", err)
	}
	if diff := cmp.Diff(Snapshot{}, snap); diff != "" {
		t.Errorf("snapshot (-want +got):\n%s", diff)
	}
}

// TestPollRestart: a new Source on the same Dir (an agent restart) opens
// the clone, fetches nothing when the branch did not move, and has the last
// good commit even when the remote is away.
func TestPollRestart(t *testing.T) {
	f := newFixture(t)
	f.write(map[string]string{"services/hello.yaml": helloV1})
	c1 := f.commit("hello v1")
	f.push(false)
	dir := filepath.Join(t.TempDir(), "repo")
	v1 := map[string]string{"hello.yaml": helloV1}

	checkPoll(t, newSource(t, Config{URL: f.bare, Dir: dir}), want{rev: c1, time: commitTime(0), changed: true, files: v1,
		stats: Stats{Polls: 1, Lists: 1, Fetches: 1}})

	again := newSource(t, Config{URL: f.bare, Dir: dir})
	checkPoll(t, again, want{rev: c1, time: commitTime(0), changed: true, files: v1,
		stats: Stats{Polls: 1, Lists: 1, Fetches: 0}})

	if err := os.RemoveAll(f.bare); err != nil {
		t.Fatal(err)
	}
	checkPoll(t, newSource(t, Config{URL: f.bare, Dir: dir}), want{rev: c1, time: commitTime(0), changed: true, files: v1,
		err: ErrUnreachable, stats: Stats{Polls: 1}})
}

// TestPollURLChanged: the clone follows a new repo.url; nothing of the old
// remote is served.
func TestPollURLChanged(t *testing.T) {
	a, b := newFixture(t), newFixture(t)
	a.write(map[string]string{"services/hello.yaml": helloV1})
	ca := a.commit("a")
	a.push(false)
	b.write(map[string]string{"services/world.yaml": worldV1})
	cb := b.commit("b")
	b.push(false)
	dir := filepath.Join(t.TempDir(), "repo")

	checkPoll(t, newSource(t, Config{URL: a.bare, Dir: dir}), want{rev: ca, time: commitTime(0), changed: true,
		stats: Stats{Polls: 1, Lists: 1, Fetches: 1}})
	checkPoll(t, newSource(t, Config{URL: b.bare, Dir: dir}), want{rev: cb, time: commitTime(0), changed: true,
		files: map[string]string{"world.yaml": worldV1}, stats: Stats{Polls: 1, Lists: 1, Fetches: 1}})
	// The new remote unreachable: the old remote's commit is not served.
	if err := os.RemoveAll(b.bare); err != nil {
		t.Fatal(err)
	}
	checkPoll(t, newSource(t, Config{URL: a.bare, Dir: dir}), want{rev: ca, time: commitTime(0), changed: true,
		stats: Stats{Polls: 1, Lists: 1, Fetches: 1}})
	checkPoll(t, newSource(t, Config{URL: b.bare, Dir: dir}), want{err: ErrUnreachable, stats: Stats{Polls: 1}})
}

func TestPollNotFound(t *testing.T) {
	f := newFixture(t)
	f.write(map[string]string{"services/hello.yaml": helloV1})
	c1 := f.commit("hello v1")
	f.push(false)

	t.Run("branch", func(t *testing.T) {
		s := newSource(t, Config{URL: f.bare, Branch: "production"})
		_, err := s.Poll(context.Background())
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "production") {
			t.Errorf("Poll error = %v, want ErrNotFound naming the branch", err)
		}
	})
	t.Run("empty remote", func(t *testing.T) {
		empty := newFixture(t)
		s := newSource(t, Config{URL: empty.bare})
		_, err := s.Poll(context.Background())
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("Poll error = %v, want ErrNotFound", err)
		}
	})
	t.Run("path", func(t *testing.T) {
		s := newSource(t, Config{URL: f.bare, Path: "manifests"})
		snap, err := s.Poll(context.Background())
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "repo.path manifests") {
			t.Errorf("Poll error = %v, want ErrNotFound naming repo.path", err)
		}
		if snap.Revision != "" {
			t.Errorf("Revision = %q, want none: the commit has no manifest directory", snap.Revision)
		}
	})
	t.Run("path removed later", func(t *testing.T) {
		s := newSource(t, Config{URL: f.bare})
		checkPoll(t, s, want{rev: c1, time: commitTime(0), changed: true, stats: Stats{Polls: 1, Lists: 1, Fetches: 1}})
		f.write(map[string]string{"services/hello.yaml": ""})
		f.commit("remove everything")
		f.push(false)
		checkPoll(t, s, want{rev: c1, time: commitTime(0), err: ErrNotFound,
			stats: Stats{Polls: 2, Lists: 2, Fetches: 2}})
	})
}

func TestPollDirNotARepo(t *testing.T) {
	f := newFixture(t)
	f.commit("empty")
	f.push(false)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "precious"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := newSource(t, Config{URL: f.bare, Dir: dir})
	if _, err := s.Poll(context.Background()); err == nil || !strings.Contains(err.Error(), "not a git repository") {
		t.Errorf("Poll error = %v, want not a git repository", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "precious")); err != nil {
		t.Errorf("Poll touched a directory that is not its clone: %v", err)
	}
}

// TestSnapshotFS: the manifest directory is read from the git objects, and
// only what manifest.Load looks at: its *.yaml and *.yml entries.
// Subdirectories (dir.yaml) are empty and never read, symlinks are listed
// as symlinks and never followed, other files are left out; the FS passes
// fstest.
func TestSnapshotFS(t *testing.T) {
	f := newFixture(t)
	f.write(map[string]string{
		"deploy/prod/services/hello.yaml":          helloV1,
		"deploy/prod/services/run.yml":             worldV1,
		"deploy/prod/services/sub/world.yaml":      worldV1,
		"deploy/prod/services/dir.yaml/world.yaml": worldV1,
		"deploy/prod/services/hook.sh":             "#!/bin/sh\n",
		"deploy/prod/services/.hidden.yaml":        "dot file\n",
		"deploy/prod/other.yaml":                   "outside\n",
	})
	if err := os.Chmod(filepath.Join(f.work, "deploy/prod/services/run.yml"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("hello.yaml", filepath.Join(f.work, "deploy/prod/services/link.yaml")); err != nil {
		t.Fatal(err)
	}
	f.commit("nested")
	f.push(false)

	s := newSource(t, Config{URL: f.bare, Path: "deploy/prod/services/"})
	snap, err := s.Poll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// The worktree of the fixture is not what is read: change it.
	f.write(map[string]string{"deploy/prod/services/hello.yaml": "edited, not committed\n"})

	if err := fstest.TestFS(snap.FS, "hello.yaml", "run.yml", "dir.yaml", "link.yaml"); err != nil {
		t.Error(err)
	}
	wantFiles := map[string]string{"hello.yaml": helloV1, "run.yml": worldV1}
	if diff := cmp.Diff(wantFiles, files(t, snap.FS)); diff != "" {
		t.Errorf("FS (-want +got):\n%s", diff)
	}
	var listed []string
	ents, err := fs.ReadDir(snap.FS, ".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		listed = append(listed, e.Name()+" "+e.Type().String())
	}
	wantListed := []string{"dir.yaml d---------", "hello.yaml ----------", "link.yaml L---------", "run.yml ----------"}
	if diff := cmp.Diff(wantListed, listed); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}
	if sub, err := fs.ReadDir(snap.FS, "dir.yaml"); err != nil || len(sub) != 0 {
		t.Errorf("dir.yaml: %v, %v; want an empty directory", sub, err)
	}
	st, err := fs.Stat(snap.FS, "run.yml")
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o755 || !st.ModTime().Equal(commitTime(0)) || st.Size() != int64(len(worldV1)) {
		t.Errorf("run.yml: mode %v, mtime %v, size %d; want -rwxr-xr-x, %v, %d", st.Mode(), st.ModTime(), st.Size(), commitTime(0), len(worldV1))
	}
}

// TestConcurrentUse: Polls, Stats and reads of earlier Snapshots may
// overlap (run with -race).
func TestConcurrentUse(t *testing.T) {
	f := newFixture(t)
	f.write(map[string]string{"services/hello.yaml": helloV1})
	f.commit("hello v1")
	f.push(false)
	s := newSource(t, Config{URL: f.bare})
	first, err := s.Poll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	f.write(map[string]string{"services/hello.yaml": helloV2})
	c2 := f.commit("hello v2")
	f.push(false)

	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			snap, err := s.Poll(context.Background())
			if err == nil && snap.Revision != c2 {
				err = fmt.Errorf("Revision %s, want %s", snap.Revision, c2)
			}
			errs <- err
		}()
		go func() {
			defer wg.Done()
			_ = s.Stats()
			b, err := fs.ReadFile(first.FS, "hello.yaml")
			if err == nil && string(b) != helloV1 {
				err = fmt.Errorf("first snapshot changed under the reader: %q", b)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := s.Stats(); got.Polls != 5 || got.Fetches != 2 {
		t.Errorf("Stats = %+v, want 5 polls and 2 fetches", got)
	}
}
