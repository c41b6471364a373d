package artifact

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// ent is one tarball entry for tests.
type ent struct {
	typ  byte
	name string
	body string // content of a file
	link string // target of a link
	mode int64
}

func file(name, body string, mode int64) ent {
	return ent{typ: tar.TypeReg, name: name, body: body, mode: mode}
}
func dir(name string, mode int64) ent { return ent{typ: tar.TypeDir, name: name, mode: mode} }
func symlink(name, target string) ent {
	return ent{typ: tar.TypeSymlink, name: name, link: target, mode: 0o777}
}
func hardlink(name, target string) ent {
	return ent{typ: tar.TypeLink, name: name, link: target, mode: 0o644}
}

func tarGz(t testing.TB, entries ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		hdr := &tar.Header{Typeflag: e.typ, Name: e.name, Linkname: e.link, Mode: e.mode, Format: tar.FormatPAX}
		if e.typ == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("tar header %q: %v", e.name, err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// sandbox is a directory holding the release root and, beside it, a file
// that no artifact may reach.
type sandbox struct {
	dir, root, outside string
}

const outsideContent = "outside the root"

func newSandbox(t testing.TB) sandbox {
	t.Helper()
	d := t.TempDir()
	s := sandbox{dir: d, root: filepath.Join(d, "root"), outside: filepath.Join(d, "outside")}
	for _, p := range []string{s.root, s.outside} {
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(s.outside, "target"), []byte(outsideContent), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Entries may leave read-only directories behind.
		filepath.WalkDir(d, func(p string, de fs.DirEntry, err error) error {
			if err == nil && de.IsDir() {
				os.Chmod(p, 0o755)
			}
			return nil
		})
	})
	return s
}

func writeSrc(t testing.TB, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// checkContained fails when anything exists in the sandbox beside root and
// outside, when outside changed, or when a link in root resolves outside it.
func (s sandbox) checkContained(t testing.TB) {
	t.Helper()
	top, err := os.ReadDir(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range top {
		names = append(names, e.Name())
	}
	if diff := cmp.Diff([]string{"outside", "root"}, names); diff != "" {
		t.Errorf("sandbox entries (-want +got):\n%s", diff)
	}
	out, err := os.ReadDir(s.outside)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || out[0].Name() != "target" {
		t.Errorf("outside holds %v, want only target", out)
	}
	if b, err := os.ReadFile(filepath.Join(s.outside, "target")); err != nil || string(b) != outsideContent {
		t.Errorf("outside/target = %q, %v; want it untouched", b, err)
	}
	if fi, err := os.Lstat(filepath.Join(s.outside, "target")); err != nil || fi.Mode() != 0o644 {
		t.Errorf("outside/target mode changed: %v %v", fi.Mode(), err)
	}
	filepath.WalkDir(s.root, func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			return nil // dangling or a loop: followed nowhere
		}
		if real != s.root && !strings.HasPrefix(real, s.root+"/") {
			t.Errorf("link %s resolves to %s, outside the root", p, real)
		}
		return nil
	})
}

// listing describes a tree for comparison.
func listing(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		line := fmt.Sprintf("%s %v", rel, fi.Mode())
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			line += " -> " + target
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			line += fmt.Sprintf(" %q", b)
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func TestInstallExecutable(t *testing.T) {
	s := newSandbox(t)
	// A leftover link at the destination must be replaced, not followed.
	if err := os.MkdirAll(filepath.Join(s.root, "usr/local/bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../../keep", filepath.Join(s.root, "usr/local/bin/hello")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.root, "keep"), []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Named like a tarball, but it is not gzip: copied as the command.
	src := writeSrc(t, t.TempDir(), "hello.tar.gz", []byte("\x7fELF binary"))
	if err := Install(t.Context(), src, s.root, "/usr/local/bin/hello"); err != nil {
		t.Fatal(err)
	}
	want := []string{
		". drwxr-xr-x",
		`keep -rw------- "keep"`,
		"usr drwxr-xr-x",
		"usr/local drwxr-xr-x",
		"usr/local/bin drwxr-xr-x",
		"usr/local/bin/hello -rwxr-xr-x \"\\x7fELF binary\"",
	}
	if diff := cmp.Diff(want, listing(t, s.root)); diff != "" {
		t.Errorf("root (-want +got):\n%s", diff)
	}
	s.checkContained(t)
}

func TestInstallExecutableCreatesParents(t *testing.T) {
	s := newSandbox(t)
	src := writeSrc(t, t.TempDir(), "a", []byte("#!/bin/sh\n"))
	if err := Install(t.Context(), src, s.root, "/opt/app/bin/run"); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(s.root, "opt/app/bin/run"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != 0o755 {
		t.Errorf("mode = %v, want 0755", fi.Mode())
	}
}

func TestInstallExecutableRefusesEscape(t *testing.T) {
	s := newSandbox(t)
	src := writeSrc(t, t.TempDir(), "a", []byte("x"))
	err := Install(t.Context(), src, s.root, "/../outside/target")
	if !errors.Is(err, ErrUnsafe) {
		t.Errorf("Install = %v, want ErrUnsafe", err)
	}
	s.checkContained(t)
}

func TestInstallTarball(t *testing.T) {
	s := newSandbox(t)
	// The template may already have /usr.
	if err := os.Mkdir(filepath.Join(s.root, "usr"), 0o755); err != nil {
		t.Fatal(err)
	}
	tgz := tarGz(t,
		dir("./", 0o755),
		dir("./usr/", 0o755),
		file("./usr/local/bin/hello", "binary", 0o755), // parents not listed
		file("usr/local/share/hello/setuid", "s", 0o4755),
		symlink("usr/local/bin/hi", "hello"),
		symlink("usr/local/share/hello/bin", "../../bin"),
		hardlink("usr/local/bin/hello2", "usr/local/bin/hello"),
		dir("ro/", 0o555),
		file("ro/inside", "filled after", 0o444),
		dir("tmp", 0o1777),
		file("replace", "first", 0o644),
		file("replace", "second", 0o600),
		symlink("dangling", "nothing/here"),
	)
	src := writeSrc(t, t.TempDir(), "artifact", tgz) // no .tar.gz: detected by magic
	if err := Install(t.Context(), src, s.root, "/usr/local/bin/hello"); err != nil {
		t.Fatal(err)
	}
	want := []string{
		". drwxr-xr-x",
		"dangling Lrwxrwxrwx -> nothing/here",
		`replace -rw------- "second"`,
		"ro dr-xr-xr-x",
		`ro/inside -r--r--r-- "filled after"`,
		"tmp dtrwxrwxrwx",
		"usr drwxr-xr-x",
		"usr/local drwxr-xr-x",
		"usr/local/bin drwxr-xr-x",
		`usr/local/bin/hello -rwxr-xr-x "binary"`,
		`usr/local/bin/hello2 -rwxr-xr-x "binary"`,
		"usr/local/bin/hi Lrwxrwxrwx -> hello",
		"usr/local/share drwxr-xr-x",
		"usr/local/share/hello drwxr-xr-x",
		"usr/local/share/hello/bin Lrwxrwxrwx -> ../../bin",
		`usr/local/share/hello/setuid -rwxr-xr-x "s"`,
	}
	if diff := cmp.Diff(want, listing(t, s.root)); diff != "" {
		t.Errorf("root (-want +got):\n%s", diff)
	}
	s.checkContained(t)
}

// TestInstallKeepsExistingDirectories: a tarball entry never loosens (or
// tightens, or re-owns) a directory the template already has; only the
// directories the extraction creates take their entry's mode. Files the
// template has are replaced, never written through a link.
func TestInstallKeepsExistingDirectories(t *testing.T) {
	s := newSandbox(t)
	tmpl := []struct {
		name string
		mode fs.FileMode
	}{{"usr", 0o755}, {"usr/bin", 0o755}, {"etc", 0o700}, {"var", 0o755}}
	for _, d := range tmpl {
		p := filepath.Join(s.root, d.name)
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, d.mode); err != nil {
			t.Fatal(err)
		}
	}
	tool := filepath.Join(s.root, "usr/bin/tool")
	if err := os.WriteFile(tool, []byte("template"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A second name for the template's file, and a link to a file outside.
	if err := os.Link(tool, filepath.Join(s.root, "usr/bin/tool-hardlink")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(s.outside, "target"), filepath.Join(s.root, "usr/bin/out")); err != nil {
		t.Fatal(err)
	}
	// Ownership: as root, give the template's /usr to another user and
	// check nothing takes it back.
	const uid, gid = 4242, 4343
	asRoot := os.Geteuid() == 0
	if asRoot {
		if err := os.Lchown(filepath.Join(s.root, "usr"), uid, gid); err != nil {
			t.Fatal(err)
		}
	}

	tgz := tarGz(t,
		dir("./", 0o777),
		dir("usr/", 0o777),
		dir("usr/bin/", 0o777),
		dir("etc/", 0o755),
		dir("usr/local/", 0o750),
		file("usr/local/bin/app", "app", 0o755), // usr/local/bin created unlisted
		dir("new/", 0o777),
		dir("var/tmp/", 0o1777),
		file("usr/bin/tool", "artifact", 0o700),
		file("usr/bin/out", "not through the link", 0o644),
	)
	src := writeSrc(t, t.TempDir(), "a.tar.gz", tgz)
	if err := Install(t.Context(), src, s.root, "/usr/local/bin/app"); err != nil {
		t.Fatal(err)
	}
	want := []string{
		". drwxr-xr-x",
		"etc drwx------",
		"new drwxrwxrwx",
		"usr drwxr-xr-x",
		"usr/bin drwxr-xr-x",
		`usr/bin/out -rw-r--r-- "not through the link"`,
		`usr/bin/tool -rwx------ "artifact"`,
		`usr/bin/tool-hardlink -rwxr-xr-x "template"`,
		"usr/local drwxr-x---",
		"usr/local/bin drwxr-xr-x",
		`usr/local/bin/app -rwxr-xr-x "app"`,
		"var drwxr-xr-x",
		"var/tmp dtrwxrwxrwx",
	}
	if diff := cmp.Diff(want, listing(t, s.root)); diff != "" {
		t.Errorf("root (-want +got):\n%s", diff)
	}
	if asRoot {
		fi, err := os.Lstat(filepath.Join(s.root, "usr"))
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != uid || st.Gid != gid {
			t.Errorf("usr owner = %d:%d, want the template's %d:%d", st.Uid, st.Gid, uid, gid)
		}
	}
	s.checkContained(t)
}

func TestInstallTarballCommandMissing(t *testing.T) {
	s := newSandbox(t)
	src := writeSrc(t, t.TempDir(), "a.tar.gz", tarGz(t, file("bin/other", "x", 0o755)))
	err := Install(t.Context(), src, s.root, "/usr/local/bin/hello")
	if err == nil || !strings.Contains(err.Error(), "/usr/local/bin/hello") {
		t.Errorf("Install = %v, want an error naming the missing command", err)
	}
	if err := Install(t.Context(), src, s.root, ""); err != nil {
		t.Errorf("Install without a command = %v", err)
	}
}

func TestInstallNotATar(t *testing.T) {
	s := newSandbox(t)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(bytes.Repeat([]byte("not a tar "), 100))
	zw.Close()
	src := writeSrc(t, t.TempDir(), "a", buf.Bytes())
	if err := Install(t.Context(), src, s.root, ""); err == nil {
		t.Error("Install of gzip'd text succeeded, want an error")
	}
}

func TestInstallSizeLimit(t *testing.T) {
	old := maxExtract
	maxExtract = 100
	t.Cleanup(func() { maxExtract = old })
	s := newSandbox(t)
	src := writeSrc(t, t.TempDir(), "a", tarGz(t, file("a", strings.Repeat("a", 60), 0o644), file("b", strings.Repeat("b", 60), 0o644)))
	err := Install(t.Context(), src, s.root, "")
	if err == nil || !strings.Contains(err.Error(), "expands beyond 100 bytes") {
		t.Errorf("Install = %v, want the size limit", err)
	}
}

func TestInstallUnsafe(t *testing.T) {
	tests := []struct {
		name    string
		entries []ent
		mention string
	}{
		{"absolute", []ent{file("/etc/passwd", "x", 0o644)}, "/etc/passwd"},
		{"dotdot", []ent{file("../outside/target", "x", 0o644)}, "../outside/target"},
		{"inner dotdot", []ent{file("a/../../outside/target", "x", 0o644)}, "a/../../outside/target"},
		{"harmless dotdot is refused too", []ent{file("a/../b", "x", 0o644)}, "a/../b"},
		{"absolute symlink", []ent{symlink("etc", "/etc")}, "etc -> /etc"},
		{"symlink up", []ent{symlink("out", "../outside")}, "out -> ../outside"},
		{"deep symlink up", []ent{dir("a/", 0o755), symlink("a/out", "../../outside/target")}, "a/out"},
		{"write through symlink", []ent{dir("d/", 0o755), symlink("l", "d"), file("l/f", "x", 0o644)}, "l/f"},
		{"write through symlink dir entry", []ent{symlink("l", "."), dir("l/x/", 0o755)}, "l/x/"},
		{"link to self then up", []ent{symlink("s", "."), symlink("l", "s/..")}, "symbolic link l"},
		{"link made unsafe by a later entry", []ent{symlink("t", "x"), symlink("l", "t/../.."), symlink("x", "y/z")}, "l"},
		{"dangling link made unsafe later", []ent{symlink("l", "t/.."), symlink("t", ".")}, "symbolic link l"},
		{"symlink loop", []ent{symlink("a", "b"), symlink("b", "a")}, "too many levels"},
		{"hard link up", []ent{hardlink("h", "../outside/target")}, "h -> ../outside/target"},
		{"hard link absolute", []ent{hardlink("h", "/etc/passwd")}, "h -> /etc/passwd"},
		{"hard link through symlink", []ent{symlink("s", "."), file("f", "x", 0o644), hardlink("h", "s/f")}, "s/f"},
		{"hard link to symlink", []ent{dir("a/", 0o755), symlink("a/l", "../f"), hardlink("h", "a/l")}, "not a regular file"},
		{"char device", []ent{{typ: tar.TypeChar, name: "dev/null", mode: 0o666}}, "dev/null"},
		{"block device", []ent{{typ: tar.TypeBlock, name: "dev/sda", mode: 0o666}}, "dev/sda"},
		{"fifo", []ent{{typ: tar.TypeFifo, name: "fifo", mode: 0o666}}, "fifo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSandbox(t)
			src := writeSrc(t, t.TempDir(), "a.tar.gz", tarGz(t, tt.entries...))
			err := Install(t.Context(), src, s.root, "")
			if !errors.Is(err, ErrUnsafe) {
				t.Fatalf("Install = %v, want ErrUnsafe", err)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("error %q does not name %q", err, tt.mention)
			}
			s.checkContained(t)
		})
	}
}

func TestInstallReplacingDirectoryFails(t *testing.T) {
	s := newSandbox(t)
	src := writeSrc(t, t.TempDir(), "a", tarGz(t, dir("d/", 0o755), symlink("d", ".")))
	if err := Install(t.Context(), src, s.root, ""); err == nil {
		t.Error("a symbolic link replaced a directory")
	}
	s.checkContained(t)
}

// FuzzExtract builds a tarball from a small script, one entry per line:
// "<type> <name> <link or content>", type one of f d l h c p, and checks that
// whatever Install does, nothing outside the root is created or changed and
// no link in the root resolves outside it.
func FuzzExtract(f *testing.F) {
	for _, seed := range []string{
		"f a hello\nd b\nl b/c ../a\nh e a",
		"l s .\nl l s/..",
		"l t x\nl l t/../..\nl x y/z",
		"d d\nl l d\nf l/f x",
		"f ../outside/target pwned",
		"l out ../outside\nf out/target pwned",
		"l etc /etc\nf etc/x y",
		"h h ../outside/target",
		"l a .\nl b a/a/a/..\nf b/x y",
		"c dev/null\np fifo",
		"d ./\nf ./x y\nl ./y ./x",
		"l a b\nl b a\nf a/x y",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, script string) {
		var entries []ent
		for _, line := range strings.Split(script, "\n") {
			fields := strings.SplitN(line, " ", 3)
			if len(fields) < 2 || fields[1] == "" {
				continue
			}
			arg := ""
			if len(fields) == 3 {
				arg = fields[2]
			}
			e := ent{name: fields[1], mode: 0o755}
			switch fields[0] {
			case "f":
				e.typ, e.body = tar.TypeReg, arg
			case "d":
				e.typ = tar.TypeDir
			case "l":
				e.typ, e.link = tar.TypeSymlink, arg
			case "h":
				e.typ, e.link = tar.TypeLink, arg
			case "c":
				e.typ = tar.TypeChar
			case "p":
				e.typ = tar.TypeFifo
			default:
				continue
			}
			entries = append(entries, e)
		}
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		tw := tar.NewWriter(zw)
		for _, e := range entries {
			hdr := &tar.Header{Typeflag: e.typ, Name: e.name, Linkname: e.link, Mode: e.mode, Format: tar.FormatPAX}
			if e.typ == tar.TypeReg {
				hdr.Size = int64(len(e.body))
			}
			if tw.WriteHeader(hdr) != nil {
				return // not representable in a tarball
			}
			tw.Write([]byte(e.body))
		}
		tw.Close()
		zw.Close()

		s := newSandbox(t)
		src := writeSrc(t, t.TempDir(), "a", buf.Bytes())
		err := Install(t.Context(), src, s.root, "")
		s.checkContained(t)
		if err == nil {
			// Every link left behind resolves inside, even once its
			// target exists.
			r, rerr := os.OpenRoot(s.root)
			if rerr != nil {
				t.Fatal(rerr)
			}
			defer r.Close()
			filepath.WalkDir(s.root, func(p string, de fs.DirEntry, err error) error {
				if err == nil && de.Type()&fs.ModeSymlink != 0 {
					rel, _ := filepath.Rel(s.root, p)
					if err := resolveInside(r, rel, nil); err != nil {
						t.Errorf("Install accepted link %s: %v", rel, err)
					}
				}
				return nil
			})
		}
	})
}
