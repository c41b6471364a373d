package atomicfile_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/jailkeeper/jailkeeper/internal/atomicfile"
)

// Both writes replace alike; WriteFileUnsynced only skips the fsync,
// which no test can see.
func TestWriteFile(t *testing.T) {
	for name, write := range map[string]func(string, []byte, os.FileMode) error{
		"WriteFile":         atomicfile.WriteFile,
		"WriteFileUnsynced": atomicfile.WriteFileUnsynced,
	} {
		t.Run(name, func(t *testing.T) { testWriteFile(t, write) })
	}
}

func testWriteFile(t *testing.T, write func(string, []byte, os.FileMode) error) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.conf")
	for _, tc := range []struct {
		data string
		mode os.FileMode
	}{
		{"first\n", 0o600},
		{"second\n", 0o644}, // replaces, mode included
	} {
		if err := write(path, []byte(tc.data), tc.mode); err != nil {
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
	if err := write(link, []byte("new\n"), 0o644); err != nil {
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
	if err := write(filepath.Join(dir, "no", "x"), nil, 0o644); err == nil {
		t.Error("write into a missing directory succeeded")
	}
}
