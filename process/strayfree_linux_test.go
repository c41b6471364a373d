package process

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/internal/testenv"
	"github.com/jailkeeper/jailkeeper/release"
)

// Start looks for strays only when one can exist (issue 11): not after
// this Runtime's Create, nor after its Stop (which looked); it does after
// the app died on its own, and kills the child it left. Not parallel: it
// swaps scanStrays.
func TestStartScansForStraysOnlyWhenOneCanExist(t *testing.T) {
	ctx := context.Background()
	sh, err := exec.LookPath("sh")
	if err != nil {
		testenv.Need(t, "sh: %v", err)
	}
	if sh, err = filepath.EvalSymlinks(sh); err != nil {
		t.Fatal(err)
	}
	tmpl := t.TempDir()
	b, err := os.ReadFile(sh)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(tmpl, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmpl, "bin/sh"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	pool := netip.PrefixFrom(netip.AddrFrom4([4]byte{127, 77, byte(128 + rand.IntN(128)), 0}), 24)
	p, err := New(Config{Root: filepath.Join(t.TempDir(), "releases"), Template: tmpl, Pool: pool})
	if err != nil {
		t.Fatal(err)
	}
	var scans atomic.Int32
	real := scanStrays
	scanStrays = func(root, addr string) []int { scans.Add(1); return real(root, addr) }
	t.Cleanup(func() { scanStrays = real })

	// The first run leaves a child and exits; later runs serve (sleep).
	spec := release.Spec{Name: "shell_" + strings.Repeat("12", 6) + "_" + strings.Repeat("34", 3), Service: "shell",
		SHA: strings.Repeat("12", 20), Spec: strings.Repeat("34", 32), Port: 20000 + rand.IntN(20000),
		Command: []string{"/bin/sh", "-c", "if [ -e ../ran ]; then exec sleep 60; fi; touch ../ran; sleep 60 & echo $! > ../child"}}
	r, err := p.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Destroy(context.Background(), r.Name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	// scansBy returns how many times fn looked for strays.
	scansBy := func(what string, fn func(context.Context, string) error) int32 {
		t.Helper()
		scans.Store(0)
		if err := fn(ctx, r.Name); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return scans.Load()
	}

	if n := scansBy("Start", p.Start); n != 0 {
		t.Errorf("Start after Create looked for strays %d times, want 0", n)
	}
	var child int
	waitUntil(t, "the app to exit, leaving its child", func() bool {
		b, err := os.ReadFile(filepath.Join(p.dir(r.Name), "child"))
		running, rerr := p.running(r.Name)
		if err != nil || rerr != nil || running {
			return false
		}
		child, err = parsePID(b)
		return err == nil
	})
	t.Cleanup(func() { signalGroup(child, 9); sysKill(child, 9) })
	// Killing strays looks again until they are gone: at least once.
	if n := scansBy("Start", p.Start); n < 1 {
		t.Errorf("Start after the app died on its own looked for strays %d times, want at least 1", n)
	}
	if _, alive, err := identity(child); err == nil && alive {
		t.Errorf("the child %d the app left runs on after Start", child)
	}
	for _, c := range []struct {
		what string
		fn   func(context.Context, string) error
		want int32
	}{
		{"Stop", p.Stop, 1},
		{"Start after Stop", p.Start, 0},
		{"Stop again", p.Stop, 1},
	} {
		if n := scansBy(c.what, c.fn); n != c.want {
			t.Errorf("%s looked for strays %d times, want %d", c.what, n, c.want)
		}
	}
}

func parsePID(b []byte) (int, error) {
	var pid int
	_, err := fmt.Sscan(strings.TrimSpace(string(b)), &pid)
	return pid, err
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
