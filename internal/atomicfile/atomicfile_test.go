package atomicfile_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/jailkeeper/jailkeeper/internal/atomicfile"
)

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.conf")
	for _, tc := range []struct {
		data string
		mode os.FileMode
	}{
		{"first\n", 0o600},
		{"second\n", 0o644}, // replaces, mode included
	} {
		if err := atomicfile.WriteFile(path, []byte(tc.data), tc.mode); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil || string(b) != tc.data {
			t.Errorf("content %q, %v; want %q", b, err, tc.data)
		}
		if st, err := os.Stat(path); err != nil || st.Mode().Perm() != tc.mode {
			t.Errorf("mode %v, %v; want %v", st.Mode().Perm(), err, tc.mode)
		}
	}
	// A link at path is replaced, its target untouched.
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("target\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.WriteFile(link, []byte("new\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(target); string(b) != "target\n" {
		t.Errorf("wrote through the link: target has %q", b)
	}
	if st, err := os.Lstat(link); err != nil || !st.Mode().IsRegular() {
		t.Errorf("link not replaced by a file: %v %v", st.Mode(), err)
	}
	// Nothing but the targets is left.
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 3 {
		t.Errorf("directory has %d entries, want 3 (x.conf, target, link)", len(entries))
	}
	// A missing directory is an error and leaves nothing.
	if err := atomicfile.WriteFile(filepath.Join(dir, "no", "x"), nil, 0o644); err == nil {
		t.Error("write into a missing directory succeeded")
	}
}
