package agent_test

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// `jailkeeper plan` runs in a process of its own, yet prints what the
// daemon does for a spec that the daemon holds back from memory alone: a
// stalled one (checksum mismatch) and one whose fetch backs off (missing
// artifact). It reads that memory from the daemon's /status; with no daemon
// it plans as a freshly started one would, and says so.
func TestE2EPlanShowsDaemonVerdicts(t *testing.T) {
	e := newEnv(t, "@every 1h")
	stop := e.startHello()
	dirs := e.releaseDirs()
	u2, v2sum := e.artifact("v2")
	for _, tc := range []struct {
		name, url, sum, status, plan, then string
	}{
		{"stalled", u2, strings.Repeat("0", 64), "checksum", "hello: stalled hello_", "needs a new commit"},
		// Not a file missing (ErrTransient, retried after 5s, which a
		// slow machine may reach before the second pass): a directory,
		// retried after a minute.
		{"backoff", "file://" + filepath.Join(e.dir, "artifacts"), v2sum, "not a regular file", "hello: backoff hello_", "backing off until"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := strings.Replace(e.helloManifest("hello", "v2", ""), u2, tc.url, 1)
			m = strings.Replace(m, v2sum, tc.sum, 1)
			e.commit("bad artifact "+tc.name, map[string]string{"services/hello.yaml": m})
			e.sync()
			e.waitFor("error in status", 30*time.Second, func() bool {
				s, ok := e.serviceStatus("hello")
				return ok && strings.Contains(s.Message, tc.status)
			})
			stdout, stderr := e.plan()
			t.Logf("plan:\n%s%s", stdout, stderr)
			if !strings.Contains(stdout, tc.plan) || strings.Contains(stdout, "hello: deploy") {
				t.Errorf("plan does not show %q:\n%s%s", tc.plan, stdout, stderr)
			}
			// The daemon does what plan printed: its next pass neither
			// fetches nor creates, and says why.
			passes := e.passes()
			e.sync()
			e.waitFor("another pass", 30*time.Second, func() bool { return e.passes() > passes })
			st := e.status()
			if len(st.Memory.CreateFailures) == 0 || st.Memory.CreateFailures[len(st.Memory.CreateFailures)-1].Failures != 1 {
				t.Errorf("the daemon tried again: %+v", st.Memory.CreateFailures)
			}
			if s, _ := e.serviceStatus("hello"); !strings.Contains(s.Message, tc.then) {
				t.Errorf("status message %q, want %q", s.Message, tc.then)
			}
			if got := e.releaseDirs(); strings.Join(got, ",") != strings.Join(dirs, ",") {
				t.Errorf("release dirs %v -> %v", dirs, got)
			}
			if v := e.version("hello"); v != "v1" {
				t.Errorf("serving %q, want v1", v)
			}
		})
	}
	// Without a daemon its memory is gone: a daemon started now would try
	// the fetch again, and plan says both.
	stop()
	stdout, stderr := e.plan()
	if !strings.Contains(stdout, "hello: deploy hello_") || !strings.Contains(stderr, "no agent answers") {
		t.Errorf("plan without a daemon:\n%s%s", stdout, stderr)
	}
}

// plan runs `jailkeeper plan` and returns its stdout and stderr.
func (e *env) plan() (string, string) {
	e.t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(filepath.Join(e.bin, "jailkeeper"), "plan", "--config", e.cfgPath)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		e.t.Fatalf("jailkeeper plan: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	return stdout.String(), stderr.String()
}

// passes is the number of passes the agent has finished, from /metrics.
func (e *env) passes() int {
	e.t.Helper()
	b, err := e.agentGet("/metrics")
	if err != nil {
		e.t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "jailkeeper_reconcile_total{") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			e.t.Fatalf("metrics line %q: %v", line, err)
		}
		n += int(v)
	}
	return n
}
