package agent_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/reconcile"
	"github.com/jailkeeper/jailkeeper/release"
)

// flakyStore is an artifact store on loopback that serves the env's hello
// builds and can be switched to answer 503. It notes when each answer went
// out, which is what the outage test measures by.
type flakyStore struct {
	*httptest.Server
	down atomic.Bool
	// slow, when set, is how long each answer waits before its body.
	slow atomic.Int64
	mu   sync.Mutex
	log  []storeAnswer
}

type storeAnswer struct {
	at   time.Time
	path string
	code int
}

// serveFromFlakyStore puts e's artifacts behind a flakyStore that the
// policy allows, deploys hello v1 from it and waits until v1 is served. It
// returns the store and the manifest of a version fetched from it.
func (e *env) serveFromFlakyStore(t *testing.T) (*flakyStore, func(v string) string) {
	t.Helper()
	store := newFlakyStore(t, filepath.Join(e.dir, "artifacts"))
	cfg, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg = append(cfg, []byte("policy: {artifact_hosts: [\""+store.URL+"/\"]}\n")...)
	if err := os.WriteFile(e.cfgPath, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	manifest := func(v string) string {
		m := e.helloManifest("hello", v, "")
		fileURL, _ := e.artifact(v)
		return strings.Replace(m, fileURL, store.URL+"/hello-"+v, 1)
	}
	e.commit("hello v1", map[string]string{"services/hello.yaml": manifest("v1")})
	e.runAgent()
	e.waitVersion("hello", "v1", 60*time.Second)
	return store, manifest
}

func newFlakyStore(t *testing.T, dir string) *flakyStore {
	t.Helper()
	s := &flakyStore{}
	files := http.FileServer(http.Dir(dir))
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code := http.StatusOK
		if d := time.Duration(s.slow.Load()); d > 0 {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
		}
		if s.down.Load() {
			code = http.StatusServiceUnavailable
			http.Error(w, "down for maintenance", code)
		} else {
			files.ServeHTTP(w, r)
		}
		s.mu.Lock()
		s.log = append(s.log, storeAnswer{at: time.Now(), path: r.URL.Path, code: code})
		s.mu.Unlock()
	}))
	t.Cleanup(s.Close)
	return s
}

// answers returns the answers given so far for path.
func (s *flakyStore) answers(path string) []storeAnswer {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []storeAnswer
	for _, a := range s.log {
		if a.path == path {
			out = append(out, a)
		}
	}
	return out
}

// Issue 10, items 4 and 5: the artifact store answers 503 while v2 is
// deployed. v1 serves on with no failed request; the agent retries on the
// transient schedule (5s, then 10s, less up to a fifth of jitter), woken
// by its own backoff and not by a poll (the repo is polled hourly), and
// /status shows the count and the next try. The store is brought back
// just after the second 503, the worst moment for an outage of up to 10s:
// the next try is then a whole backoff away. v2 must be live at most 15s
// after the store is back.
func TestE2EArtifactStoreOutage(t *testing.T) {
	e := newEnv(t, "@every 1h")
	store, manifest := e.serveFromFlakyStore(t)

	stopLoad := e.load("hello", 2)
	store.down.Store(true)
	e.commit("hello v2", map[string]string{"services/hello.yaml": manifest("v2")})
	e.sync()
	// The first try, then the retry 4-5s later: both answered 503.
	e.waitFor("two failed fetches of v2", 30*time.Second, func() bool { return len(store.answers("/hello-v2")) >= 2 })
	store.down.Store(false)
	upAt := time.Now()
	failed := store.answers("/hello-v2")
	if len(failed) != 2 || failed[0].code != 503 || failed[1].code != 503 {
		t.Fatalf("store answers for v2 while down: %+v, want two 503s", failed)
	}
	first := failed[1].at.Sub(failed[0].at)
	if lo, hi := 4*time.Second, 5*time.Second+time.Second; first < lo || first > hi {
		t.Errorf("first retry after %s, want %s..%s (5s less jitter, plus a pass)", first, lo, hi)
	}

	// /status shows the count and the time of the next try.
	var st reconcile.ServiceStatus
	e.waitFor("status showing 2 failures", 10*time.Second, func() bool {
		for _, s := range e.status().Services {
			if s.Service == "hello" {
				st = s
			}
		}
		return st.Failures == 2
	})
	if wantRetry := failed[1].at.Add(reconcile.TransientBackoff(2)); st.RetryAt.IsZero() ||
		st.RetryAt.After(wantRetry.Add(time.Second)) || st.RetryAt.Before(failed[1].at) {
		t.Errorf("status retry_at = %s, want by %s", st.RetryAt, wantRetry)
	}
	if !strings.Contains(st.Message, "backing off until") || !strings.Contains(st.Message, "failed 2 time(s)") || !strings.Contains(st.Message, "503") {
		t.Errorf("status message %q lacks the count, the retry time or the cause", st.Message)
	}

	e.waitVersion("hello", "v2", 60*time.Second)
	liveAt := time.Now()
	e.waitFor("v1 stopped", 30*time.Second, func() bool { return e.helloProcesses() == 1 })
	ok, bad, last := stopLoad()

	answers := store.answers("/hello-v2")
	if len(answers) != 3 || answers[2].code != 200 {
		t.Fatalf("store answers for v2: %+v, want 503, 503, 200", answers)
	}
	second := answers[2].at.Sub(answers[1].at)
	// 10s less up to 2s of jitter; a pass and a poll of the repo on top.
	if lo, hi := 8*time.Second, 10*time.Second+2*time.Second; second < lo || second > hi {
		t.Errorf("second retry after %s, want %s..%s", second, lo, hi)
	}
	recovered := liveAt.Sub(upAt)
	t.Logf("store down %s; v2 fetched %s and live (seen through Caddy) %s after it came back; %d requests ok, %d failed",
		upAt.Sub(failed[0].at).Round(time.Millisecond), answers[2].at.Sub(upAt).Round(time.Millisecond),
		recovered.Round(time.Millisecond), ok, bad)
	if recovered > 15*time.Second {
		t.Errorf("v2 live %s after the store came back, want at most 15s (issue 10)", recovered)
	}
	if bad != 0 {
		t.Errorf("%d failed requests during the outage (last: %s)", bad, last)
	}
	if ok < 50 {
		t.Errorf("only %d requests ok: the load shows nothing", ok)
	}
}

// Issue 10, item 5: the git server goes away. v1 serves on with no failed
// request, /status says the deploy repo is unreachable, and once it is
// back the next commit converges.
func TestE2EGitServerDown(t *testing.T) {
	e := newEnv(t, "@every 1h")
	e.startHello()
	e.waitFor("v1 converged", 30*time.Second, func() bool {
		s, ok := e.serviceStatus("hello")
		return ok && s.Converged
	})
	stopLoad := e.load("hello", 2)
	away := e.remote + ".away"
	if err := os.Rename(e.remote, away); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Rename(away, e.remote) })
	passes := e.passes()
	e.sync()
	e.waitFor("deploy repo error in status", 30*time.Second, func() bool {
		return strings.Contains(e.status().Error, "deploy repo")
	})
	// Passes go on with the last good revision while the server is down.
	e.waitFor("a pass with the remote gone", 30*time.Second, func() bool { return e.passes() > passes })
	if s, ok := e.serviceStatus("hello"); !ok || !s.Converged || e.version("hello") != "v1" {
		t.Errorf("with the git server down: status %+v, serving %q", s, e.version("hello"))
	}
	if err := os.Rename(away, e.remote); err != nil {
		t.Fatal(err)
	}
	e.commit("hello v2", map[string]string{"services/hello.yaml": e.helloManifest("hello", "v2", "")})
	e.sync()
	e.waitVersion("hello", "v2", 60*time.Second)
	e.waitFor("deploy repo error cleared", 30*time.Second, func() bool { return e.status().Error == "" })
	ok, bad, last := stopLoad()
	t.Logf("%d requests ok, %d failed", ok, bad)
	if bad != 0 {
		t.Errorf("%d failed requests (last: %s)", bad, last)
	}
	if ok < 50 {
		t.Errorf("only %d requests ok: the load shows nothing", ok)
	}
}

// adminGate stands between the agent and Caddy's admin socket and, while
// down, answers every write 503 and counts it; reads pass.
type adminGate struct {
	*httptest.Server
	down    atomic.Bool
	refused atomic.Int64
}

func newAdminGate(t *testing.T, admin string) *adminGate {
	t.Helper()
	sock, ok := strings.CutPrefix(admin, "unix/")
	if !ok {
		t.Fatalf("caddy admin %q is not a unix socket", admin)
	}
	g := &adminGate{}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme, r.Out.URL.Host = "http", "caddy-admin"
			r.Out.Host = "unix/socket" // Caddy wants an empty Host on its socket
			r.Out.Header.Del("Origin")
		},
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}},
	}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && g.down.Load() {
			g.refused.Add(1)
			http.Error(w, "admin API down", http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(g.Close)
	return g
}

// Issue 10, item 5: Caddy's admin API refuses writes while v2 is switched
// to. v1 keeps serving with no failed request, v2 is not blamed (no
// release marked failed), and once the API is back v2 goes live. A switch
// of the upstream alone is a file write that needs no admin API, so v2
// also adds a hostname: its switch must write the route.
func TestE2ECaddyAdminDownDuringSwitch(t *testing.T) {
	e := newEnv(t, "@every 2s")
	gate := newAdminGate(t, e.caddy.Admin)
	cfg, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg = []byte(strings.Replace(string(cfg), fmt.Sprintf("admin: %q", e.caddy.Admin), fmt.Sprintf("admin: %q", gate.URL), 1))
	if err := os.WriteFile(e.cfgPath, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	e.startHello()
	e.waitFor("v1 converged", 30*time.Second, func() bool {
		s, ok := e.serviceStatus("hello")
		return ok && s.Converged
	})
	load := startLoad(e, 2)
	defer load.stop()
	load.phase.Store("admin API down")
	gate.down.Store(true)
	// New hostnames: the switch is a route change, an admin write.
	v2 := strings.Replace(e.helloManifest("hello", "v2", ""), "hostnames: [hello.example.com]", "hostnames: [hello.example.com, www.hello.example.com]", 1)
	e.commit("hello v2", map[string]string{"services/hello.yaml": v2})
	e.sync()
	e.waitFor("a refused route write", 60*time.Second, func() bool { return gate.refused.Load() > 0 })
	// A few passes meet the API down before it returns.
	passes := e.passes()
	e.waitFor("two more passes", 30*time.Second, func() bool { return e.passes() >= passes+2 })
	if v := e.version("hello"); v != "v1" {
		t.Errorf("serving %q while the admin API is down, want v1", v)
	}
	st := e.status()
	for _, s := range st.Services {
		t.Logf("while down: %s state=%s message=%q", s.Service, s.State, s.Message)
	}
	load.phase.Store("admin API back: hostnames changed")
	gate.down.Store(false)
	e.waitVersion("hello", "v2", 60*time.Second)
	e.waitFor("v2 converged, v1 stopped", 60*time.Second, func() bool {
		s, ok := e.serviceStatus("hello")
		return ok && s.Converged && e.helloProcesses() == 1
	})
	ok, bad, errs, failures := load.stop()
	t.Logf("%d write(s) refused; %d requests ok, %d non-2xx, %d errors", gate.refused.Load(), ok, bad, errs)
	// The new hostnames reload Caddy once the API is back: a request on
	// a fresh connection may be dropped then, and only then.
	for _, f := range e.reloadDrops(t, failures, func(phase string) bool { return phase == "admin API back: hostnames changed" }) {
		t.Errorf("lost request: %s", f)
	}
	if ok < 50 {
		t.Errorf("only %d requests ok: the load shows nothing", ok)
	}
	e.checkNoVerdict(t, "the admin API being down")
}

// mountTmpfs mounts a tmpfs of size bytes on dir (made if missing) and
// unmounts it when the test ends, failed or not, after calling release
// (which stops what runs from it: a cleanup registered earlier runs only
// after this one, and would find the releases' directories gone). It
// skips the test when not root or when mount fails.
func mountTmpfs(t *testing.T, dir string, size int64, release func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: mounting a tmpfs needs root")
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0750", size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("skipped: mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		release()
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			// A process of the test may still hold it: detach it.
			if out2, err2 := exec.Command("umount", "-l", dir).CombinedOutput(); err2 != nil {
				t.Errorf("umount %s: %v: %s; %v: %s", dir, err, out, err2, out2)
			}
		}
	})
}

// Issue 10, item 5: the disk fills while v2 is extracted. The release
// directories live on a tmpfs that holds one hello build but not two: v2's
// create fails part-way, what it wrote is removed and never started, v1
// serves on with no failed request, and once there is room (the tmpfs
// grows) v2 goes live on its retry.
func TestE2EDiskFullDuringExtraction(t *testing.T) {
	e := newEnv(t, "@every 2s")
	releases := filepath.Join(e.stateDir, "releases")
	fi, err := os.Stat(filepath.Join(e.dir, "artifacts", "hello-v1"))
	if err != nil {
		t.Fatal(err)
	}
	mountTmpfs(t, releases, fi.Size()*3/2, e.killReleases)
	e.startHello()
	e.waitFor("v1 converged", 30*time.Second, func() bool {
		s, ok := e.serviceStatus("hello")
		return ok && s.Converged
	})
	dirs := e.releaseDirs()
	stopLoad := e.load("hello", 2)
	e.commit("hello v2", map[string]string{"services/hello.yaml": e.helloManifest("hello", "v2", "")})
	e.sync()
	var msg string
	e.waitFor("v2's create failing", 60*time.Second, func() bool {
		s, _ := e.serviceStatus("hello")
		msg = s.Message
		return strings.Contains(msg, "no space left")
	})
	t.Logf("status message: %s", msg)
	// The host's fault, not the release's: retried on the transient
	// schedule, with no failure verdict.
	if fs := e.status().Memory.CreateFailures; len(fs) != 1 || !fs[0].Transient ||
		fs[0].RetryAt.Sub(fs[0].FailedAt) > reconcile.TransientBackoff(fs[0].Failures) {
		t.Errorf("create failures %+v, want one, transient, retried within %s", fs, reconcile.TransientBackoff(1))
	}
	if got := e.releaseDirs(); strings.Join(got, ",") != strings.Join(dirs, ",") {
		t.Errorf("release dirs %v -> %v: the half-written create was left", dirs, got)
	}
	if n, v := e.helloProcesses(), e.version("hello"); n != 1 || v != "v1" {
		t.Errorf("%d hello processes, serving %q: want v1 alone", n, v)
	}
	if out, err := exec.Command("mount", "-o", "remount,size=67108864", releases).CombinedOutput(); err != nil {
		t.Fatalf("grow the tmpfs: %v: %s", err, out)
	}
	grown := time.Now()
	// Retried like a transient fetch: within 5s, doubling to at most 5m.
	e.waitVersion("hello", "v2", 2*time.Minute)
	t.Logf("v2 live %s after the disk had room", time.Since(grown).Round(time.Millisecond))
	e.waitFor("v1 stopped", 30*time.Second, func() bool { return e.helloProcesses() == 1 })
	ok, bad, last := stopLoad()
	t.Logf("%d requests ok, %d failed", ok, bad)
	if bad != 0 {
		t.Errorf("%d failed requests (last: %s)", bad, last)
	}
	if ok < 50 {
		t.Errorf("only %d requests ok: the load shows nothing", ok)
	}
	b, err := os.ReadFile(filepath.Join(e.dir, "agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "event=failed") {
		t.Errorf("a release was blamed for the full disk:\n%s", tail(string(b), 40))
	}
	rels, err := e.processRuntime(t).List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rels {
		if r.State == release.StateFailed {
			t.Errorf("%s marked failed for a full disk: %s", r.Name, r.Reason)
		}
	}
}

// Issue 10, item 5: a slow artifact store (each answer 5s late) holds the
// deploy of v2 back, not v1: it serves with no failed request meanwhile,
// and v2 goes live once fetched, with no retry and nothing blamed.
func TestE2EArtifactStoreSlow(t *testing.T) {
	e := newEnv(t, "@every 1h")
	store, manifest := e.serveFromFlakyStore(t)

	stopLoad := e.load("hello", 2)
	store.slow.Store(int64(5 * time.Second))
	e.commit("hello v2", map[string]string{"services/hello.yaml": manifest("v2")})
	e.sync()
	e.waitVersion("hello", "v2", 60*time.Second)
	e.waitFor("v1 stopped", 30*time.Second, func() bool { return e.helloProcesses() == 1 })
	ok, bad, last := stopLoad()
	answers := store.answers("/hello-v2")
	t.Logf("store answers for v2: %d; %d requests ok, %d failed", len(answers), ok, bad)
	if len(answers) != 1 || answers[0].code != 200 {
		t.Errorf("store answers for v2: %+v, want one 200", answers)
	}
	if bad != 0 {
		t.Errorf("%d failed requests (last: %s)", bad, last)
	}
	if ok < 50 {
		t.Errorf("only %d requests ok: the load shows nothing", ok)
	}
	if st := e.status(); len(st.Memory.CreateFailures) != 0 {
		t.Errorf("failures remembered: %+v", st.Memory.CreateFailures)
	}
}

// checkNoVerdict fails the test when the agent's log shows a release
// marked failed or reverted: the fault (why) was the host's.
func (e *env) checkNoVerdict(t *testing.T, why string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.dir, "agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "event=failed") || strings.Contains(string(b), "event=reverted") {
		t.Errorf("a release was blamed for %s:\n%s", why, tail(string(b), 40))
	}
}
