package agent_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// control is the agent's control socket in this env.
func (e *env) control() string { return filepath.Join(e.dir, "ctl.sock") }

// jk runs the jailkeeper binary with args and --config, and returns its
// stdout; a failure fails the test.
func (e *env) jk(args ...string) string {
	e.t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(filepath.Join(e.bin, "jailkeeper"), append(args, "--config", e.cfgPath)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		e.t.Fatalf("jailkeeper %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// suspended is jailkeeper_service_suspended{service=svc} from /metrics.
func (e *env) suspended(svc string) string {
	e.t.Helper()
	b, err := e.agentGet("/metrics")
	if err != nil {
		e.t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, `jailkeeper_service_suspended{service="`+svc+`"} `); ok {
			return v
		}
	}
	return "absent"
}

// TestE2ESuspendAndWindows: the process runtime, a real Caddy and a real
// deploy repo. A suspended service keeps serving its live release through
// a new commit and an agent restart; plan, status and metrics say it is
// suspended; resumed, it deploys. A service outside its allow window waits
// for it, and status and plan say until when.
func TestE2ESuspendAndWindows(t *testing.T) {
	e := newEnv(t, "@every 1h")
	// The only allow window of service later: the first minute of a year.
	e.appendConfig(`windows: [{kind: allow, schedule: "CRON_TZ=UTC 0 0 1 1 *", duration: 1m, services: [later]}]` + "\n")
	stop := e.startHello()
	dirs := e.releaseDirs()

	info, err := os.Lstat(e.control())
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Type() != os.ModeSocket || info.Mode().Perm() != 0o600 {
		t.Errorf("control socket mode %v, want a socket with 0600", info.Mode())
	}

	out := e.jk("suspend", "hello", "--reason", "incident 42")
	if !strings.Contains(out, "hello suspended since") || !strings.Contains(out, "incident 42") {
		t.Errorf("suspend said %q", out)
	}
	// The pass that deployed v1 may still be in its watch: the suspend
	// shows from the pass after it.
	e.waitFor("hello suspended in status", 30*time.Second, func() bool {
		s, _ := e.serviceStatus("hello")
		return s.State == "suspended" && strings.Contains(s.Message, "incident 42")
	})
	if v := e.suspended("hello"); v != "1" {
		t.Errorf("jailkeeper_service_suspended{hello} = %s, want 1", v)
	}

	rev := e.commit("hello v2, later v1", map[string]string{
		"services/hello.yaml": e.helloManifest("hello", "v2", ""),
		"services/later.yaml": e.helloManifest("later", "v1", ""),
	})
	e.sync()
	e.waitFor("a pass of "+rev, 30*time.Second, func() bool { return e.status().Revision == rev })
	check := func(when string) {
		t.Helper()
		st := e.status()
		if st.Revision != rev {
			t.Fatalf("%s: revision %s, want %s", when, st.Revision, rev)
		}
		if v := e.version("hello"); v != "v1" {
			t.Errorf("%s: hello serves %q, want v1", when, v)
		}
		if got := e.releaseDirs(); !slices.Equal(got, dirs) {
			t.Errorf("%s: release dirs %v, want %v (nothing created)", when, got, dirs)
		}
		s, _ := e.serviceStatus("hello")
		if s.State != "suspended" || !strings.Contains(s.Message, "incident 42") || s.LiveSHA != helloSHA("hello", "v1") {
			t.Errorf("%s: status of hello = %+v, want suspended with v1 live", when, s)
		}
		l, _ := e.serviceStatus("later")
		year := time.Now().UTC().Year() + 1
		want := "waiting for window until " + time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC).Format(time.RFC3339)
		if l.State != "waiting" || !strings.HasPrefix(l.Message, want) {
			t.Errorf("%s: status of later = %+v, want %q", when, l, want)
		}
		plan, _ := e.plan()
		t.Logf("%s: plan:\n%s", when, plan)
		if !strings.Contains(plan, "hello: suspended hello_") || !strings.Contains(plan, "incident 42") ||
			!strings.Contains(plan, "later: wait later_") || !strings.Contains(plan, want) {
			t.Errorf("%s: plan:\n%s", when, plan)
		}
		status := e.jk("status")
		t.Logf("%s: status:\n%s", when, status)
		if !strings.Contains(status, "suspended") || !strings.Contains(status, want) {
			t.Errorf("%s: jailkeeper status:\n%s", when, status)
		}
		if v := e.suspended("hello"); v != "1" {
			t.Errorf("%s: jailkeeper_service_suspended{hello} = %s, want 1", when, v)
		}
		if v := e.suspended("later"); v != "0" {
			t.Errorf("%s: jailkeeper_service_suspended{later} = %s, want 0", when, v)
		}
	}
	check("suspended")

	// A restart forgets nothing.
	stop()
	if _, err := os.Lstat(e.control()); !os.IsNotExist(err) {
		t.Errorf("control socket left after the agent stopped: %v", err)
	}
	e.runAgent()
	e.waitFor("a pass after the restart", 30*time.Second, func() bool { return e.passes() > 0 })
	check("after a restart")

	out = e.jk("resume", "hello")
	if !strings.Contains(out, "hello resumed") {
		t.Errorf("resume said %q", out)
	}
	e.waitVersion("hello", "v2", 60*time.Second)
	e.waitFor("hello converged", 30*time.Second, func() bool {
		s, _ := e.serviceStatus("hello")
		return s.Converged && s.State == "live"
	})
	if v := e.suspended("hello"); v != "0" {
		t.Errorf("after resume jailkeeper_service_suspended{hello} = %s, want 0", v)
	}
	if out := e.jk("resume", "hello"); !strings.Contains(out, "hello was not suspended") {
		t.Errorf("second resume said %q", out)
	}
}
