package process

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jailkeeper/jailkeeper/internal/testenv"
	"github.com/jailkeeper/jailkeeper/release"
)

// killRecorder wraps sysKill for one test (not parallel: it swaps a
// package variable) and records every signal sent.
type killRecorder struct {
	mu    sync.Mutex
	calls []string
}

func recordKills(t *testing.T) *killRecorder {
	t.Helper()
	rec := &killRecorder{}
	real := sysKill
	sysKill = func(pid int, sig syscall.Signal) error {
		rec.mu.Lock()
		rec.calls = append(rec.calls, fmt.Sprintf("kill(%d, %d)", pid, sig))
		rec.mu.Unlock()
		return real(pid, sig)
	}
	t.Cleanup(func() { sysKill = real })
	return rec
}

func (r *killRecorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.calls
	r.calls = nil
	return c
}

// TestProcessStrangerIsNotOurs: a pidfile naming a live process group leader
// (a real sleep in its own session, as a release's command would be) whose
// identity is not the recorded one is not running, and Stop and Destroy
// never signal it. The same pidfile with the right identity is running, and
// Stop does signal it: the check is not just always false.
func TestProcessStrangerIsNotOurs(t *testing.T) {
	ctx := context.Background()
	p, err := New(Config{Root: filepath.Join(t.TempDir(), "releases")})
	if err != nil {
		t.Fatal(err)
	}
	const name = "stranger_0123456789ab_abcdef"
	if _, err := p.Create(ctx, release.Spec{
		Name: name, Service: "stranger", Port: 8080, Command: []string{"/bin/app"},
	}); err != nil {
		t.Fatal(err)
	}
	pidfile := filepath.Join(p.dir(name), pidFile)

	stranger := exec.Command(testenv.Command(t, "sleep"), "1000")
	stranger.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := stranger.Start(); err != nil {
		t.Fatal(err)
	}
	waited := false
	t.Cleanup(func() {
		if !waited {
			stranger.Process.Kill()
			stranger.Wait()
		}
	})
	spid := stranger.Process.Pid
	id, alive, err := identity(spid)
	if err != nil || !alive {
		t.Fatalf("identity(stranger) = %q, %v, %v", id, alive, err)
	}

	forged := []struct{ name, id string }{
		{"start time differs", id + "1"},
		{"never identified", "-"},
	}
	if boot, start, ok := strings.Cut(id, ":"); ok {
		forged = append(forged,
			struct{ name, id string }{"earlier boot", "00000000-0000-0000-0000-000000000000:" + start},
			struct{ name, id string }{"format without boot id", start},
		)
		if boot == "" {
			t.Fatalf("identity %q has an empty boot id", id)
		}
	}
	rec := recordKills(t)
	for _, f := range forged {
		t.Run(f.name, func(t *testing.T) {
			if err := os.WriteFile(pidfile, fmt.Appendf(nil, "%d %s\n", spid, f.id), 0o644); err != nil {
				t.Fatal(err)
			}
			if ok, err := p.Running(ctx, name); err != nil || ok {
				t.Errorf("Running = %v, %v; want false", ok, err)
			}
			rels, err := p.List(ctx)
			if err != nil || len(rels) != 1 || rels[0].Running {
				t.Errorf("List = %+v, %v; want one release, not running", rels, err)
			}
			// Start must not take the stranger for the release and
			// return early: it tries to run /bin/app, which does not exist.
			if err := p.Start(ctx, name); err == nil {
				t.Error("Start was a no-op: it took the stranger for the release")
			}
			if err := os.WriteFile(pidfile, fmt.Appendf(nil, "%d %s\n", spid, f.id), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := p.Stop(ctx, name); err != nil {
				t.Fatal(err)
			}
			if calls := rec.take(); len(calls) != 0 {
				t.Errorf("Stop sent %v to a stranger", calls)
			}
			if _, err := os.Stat(pidfile); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("stale pidfile kept: %v", err)
			}
			if _, alive, err := identity(spid); err != nil || !alive {
				t.Errorf("stranger after Stop: alive %v, %v", alive, err)
			}
		})
	}

	// The real identity: running, and Stop signals the group.
	if err := os.WriteFile(pidfile, fmt.Appendf(nil, "%d %s\n", spid, id), 0o644); err != nil {
		t.Fatal(err)
	}
	if ok, err := p.Running(ctx, name); err != nil || !ok {
		t.Fatalf("Running with the right identity = %v, %v; want true", ok, err)
	}
	if err := p.Stop(ctx, name); err != nil {
		t.Fatal(err)
	}
	calls := rec.take()
	if len(calls) == 0 || calls[0] != fmt.Sprintf("kill(%d, %d)", -spid, syscall.SIGTERM) {
		t.Errorf("Stop sent %v, want SIGTERM to group %d first", calls, spid)
	}
	err = stranger.Wait()
	waited = true
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
		t.Errorf("sleep ended with %v, want SIGTERM", err)
	}
}

// TestProcessDestroyNeverSignalsStranger: Destroy, which stops first, leaves a
// stranger with the recorded PID alone too.
func TestProcessDestroyNeverSignalsStranger(t *testing.T) {
	ctx := context.Background()
	p, err := New(Config{Root: filepath.Join(t.TempDir(), "releases")})
	if err != nil {
		t.Fatal(err)
	}
	const name = "stranger_0123456789ab_fedcba"
	if _, err := p.Create(ctx, release.Spec{Name: name, Service: "stranger", Port: 8080, Command: []string{"/bin/app"}}); err != nil {
		t.Fatal(err)
	}
	stranger := exec.Command(testenv.Command(t, "sleep"), "1000")
	stranger.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := stranger.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stranger.Process.Kill(); stranger.Wait() })
	id, _, err := identity(stranger.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	pidfile := filepath.Join(p.dir(name), pidFile)
	if err := os.WriteFile(pidfile, fmt.Appendf(nil, "%d %s\n", stranger.Process.Pid, id+"7"), 0o644); err != nil {
		t.Fatal(err)
	}
	rec := recordKills(t)
	if err := p.Destroy(ctx, name); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string(nil), rec.take()); diff != "" {
		t.Errorf("Destroy signalled a stranger (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(p.dir(name)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("release directory left: %v", err)
	}
}

// TestProcessIdentityOfSelf: this process has an identity, alive, stable
// from one read to the next, and a child's differs from it.
func TestProcessIdentityOfSelf(t *testing.T) {
	a, alive, err := identity(os.Getpid())
	if err != nil || !alive || a == "" || strings.ContainsAny(a, " \t\n") {
		t.Fatalf("identity(self) = %q, %v, %v", a, alive, err)
	}
	b, _, err := identity(os.Getpid())
	if err != nil || a != b {
		t.Errorf("second read = %q, %v; want %q", b, err, a)
	}
	child := exec.Command(testenv.Command(t, "sleep"), "1000")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	c, alive, err := identity(child.Process.Pid)
	if err != nil || !alive || c == a {
		t.Errorf("identity(child) = %q, %v, %v; want alive and not %q", c, alive, err, a)
	}
	child.Process.Kill()
	child.Wait()
}
