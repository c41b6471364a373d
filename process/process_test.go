package process_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jailkeeper/jailkeeper/artifact"
	"github.com/jailkeeper/jailkeeper/internal/testenv"
	"github.com/jailkeeper/jailkeeper/process"
	"github.com/jailkeeper/jailkeeper/reconcile"
	"github.com/jailkeeper/jailkeeper/release"
	"github.com/jailkeeper/jailkeeper/release/runtimetest"
)

// The process runtime is what reconcile drives.
var _ reconcile.Runtime = (*process.Runtime)(nil)

// equateAddr lets cmp compare releases (netip.Addr has unexported fields).
var equateAddr = cmpopts.EquateComparable(netip.Addr{})

// helperEnv makes the test binary act as a short-lived agent: start one
// release and exit, leaving it running.
const helperEnv = "PROCESS_TEST_START_RELEASE"

var buildDir string

func TestMain(m *testing.M) {
	if v := os.Getenv(helperEnv); v != "" {
		root, name, _ := strings.Cut(v, ":")
		p, err := process.New(process.Config{Root: root})
		if err == nil {
			err = p.Start(context.Background(), name)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	var err error
	if buildDir, err = os.MkdirTemp("", "process-test-bin-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(buildDir)
	os.Exit(code)
}

var (
	helloOnce sync.Once
	helloErr  error
)

const helloVersion = "v1.0.0-process-test"

// helloBin builds examples/hello once per test run.
func helloBin(t *testing.T) string {
	t.Helper()
	goBin := testenv.Command(t, "go")
	bin := filepath.Join(buildDir, "hello")
	helloOnce.Do(func() {
		cmd := exec.Command(goBin, "build", "-ldflags", "-X main.version="+helloVersion, "-o", bin, "./examples/hello")
		cmd.Dir = testenv.RepoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			helloErr = fmt.Errorf("go build hello: %v\n%s", err, out)
		}
	})
	if helloErr != nil {
		t.Fatal(helloErr)
	}
	return bin
}

// randomPool is a /24 of 127.77.128.0/17, so that test packages running at
// the same time rarely meet on an address.
func randomPool() netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{127, 77, byte(128 + rand.IntN(128)), 0}), 24)
}

func randomPort() int { return 20000 + rand.IntN(20000) }

func newProcess(t *testing.T, cfg process.Config) *process.Runtime {
	t.Helper()
	if cfg.Root == "" {
		cfg.Root = filepath.Join(t.TempDir(), "releases")
	}
	if !cfg.Pool.IsValid() {
		cfg.Pool = randomPool()
	}
	if cfg.Dataset != "" && cfg.ZFS == nil {
		cfg.ZFS = testZFS()
	}
	p, err := process.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// releaseName returns a fresh valid release name of service.
func releaseName(service string) string { return runtimetest.NewName(service) }

func helloSpec(t *testing.T, env map[string]string) release.Spec {
	t.Helper()
	return release.Spec{
		Name:     releaseName("hello"),
		Service:  "hello",
		SHA:      strings.Repeat("ab", 20),
		Spec:     strings.Repeat("cd", 32),
		Port:     randomPort(),
		Command:  []string{"/usr/local/bin/hello"},
		Env:      env,
		Artifact: helloBin(t),
		Created:  time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	}
}

// create creates spec and destroys the release when the test ends.
func create(t *testing.T, p *process.Runtime, spec release.Spec) release.Release {
	t.Helper()
	r, err := p.Create(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Destroy(context.Background(), spec.Name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return r
}

func get(url string) (int, string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// waitUp polls r's /up until it answers 200. The deadline only keeps a broken
// test from hanging; nothing is asserted about time.
func waitUp(t *testing.T, p *process.Runtime, r release.Release) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		code, _, err := get("http://" + r.Addr() + "/up")
		if err == nil && code == 200 {
			return
		}
		if running, rerr := p.Running(context.Background(), r.Name); rerr != nil || !running {
			t.Fatalf("%s not running (%v) before /up answered (last: %d %v); log:\n%s", r.Name, rerr, code, err, readLog(t, p, r.Name))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: /up never answered 200 (last: %d %v)", r.Name, code, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitFor polls cond; the deadline only keeps a broken test from hanging.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readLog(t *testing.T, p *process.Runtime, name string) string {
	t.Helper()
	path, err := p.Log(name)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	return string(b)
}

func running(t *testing.T, p *process.Runtime, name string) bool {
	t.Helper()
	ok, err := p.Running(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func list(t *testing.T, p *process.Runtime) []release.Release {
	t.Helper()
	rels, err := p.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return rels
}

func pidOf(t *testing.T, root, name string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, name, "pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.Fields(string(b))[0])
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// TestProcessServes covers what release/runtimetest cannot: the installed
// command's mode, what the app answers (its environment included), and
// the exit line the reaper writes to the log. The lifecycle itself
// (idempotent start and stop, status, restart, destroy, not found) is the
// conformance suite's, in conformance_test.go.
func TestProcessServes(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "releases")
	pool := randomPool()
	p := newProcess(t, process.Config{Root: root, Pool: pool})
	spec := helloSpec(t, map[string]string{"GREETING": "bonjour"})

	r := create(t, p, spec)
	want := release.Release{
		Name: spec.Name, Service: "hello", SHA: spec.SHA, Spec: spec.Spec,
		IP: pool.Addr().Next().Next(), Port: spec.Port, State: release.StateReady, Created: spec.Created,
		TemplateSnapshot: "base", // no template directory: the empty root
	}
	if diff := cmp.Diff(want, r, equateAddr); diff != "" {
		t.Errorf("Create (-want +got):\n%s", diff)
	}
	fi, err := os.Stat(filepath.Join(root, spec.Name, "root/usr/local/bin/hello"))
	if err != nil || fi.Mode() != 0o755 {
		t.Errorf("installed command: %v %v, want mode 0755", fi, err)
	}

	if err := p.Start(ctx, spec.Name); err != nil {
		t.Fatal(err)
	}
	waitUp(t, p, r)
	for path, body := range map[string]string{
		"/":             "Hello World!\n",
		"/version":      helloVersion,
		"/env/GREETING": "bonjour",
		"/env/ADDR":     r.Addr(),
		"/env/HOST":     r.IP.String(),
		"/env/PORT":     strconv.Itoa(r.Port),
	} {
		code, got, err := get("http://" + r.Addr() + path)
		if err != nil || code != 200 || got != body {
			t.Errorf("GET %s = %d %q %v, want 200 %q", path, code, got, err, body)
		}
	}

	if err := p.Stop(ctx, spec.Name); err != nil {
		t.Fatal(err)
	}
	if _, _, err := get("http://" + r.Addr() + "/"); err == nil {
		t.Error("hello still answers after Stop")
	}
	// hello shut down gracefully on SIGTERM, and the reaper noted it.
	waitFor(t, "the exit line in the log", func() bool { return strings.Contains(readLog(t, p, spec.Name), "ended: exit status 0") })
}

// TestProcessAdoptAfterRestart starts a release from another process (an
// agent that then exits) and drives it from a fresh Process.
func TestProcessAdoptAfterRestart(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "releases")
	p := newProcess(t, process.Config{Root: root})
	spec := helloSpec(t, nil)
	r := create(t, p, spec)

	agent := exec.Command(os.Args[0], "-test.run=^$")
	agent.Env = append(os.Environ(), helperEnv+"="+root+":"+spec.Name)
	if out, err := agent.CombinedOutput(); err != nil {
		t.Fatalf("agent process: %v\n%s", err, out)
	}

	p2 := newProcess(t, process.Config{Root: root})
	rels := list(t, p2)
	if len(rels) != 1 || !rels[0].Running || rels[0].Name != spec.Name {
		t.Fatalf("List after the agent exited = %+v, want %s running", rels, spec.Name)
	}
	waitUp(t, p2, r)
	pid := pidOf(t, root, spec.Name)
	if err := p2.Start(ctx, spec.Name); err != nil {
		t.Fatal(err)
	}
	if again := pidOf(t, root, spec.Name); again != pid {
		t.Errorf("Start of an adopted release started pid %d beside %d", again, pid)
	}
	if err := p2.Stop(ctx, spec.Name); err != nil {
		t.Fatal(err)
	}
	if running(t, p2, spec.Name) {
		t.Error("adopted release still running after Stop")
	}
	if _, _, err := get("http://" + r.Addr() + "/"); err == nil {
		t.Error("adopted hello still answers after Stop")
	}
}

// shellTemplate is a template directory holding the host's sh as /bin/sh, for
// test commands. The runtime itself never runs a shell.
func shellTemplate(t *testing.T) string {
	t.Helper()
	sh, err := exec.LookPath("sh")
	if err != nil {
		testenv.Need(t, "sh: %v", err)
	}
	if sh, err = filepath.EvalSymlinks(sh); err != nil {
		t.Fatal(err)
	}
	tmpl := t.TempDir()
	if err := os.Mkdir(filepath.Join(tmpl, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(sh)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmpl, "bin/sh"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	return tmpl
}

func shellSpec(script string) release.Spec {
	return release.Spec{
		Name:    releaseName("shell"),
		Service: "shell",
		SHA:     strings.Repeat("12", 20),
		Spec:    strings.Repeat("34", 32),
		Port:    randomPort(),
		Command: []string{"/bin/sh", "-c", script},
	}
}

// groupMembers lists the live (non-zombie) processes of process group pgid.
func groupMembers(t *testing.T, pgid int) []string {
	t.Helper()
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range stats {
		b, err := os.ReadFile(s)
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 2 && f[2] == strconv.Itoa(pgid) && f[0] != "Z" {
			out = append(out, string(b))
		}
	}
	return out
}

func TestProcessStopEscalatesToSIGKILL(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		testenv.Need(t, "/proc: %v", err)
	}
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "releases")
	p := newProcess(t, process.Config{Root: root, Template: shellTemplate(t), StopTimeout: 300 * time.Millisecond})
	// sh and its sleep child both ignore SIGTERM.
	spec := shellSpec(`trap "" TERM; echo ready; sleep 1000; echo unreachable`)
	create(t, p, spec)
	if err := p.Start(ctx, spec.Name); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the trap", func() bool { return strings.Contains(readLog(t, p, spec.Name), "ready") })
	pid := pidOf(t, root, spec.Name)
	waitFor(t, "sleep to start", func() bool { return len(groupMembers(t, pid)) == 2 })

	if err := p.Stop(ctx, spec.Name); err != nil {
		t.Fatal(err)
	}
	if running(t, p, spec.Name) {
		t.Fatal("running after Stop")
	}
	waitFor(t, "the exit line in the log", func() bool { return strings.Contains(readLog(t, p, spec.Name), "ended: signal: killed") })
	waitFor(t, "the group to die", func() bool { return len(groupMembers(t, pid)) == 0 })
}

func TestProcessEnvironment(t *testing.T) {
	ctx := context.Background()
	t.Setenv("JAILS_TEST_AGENT_ONLY", "leak")
	root := filepath.Join(t.TempDir(), "releases")
	p := newProcess(t, process.Config{Root: root, Template: shellTemplate(t)})
	envFile := filepath.Join(t.TempDir(), "shell.env")
	secrets := "# secrets\n\nSECRET=s3 cr=et\nexport TOKEN=abc\nSHARED=from-file\nPORT=1\n"
	if err := os.WriteFile(envFile, []byte(secrets), 0o600); err != nil {
		t.Fatal(err)
	}
	spec := shellSpec(`env > env.out; pwd > pwd.out`)
	spec.Env = map[string]string{"GREETING": "hi there", "SHARED": "from-manifest", "ADDR": "wrong"}
	spec.EnvFile = envFile
	r := create(t, p, spec)

	fi, err := os.Stat(filepath.Join(root, spec.Name, "env"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != 0o600 {
		t.Errorf("env file copy has mode %v, want 0600", fi.Mode())
	}
	if err := p.Start(ctx, spec.Name); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the command to end", func() bool { return strings.Contains(readLog(t, p, spec.Name), "ended: exit status 0") })
	if running(t, p, spec.Name) {
		t.Error("running after the command ended")
	}

	rootDir := filepath.Join(root, spec.Name, "root")
	b, err := os.ReadFile(filepath.Join(rootDir, "env.out"))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		k, v, _ := strings.Cut(line, "=")
		got[k] = v
	}
	for _, k := range []string{"PWD", "OLDPWD", "SHLVL", "_"} {
		delete(got, k) // set by sh itself
	}
	want := map[string]string{
		"PATH":     "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"GREETING": "hi there",
		"SECRET":   "s3 cr=et",
		"TOKEN":    "abc",
		"SHARED":   "from-file",
		"PORT":     strconv.Itoa(r.Port),
		"HOST":     r.IP.String(),
		"ADDR":     r.Addr(),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("environment of the command (-want +got):\n%s", diff)
	}
	pwd, err := os.ReadFile(filepath.Join(rootDir, "pwd.out"))
	if err != nil {
		t.Fatal(err)
	}
	if real, _ := filepath.EvalSymlinks(rootDir); strings.TrimSpace(string(pwd)) != real {
		t.Errorf("working directory = %q, want %q", pwd, real)
	}
}

func TestProcessEnvFileErrorsHideValues(t *testing.T) {
	p := newProcess(t, process.Config{})
	envFile := filepath.Join(t.TempDir(), "bad.env")
	if err := os.WriteFile(envFile, []byte("OK=1\nhunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	spec := helloSpec(t, nil)
	spec.EnvFile = envFile
	_, err := p.Create(context.Background(), spec)
	if err == nil || !strings.Contains(err.Error(), "line 2") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("Create = %v, want an error naming line 2 without its content", err)
	}
	if got := list(t, p); len(got) != 0 {
		t.Errorf("a failed Create left %v", got)
	}
}

// TestProcessRefusesLoaderVariables: neither the manifest's env nor the env
// file may set LD_* (dynamic loader) variables; the error names the line or
// the variable, never the value.
func TestProcessRefusesLoaderVariables(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "releases")
	p := newProcess(t, process.Config{Root: root})

	spec := helloSpec(t, map[string]string{"LD_PRELOAD": "/tmp/manifest-secret.so"})
	if _, err := p.Create(ctx, spec); err == nil || !strings.Contains(err.Error(), "LD_PRELOAD") || strings.Contains(err.Error(), "manifest-secret") {
		t.Errorf("Create with env LD_PRELOAD = %v, want an error naming the variable, not its value", err)
	}

	envFile := filepath.Join(t.TempDir(), "app.env")
	if err := os.WriteFile(envFile, []byte("OK=1\nexport LD_LIBRARY_PATH=/tmp/file-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	spec = helloSpec(t, nil)
	spec.EnvFile = envFile
	_, err := p.Create(ctx, spec)
	if err == nil || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "LD_") || strings.Contains(err.Error(), "file-secret") {
		t.Errorf("Create with an LD_ env file line = %v, want an error naming line 2, not its value", err)
	}
	if got := list(t, p); len(got) != 0 {
		t.Errorf("a refused Create left %v", got)
	}

	// A release made before the check, or edited on disk: Start refuses.
	spec = helloSpec(t, nil)
	create(t, p, spec)
	ps := []byte(`{"command": ["/usr/local/bin/hello"], "env": {"LD_PRELOAD": "/tmp/disk-secret.so"}}`)
	if err := os.WriteFile(filepath.Join(root, spec.Name, "process.json"), ps, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx, spec.Name); err == nil || !strings.Contains(err.Error(), "LD_PRELOAD") || strings.Contains(err.Error(), "disk-secret") {
		t.Errorf("Start with LD_PRELOAD in process.json = %v, want an error naming the variable", err)
	}
	if running(t, p, spec.Name) {
		t.Error("running after a refused Start")
	}
	if err := os.WriteFile(filepath.Join(root, spec.Name, "env"), []byte("LD_AUDIT=/tmp/x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, spec.Name, "process.json"), []byte(`{"command": ["/usr/local/bin/hello"]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx, spec.Name); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("Start with LD_AUDIT in the env file = %v, want an error naming line 1", err)
	}
}

func TestProcessPoolExhausted(t *testing.T) {
	ctx := context.Background()
	pool := netip.MustParsePrefix("127.77.99.8/30")
	p := newProcess(t, process.Config{Pool: pool})
	a := create(t, p, helloSpec(t, nil))
	b := create(t, p, helloSpec(t, nil))
	if diff := cmp.Diff([]string{"127.77.99.10", "127.77.99.11"}, []string{a.IP.String(), b.IP.String()}); diff != "" {
		t.Errorf("addresses (-want +got):\n%s", diff)
	}
	third := helloSpec(t, nil)
	if _, err := p.Create(ctx, third); !errors.Is(err, release.ErrPoolExhausted) {
		t.Fatalf("third Create = %v, want release.ErrPoolExhausted", err)
	}
	if got := len(list(t, p)); got != 2 {
		t.Errorf("%d releases after the failed Create, want 2", got)
	}
	if err := p.Destroy(ctx, a.Name); err != nil {
		t.Fatal(err)
	}
	c := create(t, p, third)
	if c.IP != a.IP {
		t.Errorf("freed address not reused: got %s, want %s", c.IP, a.IP)
	}
}

func TestProcessConcurrentCreatesGetDistinctAddresses(t *testing.T) {
	p := newProcess(t, process.Config{})
	const n = 6
	specs := make([]release.Spec, n)
	for i := range specs {
		specs[i] = helloSpec(t, nil)
		t.Cleanup(func() { p.Destroy(context.Background(), specs[i].Name) })
	}
	var wg sync.WaitGroup
	rels := make([]release.Release, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { rels[i], errs[i] = p.Create(context.Background(), specs[i]) })
	}
	wg.Wait()
	seen := map[netip.Addr]string{}
	for i, r := range rels {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if other, dup := seen[r.IP]; dup {
			t.Errorf("%s and %s share %s", r.Name, other, r.IP)
		}
		seen[r.IP] = r.Name
	}
}

func TestProcessListSurvivesJunkAndCorruption(t *testing.T) {
	root := filepath.Join(t.TempDir(), "releases")
	p := newProcess(t, process.Config{Root: root})
	good := create(t, p, helloSpec(t, nil))

	corrupt := releaseName("broken")
	mismatched := releaseName("hello")
	for path, content := range map[string]string{
		corrupt + "/release.json":     `{"name": "` + corrupt + `", "state": `,
		mismatched + "/release.json":  `{"name": "hello_000000000000_000000", "state": "ready"}`,
		releaseName("empty") + "/pid": "12345 1\n",
		"lost+found/release.json":     "{}",
		"not_a_release/release.json":  "{}",
	} {
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(path)), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, path), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "stray-file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}

	got := list(t, p)
	want := []release.Release{
		{Name: corrupt, Service: "broken", State: release.StateFailed},
		good,
		{Name: mismatched, Service: "hello", State: release.StateFailed},
	}
	if diff := cmp.Diff(want, got, equateAddr, cmpopts.IgnoreFields(release.Release{}, "Reason"), cmpopts.SortSlices(func(a, b release.Release) bool { return a.Name < b.Name })); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
	for _, r := range got {
		if r.Name != good.Name && !strings.Contains(r.Reason, "corrupt release.json") {
			t.Errorf("%s: reason %q does not say release.json is corrupt", r.Name, r.Reason)
		}
	}
	// Creating beside them still works.
	create(t, p, helloSpec(t, nil))
}

// evilTarball writes a tarball that artifact.Install refuses (a link out
// of the root) and returns its path.
func evilTarball(t *testing.T) string {
	t.Helper()
	var tgz bytes.Buffer
	zw := gzip.NewWriter(&tgz)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "escape", Linkname: "/etc"})
	tw.Close()
	zw.Close()
	evil := filepath.Join(t.TempDir(), "evil.tar.gz")
	if err := os.WriteFile(evil, tgz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return evil
}

func TestProcessCreateErrorsLeaveNothing(t *testing.T) {
	ctx := context.Background()
	evil := evilTarball(t)

	tests := []struct {
		name   string
		modify func(*release.Spec)
		is     error
	}{
		{"unsafe tarball", func(s *release.Spec) { s.Artifact = evil }, artifact.ErrUnsafe},
		{"missing artifact", func(s *release.Spec) { s.Artifact += ".missing" }, fs.ErrNotExist},
		{"missing env file", func(s *release.Spec) { s.EnvFile = "/nonexistent/process-test.env" }, fs.ErrNotExist},
		{"bad name", func(s *release.Spec) { s.Name = "Hello" }, nil},
		{"name of another service", func(s *release.Spec) { s.Service = "other" }, nil},
		{"port", func(s *release.Spec) { s.Port = 0 }, nil},
		{"no command", func(s *release.Spec) { s.Command = nil }, nil},
		{"command leaves root", func(s *release.Spec) { s.Command = []string{"/../../bin/sh"} }, nil},
		{"env key", func(s *release.Spec) { s.Env = map[string]string{"A=B": "c"} }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "releases")
			p := newProcess(t, process.Config{Root: root})
			spec := helloSpec(t, nil)
			tt.modify(&spec)
			_, err := p.Create(ctx, spec)
			if err == nil {
				t.Fatal("Create succeeded")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("Create = %v, want %v", err, tt.is)
			}
			left, _ := os.ReadDir(root)
			if len(left) != 0 {
				t.Errorf("a failed Create left %v", left)
			}
		})
	}
}

func TestProcessCreateExisting(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "releases")
	p := newProcess(t, process.Config{Root: root})
	spec := helloSpec(t, nil)
	create(t, p, spec)
	if _, err := p.Create(ctx, spec); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Create of a ready release = %v, want fs.ErrExist", err)
	}

	// An interrupted create (state creating) is replaced.
	interrupted := helloSpec(t, nil)
	dir := filepath.Join(root, interrupted.Name)
	if err := os.MkdirAll(filepath.Join(dir, "root/half"), 0o750); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(release.Release{Name: interrupted.Name, Service: "hello", State: release.StateCreating})
	if err := os.WriteFile(filepath.Join(dir, "release.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	r := create(t, p, interrupted)
	if r.State != release.StateReady {
		t.Errorf("state = %s, want ready", r.State)
	}
	if _, err := os.Stat(filepath.Join(dir, "root/half")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("leftover of the interrupted create survived: %v", err)
	}
}

func TestProcessTemplate(t *testing.T) {
	tmpl := t.TempDir()
	for path, mode := range map[string]fs.FileMode{"etc/motd": 0o644, "usr/local/bin/tool": 0o755} {
		if err := os.MkdirAll(filepath.Join(tmpl, filepath.Dir(path)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tmpl, path), []byte(path), mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("motd", filepath.Join(tmpl, "etc/motd.link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(tmpl, "tmp"), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(tmpl, "tmp"), 0o777|fs.ModeSticky); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(t.TempDir(), "releases")
	p := newProcess(t, process.Config{Root: root, Template: tmpl})
	spec := helloSpec(t, nil)
	create(t, p, spec)

	rroot := filepath.Join(root, spec.Name, "root")
	var got []string
	filepath.WalkDir(rroot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, _ := os.Lstat(path)
		rel, _ := filepath.Rel(rroot, path)
		got = append(got, fmt.Sprintf("%s %v", rel, fi.Mode()))
		return nil
	})
	want := []string{
		". drwxr-xr-x",
		"etc drwxr-xr-x",
		"etc/motd -rw-r--r--",
		"etc/motd.link Lrwxrwxrwx",
		"tmp dtrwxrwxrwx",
		"usr drwxr-xr-x",
		"usr/local drwxr-xr-x",
		"usr/local/bin drwxr-xr-x",
		"usr/local/bin/hello -rwxr-xr-x",
		"usr/local/bin/tool -rwxr-xr-x",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("release root (-want +got):\n%s", diff)
	}
}

// TestProcessPIDReuse: a pidfile naming a live process that is not the one
// the release started must not count as running, and Stop must not signal it.
func TestProcessPIDReuse(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		testenv.Need(t, "/proc: %v", err)
	}
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "releases")
	p := newProcess(t, process.Config{Root: root})
	spec := helloSpec(t, nil)
	create(t, p, spec)

	stranger := exec.Command(testenv.Command(t, "sleep"), "1000")
	stranger.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := stranger.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stranger.Process.Kill(); stranger.Wait() })
	pid := stranger.Process.Pid
	pidfile := filepath.Join(root, spec.Name, "pid")
	if err := os.WriteFile(pidfile, fmt.Appendf(nil, "%d 1\n", pid), 0o644); err != nil {
		t.Fatal(err)
	}
	if running(t, p, spec.Name) {
		t.Error("a stranger with the recorded pid counts as running")
	}
	if err := p.Stop(ctx, spec.Name); err != nil {
		t.Fatal(err)
	}
	if err := stranger.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("Stop signalled a stranger: %v", err)
	}
	if _, err := os.Stat(pidfile); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stale pidfile kept: %v", err)
	}
}

func TestNewProcessValidates(t *testing.T) {
	tests := []struct {
		name string
		cfg  process.Config
	}{
		{"no root", process.Config{}},
		{"ipv6 pool", process.Config{Root: t.TempDir(), Pool: netip.MustParsePrefix("fd00::/64")}},
		{"pool too small", process.Config{Root: t.TempDir(), Pool: netip.MustParsePrefix("127.77.0.0/31")}},
		{"missing template", process.Config{Root: t.TempDir(), Template: "/nonexistent/template"}},
		{"bad dataset", process.Config{Root: t.TempDir(), Dataset: "/tank/jk"}},
		{"dataset too long for releases", process.Config{Root: t.TempDir(), Dataset: "tank/" + strings.Repeat("d", 190)}},
		{"dataset and template directory", process.Config{Root: t.TempDir(), Dataset: "tank/jk", Template: t.TempDir()}},
		{"bad template name", process.Config{Root: t.TempDir(), Dataset: "tank/jk", TemplateName: "a/b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := process.New(tt.cfg); err == nil {
				t.Error("New succeeded")
			}
		})
	}
}
