//go:build linux

package agent_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/internal/testenv"
	"github.com/jailkeeper/jailkeeper/release"
	"github.com/jailkeeper/jailkeeper/zfs/zfstest"
)

// useZFS puts e's process runtime in ZFS mode on a zfs-fuse pool of the
// test: each release root a clone of <pool>/jk/templates/default@base. It
// returns <pool>/jk. zfstest.Pool puts its zfs first on PATH, which the
// agent, in this process or a child, inherits.
func (e *env) useZFS(t *testing.T) string {
	t.Helper()
	parent := zfstest.Pool(t) + "/jk"
	// Cleanups run last first: the releases, running from clones, stop
	// before the pool is destroyed.
	t.Cleanup(func() {
		e.killReleases()
		deadline := time.Now().Add(10 * time.Second)
		for e.helloProcesses() > 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	})
	tmpl := parent + "/templates/default"
	zfsRun(t, "create", "-p", tmpl)
	zfsRun(t, "snapshot", tmpl+"@base")
	cfg, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	old := fmt.Sprintf("process: {pool: %q}", e.pool)
	if !strings.Contains(string(cfg), old) {
		t.Fatalf("config lacks %s:\n%s", old, cfg)
	}
	cfg = []byte(strings.Replace(string(cfg), old, fmt.Sprintf("process: {pool: %q, dataset: %q}", e.pool, parent), 1))
	if err := os.WriteFile(e.cfgPath, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	return parent
}

func zfsRun(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), zfstest.CommandTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "zfs", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("zfs %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// releaseDatasets lists the clones below parent/releases by release name.
func releaseDatasets(t *testing.T, parent string) []string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(zfsRun(t, "list", "-H", "-o", "name", "-r", parent+"/releases"), "\n") {
		if n, ok := strings.CutPrefix(l, parent+"/releases/"); ok {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// TestE2ECrashPointsZFS is TestE2ECrashPoints for the process runtime's
// ZFS mode on zfs-fuse: it kills a real agent at each create and destroy
// point (a clone made and not yet filled, a clone destroyed and its
// directory not yet removed), during deploys with retain: 0 under load.
// After each restart the invariants of TestE2ECrashPoints hold, and the
// clones below <dataset>/releases are exactly the releases listed: none
// leaked, none lost.
func TestE2ECrashPointsZFS(t *testing.T) {
	testenv.Command(t, "go")
	points := slices.Concat([]string{"process.create.reserved", "process.create.rooted", "process.create.installed",
		"process.create.configured", "process.destroy.stopped"}, zfsOnlyPoints)
	began := time.Now()
	e := newEnv(t, "@every 1s")
	parent := e.useZFS(t)
	versions := []string{"v1", "v2", "v3"}
	manifest := func(v string) map[string]string {
		m := e.helloManifest("hello", v, "")
		m = strings.Replace(m, "retain: 2", "retain: 0", 1)
		m = strings.Replace(m, "drain: 1s", "drain: 200ms", 1)
		return map[string]string{"services/hello.yaml": m}
	}
	e.commit("hello v1", manifest("v1"))
	ag := startChild(t, e, "")
	waitUntil(t, "v1 live", 60*time.Second, func() error { return e.settled("v1") })
	load := startLoad(e, 4)
	defer load.stop()
	sweep := time.Now()

	var killed []string
	for i, point := range points {
		v := versions[(i+1)%len(versions)]
		ok := t.Run(point, func(t *testing.T) {
			if crashDeploy(t, e, &ag, load, point, v, manifest(v)) {
				killed = append(killed, point)
			}
			if got, want := releaseDatasets(t, parent), e.releaseDirs(); !slices.Equal(got, want) {
				t.Errorf("clones %v, release directories %v", got, want)
			}
		})
		if !ok {
			t.Logf("agent log:\n%s", tail(readFile(filepath.Join(e.dir, "agent-child.log")), 80))
			break
		}
	}
	ag.terminate(t)
	ok, bad, errs, failures := load.stop()
	t.Logf("killed at %d of %d points: %s", len(killed), len(points), strings.Join(killed, " "))
	t.Logf("requests during the sweep: %d ok, %d non-2xx, %d errors; sweep took %s (%s with the setup)",
		ok, bad, errs, time.Since(sweep).Round(time.Second), time.Since(began).Round(time.Second))
	if len(killed) != len(points) {
		t.Errorf("killed at %v of %v", killed, points)
	}
	// Not one request may fail: a switch reloads nothing in Caddy (see
	// TestE2ECrashPoints).
	for _, f := range failures {
		t.Errorf("lost request: %s", f)
	}
	if ok < 100 {
		t.Errorf("only %d requests went through; the load did not run", ok)
	}
}

// Issue 10, item 5: zfs busy on destroy. In ZFS mode, a process (not the
// release's) has its working directory in v1's clone when v2 replaces it
// with retain: 0, so v1's zfs destroy fails busy. v2 goes live with no
// failed request; v1 stays listed, retired and stopped, with its clone and
// directory; nothing is marked failed; /status says why v1 is still there;
// later passes try again, and once the holder is gone v1 is destroyed,
// clone and directory, and the service shows converged with no message.
func TestE2EZFSBusyOnDestroy(t *testing.T) {
	e := newEnv(t, "@every 1s")
	parent := e.useZFS(t)
	manifest := func(v string) map[string]string {
		m := e.helloManifest("hello", v, "")
		m = strings.Replace(m, "retain: 2", "retain: 0", 1)
		m = strings.Replace(m, "drain: 1s", "drain: 200ms", 1)
		return map[string]string{"services/hello.yaml": m}
	}
	e.commit("hello v1", manifest("v1"))
	e.runAgent()
	e.waitVersion("hello", "v1", 60*time.Second)
	v1 := e.releaseOf(t, manifest("v1")["services/hello.yaml"])
	stopHold := zfstest.Busy(t, parent+"/releases/"+v1)

	stopLoad := e.load("hello", 2)
	e.commit("hello v2", manifest("v2"))
	e.sync()
	e.waitVersion("hello", "v2", 60*time.Second)
	var msg string
	e.waitFor("status saying why v1 is left", 60*time.Second, func() bool {
		s, _ := e.serviceStatus("hello")
		msg = s.Message
		return strings.Contains(msg, "busy")
	})
	t.Logf("status message while busy: %s", msg)
	if !strings.Contains(msg, v1) {
		t.Errorf("status message %q does not name %s", msg, v1)
	}
	// A few more passes meet it busy; none loses track of v1.
	passes := e.passes()
	e.waitFor("two more passes", 30*time.Second, func() bool { return e.passes() >= passes+2 })
	rels, err := e.processRuntime(t).List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, r := range rels {
		if r.State == release.StateFailed {
			t.Errorf("%s marked failed: %s", r.Name, r.Reason)
		}
		if r.Name == v1 {
			found = true
			if r.State != release.StateRetired || r.Running {
				t.Errorf("busy %s: state %s, running %v; want retired and stopped", v1, r.State, r.Running)
			}
		}
	}
	if !found {
		t.Fatalf("busy %s no longer listed: %+v", v1, rels)
	}
	if ds := releaseDatasets(t, parent); !slices.Contains(ds, v1) || len(ds) != 2 {
		t.Errorf("clones while busy: %v, want v1's and v2's", ds)
	}
	if n := e.helloProcesses(); n != 1 {
		t.Errorf("%d hello processes while v1 is busy, want 1 (v2)", n)
	}

	stopHold()
	e.waitFor("v1 destroyed", 60*time.Second, func() bool {
		return len(e.releaseDirs()) == 1 && len(releaseDatasets(t, parent)) == 1
	})
	e.waitFor("converged, no message", 30*time.Second, func() bool {
		s, ok := e.serviceStatus("hello")
		return ok && s.Converged && s.Message == ""
	})
	if d := e.releaseDirs(); len(d) != 1 || d[0] == v1 {
		t.Errorf("release directories %v, want v2's only", d)
	}
	ok, bad, last := stopLoad()
	t.Logf("%d requests ok, %d failed", ok, bad)
	checkLoad(t, ok, bad, last)
	e.checkNoVerdict(t, "a busy dataset")
}

// checkLoad fails the test when a request of the load failed, or when too
// few went through for the load to show anything.
func checkLoad(t *testing.T, ok, bad int64, last string) {
	t.Helper()
	if bad != 0 {
		t.Errorf("%d failed requests (last: %s)", bad, last)
	}
	if ok < 50 {
		t.Errorf("only %d requests ok: the load shows nothing", ok)
	}
}
