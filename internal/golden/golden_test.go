package golden

import (
	"os"
	"path/filepath"
	"testing"
)

// recorder is a testing.TB that records failures instead of failing.
type recorder struct {
	testing.TB
	failed bool
}

func (r *recorder) Helper()               {}
func (r *recorder) Errorf(string, ...any) { r.failed = true }
func (r *recorder) Fatalf(string, ...any) { r.failed = true; panic(r) }
func (r *recorder) Fatal(...any)          { r.failed = true; panic(r) }
func run(t *testing.T, path string, got string) (failed bool) {
	t.Helper()
	r := &recorder{TB: t}
	defer func() {
		if p := recover(); p != nil && p != r {
			panic(p)
		}
		failed = r.failed
	}()
	Assert(r, path, []byte(got))
	return r.failed
}

func TestAssert(t *testing.T) {
	if Update() {
		t.Skip("meaningless with -update")
	}
	path := filepath.Join(t.TempDir(), "x.txt")
	if !run(t, path, "a\n") {
		t.Error("a missing golden file passed")
	}
	if err := os.WriteFile(path, []byte("a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if run(t, path, "a\n") {
		t.Error("equal content failed")
	}
	if !run(t, path, "b\n") {
		t.Error("different content passed")
	}
	*update = true
	defer func() { *update = false }()
	sub := filepath.Join(t.TempDir(), "new", "y.txt")
	if run(t, sub, "c\n") {
		t.Error("-update failed")
	}
	if b, err := os.ReadFile(sub); err != nil || string(b) != "c\n" {
		t.Errorf("-update wrote %q, %v", b, err)
	}
}
