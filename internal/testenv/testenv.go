package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// CI reports whether the tests run in CI, where nothing may be skipped.
func CI() bool { return os.Getenv("CI") == "true" }

// Need fails the test in CI and skips it elsewhere.
func Need(t testing.TB, format string, args ...any) {
	t.Helper()
	if CI() {
		t.Fatalf("missing in CI: "+format, args...)
	}
	t.Skipf("skipped: "+format, args...)
}

// Command returns the path of a program on PATH or calls Need.
func Command(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Need(t, "%s not on PATH (make test installs it)", name)
	}
	return p
}

// Root calls Need unless the test runs as root.
func Root(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Need(t, "needs root")
	}
}

// RepoRoot is the top of the jailkeeper checkout.
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("testenv: no caller information")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Caddy returns the pinned Caddy binary that `make tools` builds into bin/,
// or $JAILKEEPER_CADDY when set.
func Caddy(t testing.TB) string {
	t.Helper()
	p := os.Getenv("JAILKEEPER_CADDY")
	if p == "" {
		p = filepath.Join(RepoRoot(t), "bin", "caddy")
	}
	if _, err := os.Stat(p); err != nil {
		Need(t, "caddy binary %s: %v (run make tools)", p, err)
	}
	return p
}
