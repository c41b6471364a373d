package gitsource

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"

	"github.com/jailkeeper/jailkeeper/manifest"
)

// Regression tests for issue 9 item 1 (git tree bomb) and item 3
// (symlinks). The bomb is built with the git CLI as an attacker with push
// access would: a few hundred kilobytes of objects that name 10⁹ paths.

// hashObject writes content as a blob and returns its id.
func (f *fixture) hashObject(content string) string {
	f.t.Helper()
	cmd := f.command(f.work, "hash-object", "-w", "--stdin")
	cmd.Stdin = strings.NewReader(content)
	out, err := cmd.Output()
	if err != nil {
		f.t.Fatalf("git hash-object: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// mktree writes a tree of the given `git mktree` lines and returns its id.
func (f *fixture) mktree(lines []string) string {
	f.t.Helper()
	cmd := f.command(f.work, "mktree", "--missing")
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	out, err := cmd.Output()
	if err != nil {
		f.t.Fatalf("git mktree: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// commitTree makes a commit of tree on top of the current head, moves main
// to it and pushes.
func (f *fixture) commitTree(tree, msg string) string {
	f.t.Helper()
	parent := f.head()
	c := f.runEnv(f.work, f.nextDate(), "commit-tree", tree, "-p", parent, "-m", msg)
	f.run(f.work, "update-ref", "refs/heads/main", c)
	f.push(false)
	return c
}

// bomb returns a tree of levels nested trees of width entries each; the
// innermost hold the empty blob: width^levels paths.
func (f *fixture) bomb(width, levels int) string {
	f.t.Helper()
	inner := f.hashObject("")
	mode := "100644 blob"
	for range levels {
		lines := make([]string, width)
		for i := range lines {
			lines[i] = fmt.Sprintf("%s %s\tx%04d", mode, inner, i)
		}
		inner, mode = f.mktree(lines), "040000 tree"
	}
	return inner
}

// helloManifest is a valid manifest of service hello.
const helloManifest = `service: hello
sha: 4b825dc642cb6eb9a060e54bf8d69288fbee4904
artifact: {url: "https://ci.example.com/hello", sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}
hostnames: [hello.example.com]
port: 8080
`

// goodCommit commits services/hello.yaml and returns the commit and the
// blob id of the manifest.
func goodCommit(f *fixture) (commit, blob string) {
	f.write(map[string]string{"services/hello.yaml": helloManifest})
	c := f.commit("hello")
	f.push(false)
	return c, f.run(f.work, "rev-parse", "HEAD:services/hello.yaml")
}

// withServices commits a root tree whose services directory has the given
// mktree lines.
func withServices(f *fixture, lines []string, msg string) string {
	services := f.mktree(lines)
	return f.commitTree(f.mktree([]string{"040000 tree " + services + "\tservices"}), msg)
}

// allocated runs fn and returns the bytes it allocated on the heap.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestTreeBombNeverWalked: 10⁹ empty files below the manifest directory
// (a subdirectory) and next to it (elsewhere in the repo). Only the
// manifest directory's own entries are read, so the poll succeeds and
// allocates a bounded amount; before the fix it walked every path, at
// ~50 MiB/s, until the agent ran out of memory.
func TestTreeBombNeverWalked(t *testing.T) {
	f := newFixture(t)
	_, blob := goodCommit(f)
	bomb := f.bomb(1000, 3)
	services := f.mktree([]string{"100644 blob " + blob + "\thello.yaml", "040000 tree " + bomb + "\tbomb"})
	rev := f.commitTree(f.mktree([]string{
		"040000 tree " + services + "\tservices",
		"040000 tree " + bomb + "\telsewhere",
	}), "bomb")

	s := newSource(t, Config{URL: f.bare})
	var snap Snapshot
	var err error
	n := allocated(func() { snap, err = s.Poll(context.Background()) })
	if err != nil {
		t.Fatal(err)
	}
	if snap.Revision != rev {
		t.Fatalf("Revision = %s, want the bomb's commit %s", snap.Revision, rev)
	}
	// The fetch itself (3,000 tree entries) is most of this.
	const bound = 64 << 20
	t.Logf("Poll of the bomb allocated %d KiB", n>>10)
	if n > bound {
		t.Errorf("Poll allocated %d bytes, want at most %d", n, bound)
	}
	svcs, err := manifest.Load(snap.FS, ".")
	if err != nil || len(svcs) != 1 || svcs[0].Service != "hello" {
		t.Errorf("Load = %v, %v; want hello", svcs, err)
	}
	if ents, err := fs.ReadDir(snap.FS, "bomb"); err == nil && len(ents) > 0 {
		t.Errorf("the bomb subdirectory was read: %d entries", len(ents))
	}
}

// TestManifestDirLimits: a manifest directory with too many entries, or
// manifests too large in total, is a source error (ErrLimit) found before
// any file is read, and the last good revision stays in effect.
func TestManifestDirLimits(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lines func(f *fixture, hello string) []string
		want  string
	}{
		{"entries", func(f *fixture, hello string) []string {
			lines := []string{"100644 blob " + hello + "\thello.yaml"}
			empty := f.hashObject("")
			for i := range manifest.MaxEntries {
				lines = append(lines, fmt.Sprintf("100644 blob %s\tn%05d.txt", empty, i))
			}
			return lines
		}, "entries"},
		{"bytes", func(f *fixture, hello string) []string {
			lines := []string{"100644 blob " + hello + "\thello.yaml"}
			big := f.hashObject(strings.Repeat("#", manifest.MaxFileSize))
			for i := range manifest.MaxTotalSize/manifest.MaxFileSize + 1 {
				lines = append(lines, fmt.Sprintf("100644 blob %s\tbig%02d.yaml", big, i))
			}
			return lines
		}, "bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			good, blob := goodCommit(f)
			s := newSource(t, Config{URL: f.bare})
			if _, err := s.Poll(context.Background()); err != nil {
				t.Fatal(err)
			}
			withServices(f, tc.lines(f, blob), "too much")
			snap, err := s.Poll(context.Background())
			if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Poll error = %v, want ErrLimit about %s", err, tc.want)
			}
			if snap.Revision != good {
				t.Errorf("Revision = %s, want the last good %s", snap.Revision, good)
			}
		})
	}
}

// TestSymlinksListedNotFollowed: a symlinked manifest is in the snapshot as
// a symlink, so manifest.Load refuses it with the same error as validate
// on a checkout; before the fix it was left out, the agent saw the service
// as removed and pruned it.
func TestSymlinksListedNotFollowed(t *testing.T) {
	f := newFixture(t)
	f.write(map[string]string{
		"services/aaa.yaml": strings.ReplaceAll(helloManifest, "hello", "aaa"),
		"secret/bbb.yaml":   strings.ReplaceAll(helloManifest, "hello", "bbb") + "# s3cr3t-value\n",
	})
	if err := os.Symlink("../secret/bbb.yaml", filepath.Join(f.work, "services", "bbb.yaml")); err != nil {
		t.Fatal(err)
	}
	f.commit("bbb is a symlink")
	f.push(false)
	s := newSource(t, Config{URL: f.bare})
	snap, err := s.Poll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, gitErr := manifest.Load(snap.FS, ".")
	_, dirErr := manifest.Load(os.DirFS(filepath.Join(f.work, "services")), ".")
	if !errors.Is(gitErr, manifest.ErrInvalid) || !strings.Contains(fmt.Sprint(gitErr), "bbb.yaml") {
		t.Fatalf("Load(snapshot) = %v, want ErrInvalid naming bbb.yaml", gitErr)
	}
	if fmt.Sprint(gitErr) != fmt.Sprint(dirErr) {
		t.Errorf("the agent and validate disagree:\nagent:    %v\nvalidate: %v", gitErr, dirErr)
	}
	for _, leak := range []string{"secret", "s3cr3t"} {
		if strings.Contains(fmt.Sprint(gitErr), leak) {
			t.Errorf("error %q shows the link's target", gitErr)
		}
	}
}

// BenchmarkManifestDirAtLimits reads a manifest directory at its entry
// limit (manifest.MaxEntries entries, 100 of them manifests) from the
// clone: what one changed commit costs at most in entries. Run with
// -benchmem; the figures bound a poll's memory.
func BenchmarkManifestDirAtLimits(b *testing.B) {
	f := newFixture(b)
	_, blob := goodCommit(f)
	empty := f.hashObject("")
	lines := []string{"100644 blob " + blob + "\thello.yaml"}
	for i := range manifest.MaxEntries - 1 {
		name, h := fmt.Sprintf("n%05d.txt", i), empty
		if i < 99 {
			name, h = fmt.Sprintf("s%02d.yaml", i), blob
		}
		lines = append(lines, "100644 blob "+h+"\t"+name)
	}
	withServices(f, lines, "at the limit")
	s := newSource(b, Config{URL: f.bare})
	snap, err := s.Poll(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	c, err := s.repo.CommitObject(plumbing.NewHash(snap.Revision))
	if err != nil {
		b.Fatal(err)
	}
	dir, ok, err := findDir(s.repo.Storer, c.TreeHash, "services")
	if err != nil || !ok {
		b.Fatal(ok, err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := newTreeFS(context.Background(), s.repo.Storer, dir, snap.Time); err != nil {
			b.Fatal(err)
		}
	}
}

// TestReadHonoursContext: reading the manifest directory stops when the
// poll's context ends (its timeout), before reading the manifests.
func TestReadHonoursContext(t *testing.T) {
	f := newFixture(t)
	goodCommit(f)
	s := newSource(t, Config{URL: f.bare})
	snap, err := s.Poll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.repo.CommitObject(plumbing.NewHash(snap.Revision))
	if err != nil {
		t.Fatal(err)
	}
	dir, ok, err := findDir(s.repo.Storer, c.TreeHash, "services")
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := newTreeFS(ctx, s.repo.Storer, dir, snap.Time); !errors.Is(err, context.Canceled) {
		t.Errorf("newTreeFS with an ended context: %v, want context.Canceled", err)
	}
}
