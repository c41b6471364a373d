//go:build linux

package agent_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestE2ELimits: limits go from the deploy repo (or the agent's
// defaults.limits, for a manifest that sets none) through a pass to the
// app's process: the process runtime sets them as rlimits, which
// /proc/<pid>/limits of the live release's app shows.
func TestE2ELimits(t *testing.T) {
	e := newEnv(t, "@every 1h")
	cfg, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	withLimits := strings.Replace(string(cfg), "defaults: {standby: 0s}", "defaults: {standby: 0s, limits: {openfiles: 512}}", 1)
	if withLimits == string(cfg) {
		t.Fatalf("no defaults line to extend in the env's config:\n%s", cfg)
	}
	if err := os.WriteFile(e.cfgPath, []byte(withLimits), 0o644); err != nil {
		t.Fatal(err)
	}
	e.commit("two services", map[string]string{
		"services/hello.yaml": e.helloManifest("hello", "v1", ""),
		"services/api.yaml":   e.helloManifest("api", "v1", "limits: {memory: 1G, openfiles: 300}\n"),
	})
	e.runAgent()
	e.sync()
	e.waitVersion("hello", "v1", 30*time.Second)
	e.waitVersion("api", "v1", 30*time.Second)
	e.waitFor("both services converged", 30*time.Second, func() bool {
		h, ok1 := e.serviceStatus("hello")
		a, ok2 := e.serviceStatus("api")
		return ok1 && ok2 && h.Converged && a.Converged && h.LiveRelease != "" && a.LiveRelease != ""
	})

	for svc, want := range map[string]map[string]string{
		"hello": {"Max open files": "512"}, // defaults.limits
		"api":   {"Max open files": "300", "Max data size": "1073741824"},
	} {
		st, ok := e.serviceStatus(svc)
		if !ok || st.LiveRelease == "" {
			t.Fatalf("%s: no live release in %+v", svc, st)
		}
		pidfile, err := os.ReadFile(filepath.Join(e.stateDir, "releases", st.LiveRelease, "pid"))
		if err != nil {
			t.Fatal(err)
		}
		pid := strings.Fields(string(pidfile))[0]
		limits, err := os.ReadFile(filepath.Join("/proc", pid, "limits"))
		if err != nil {
			t.Fatal(err)
		}
		for row, v := range want {
			var got []string
			for line := range strings.Lines(string(limits)) {
				if strings.HasPrefix(line, row+" ") {
					got = strings.Fields(line[len(row):])
				}
			}
			if len(got) < 2 || got[0] != v || got[1] != v {
				t.Errorf("%s (pid %s): %s = %v, want soft and hard %s\n%s", svc, pid, row, got, v, limits)
			}
		}
	}
}
