package agent_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/agent"
	"github.com/jailkeeper/jailkeeper/internal/testenv"
	"github.com/jailkeeper/jailkeeper/reconcile"
)

// TestE2EMigrations deploys hello with `migrate: [/usr/local/bin/hello,
// migrate]`, which appends one line "VERSION ADDR" to a file per run, and
// counts the lines:
//   - each new release migrates exactly once, before it gets traffic;
//   - a migration that fails leaves the live release serving under load
//     with zero failed requests, and its output in the status;
//   - an agent killed right after a migration finished (before the gate)
//     does not run it again when it restarts; one killed between the
//     migration and its record runs it again;
//   - a git revert to the previous spec rolls back to the retained
//     release and migrates nothing.
func TestE2EMigrations(t *testing.T) {
	testenv.Command(t, "go")
	e := newEnv(t, "@every 1s")
	log := filepath.Join(e.dir, "migrations.log")
	manifest := func(v, env string) map[string]string {
		extra := fmt.Sprintf("migrate: [/usr/local/bin/hello, migrate]\nmigrate_timeout: 30s\nenv: {HELLO_MIGRATE_LOG: %q%s}\n", log, env)
		return map[string]string{"services/hello.yaml": e.helloManifest("hello", v, extra)}
	}
	migrations := func() []string {
		var out []string
		for _, l := range strings.Split(strings.TrimSpace(readFile(log)), "\n") {
			if l != "" {
				out = append(out, strings.Fields(l)[0])
			}
		}
		return out
	}
	check := func(what string, want ...string) {
		t.Helper()
		if got := migrations(); !slices.Equal(got, want) {
			t.Fatalf("%s: migrations ran for %v, want %v", what, got, want)
		}
	}
	live := func(v string) func() error {
		return func() error {
			if got := e.version("hello"); got != v {
				return fmt.Errorf("Caddy serves %q", got)
			}
			// Not e.status: the agent may still be starting.
			b, err := e.agentGet("/status")
			if err != nil {
				return err
			}
			var st agent.Status
			if err := json.Unmarshal(b, &st); err != nil {
				return err
			}
			if len(st.Services) != 1 || !st.Services[0].Converged {
				return fmt.Errorf("status %s", b)
			}
			return nil
		}
	}

	e.commit("hello v1", manifest("v1", ""))
	ag := startChild(t, e, "")
	waitUntil(t, "v1 live", 60*time.Second, live("v1"))
	check("first deploy", "v1")

	// A failing migration: v1 keeps every request.
	stopLoad := e.load("hello", 4)
	e.commit("hello v2, migration fails", manifest("v2", `, HELLO_MIGRATE_FAIL: "1"`))
	e.sync()
	var msg string
	waitUntil(t, "the failed migration in status", 60*time.Second, func() error {
		s, _ := e.serviceStatus("hello")
		msg = s.Message
		if s.State != "failed" || !strings.Contains(msg, "migrate") {
			return fmt.Errorf("status %+v", s)
		}
		return nil
	})
	time.Sleep(time.Second) // a few more polls under load
	ok, failed, last := stopLoad()
	t.Logf("status message: %s", msg)
	t.Logf("requests during the failed migration: %d ok, %d failed", ok, failed)
	if failed != 0 {
		t.Errorf("lost requests: %d failed (last: %s)", failed, last)
	}
	if ok < 100 {
		t.Errorf("only %d requests went through; the load did not run", ok)
	}
	for _, want := range []string{"exit status 3", "step 6 of 6", "hello: migration failed on purpose"} {
		if !strings.Contains(msg, want) {
			t.Errorf("status message lacks %q", want)
		}
	}
	if v := e.version("hello"); v != "v1" {
		t.Errorf("serving %q after a failed migration, want v1", v)
	}
	if n := e.helloProcesses(); n != 1 {
		t.Errorf("hello processes = %d, want 1 (the failed release stopped)", n)
	}
	check("failed migration", "v1")

	// Killed right after the migration step (recorded): the restarted agent
	// gates and switches without migrating again.
	ag.terminate(t)
	e.commit("hello v2", manifest("v2", ""))
	crash := startChild(t, e, "reconcile.migrate.after")
	if !crash.waitKilled(t, 60*time.Second) {
		t.Fatal("the deploy of v2 never reached reconcile.migrate.after")
	}
	check("killed after the migration", "v1", "v2")
	ag = startChild(t, e, "")
	waitUntil(t, "v2 live", 60*time.Second, live("v2"))
	check("restart after the migration finished", "v1", "v2")
	rel := releaseJSON(t, e, "hello", "live")
	if !strings.Contains(rel, `"migrated_at"`) {
		t.Errorf("live release.json records no migration:\n%s", rel)
	}

	// Killed between the migration and its record: it runs again.
	ag.terminate(t)
	e.commit("hello v3", manifest("v3", ""))
	crash = startChild(t, e, "reconcile.migrate.ran")
	if !crash.waitKilled(t, 60*time.Second) {
		t.Fatal("the deploy of v3 never reached reconcile.migrate.ran")
	}
	check("killed before the record", "v1", "v2", "v3")
	ag = startChild(t, e, "")
	waitUntil(t, "v3 live", 60*time.Second, live("v3"))
	check("restart after an unrecorded migration", "v1", "v2", "v3", "v3")

	// The restarted agent's deploy timed the migrate phase, and shows it.
	st := e.status()
	if ld := st.Services[0].LastDeploy; ld == nil {
		t.Error("status has no last_deploy")
	} else if _, ok := ld.Phases[reconcile.PhaseMigrate]; !ok {
		t.Errorf("last_deploy %+v has no migrate phase", ld)
	}
	if got := e.metricLines(`jailkeeper_deploy_phase_seconds_count{phase="migrate"}`); len(got) != 1 || strings.HasSuffix(got[0], " 0") {
		t.Errorf("migrate phase count = %q, want one non-zero series", got)
	}

	// A converged pass, and another restart, migrate nothing.
	ag.terminate(t)
	ag = startChild(t, e, "")
	waitUntil(t, "v3 live after a restart", 60*time.Second, live("v3"))
	e.sync()
	time.Sleep(2 * time.Second) // a few passes
	check("restart of a converged agent", "v1", "v2", "v3", "v3")

	// git revert: back to the retained v2 release, no migration.
	dirs := e.releaseDirs()
	e.git(e.work, "revert", "--no-edit", "HEAD")
	e.git(e.work, "push", "-q", "origin", "main")
	e.sync()
	waitUntil(t, "v2 live again", 60*time.Second, live("v2"))
	check("rollback", "v1", "v2", "v3", "v3")
	if got := e.releaseDirs(); !slices.Equal(got, dirs) {
		t.Errorf("release dirs %v -> %v: the revert created a release", dirs, got)
	}
	ag.terminate(t)
	if t.Failed() {
		t.Logf("agent log:\n%s", tail(readFile(filepath.Join(e.dir, "agent-child.log")), 80))
	}
}
