package agent_test

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/agent"
	"github.com/jailkeeper/jailkeeper/caddy"
	"github.com/jailkeeper/jailkeeper/caddy/caddytest"
	"github.com/jailkeeper/jailkeeper/internal/testenv"
)

// Binaries built once per test run.
var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// binaries builds the hello app in versions v1..v3 and jailkeeper itself.
func binaries(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "jailkeeper-e2e-bin-")
		if buildErr != nil {
			return
		}
		root := testenv.RepoRoot(t)
		for _, v := range []string{"v1", "v2", "v3"} {
			cmd := exec.Command("go", "build", "-ldflags", "-X main.version="+v, "-o", filepath.Join(buildDir, "hello-"+v), "./examples/hello")
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("build hello %s: %v\n%s", v, err, out)
				return
			}
		}
		cmd := exec.Command("go", "build", "-o", filepath.Join(buildDir, "jailkeeper"), "./cmd/jailkeeper")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build jailkeeper: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildDir
}

// env is one deploy repo, one Caddy and one agent config, all in t.TempDir.
type env struct {
	t        *testing.T
	dir      string
	bin      string
	caddy    *caddytest.Instance
	remote   string // bare repo the agent polls
	work     string // the developer's clone
	cfgPath  string
	listen   string // agent HTTP
	pool     string
	stateDir string
}

var poolSeq atomic.Int32

func newEnv(t *testing.T, poll string) *env {
	t.Helper()
	testenv.Command(t, "git")
	e := &env{t: t, dir: t.TempDir(), bin: binaries(t)}
	// Caddy runs as docs/freebsd.md runs it: under `jailkeeper run-caddy`,
	// serving jailkeeper's routes on the socket it inherits as fd/3.
	e.caddy = caddytest.Start(t, caddytest.Wrapper(func(addr string) []string {
		return []string{filepath.Join(e.bin, "jailkeeper"), "run-caddy", "--listen", addr, "--"}
	}))
	e.remote = filepath.Join(e.dir, "deploy.git")
	e.work = filepath.Join(e.dir, "work")
	e.git("", "init", "-q", "--bare", "-b", "main", e.remote)
	e.git("", "clone", "-q", e.remote, e.work)
	e.git(e.work, "config", "user.email", "dev@example.com")
	e.git(e.work, "config", "user.name", "Dev")
	// The agent reads file:// artifacts only below artifacts.file_root.
	if err := os.MkdirAll(filepath.Join(e.dir, "artifacts"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"v1", "v2", "v3"} {
		if err := os.Link(filepath.Join(e.bin, "hello-"+v), filepath.Join(e.dir, "artifacts", "hello-"+v)); err != nil {
			t.Fatal(err)
		}
	}
	e.listen = caddytest.FreeAddr(t)
	e.stateDir = filepath.Join(e.dir, "state")
	// Each test gets its own loopback /24 so parallel packages never collide.
	e.pool = fmt.Sprintf("127.78.%d.0/24", poolSeq.Add(1)+int32(os.Getpid()%200))
	e.cfgPath = filepath.Join(e.dir, "jailkeeper.yaml")
	cfg := fmt.Sprintf(`repo: {url: %q, branch: main, path: services, poll: %q}
host: testhost
runtime: process
state_dir: %s
process: {pool: %q}
artifacts: {file_root: %q}
caddy: {admin: %q, server: jailkeeper, listen: [%q]}
listen: %q
parallel: 4
control_socket: %q
# Scenarios count the processes a deploy leaves: the release it replaced
# is stopped at once unless a manifest asks for standby (standby_e2e_test.go).
defaults: {standby: 0s}
`, "file://"+e.remote, poll, e.stateDir, e.pool, e.dir, e.caddy.Admin, e.caddy.Listen, e.listen, e.control())
	if err := os.WriteFile(e.cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.killReleases)
	return e
}

func (e *env) git(dir string, args ...string) string {
	e.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+e.dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		e.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// artifact returns the file:// URL and sha256 of a hello build.
func (e *env) artifact(version string) (string, string) {
	e.t.Helper()
	p := filepath.Join(e.dir, "artifacts", "hello-"+version)
	data, err := os.ReadFile(p)
	if err != nil {
		e.t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return "file://" + p, hex.EncodeToString(sum[:])
}

// helloManifest renders services/<name>.yaml deploying a hello version.
func (e *env) helloManifest(name, version string, extra string) string {
	url, sum := e.artifact(version)
	sha := sha256.Sum256([]byte(name + version))
	return fmt.Sprintf(`service: %s
sha: %s
artifact: {url: %q, sha256: %s}
hostnames: [%s.example.com]
port: 8080
command: [/usr/local/bin/hello]
health: {path: /up, interval: 100ms, timeout: 1s, threshold: 2, deadline: 15s, watch: 1s}
drain: 1s
retain: 2
%s`, name, hex.EncodeToString(sha[:20]), url, sum, name, extra)
}

// commit writes (or, for "", deletes) files in the work tree, commits and
// pushes, and returns the new commit.
func (e *env) commit(msg string, files map[string]string) string {
	e.t.Helper()
	for name, content := range files {
		p := filepath.Join(e.work, name)
		if content == "" {
			e.git(e.work, "rm", "-q", name)
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			e.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			e.t.Fatal(err)
		}
		e.git(e.work, "add", name)
	}
	e.git(e.work, "commit", "-q", "-m", msg)
	e.git(e.work, "push", "-q", "origin", "main")
	return e.git(e.work, "rev-parse", "HEAD")
}

// runAgent runs the agent in this process until the test ends or stop is
// called.
func (e *env) runAgent() (stop func()) {
	e.t.Helper()
	cfg, err := agent.LoadConfig(e.cfgPath)
	if err != nil {
		e.t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(e.dir, "agent.log"))
	if err != nil {
		e.t.Fatal(err)
	}
	a, err := agent.New(cfg, slog.New(slog.NewTextHandler(logf, nil)))
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				e.t.Errorf("agent: %v", err)
			}
			logf.Close()
		})
	}
	e.t.Cleanup(func() {
		stop()
		if e.t.Failed() {
			b, _ := os.ReadFile(filepath.Join(e.dir, "agent.log"))
			e.t.Logf("agent log:\n%s", tail(string(b), 60))
			e.t.Logf("caddy log:\n%s", e.caddy.LogTail(30))
		}
	})
	e.waitFor("agent HTTP", 20*time.Second, func() bool {
		_, err := e.agentGet("/healthz")
		return err == nil
	})
	return stop
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// sync asks the agent for a pass.
func (e *env) sync() {
	e.t.Helper()
	resp, err := http.Post("http://"+e.listen+"/sync", "", nil)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
}

func (e *env) agentGet(path string) ([]byte, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + e.listen + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return b, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return b, err
}

func (e *env) status() agent.Status {
	e.t.Helper()
	st, _, err := e.readStatus()
	if err != nil {
		e.t.Fatal(err)
	}
	return st
}

// readStatus reads the agent's /status, decoded and as it came, for
// callers that wait through restarts and must not fail on an error.
func (e *env) readStatus() (agent.Status, []byte, error) {
	var st agent.Status
	b, err := e.agentGet("/status")
	if err != nil {
		return st, nil, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, b, err
	}
	return st, b, nil
}

func (e *env) serviceStatus(svc string) (s struct {
	Service, DesiredSHA, LiveSHA, LiveRelease, State, Message string
	Converged                                                 bool
}, ok bool) {
	st := e.status()
	for _, x := range st.Services {
		if x.Service == svc {
			s.Service, s.DesiredSHA, s.LiveSHA, s.LiveRelease = x.Service, x.DesiredSHA, x.LiveSHA, x.LiveRelease
			s.State, s.Message, s.Converged = x.State, x.Message, x.Converged
			return s, true
		}
	}
	return s, false
}

// through sends GET path to Caddy with the service's Host header.
func (e *env) through(client *http.Client, svc, path string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+e.caddy.HTTPAddr+path, nil)
	if err != nil {
		return 0, "", err
	}
	req.Host = svc + ".example.com"
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// version is the hello version Caddy serves for svc, or "".
func (e *env) version(svc string) string {
	code, body, err := e.through(&http.Client{Timeout: 3 * time.Second}, svc, "/version")
	if err != nil || code != 200 {
		return ""
	}
	return strings.TrimSpace(body)
}

func (e *env) waitVersion(svc, want string, timeout time.Duration) {
	e.t.Helper()
	e.waitFor(svc+" serving "+want, timeout, func() bool { return e.version(svc) == want })
}

func (e *env) waitFor(what string, timeout time.Duration, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// releaseDirs lists the process runtime's release directories.
func (e *env) releaseDirs() []string {
	entries, _ := os.ReadDir(filepath.Join(e.stateDir, "releases"))
	var out []string
	for _, d := range entries {
		if d.IsDir() {
			out = append(out, d.Name())
		}
	}
	return out
}

// helloProcesses counts running hello processes whose binary lives under
// this test's state dir (from /proc, so it sees what the agent cannot).
func (e *env) helloProcesses() int {
	n := 0
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		exe, err := os.Readlink(filepath.Join("/proc", p.Name(), "exe"))
		if err == nil && strings.HasPrefix(exe, e.stateDir+"/") {
			n++
		}
	}
	return n
}

// killReleases stops whatever releases a test left running.
func (e *env) killReleases() {
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		exe, err := os.Readlink(filepath.Join("/proc", p.Name(), "exe"))
		if err == nil && strings.HasPrefix(exe, e.stateDir+"/") {
			var pid int
			if _, err := fmt.Sscan(p.Name(), &pid); err == nil {
				if proc, err := os.FindProcess(pid); err == nil {
					_ = proc.Kill()
				}
			}
		}
	}
}

// freePort reports whether nothing listens on addr.
func freePort(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return true
	}
	c.Close()
	return false
}

// httpFileServer serves 404 for everything on 127.0.0.1.
func httpFileServer(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	return srv.URL
}

// evilTarball writes a .tar.gz whose entry climbs out of the release root.
func evilTarball(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "evil.tar.gz")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	body := []byte("pwned\n")
	if err := tw.WriteHeader(&tar.Header{Name: "../../escaped", Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(body); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

func fileSum(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// startHello commits hello v1, runs the agent and waits until Caddy serves
// it: where most scenarios start.
func (e *env) startHello() (stop func()) {
	e.t.Helper()
	e.commit("add hello", map[string]string{"services/hello.yaml": e.helloManifest("hello", "v1", "")})
	stop = e.runAgent()
	e.waitVersion("hello", "v1", 60*time.Second)
	return stop
}

// load sends requests to svc through Caddy without pause from clients
// goroutines until stop is called, which returns the counts of good and
// failed (an error or not 200) requests and the last failure.
func (e *env) load(svc string, clients int) (stop func() (ok, failed int64, last string)) {
	var okN, bad atomic.Int64
	var lastErr atomic.Value
	lastErr.Store("")
	done := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	deadline := time.Now().Add(3 * time.Minute) // bounded even if the test hangs
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				select {
				case <-done:
					return
				default:
				}
				code, body, err := e.through(client, svc, "/")
				switch {
				case err != nil:
					bad.Add(1)
					lastErr.Store(err.Error())
				case code != 200:
					bad.Add(1)
					lastErr.Store(http.StatusText(code) + ": " + body)
				default:
					okN.Add(1)
				}
			}
		}()
	}
	var once sync.Once
	return func() (int64, int64, string) {
		once.Do(func() { close(done); wg.Wait() })
		return okN.Load(), bad.Load(), lastErr.Load().(string)
	}
}

// routes reads jailkeeper's routes as the agent sees them: the upstream of
// each from its file under the state dir (caddy.Config.UpstreamDir).
func (e *env) routes(t *testing.T) map[string]caddy.Route {
	t.Helper()
	c, err := caddy.New(caddy.Config{Admin: e.caddy.Admin, Server: "jailkeeper", UpstreamDir: filepath.Join(e.stateDir, "upstreams")})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rm, err := c.Routes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return rm
}
