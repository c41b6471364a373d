package agent_test

import (
	"bytes"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// outBuffer collects a child's output while the test reads it.
type outBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (o *outBuffer) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

func (o *outBuffer) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// runJK runs the built jailkeeper with args and the env's config, as
// an operator would on the host, and returns its stdout, stderr and exit
// code.
func (e *env) runJK(args ...string) (stdout, stderr string, code int) {
	e.t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(filepath.Join(e.bin, "jailkeeper"), append(args[:1:1], append([]string{"--config", e.cfgPath}, args[1:]...)...)...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		e.t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// waitLive waits until the agent's status shows svc converged on a live
// release other than not, and returns it.
func (e *env) waitLive(svc, not string) (s struct {
	Service, DesiredSHA, LiveSHA, LiveRelease, State, Message string
	Converged                                                 bool
}) {
	e.t.Helper()
	e.waitFor(svc+" converged on a new live release", 30*time.Second, func() bool {
		var ok bool
		s, ok = e.serviceStatus(svc)
		return ok && s.Converged && s.State == "live" && s.LiveRelease != "" && s.LiveRelease != not
	})
	return s
}

// `jailkeeper logs hello -f` runs while v2 is deployed: it prints v1's
// log, then the switch marker naming v2's release, then v2's log. `logs
// --release` still reads v1's, and `exec` runs in the live release with its
// environment.
func TestE2ELogsFollowSwitchAndExec(t *testing.T) {
	e := newEnv(t, "@every 1s")
	e.startHello()
	v1 := e.waitLive("hello", "")

	var out, errb outBuffer
	follow := exec.Command(filepath.Join(e.bin, "jailkeeper"), "logs", "--config", e.cfgPath, "hello", "-f")
	follow.Stdout, follow.Stderr = &out, &errb
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	waited := false
	t.Cleanup(func() {
		if !waited {
			follow.Process.Kill()
			follow.Wait()
		}
	})
	e.waitFor("v1's log line from logs -f", 30*time.Second, func() bool {
		return strings.Contains(out.String(), "hello v1 listening on ")
	})

	e.commit("hello v2", map[string]string{"services/hello.yaml": e.helloManifest("hello", "v2", "")})
	e.sync()
	e.waitVersion("hello", "v2", 60*time.Second)
	v2 := e.waitLive("hello", v1.LiveRelease)
	marker := "==> now following " + v2.LiveRelease + "\n"
	e.waitFor("the switch marker and v2's log line", 30*time.Second, func() bool {
		s := out.String()
		i := strings.Index(s, marker)
		return i >= 0 && strings.Contains(s[i:], "hello v2 listening on ")
	})
	if err := follow.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err := follow.Wait()
	waited = true
	got := out.String()
	t.Logf("logs -f printed:\n%s", got)
	if err != nil {
		t.Errorf("logs -f after SIGINT: %v (stderr %q), want exit 0", err, errb.String())
	}
	i := strings.Index(got, marker)
	if before := got[:i]; !strings.Contains(before, "hello v1 listening on ") || strings.Contains(before, "hello v2") {
		t.Errorf("before the marker, want v1's lines only:\n%s", got)
	}
	if after := got[i+len(marker):]; strings.Contains(after, "hello v1") {
		t.Errorf("v1's lines after the marker:\n%s", got)
	}
	if strings.Count(got, "==> now following") != 1 {
		t.Errorf("want one switch marker:\n%s", got)
	}

	// The previous release's log, by name, whatever its state.
	stdout, stderr, code := e.runJK("logs", "hello", "--release", v1.LiveRelease)
	if code != 0 || !strings.Contains(stdout, "hello v1 listening on ") || strings.Contains(stdout, "hello v2") {
		t.Errorf("logs --release %s: exit %d, stdout %q, stderr %q", v1.LiveRelease, code, stdout, stderr)
	}
	if stdout, _, code := e.runJK("logs", "hello", "--release", v1.LiveRelease, "-n", "1"); code != 0 || strings.Count(stdout, "\n") != 1 {
		t.Errorf("logs -n 1: exit %d, stdout %q, want one line", code, stdout)
	}
	if _, stderr, code := e.runJK("logs", "hello", "--release", "other_1ff9738b482d_57fbab"); code != 2 {
		t.Errorf("logs --release of another service: exit %d (%s), want 2", code, stderr)
	}
	if _, stderr, code := e.runJK("logs", "hello", "-f", "--release", "hello_000000000000_000000"); code != 1 || !strings.Contains(stderr, "not found") {
		t.Errorf("logs -f --release of no release: exit %d (%s), want 1 and not found", code, stderr)
	}
	if _, stderr, code := e.runJK("logs", "hello", "--console"); code != 2 || !strings.Contains(stderr, "no console log") {
		t.Errorf("logs --console on the process runtime: exit %d (%s), want 2", code, stderr)
	}

	// exec runs in the live release with its environment: the address it
	// prints answers with v2.
	stdout, stderr, code = e.runJK("exec", "hello", "--", "sh", "-c", "echo $ADDR")
	addr := strings.TrimSpace(stdout)
	if code != 0 || addr == "" {
		t.Fatalf("exec hello -- sh -c 'echo $ADDR': exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	resp, err := http.Get("http://" + addr + "/version")
	if err != nil {
		t.Fatalf("GET the address exec printed (%s): %v", addr, err)
	}
	body := new(bytes.Buffer)
	body.ReadFrom(resp.Body)
	resp.Body.Close()
	if body.String() != "v2" {
		t.Errorf("the address exec printed serves %q, want v2", body.String())
	}
	// The command's exit status is jailkeeper's.
	if _, _, code := e.runJK("exec", "hello", "--", "sh", "-c", "exit 7"); code != 7 {
		t.Errorf("exec of exit 7: jailkeeper exited %d", code)
	}
	// --root needs policy.root_exec, which this config does not set.
	if _, stderr, code := e.runJK("exec", "hello", "--root", "--", "id"); code != 2 || !strings.Contains(stderr, "root_exec") {
		t.Errorf("exec --root without policy: exit %d, stderr %q, want 2 naming root_exec", code, stderr)
	}
	if _, err := os.Stat(e.cfgPath); err != nil {
		t.Fatal(err)
	}
}
