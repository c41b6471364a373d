package process_test

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/jailkeeper/jailkeeper/process"
	"github.com/jailkeeper/jailkeeper/release"
)

// unprivilegedDir tells the test binary, re-run as an unprivileged user,
// where to run TestDestroyUnreadableTree's scenario.
const unprivilegedDir = "JAILKEEPER_TEST_UNPRIVILEGED_DIR"

// nobody is the uid and gid the scenario runs as when the tests run as root.
const nobody = 65534

// TestDestroyUnreadableTree: an artifact with a 0555 directory holding a
// 0000 one (issue 9, item 11) cannot stop an agent that is not root from
// destroying the release. Root ignores directory modes, so as root the
// scenario runs in a copy of the test binary as uid 65534.
func TestDestroyUnreadableTree(t *testing.T) {
	if dir := os.Getenv(unprivilegedDir); dir != "" {
		destroyUnreadableTree(t, dir)
		return
	}
	if os.Geteuid() != 0 {
		destroyUnreadableTree(t, t.TempDir())
		return
	}
	dir := t.TempDir()
	// t.TempDir's parent is 0700: let the unprivileged user through to dir.
	if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "process.test")
	copyFile(t, self, bin, 0o755)
	cmd := exec.Command(bin, "-test.run=^TestDestroyUnreadableTree$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), unprivilegedDir+"="+dir, "HOME="+dir, "TMPDIR="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestDestroyUnreadableTree") {
		t.Fatalf("as uid %d: %v\n%s", nobody, err, out)
	}
}

func destroyUnreadableTree(t *testing.T, dir string) {
	root := filepath.Join(dir, "releases")
	p, err := process.New(process.Config{Root: root, Pool: randomPool()})
	if err != nil {
		t.Fatal(err)
	}
	art := filepath.Join(dir, "locked.tar.gz")
	writeTarGz(t, art, []tarEntry{
		{name: "usr/local/bin/app", mode: 0o755, body: "#!/bin/sh\nexit 0\n"},
		{name: "var/locked/", mode: 0o555, dir: true},
		{name: "var/locked/inner/", mode: 0o000, dir: true},
	})
	spec := release.Spec{
		Name:     releaseName("locked"),
		Service:  "locked",
		SHA:      strings.Repeat("ab", 20),
		Spec:     strings.Repeat("cd", 32),
		Port:     randomPort(),
		Command:  []string{"/usr/local/bin/app"},
		Artifact: art,
	}
	ctx := context.Background()
	if _, err := p.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	locked := filepath.Join(root, spec.Name, "root", "var", "locked")
	if fi, err := os.Stat(locked); err != nil || fi.Mode().Perm() != 0o555 {
		t.Fatalf("the artifact's 0555 directory: %v, %v", fi, err)
	}
	if err := p.Destroy(ctx, spec.Name); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(root, spec.Name)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("release directory left after Destroy: %v", err)
	}
	rels, err := p.List(ctx)
	if err != nil || len(rels) != 0 {
		t.Fatalf("List after Destroy = %v, %v", rels, err)
	}
}

type tarEntry struct {
	name string
	mode int64
	dir  bool
	body string
}

func writeTarGz(t *testing.T, path string, entries []tarEntry) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, Typeflag: tar.TypeReg, Size: int64(len(e.body))}
		if e.dir {
			h.Typeflag, h.Size = tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := errors.Join(tw.Close(), gz.Close(), f.Close()); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, src, dst string, mode fs.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, mode); err != nil {
		t.Fatal(err)
	}
}
