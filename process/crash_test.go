//go:build linux

package process_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/jailkeeper/jailkeeper/internal/crashpoint"
	"github.com/jailkeeper/jailkeeper/process"
)

// TestProcessStartKilledAfterFork: an agent killed between the fork of a
// release's process and its pidfile leaves a process no pidfile names,
// holding the release's address. The next agent's Start must not start a
// second one beside it (that one dies on "address already in use", and a
// good release reads as failed), and Stop must not leave it running.
func TestProcessStartKilledAfterFork(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "releases")
	p := newProcess(t, process.Config{Root: root})
	spec := helloSpec(t, nil)
	r := create(t, p, spec)
	t.Cleanup(func() { killUnder(filepath.Join(root, spec.Name)) })

	agent := exec.Command(os.Args[0], "-test.run=^$")
	agent.Env = append(os.Environ(), helperEnv+"="+root+":"+spec.Name, crashpoint.EnvVar+"=process.start.forked")
	err := agent.Run()
	var ee *exec.ExitError
	if ws, ok := exitStatus(err, &ee); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("agent process ended with %v, want SIGKILL at process.start.forked", err)
	}
	waitFor(t, "the orphan's /up", func() bool { code, _, err := get("http://" + r.Addr() + "/up"); return err == nil && code == 200 })

	p2 := newProcess(t, process.Config{Root: root})
	if err := p2.Start(ctx, spec.Name); err != nil {
		t.Fatal(err)
	}
	waitUp(t, p2, r)
	if n := len(pidsUnder(filepath.Join(root, spec.Name))); n != 1 {
		t.Errorf("%d processes of %s after Start, want 1", n, spec.Name)
	}
	if !running(t, p2, spec.Name) {
		t.Errorf("%s not running after Start; log:\n%s", spec.Name, readLog(t, p2, spec.Name))
	}
	if err := p2.Stop(ctx, spec.Name); err != nil {
		t.Fatal(err)
	}
	if pids := pidsUnder(filepath.Join(root, spec.Name)); len(pids) != 0 {
		t.Errorf("processes %v of %s left after Stop", pids, spec.Name)
	}
}

func exitStatus(err error, ee **exec.ExitError) (syscall.WaitStatus, bool) {
	if !errors.As(err, ee) {
		return 0, false
	}
	ws, ok := (*ee).Sys().(syscall.WaitStatus)
	return ws, ok
}

// pidsUnder lists the processes whose executable lives below dir.
func pidsUnder(dir string) []string {
	var out []string
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		exe, err := os.Readlink(filepath.Join("/proc", p.Name(), "exe"))
		if err == nil && strings.HasPrefix(exe, dir+"/") {
			out = append(out, p.Name())
		}
	}
	return out
}

func killUnder(dir string) {
	for _, s := range pidsUnder(dir) {
		var pid int
		for _, c := range s {
			pid = pid*10 + int(c-'0')
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}
