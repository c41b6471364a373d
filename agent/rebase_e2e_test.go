//go:build linux

package agent_test

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/agent"
	"github.com/jailkeeper/jailkeeper/internal/golden"
	"github.com/jailkeeper/jailkeeper/internal/testenv"
	"github.com/jailkeeper/jailkeeper/reconcile"
	"github.com/jailkeeper/jailkeeper/release"
)

// patchTemplate writes files into the template dataset of e (ZFS mode,
// see useZFS) and snapshots it as snap, as `jailkeeper template update`
// does.
func patchTemplate(t *testing.T, parent, snap string, files map[string]string) {
	t.Helper()
	tmpl := parent + "/templates/default"
	mnt := strings.TrimSpace(zfsRun(t, "list", "-H", "-o", "mountpoint", tmpl))
	for name, content := range files {
		p := filepath.Join(mnt, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	zfsRun(t, "snapshot", tmpl+"@"+snap)
}

// addConfig appends lines to e's agent config.
func (e *env) addConfig(t *testing.T, lines string) {
	t.Helper()
	f, err := os.OpenFile(e.cfgPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(lines + "\n"); err != nil {
		t.Fatal(err)
	}
}

// deploySpan is one deploy as the agent's log tells it: started and live
// (or failed), by line number.
type deploySpan struct {
	service, release string
	start, end       int
	result           string
}

// deploySpans reads the deploy events of the agent's log in order.
func (e *env) deploySpans(t *testing.T) []deploySpan {
	t.Helper()
	f, err := os.Open(filepath.Join(e.dir, "agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var spans []deploySpan
	open := map[string]int{} // service -> index in spans
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 0; sc.Scan(); n++ {
		line := sc.Text()
		if !strings.Contains(line, `msg="deploy event"`) {
			continue
		}
		ev, svc, rel := logField(line, "event"), logField(line, "service"), logField(line, "release")
		switch ev {
		case "deploy_started":
			open[svc] = len(spans)
			spans = append(spans, deploySpan{service: svc, release: rel, start: n, end: -1})
		case "live", "failed", "reverted":
			if i, ok := open[svc]; ok {
				spans[i].end, spans[i].result = n, ev
				delete(open, svc)
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return spans
}

// logField is the value of key=value in a slog text line.
func logField(line, key string) string {
	i := strings.Index(line, " "+key+"=")
	if i < 0 {
		return ""
	}
	v := line[i+len(key)+2:]
	if j := strings.IndexByte(v, ' '); j >= 0 {
		v = v[:j]
	}
	return strings.Trim(v, `"`)
}

// liveSnapshots is the template snapshot of each service's live release.
func (e *env) liveSnapshots(t *testing.T) map[string]string {
	t.Helper()
	rels, err := e.processRuntime(t).List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, r := range rels {
		if r.State != release.StateLive {
			continue
		}
		if _, two := out[r.Service]; two {
			// Promoted, the one it replaces not yet retired: a deploy
			// that has not ended.
			out[r.Service] = "switching"
			continue
		}
		out[r.Service] = release.TemplateSnapshotOf(r)
	}
	return out
}

// rolledTo waits until every service of names has one live release, on
// snap, and the deploys since the log's span before have all ended.
func (e *env) rolledTo(t *testing.T, names []string, snap string, before int) []deploySpan {
	t.Helper()
	var spans []deploySpan
	e.waitFor("all on "+snap, 120*time.Second, func() bool {
		snaps := e.liveSnapshots(t)
		if slices.ContainsFunc(names, func(n string) bool { return snaps[n] != snap }) {
			return false
		}
		spans = e.deploySpans(t)[before:]
		return !slices.ContainsFunc(spans, func(sp deploySpan) bool { return sp.end < 0 })
	})
	return spans
}

func templateRebase(st agent.Status) reconcile.RebaseStatus {
	for _, t := range st.Rebase {
		if t.Template == "default" {
			return t
		}
	}
	return reconcile.RebaseStatus{}
}

// TestE2ERebaseZFS: five services on the process runtime in ZFS mode
// (zfs-fuse), all on default@base. A new template snapshot rolls them one
// at a time (rebase.max_parallel 1) under load, with no failed request,
// each to a release cloned from the new snapshot. Then a snapshot on
// which one service's app fails (it answers 503 on /up while a file of
// the template exists): the rebase rolls the services before it, the
// failing one keeps its old release live, and the rebase pauses, with
// status and metrics saying why; the services after it stay where they
// are. A commit to the failing service (the fix) resumes the rebase, and
// the rest roll. Not one request fails throughout.
func TestE2ERebaseZFS(t *testing.T) {
	testenv.Command(t, "go")
	e := newEnv(t, "@every 1s")
	parent := e.useZFS(t)
	e.addConfig(t, "rebase: {max_parallel: 1, pause_on_failure: true}")
	names := []string{"svc1", "svc2", "svc3", "svc4", "svc5"}
	manifest := func(name, extra string) string {
		m := e.helloManifest(name, "v1", extra)
		m = strings.Replace(m, "deadline: 15s", "deadline: 3s", 1)
		m = strings.Replace(m, "drain: 1s", "drain: 300ms", 1)
		return m
	}
	files := map[string]string{}
	for _, n := range names {
		extra := ""
		if n == "svc3" {
			// The app breaks on a template that has etc/broken.
			extra = "env: {HELLO_FAIL_UP_IF_FILE: etc/broken}\n"
		}
		files["services/"+n+".yaml"] = manifest(n, extra)
	}
	e.commit("five services", files)
	e.runAgent()
	for _, n := range names {
		e.waitVersion(n, "v1", 90*time.Second)
	}
	e.waitFor("all converged on base", 60*time.Second, func() bool {
		snaps := e.liveSnapshots(t)
		return len(snaps) == 5 && !slices.ContainsFunc(names, func(n string) bool { return snaps[n] != "base" })
	})
	before := len(e.deploySpans(t))

	var stops []func() (int64, int64, string)
	for _, n := range names {
		stops = append(stops, e.load(n, 1))
	}
	stopLoad := func() (ok, bad int64) {
		for i, stop := range stops {
			o, b, last := stop()
			ok, bad = ok+o, bad+b
			if b > 0 {
				t.Errorf("%s: %d failed requests (last: %s)", names[i], b, last)
			}
		}
		return ok, bad
	}

	// A patch: every service rolls to s1, one at a time.
	const s1, s2 = "20261129T100000Z", "20261129T110000Z"
	patchTemplate(t, parent, s1, map[string]string{"etc/patched": "1\n"})
	spans := e.rolledTo(t, names, s1, before)
	checkOneAtATime(t, spans)
	if len(spans) != 5 {
		t.Errorf("%d deploys for the rebase to %s, want 5: %+v", len(spans), s1, spans)
	}
	for _, sp := range spans {
		if sp.result != "live" {
			t.Errorf("%s: deploy %s ended %q", sp.service, sp.release, sp.result)
		}
	}
	rels, err := e.processRuntime(t).List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rels {
		if r.State != release.StateLive {
			continue
		}
		if _, err := os.Stat(filepath.Join(e.stateDir, "releases", r.Name, "root", "etc", "patched")); err != nil {
			t.Errorf("%s: live on %s without the patched file: %v", r.Name, r.TemplateSnapshot, err)
		}
	}
	e.waitFor("rebase to "+s1+" done in status", 30*time.Second, func() bool {
		tr := templateRebase(e.status())
		return tr.Snapshot == s1 && tr.Current == 5 && !tr.Rebasing()
	})

	// A snapshot svc3's app fails on: svc1 and svc2 roll, svc3 fails its
	// gate and keeps its release on s1, and the rebase pauses.
	before = len(e.deploySpans(t))
	svc3Live, _ := e.serviceStatus("svc3")
	patchTemplate(t, parent, s2, map[string]string{"etc/broken": "1\n"})
	var paused reconcile.RebaseStatus
	e.waitFor("rebase to "+s2+" paused", 120*time.Second, func() bool {
		paused = templateRebase(e.status())
		return paused.Snapshot == s2 && paused.Paused
	})
	t.Logf("paused: %+v", paused)
	if !strings.Contains(paused.Reason, "svc3 failed") || !strings.Contains(paused.Reason, "rebase resume") {
		t.Errorf("pause reason %q does not say svc3 failed and how to resume", paused.Reason)
	}
	if paused.Current != 2 || paused.Failed != 1 || paused.Pending != 2 {
		t.Errorf("paused rebase %+v, want 2 current, 1 failed, 2 pending", paused)
	}
	// A few more passes: nothing moves while paused.
	passes := e.passes()
	e.waitFor("three more passes", 30*time.Second, func() bool { return e.passes() >= passes+3 })
	snaps := e.liveSnapshots(t)
	want := map[string]string{"svc1": s2, "svc2": s2, "svc3": s1, "svc4": s1, "svc5": s1}
	for n, w := range want {
		if snaps[n] != w {
			t.Errorf("%s live on %s while paused, want %s", n, snaps[n], w)
		}
	}
	if now, _ := e.serviceStatus("svc3"); now.LiveRelease != svc3Live.LiveRelease {
		t.Errorf("svc3 live release %s, want its old %s kept", now.LiveRelease, svc3Live.LiveRelease)
	}
	var svc3Row reconcile.ServiceStatus
	for _, s := range e.status().Services {
		if s.Service == "svc3" {
			svc3Row = s
		}
	}
	if svc3Row.Rebase == nil || svc3Row.Rebase.State != reconcile.RebaseFailed {
		t.Errorf("svc3 status rebase %+v, want failed", svc3Row.Rebase)
	}
	metrics, err := e.agentGet("/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		`jailkeeper_rebase_paused{template="default"} 1`,
		`jailkeeper_rebase_services{state="failed",template="default"} 1`,
		`jailkeeper_rebase_services{state="pending",template="default"} 2`,
		`jailkeeper_template_snapshot_info{snapshot="` + s2 + `",template="default"} 1`,
	} {
		if !strings.Contains(string(metrics), line) {
			t.Errorf("metrics lack %s", line)
		}
	}
	// `jailkeeper plan`, a process of its own, shows the paused rebase.
	stdout, _ := e.plan()
	golden.Assert(t, "testdata/rebase-plan-paused.golden", []byte(normalizePlan(stdout)))

	spans = e.deploySpans(t)[before:]
	checkOneAtATime(t, spans)
	var results []string
	for _, sp := range spans {
		results = append(results, sp.service+" "+sp.result)
	}
	if want := []string{"svc1 live", "svc2 live", "svc3 failed"}; !slices.Equal(results, want) {
		t.Errorf("deploys while rebasing to %s: %v, want %v", s2, results, want)
	}

	// The fix: a commit to svc3 drops the switch. svc3 deploys on s2,
	// which resumes the rebase: svc4 and svc5 roll.
	e.commit("svc3: fixed", map[string]string{"services/svc3.yaml": manifest("svc3", "env: {GREETING: fixed}\n")})
	e.sync()
	checkOneAtATime(t, e.rolledTo(t, names, s2, before))
	e.waitFor("rebase done in status", 30*time.Second, func() bool {
		tr := templateRebase(e.status())
		return tr.Current == 5 && !tr.Rebasing() && !tr.Paused
	})

	// A pin of a snapshot the template does not have: an error naming
	// the file and field, and svc1 keeps its live release.
	svc1Live, _ := e.serviceStatus("svc1")
	e.commit("svc1: bad pin", map[string]string{"services/svc1.yaml": manifest("svc1", "template: default@nope\n")})
	e.sync()
	var pinned struct {
		Service, DesiredSHA, LiveSHA, LiveRelease, State, Message string
		Converged                                                 bool
	}
	e.waitFor("bad pin in status", 60*time.Second, func() bool {
		pinned, _ = e.serviceStatus("svc1")
		return strings.Contains(pinned.Message, `template: snapshot "nope"`)
	})
	t.Logf("bad pin: %s: %s", pinned.State, pinned.Message)
	if !strings.Contains(pinned.Message, "svc1.yaml: template:") || pinned.Converged || pinned.State != "stalled" {
		t.Errorf("bad pin status %+v, want stalled, not converged, naming svc1.yaml and template", pinned)
	}
	if pinned.LiveRelease != svc1Live.LiveRelease || e.version("svc1") != "v1" {
		t.Errorf("svc1 live %s serving %q, want %s kept", pinned.LiveRelease, e.version("svc1"), svc1Live.LiveRelease)
	}

	ok, bad := stopLoad()
	t.Logf("requests during both rebases: %d ok, %d failed", ok, bad)
	if ok < 500 {
		t.Errorf("only %d requests went through; the load did not run", ok)
	}
}

// checkOneAtATime fails when two rebase deploys overlap in the log.
func checkOneAtATime(t *testing.T, spans []deploySpan) {
	t.Helper()
	for i := 1; i < len(spans); i++ {
		prev := spans[i-1]
		if prev.end < 0 || prev.end > spans[i].start {
			t.Errorf("deploy of %s started before the one of %s ended", spans[i].service, prev.service)
		}
	}
}

var (
	planRevision = regexp.MustCompile(`revision [0-9a-f]{40}`)
	planRelease  = regexp.MustCompile(`\b(svc[0-9])_[0-9a-f]{12}_[0-9a-f]{6}\b`)
	planAddr     = regexp.MustCompile(`127\.[0-9]+\.[0-9]+\.[0-9]+(:[0-9]+)?`)
)

// normalizePlan replaces what differs between runs in plan's output: the
// revision, release names (the artifact's path is in the spec) and
// addresses.
func normalizePlan(s string) string {
	s = planRevision.ReplaceAllString(s, "revision <rev>")
	s = planRelease.ReplaceAllString(s, "${1}_<release>")
	return planAddr.ReplaceAllString(s, "<addr>")
}
