package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/internal/testenv"
	"github.com/jailkeeper/jailkeeper/manifest"
	"github.com/jailkeeper/jailkeeper/release"
)

// failurePathPoints are the crash points on the failure paths: a failed
// gate, a failed watch and its switch back, the restore of the last
// known-good, a rollback to a retained release, a prune.
// TestE2ECrashPointsFailurePaths kills at each; TestE2ECrashPoints, whose
// deploys all succeed, never reaches them.
var failurePathPoints = []string{
	"reconcile.fail.marked",
	"reconcile.prune.unrouted",
	"reconcile.restore.gated",
	"reconcile.restore.routed",
	"reconcile.rollback.started",
	"reconcile.switchback.marked",
	"reconcile.switchback.routed",
}

// zfsOnlyPoints are reached in the process runtime's ZFS mode only;
// TestE2ECrashPointsZFS kills at them.
var zfsOnlyPoints = []string{"process.destroy.dataset"}

// sweptElsewhere reports whether TestE2ECrashPoints leaves point p to
// another sweep of this file.
func sweptElsewhere(p string) bool {
	return slices.Contains(failurePathPoints, p) || slices.Contains(zfsOnlyPoints, p)
}

// pathPhase is one commit of TestE2ECrashPointsFailurePaths: agents are
// killed at crashes in turn, each on the state the previous one left,
// then a clean agent runs on, and the phase ends when the services serve
// the versions of want, and bad (a manifest file, when set) is failed and
// stopped.
type pathPhase struct {
	what    string
	files   map[string]string
	crashes []string
	want    map[string]string // service -> version Caddy serves
	bad     string            // the manifest, in files, whose release must end failed
}

// TestE2ECrashPointsFailurePaths kills a real agent at each crash point of
// the failure paths (failurePathPoints), with real Caddy, the process
// runtime and clients sending requests for hello the whole time. The
// releases that fail do so on purpose: hello built to fail its gate
// (HELLO_FAIL_UP) or its watch (HELLO_FAIL_UP_AFTER), both serving GET /
// as usual. After each phase it asserts: the services serve what the last
// commit leads to; the broken release is failed (its verdict is true) and
// stopped, and no other release is failed; one process per service, of its
// live release; no release directory, address or route leaked or doubled;
// and not one request failed.
func TestE2ECrashPointsFailurePaths(t *testing.T) {
	testenv.Command(t, "go")
	began := time.Now()
	e := newEnv(t, "@every 1s")
	good := func(svc, v string) string {
		return strings.Replace(e.helloManifest(svc, v, ""), "drain: 1s", "drain: 200ms", 1)
	}
	// badGate's /up answers 503 from the start: its gate fails after 2s.
	badGate := func(v, tag string) string {
		m := strings.Replace(good("hello", v), "deadline: 15s", "deadline: 2s", 1)
		return m + fmt.Sprintf("env: {HELLO_FAIL_UP: \"1\", SCENARIO: %s}\n", tag)
	}
	// badWatch passes its gate, then its /up answers 503 from 2s after
	// its start, within its 4s watch: it is switched back.
	badWatch := func(v, tag string) string {
		m := strings.Replace(good("hello", v), "watch: 1s", "watch: 4s", 1)
		return m + fmt.Sprintf("env: {HELLO_FAIL_UP_AFTER: 2s, SCENARIO: %s}\n", tag)
	}
	const hello, bye = "services/hello.yaml", "services/bye.yaml"
	phases := []pathPhase{
		{what: "a gate fails", files: map[string]string{hello: badGate("v2", "gate")},
			crashes: []string{"reconcile.fail.marked"}, want: map[string]string{"hello": "v1"}, bad: hello},
		{what: "a watch fails; the restore after it", files: map[string]string{hello: badWatch("v2", "watch1")},
			crashes: []string{"reconcile.switchback.marked", "reconcile.restore.gated", "reconcile.restore.routed"},
			want:    map[string]string{"hello": "v1"}, bad: hello},
		{what: "a watch fails, switched back", files: map[string]string{hello: badWatch("v3", "watch2")},
			crashes: []string{"reconcile.switchback.routed"}, want: map[string]string{"hello": "v1"}, bad: hello},
		{what: "v2 deployed, v1 retained", files: map[string]string{hello: good("hello", "v2")},
			want: map[string]string{"hello": "v2"}},
		{what: "rollback to v1", files: map[string]string{hello: good("hello", "v1")},
			crashes: []string{"reconcile.rollback.started"}, want: map[string]string{"hello": "v1"}},
		{what: "bye added", files: map[string]string{bye: good("bye", "v1")},
			want: map[string]string{"hello": "v1", "bye": "v1"}},
		{what: "bye removed", files: map[string]string{bye: ""},
			crashes: []string{"reconcile.prune.unrouted"}, want: map[string]string{"hello": "v1"}},
	}

	e.commit("hello v1", map[string]string{hello: good("hello", "v1")})
	ag := startChild(t, e, "")
	waitUntil(t, "v1 live", 60*time.Second, func() error { return e.settledFor(map[string]string{"hello": "v1"}, "") })
	load := startLoad(e, 4)
	defer load.stop() // also on a Fatal
	sweep := time.Now()

	var killed []string
	broken := map[string]bool{} // releases made to fail
	for _, ph := range phases {
		ok := t.Run(ph.what, func(t *testing.T) {
			load.phase.Store(ph.what + ": stopping the agent")
			ag.terminate(t)
			e.commit(ph.what, ph.files)
			for _, point := range ph.crashes {
				load.phase.Store(ph.what + ": until the kill at " + point)
				crash := startChild(t, e, point)
				if !crash.waitKilled(t, 60*time.Second) {
					t.Fatalf("%s: never reached %s", ph.what, point)
				}
				killed = append(killed, point)
				t.Logf("killed at %s", point)
			}
			load.phase.Store(ph.what + ": restarted")
			ag = startChild(t, e, "")
			bad := ""
			if ph.bad != "" {
				bad = e.releaseOf(t, ph.files[ph.bad])
				broken[bad] = true
			}
			waitUntil(t, ph.what+" settled", 60*time.Second, func() error { return e.settledFor(ph.want, bad) })
			e.checkPathInvariants(t, ph.want, broken)
		})
		if !ok {
			t.Logf("agent log:\n%s", tail(readFile(filepath.Join(e.dir, "agent-child.log")), 80))
			break
		}
	}
	ag.terminate(t)
	ok, bad, errs, failures := load.stop()
	t.Logf("killed at %d points: %s", len(killed), strings.Join(killed, " "))
	t.Logf("requests during the sweep: %d ok, %d non-2xx, %d errors; sweep took %s (%s with the setup)",
		ok, bad, errs, time.Since(sweep).Round(time.Second), time.Since(began).Round(time.Second))
	for _, p := range failurePathPoints {
		if !slices.Contains(killed, p) {
			t.Errorf("never killed at %s", p)
		}
	}
	// A switch reloads nothing in Caddy (see TestE2ECrashPoints), but
	// adding and removing bye's route does (see reloadDrops).
	for _, f := range e.reloadDrops(t, failures, func(phase string) bool {
		return strings.HasPrefix(phase, "bye added") || strings.HasPrefix(phase, "bye removed")
	}) {
		t.Errorf("lost request: %s", f)
	}
	if ok < 100 {
		t.Errorf("only %d requests went through; the load did not run", ok)
	}
}

// releaseOf is the name of the release a manifest deploys.
func (e *env) releaseOf(t *testing.T, m string) string {
	t.Helper()
	s, err := manifest.Decode("x.yaml", []byte(m))
	if err != nil {
		t.Fatal(err)
	}
	return s.ReleaseName()
}

// settledFor reports why the services are not yet settled on want: each
// serves its version, one process each, bad (when set) failed and
// stopped, and every service whose desired release is not bad converged.
func (e *env) settledFor(want map[string]string, bad string) error {
	for svc, v := range want {
		if got := e.version(svc); got != v {
			return fmt.Errorf("Caddy serves %q for %s, want %s", got, svc, v)
		}
	}
	if n := e.helloProcesses(); n != len(want) {
		return fmt.Errorf("%d processes, want %d", n, len(want))
	}
	rels, err := e.processRuntime(e.t).List(context.Background())
	if err != nil {
		return err
	}
	for _, r := range rels {
		if _, ok := want[r.Service]; !ok {
			return fmt.Errorf("release %s of a removed service is there", r.Name)
		}
	}
	if bad != "" {
		i := slices.IndexFunc(rels, func(r release.Release) bool { return r.Name == bad })
		if i < 0 || rels[i].State != release.StateFailed || rels[i].Running {
			return fmt.Errorf("%s is not failed and stopped: %+v", bad, rels)
		}
	}
	st, b, err := e.readStatus()
	if err != nil {
		return err
	}
	if len(st.Services) != len(want) {
		return fmt.Errorf("status %s", b)
	}
	for _, s := range st.Services {
		if s.State != string(release.StateFailed) && !s.Converged {
			return fmt.Errorf("status %s", b)
		}
	}
	return nil
}

// checkPathInvariants asserts what no kill on a failure path may leave:
// a release failed that was not made to fail (broken), a release of a
// service not in want, two releases on one address, a process other than
// each service's live release, a release directory the runtime does not
// list or a half-written file, or a route other than one per service of
// want, to its live release.
func (e *env) checkPathInvariants(t *testing.T, want map[string]string, broken map[string]bool) {
	t.Helper()
	ctx := context.Background()
	rels, err := e.processRuntime(t).List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	addrs := map[netip.Addr]string{}
	live := map[string]release.Release{}
	for _, r := range rels {
		names = append(names, r.Name)
		if r.State == release.StateFailed && !broken[r.Name] {
			t.Errorf("%s failed for a reason it did not cause: %s", r.Name, r.Reason)
		}
		if _, ok := want[r.Service]; !ok {
			t.Errorf("%s of a removed service left", r.Name)
		}
		if o, dup := addrs[r.IP]; dup {
			t.Errorf("%s and %s share %s", o, r.Name, r.IP)
		}
		addrs[r.IP] = r.Name
		if r.State == release.StateLive {
			if o, dup := live[r.Service]; dup {
				t.Errorf("%s and %s both live", o.Name, r.Name)
			}
			live[r.Service] = r
		}
	}
	wantProcs := map[string]int{}
	for svc, v := range want {
		l, ok := live[svc]
		if !ok || l.SHA != helloSHA(svc, v) || !l.Running {
			t.Fatalf("releases %+v: no %s %s live and running", rels, svc, v)
		}
		wantProcs[l.Name] = 1
	}
	if dirs := e.releaseDirs(); !slices.Equal(dirs, names) {
		t.Errorf("release directories %v, runtime lists %v", dirs, names)
	}
	for _, n := range names {
		entries, _ := os.ReadDir(filepath.Join(e.stateDir, "releases", n))
		for _, d := range entries {
			if strings.HasPrefix(d.Name(), ".tmp-") {
				t.Errorf("%s: a half-written %s left", n, d.Name())
			}
		}
	}
	if got := e.processesByRelease(); !mapsEqual(got, wantProcs) {
		t.Errorf("processes by release %v, want %v", got, wantProcs)
	}

	raw := e.caddy.MustDo(t, http.MethodGet, "/config/apps/http/servers/jailkeeper/routes", "")
	var routes []struct {
		ID string `json:"@id"`
	}
	if err := json.Unmarshal([]byte(raw.Body), &routes); err != nil {
		t.Fatalf("Caddy routes %s: %v", raw.Body, err)
	}
	var ids []string
	for _, r := range routes {
		if strings.HasPrefix(r.ID, "jailkeeper.route.") { // not the fallback route
			ids = append(ids, r.ID)
		}
	}
	var wantIDs []string
	for _, svc := range slices.Sorted(maps.Keys(want)) {
		wantIDs = append(wantIDs, "jailkeeper.route."+svc)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, wantIDs) {
		t.Errorf("Caddy route IDs %v, want %v", ids, wantIDs)
	}
	rm := e.routes(t)
	for svc := range want {
		if got := rm[svc].Upstream; got != live[svc].Addr() {
			t.Errorf("Caddy routes %s to %q, live release %s is at %s", svc, got, live[svc].Name, live[svc].Addr())
		}
	}
}

// reloadDrops returns the failures that are not a request Caddy dropped
// at a reload of a route change, and logs those that are. Caddy's old
// server closes a request it read after its Shutdown began (net/http
// conn.serve), so a client on a fresh connection sees EOF; a keep-alive
// client retries. Only an EOF on a fresh connection, in a phase for which
// routeChange is true and within 500 ms of a reload in Caddy's log, is let
// through: every other failure is returned.
func (e *env) reloadDrops(t *testing.T, failures []failure, routeChange func(phase string) bool) []failure {
	t.Helper()
	reloads := caddyReloads(t, e.caddy.LogPath)
	var lost []failure
	for _, f := range failures {
		if routeChange(f.phase) && f.freshEOF && slices.ContainsFunc(reloads, func(r time.Time) bool {
			return !f.at.Before(r.Add(-50*time.Millisecond)) && f.at.Before(r.Add(500*time.Millisecond))
		}) {
			t.Logf("dropped by the reload of a route change: %s", f)
			continue
		}
		lost = append(lost, f)
	}
	return lost
}

// caddyReloads returns when Caddy began shutting down an old server, a
// reload, from its JSON log.
func caddyReloads(t *testing.T, logPath string) []time.Time {
	t.Helper()
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	var out []time.Time
	for _, line := range strings.Split(string(b), "\n") {
		var m struct {
			TS  float64 `json:"ts"`
			Msg string  `json:"msg"`
		}
		if json.Unmarshal([]byte(line), &m) == nil && strings.HasPrefix(m.Msg, "servers shutting down") {
			out = append(out, time.Unix(0, int64(m.TS*1e9)))
		}
	}
	return out
}
