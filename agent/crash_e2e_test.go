package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/internal/crashpoint"
	"github.com/jailkeeper/jailkeeper/internal/testenv"
	"github.com/jailkeeper/jailkeeper/process"
	"github.com/jailkeeper/jailkeeper/release"
)

// TestE2ECrashPoints kills a real agent (the jailkeeper binary, run as a
// child with JAILKEEPER_CRASH_AT) at each crash point of the executor and
// the process runtime in turn, each during a deploy of the next hello
// version with retain: 0, so every deploy creates, starts, migrates, gates,
// switches, watches, promotes, retires, and destroys the release it
// replaced. After each kill an agent without the variable starts on the
// same state dir, and once it settles the test asserts: the last commit
// is live and converged; one process runs, of the live release, and one
// release directory is left, listed by the runtime, with no temporary
// file; Caddy holds one route for the service, to the live release; no
// release is failed. Clients send requests through Caddy the whole time,
// and not one may fail. Every point is killed at, or the test fails.
//
// The FreeBSD runtime's points are swept in-process on the fake host by
// jails' TestFreeBSDCrashPoints.
func TestE2ECrashPoints(t *testing.T) {
	testenv.Command(t, "go")
	var points []string
	for _, p := range crashpoint.Points() {
		switch {
		case sweptElsewhere(p):
			// TestE2ECrashPointsFailurePaths and TestE2ECrashPointsZFS sweep these.
		case strings.HasPrefix(p, "process."), strings.HasPrefix(p, "reconcile."):
			points = append(points, p)
		case strings.HasPrefix(p, "jails."):
			// jails' TestFreeBSDCrashPoints sweeps these.
		default:
			t.Errorf("crash point %s is swept by no test", p)
		}
	}
	if len(points) < 10 {
		t.Fatalf("crash points = %v: too few, the registry lost some", points)
	}
	began := time.Now()
	e := newEnv(t, "@every 1s")
	versions := []string{"v1", "v2", "v3"}
	manifest := func(v string) map[string]string {
		// With a migration (that migrates nothing), so reconcile.migrate.*
		// are reached too.
		m := e.helloManifest("hello", v, "migrate: [/usr/local/bin/hello, migrate]\n")
		m = strings.Replace(m, "retain: 2", "retain: 0", 1)
		m = strings.Replace(m, "drain: 1s", "drain: 200ms", 1)
		return map[string]string{"services/hello.yaml": m}
	}
	e.commit("hello v1", manifest("v1"))
	ag := startChild(t, e, "")
	waitUntil(t, "v1 live", 60*time.Second, func() error { return e.settled("v1") })

	load := startLoad(e, 4)
	defer load.stop() // also on a Fatal

	var killed []string
	for i, point := range points {
		v := versions[(i+1)%len(versions)]
		ok := t.Run(point, func(t *testing.T) {
			if crashDeploy(t, e, &ag, load, point, v, manifest(v)) {
				killed = append(killed, point)
			}
		})
		if !ok {
			t.Logf("agent log:\n%s", tail(readFile(filepath.Join(e.dir, "agent-child.log")), 80))
			break // the next deploy would start from a broken state
		}
	}
	ag.terminate(t)
	ok, bad, errs, failures := load.stop()
	t.Logf("killed at %d of %d crash points: %s", len(killed), len(points), strings.Join(killed, " "))
	t.Logf("requests during the sweep: %d ok, %d non-2xx, %d errors; sweep took %s",
		ok, bad, errs, time.Since(began).Round(time.Second))
	if missed := slices.DeleteFunc(slices.Clone(points), func(p string) bool { return slices.Contains(killed, p) }); len(missed) > 0 {
		t.Errorf("never killed at %v", missed)
	}
	// Not one request may fail. A switch is an upstream file write that
	// reloads nothing in Caddy (caddy.Config.UpstreamDir), so no server
	// of Caddy's shuts down under the clients.
	for _, f := range failures {
		t.Errorf("lost request: %s", f)
	}
	if ok < 100 {
		t.Errorf("only %d requests went through; the load did not run", ok)
	}
}

// crashDeploy stops the agent *ag, commits files (hello at version v),
// runs an agent that dies at point, and restarts *ag, which must bring
// hello to v with the crash invariants kept. It reports whether the agent
// died at point.
func crashDeploy(t *testing.T, e *env, ag **child, load *load, point, v string, files map[string]string) (killed bool) {
	t.Helper()
	load.phase.Store(point + ": stopping the agent")
	(*ag).terminate(t)
	e.commit("hello "+v, files)
	load.phase.Store(point + ": deploy until the kill")
	crash := startChild(t, e, point)
	if killed = crash.waitKilled(t, 60*time.Second); killed {
		t.Logf("killed at %s", point)
	} else {
		t.Errorf("the deploy of %s never reached %s", v, point)
	}
	load.phase.Store(point + ": restarted")
	*ag = startChild(t, e, "")
	waitUntil(t, v+" live again", 60*time.Second, func() error { return e.settled(v) })
	e.checkCrashInvariants(t, v)
	return killed
}

// settled reports why hello is not yet settled on version v: served,
// converged in /status, one process, one release directory.
func (e *env) settled(v string) error {
	if got := e.version("hello"); got != v {
		return fmt.Errorf("Caddy serves %q", got)
	}
	st, b, err := e.readStatus()
	if err != nil {
		return err
	}
	if len(st.Services) != 1 || !st.Services[0].Converged || st.Services[0].LiveSHA != helloSHA("hello", v) {
		return fmt.Errorf("status %s", b)
	}
	if n := e.helloProcesses(); n != 1 {
		return fmt.Errorf("%d hello processes", n)
	}
	if d := e.releaseDirs(); len(d) != 1 {
		return fmt.Errorf("release directories %v", d)
	}
	return nil
}

// checkCrashInvariants asserts what a kill and a restart may never leave.
func (e *env) checkCrashInvariants(t *testing.T, v string) {
	t.Helper()
	ctx := context.Background()
	rt, err := process.New(process.Config{Root: filepath.Join(e.stateDir, "releases"), Pool: netip.MustParsePrefix(e.pool)})
	if err != nil {
		t.Fatal(err)
	}
	rels, err := rt.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	addrs := map[netip.Addr]string{}
	var live release.Release
	for _, r := range rels {
		names = append(names, r.Name)
		if r.State == release.StateFailed {
			t.Errorf("%s failed for a crash it did not cause: %s", r.Name, r.Reason)
		}
		if o, dup := addrs[r.IP]; dup {
			t.Errorf("%s and %s share %s", o, r.Name, r.IP)
		}
		addrs[r.IP] = r.Name
		if r.State == release.StateLive {
			live = r
		}
	}
	if live.Name == "" || live.SHA != helloSHA("hello", v) || !live.Running {
		t.Fatalf("releases %+v: none of %s live and running", rels, v)
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
	if got, want := e.processesByRelease(), map[string]int{live.Name: 1}; !mapsEqual(got, want) {
		t.Errorf("processes by release %v, want %v", got, want)
	}

	raw := e.caddy.MustDo(t, http.MethodGet, "/config/apps/http/servers/jailkeeper/routes", "")
	var routes []map[string]any
	if err := json.Unmarshal([]byte(raw.Body), &routes); err != nil {
		t.Fatalf("Caddy routes %s: %v", raw.Body, err)
	}
	n := 0
	for _, r := range routes {
		if id, _ := r["@id"].(string); strings.HasSuffix(id, ".hello") || strings.HasSuffix(id, "_hello") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("Caddy holds %d routes for hello, want 1:\n%s", n, raw.Body)
	}
	rm := e.routes(t)
	if got := rm["hello"].Upstream; got != live.Addr() {
		t.Errorf("Caddy routes hello to %q, live release %s is at %s", got, live.Name, live.Addr())
	}
}

// processesByRelease counts running processes by the release directory
// their executable lives in (from /proc: what the runtime cannot see).
func (e *env) processesByRelease() map[string]int {
	out := map[string]int{}
	prefix := filepath.Join(e.stateDir, "releases") + "/"
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		exe, err := os.Readlink(filepath.Join("/proc", p.Name(), "exe"))
		if rest, ok := strings.CutPrefix(exe, prefix); err == nil && ok {
			out[strings.SplitN(rest, "/", 2)[0]]++
		}
	}
	return out
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

// waitUntil polls cond until it returns nil, or fails t with its last error.
func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s: %v", timeout, what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// child is an agent process: `jailkeeper run`.
type child struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // of Wait, once done is closed
}

// startChild runs the agent binary on e's config, with crashAt (if not
// empty) armed; its output goes to agent-child.log.
func startChild(t *testing.T, e *env, crashAt string) *child {
	t.Helper()
	// The previous agent is gone; its port must be free before the next binds.
	waitUntil(t, "agent port free", 10*time.Second, func() error {
		if !freePort(e.listen) {
			return errors.New("still bound")
		}
		return nil
	})
	logf, err := os.OpenFile(filepath.Join(e.dir, "agent-child.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(logf, "=== agent, crash at %q\n", crashAt)
	cmd := exec.Command(filepath.Join(e.bin, "jailkeeper"), "run", "--config", e.cfgPath, "--log-level", "debug")
	cmd.Env = append(os.Environ(), crashpoint.EnvVar+"="+crashAt)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	go func() { c.err = cmd.Wait(); logf.Close(); close(c.done) }()
	// Cleanup of e (registered earlier) runs after this: no agent restarts
	// a release the test is killing.
	e.t.Cleanup(func() { _ = cmd.Process.Kill(); <-c.done })
	return c
}

// waitKilled waits for the agent to die of SIGKILL; false when it is still
// running at the timeout (it is killed then) or ended otherwise.
func (c *child) waitKilled(t *testing.T, timeout time.Duration) bool {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(timeout):
		_ = c.cmd.Process.Kill()
		<-c.done
		return false
	}
	var ee *exec.ExitError
	if !errors.As(c.err, &ee) {
		t.Errorf("agent ended with %v, not killed", c.err)
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("agent ended with %v, not SIGKILL", c.err)
		return false
	}
	return true
}

// terminate stops the agent as an operator does, with SIGTERM.
func (c *child) terminate(t *testing.T) {
	t.Helper()
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
		t.Errorf("agent ignored SIGTERM for 30s")
	}
}

// load sends requests for hello through Caddy from n keep-alive clients
// until stopped.
type load struct {
	ok, bad, errs atomic.Int64
	phase         atomic.Value // what the test does now, for the error log
	mu            sync.Mutex
	failures      []failure
	cancel        context.CancelFunc
	wg            sync.WaitGroup
	once          sync.Once
}

func startLoad(e *env, n int) *load {
	l := &load{}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute) // bounded even if the test hangs
	l.cancel = cancel
	client := &http.Client{Timeout: 10 * time.Second}
	for range n {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				var reused atomic.Bool
				code, err := loadGet(ctx, client, e, &reused)
				switch {
				case ctx.Err() != nil:
				case err != nil:
					l.errs.Add(1)
					l.fail(fmt.Sprintf("%v (connection reused: %v)", err, reused.Load()),
						errors.Is(err, io.EOF) && !reused.Load())
				case code != 200:
					l.bad.Add(1)
					l.fail(http.StatusText(code), false)
				default:
					l.ok.Add(1)
				}
				time.Sleep(5 * time.Millisecond) // 2 cores, shared
			}
		}()
	}
	return l
}

// loadGet is one GET / for hello through Caddy; reused tells whether it went
// over a kept-alive connection.
func loadGet(ctx context.Context, client *http.Client, e *env, reused *atomic.Bool) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+e.caddy.HTTPAddr+"/", nil)
	if err != nil {
		return 0, err
	}
	req.Host = "hello.example.com"
	req = req.WithContext(httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) { reused.Store(i.Reused) },
	}))
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, err
}

// failure is one failed request.
type failure struct {
	at          time.Time
	phase, what string
	freshEOF    bool // EOF on a connection dialled for it
}

func (f failure) String() string {
	return fmt.Sprintf("%s during %s: %s", f.at.UTC().Format("15:04:05.000"), f.phase, f.what)
}

func (l *load) fail(what string, freshEOF bool) {
	phase, _ := l.phase.Load().(string)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failures = append(l.failures, failure{at: time.Now(), phase: phase, what: what, freshEOF: freshEOF})
}

// stop ends the load and returns its counts and each failure.
func (l *load) stop() (ok, bad, errs int64, failures []failure) {
	l.once.Do(func() { l.cancel(); l.wg.Wait() })
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ok.Load(), l.bad.Load(), l.errs.Load(), slices.Clone(l.failures)
}
