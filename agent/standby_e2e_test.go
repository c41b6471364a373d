package agent_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/agent"
	"github.com/jailkeeper/jailkeeper/reconcile"
)

// Hot standby, for real: the release a deploy replaced keeps running for
// the manifest's standby, and a git revert within it goes live with one
// probe and one route switch, under load, losing no request. Once the
// standby has passed the agent stops it by itself (the poll here is
// hourly: only the pass asked for at the standby's end can), and a revert
// then starts the release and gates it as before.
func TestE2EStandbyRevert(t *testing.T) {
	e := newEnv(t, "@every 1h")
	const standby = "standby: 12s\n"
	e.commit("add hello", map[string]string{"services/hello.yaml": e.helloManifest("hello", "v1", standby)})
	e.runAgent()
	e.waitVersion("hello", "v1", 60*time.Second)
	v1 := e.releaseIn("hello", "live")

	e.commit("hello v2", map[string]string{"services/hello.yaml": e.helloManifest("hello", "v2", standby)})
	e.sync()
	e.waitVersion("hello", "v2", 60*time.Second)
	sb := e.waitStandby("hello", v1, 30*time.Second)
	v2 := e.releaseIn("hello", "live")
	if n := e.helloProcesses(); n != 2 {
		t.Errorf("hello processes = %d with %s on standby, want 2", n, v1)
	}
	if got := e.metric(`jailkeeper_releases{service="hello",state="standby"}`); got != "1" {
		t.Errorf(`releases{state="standby"} = %q, want 1`, got)
	}
	if out, _ := e.plan(); !strings.Contains(out, v1+" on standby until "+sb.StandbyUntil.UTC().Format(time.RFC3339)) {
		t.Errorf("plan does not show the standby's end:\n%s", out)
	}

	// The revert, planned and then done, under load. waitStandby asked for
	// passes: one may still be pending, held back by the least time
	// between two polls. Let it run first, or it would find the revert
	// before the timed sync does.
	settle := func() { time.Sleep(2*agent.DefaultMinPoll + 200*time.Millisecond) }
	settle()
	e.git(e.work, "revert", "--no-edit", "HEAD")
	e.git(e.work, "push", "-q", "origin", "main")
	if out, _ := e.plan(); !strings.Contains(out, "hello: rollback "+v1+" (standby: one probe, one route switch)") {
		t.Errorf("plan does not show a rollback to the standby release:\n%s", out)
	}
	pid := e.pidOf(v1)
	stopLoad := e.load("hello", 4)
	start := time.Now()
	e.sync()
	e.waitVersion("hello", "v1", 30*time.Second)
	hot := time.Since(start)
	// Through the watch and drain, until v2 is on standby in turn.
	e.waitStandby("hello", v2, 30*time.Second)
	ok, failed, last := stopLoad()
	hotPhases := e.lastDeploy("hello")
	t.Logf("revert within standby: sync to serving v1 %s; phases %v; %d requests ok, %d failed",
		hot.Round(time.Millisecond), hotPhases, ok, failed)
	if failed != 0 {
		t.Errorf("revert within standby lost %d requests (last: %s)", failed, last)
	}
	if ok < 50 {
		t.Errorf("only %d requests went through; the load did not run", ok)
	}
	if got := e.pidOf(v1); got != pid {
		t.Errorf("%s runs as %q after the revert, was %q: the standby release was restarted", v1, got, pid)
	}

	// After its standby the agent stops v2 by itself and retires it.
	e.waitFor("v2 stopped after its standby", 60*time.Second, func() bool { return e.helloProcesses() == 1 })
	e.waitFor("v2 retired", 30*time.Second, func() bool { return e.releaseState(v2) == "retired" })
	// /status is the last pass's: the one that stopped v2 ends soon.
	e.waitFor("no standby in status", 30*time.Second, func() bool { return e.serviceRow("hello").Standby == "" })
	if got := e.metric(`jailkeeper_releases{service="hello",state="standby"}`); got != "0" {
		t.Errorf(`releases{state="standby"} = %q after the standby, want 0`, got)
	}

	// A revert now starts v2 and gates it, as before standby existed.
	settle()
	e.git(e.work, "revert", "--no-edit", "HEAD")
	e.git(e.work, "push", "-q", "origin", "main")
	start = time.Now()
	e.sync()
	e.waitVersion("hello", "v2", 60*time.Second)
	cold := time.Since(start)
	e.waitFor("deploy of v2 recorded", 30*time.Second, func() bool {
		return e.serviceRow("hello").LastDeploy != nil && e.serviceRow("hello").LastDeploy.Release == v2
	})
	coldPhases := e.lastDeploy("hello")
	t.Logf("revert after standby: sync to serving v2 %s; phases %v", cold.Round(time.Millisecond), coldPhases)
	if _, ok := coldPhases["start"]; !ok {
		t.Errorf("revert after standby has no start phase: %v", coldPhases)
	}
}

// pidOf is the pid the process runtime's pidfile of name records.
func (e *env) pidOf(name string) string {
	e.t.Helper()
	b, err := os.ReadFile(filepath.Join(e.stateDir, "releases", name, "pid"))
	if err != nil {
		e.t.Fatal(err)
	}
	pid, _, _ := strings.Cut(string(b), " ")
	return pid
}

// releaseIn waits until one of svc's releases is in state (its
// release.json: a switched-to release is stored live only once its watch
// has passed) and returns its name.
func (e *env) releaseIn(svc, state string) string {
	e.t.Helper()
	var name string
	e.waitFor(svc+" release "+state, 30*time.Second, func() bool {
		for _, d := range e.releaseDirs() {
			if strings.HasPrefix(d, svc+"_") && e.releaseState(d) == state {
				name = d
				return true
			}
		}
		return false
	})
	return name
}

// releaseState is the state release.json of name stores.
func (e *env) releaseState(name string) string {
	b, err := os.ReadFile(filepath.Join(e.stateDir, "releases", name, "release.json"))
	if err != nil {
		return ""
	}
	var r struct{ State string }
	_ = json.Unmarshal(b, &r)
	return r.State
}

// serviceRow is svc's row of /status.
func (e *env) serviceRow(svc string) reconcile.ServiceStatus {
	e.t.Helper()
	for _, s := range e.status().Services {
		if s.Service == svc {
			return s
		}
	}
	return reconcile.ServiceStatus{}
}

// waitStandby waits until /status shows name on standby for svc and
// release.json agrees.
func (e *env) waitStandby(svc, name string, timeout time.Duration) reconcile.ServiceStatus {
	e.t.Helper()
	var s reconcile.ServiceStatus
	e.waitFor(name+" on standby", timeout, func() bool {
		e.sync() // the status is the last pass's
		s = e.serviceRow(svc)
		return s.Standby == name && e.releaseState(name) == "standby"
	})
	return s
}

// lastDeploy is svc's last deploy's phases from /status, in seconds.
func (e *env) lastDeploy(svc string) map[reconcile.Phase]float64 {
	e.t.Helper()
	if ld := e.serviceRow(svc).LastDeploy; ld != nil {
		return ld.Phases
	}
	return nil
}

// metric is the value of one series on /metrics, "" when absent.
func (e *env) metric(series string) string {
	e.t.Helper()
	b, err := e.agentGet("/metrics")
	if err != nil {
		e.t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}
