package agent_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/internal/crashpoint"
)

// Issue 10, item 5: Caddy restarted without --resume in the middle of a
// pass, between the gate of v2 and its switch: everything set through
// the admin API is gone, jailkeeper's server and routes included. The
// switch that follows re-creates the server and the route, with no new
// commit; v2 goes live and converges, v1 is retired, and nothing is
// leaked, doubled or marked failed. Requests are sent the whole time;
// those that fail while Caddy is down, and until the route is back, are
// the restart's and are counted apart; none may fail before the restart
// or after v2 serves.
func TestE2ECaddyRestartedMidPass(t *testing.T) {
	e := newEnv(t, "@every 1s")
	good := func(v string) map[string]string {
		return map[string]string{"services/hello.yaml": strings.Replace(e.helloManifest("hello", v, ""), "drain: 1s", "drain: 200ms", 1)}
	}
	e.commit("hello v1", good("v1"))
	e.runAgent()
	e.waitFor("v1 settled", 60*time.Second, func() bool { return e.settledFor(map[string]string{"hello": "v1"}, "") == nil })
	rels := len(e.releaseDirs())

	// The agent runs in this process: the point, armed here, hands the
	// deploy over to the test between its gate and its switch.
	reached, resume := make(chan struct{}), make(chan struct{})
	var once, resumeOnce sync.Once
	disarm := crashpoint.Arm("reconcile.gate.after", func(string) {
		once.Do(func() { close(reached); <-resume })
	})
	// Cleanups run last first: this one before the agent's stop, which
	// would wait for the held deploy forever on a Fatal.
	t.Cleanup(func() { resumeOnce.Do(func() { close(resume) }); disarm() })
	load := startLoad(e, 4)
	defer load.stop()
	e.commit("hello v2", good("v2"))
	e.sync()
	select {
	case <-reached:
	case <-time.After(60 * time.Second):
		t.Fatal("the deploy of v2 never passed its gate")
	}
	restartAt := time.Now()
	e.caddy.Restart(t)
	// Gone: a 400 ("invalid traversal path" below a missing http app) or
	// null.
	if r := e.caddy.Do(t, "GET", "/config/apps/http/servers/jailkeeper", ""); r.Status == 200 && strings.TrimSpace(r.Body) != "null" {
		t.Fatalf("Caddy kept jailkeeper's server across a restart without --resume: %s", r.Body)
	}
	resumeOnce.Do(func() { close(resume) })
	e.waitVersion("hello", "v2", 60*time.Second)
	backAt := time.Now()
	e.waitFor("v2 settled", 60*time.Second, func() bool { return e.settledFor(map[string]string{"hello": "v2"}, "") == nil })
	e.checkPathInvariants(t, map[string]string{"hello": "v2"}, nil)
	if n := len(e.releaseDirs()); n != rels+1 {
		t.Errorf("%d release directories, want %d (v1 retained, v2)", n, rels+1)
	}
	time.Sleep(500 * time.Millisecond) // requests to v2 after it serves
	ok, bad, errs, failures := load.stop()
	during := 0
	for _, f := range failures {
		if !f.at.Before(restartAt) && f.at.Before(backAt) {
			during++
			continue
		}
		t.Errorf("request lost outside the restart: %s", f)
	}
	t.Logf("Caddy down and routes missing for %s; requests: %d ok, %d non-2xx, %d errors, %d of them during the restart",
		backAt.Sub(restartAt).Round(time.Millisecond), ok, bad, errs, during)
	if ok < 100 {
		t.Errorf("only %d requests went through; the load did not run", ok)
	}
}
