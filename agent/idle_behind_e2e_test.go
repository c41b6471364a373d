package agent_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/caddy"
)

// An idle agent reads what it wrote from its caches (issue 11), and still
// sees what changed behind its back: an upstream file edited in place is
// put back within caddy.UpstreamRounds passes, and a release process that
// dies is seen by the first pass after it died and started again.
func TestE2EIdleSeesChangesBehindItsBack(t *testing.T) {
	f := newFleet(t, 2, "@every 1h", "{path: /up, interval: 100ms, timeout: 1s, threshold: 2, deadline: 30s, watch: 300ms}", "")
	rev := f.commitAll("fleet v1", "v1", "")
	f.runAgent()
	f.waitConverged(rev, time.Now(), 2*time.Minute)
	f.passesAfter(f.passes())
	f.quiet()

	// Someone edits an upstream file in place: the directory does not
	// change, so only the file's turn (UpstreamRounds) shows it.
	file := filepath.Join(f.stateDir, "upstreams", f.names[0])
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte("127.0.0.1:9\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	restored := func() bool {
		b, err := os.ReadFile(file)
		return err == nil && bytes.Equal(b, want)
	}
	passes := 0
	for ; passes <= caddy.UpstreamRounds && !restored(); passes++ {
		f.passesAfter(f.passes())
	}
	f.quiet() // a step of the last pass may still write it
	if !restored() {
		t.Fatalf("an upstream file edited in place not put back after %d passes", passes)
	}
	t.Logf("upstream file edited in place put back after %d passes", passes)

	// A release process dies: the first pass after it was reaped sees it
	// (its status says not converged, or it runs again already).
	s, ok := f.serviceStatus(f.names[1])
	if !ok || !s.Converged {
		t.Fatalf("%s: %+v, want converged", f.names[1], s)
	}
	pidfile := filepath.Join(f.stateDir, "releases", s.LiveRelease, "pid")
	before, err := os.ReadFile(pidfile)
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	if _, err := fmt.Sscan(string(before), &pid); err != nil {
		t.Fatalf("pidfile %q: %v", before, err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Reaped by the agent, its parent: gone from /proc.
	f.waitFor("the killed process reaped", 30*time.Second, func() bool {
		_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
		return err != nil
	})
	f.passesAfter(f.passes())
	now, _ := os.ReadFile(pidfile)
	if s, _ := f.serviceStatus(f.names[1]); s.Converged && bytes.Equal(now, before) {
		t.Errorf("the pass after %s's process died: %+v, pidfile unchanged; want it seen", f.names[1], s)
	}
	f.waitFor(f.names[1]+" running again", time.Minute, func() bool {
		now, _ := os.ReadFile(pidfile)
		s, _ := f.serviceStatus(f.names[1])
		return s.Converged && len(now) > 0 && !bytes.Equal(now, before)
	})
}
