package caddytest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/internal/testenv"
)

// startTimeout bounds how long Start waits for the admin API to answer.
// It is a wait for readiness, not an assertion about speed.
const startTimeout = 20 * time.Second

// stopTimeout is how long Stop waits after SIGTERM before SIGKILL.
const stopTimeout = 10 * time.Second

// Option changes how Start runs Caddy.
type Option func(*options)

type options struct {
	tcp     bool
	inherit bool
	wrapper func(httpAddr string) []string
	apps    json.RawMessage
}

// Wrapper runs Caddy under a command that opens the HTTP socket on httpAddr
// and hands it to Caddy as fd 3, such as `jailkeeper run-caddy --listen
// httpAddr --`; wrap returns that command's argv, to which Start appends
// Caddy's. Instance.Listen is then "fd/3".
func Wrapper(wrap func(httpAddr string) []string) Option {
	return func(o *options) { o.wrapper = wrap }
}

// InheritListener opens the HTTP listening socket in the test process and
// hands it to Caddy as file descriptor 3, as a service manager's socket
// activation would; Instance.Listen is then "fd/3". Caddy re-creates its
// listener from that descriptor on every reload, so the socket and its
// accept queue survive config writes (with a plain address, Linux
// SO_REUSEPORT gives each reload a new socket, and connections queued on the
// old one are dropped when it closes).
func InheritListener() Option { return func(o *options) { o.inherit = true } }

// TCPAdmin puts the admin endpoint on 127.0.0.1:<free port> instead of a
// unix socket.
func TCPAdmin() Option { return func(o *options) { o.tcp = true } }

// WithApps sets the "apps" object of the initial config file (JSON), so that
// Caddy starts with, and returns to after Restart, that config.
func WithApps(appsJSON string) Option {
	return func(o *options) { o.apps = json.RawMessage(appsJSON) }
}

// Instance is one running Caddy. Its methods are safe for concurrent use
// except Restart and Stop, which the test calls from one goroutine.
type Instance struct {
	// Admin is the admin address in caddy.Config.Admin form:
	// "unix//<dir>/admin.sock" or "127.0.0.1:<port>".
	Admin string
	// HTTPAddr is a free 127.0.0.1:<port> that nothing listens on yet, for
	// the test to pass as the jailkeeper server's listen address; with
	// InheritListener, the address of the inherited socket.
	HTTPAddr string
	// Listen is what to put in caddy.Config.Listen: HTTPAddr, or "fd/3"
	// with InheritListener.
	Listen string
	// Dir is the instance's directory: config file, log, Caddy's data.
	Dir string
	// LogPath is the file that receives Caddy's stdout and stderr.
	LogPath string

	bin        string
	configPath string
	listenFile *os.File // the inherited socket, or nil
	wrapper    []string // argv Caddy runs under, or nil
	sock       string   // unix socket path, or ""
	tcpAddr    string   // admin host:port, or ""
	client     *http.Client
	base       string

	mu   sync.Mutex
	cmd  *exec.Cmd
	exit chan struct{} // closed when cmd has been waited for
}

// Start runs bin/caddy (`caddy run --config <file>`) with an initial config
// that has only the admin endpoint (persist off) and opts' apps, waits until
// the admin API answers, and stops Caddy in t.Cleanup. A missing binary is
// testenv.Need'ed (fails in CI, skips elsewhere).
func Start(t testing.TB, opts ...Option) *Instance {
	t.Helper()
	var o options
	for _, f := range opts {
		f(&o)
	}
	in := &Instance{bin: testenv.Caddy(t), Dir: t.TempDir()}
	in.LogPath = filepath.Join(in.Dir, "caddy.log")
	in.configPath = filepath.Join(in.Dir, "caddy.json")
	in.HTTPAddr = FreeAddr(t)
	in.Listen = in.HTTPAddr
	if o.inherit {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("caddytest: listen: %v", err)
		}
		f, err := ln.(*net.TCPListener).File()
		ln.Close() // f is a dup and keeps the socket listening
		if err != nil {
			t.Fatalf("caddytest: listener file: %v", err)
		}
		t.Cleanup(func() { f.Close() })
		in.listenFile, in.HTTPAddr, in.Listen = f, ln.Addr().String(), "fd/3"
	}
	if o.wrapper != nil {
		in.wrapper, in.Listen = o.wrapper(in.HTTPAddr), "fd/3"
	}

	tr := &http.Transport{DisableKeepAlives: true}
	if o.tcp {
		in.tcpAddr = FreeAddr(t)
		in.Admin = in.tcpAddr
		in.base = "http://" + in.tcpAddr
	} else {
		in.sock = filepath.Join(in.Dir, "admin.sock")
		if len(in.sock) > 100 { // sun_path holds 104 (BSD) or 108 (Linux) bytes
			d, err := os.MkdirTemp("", "caddyadm")
			if err != nil {
				t.Fatalf("caddytest: %v", err)
			}
			t.Cleanup(func() { os.RemoveAll(d) })
			in.sock = filepath.Join(d, "admin.sock")
		}
		in.Admin = "unix/" + in.sock
		in.base = "http://caddy-admin"
		sock := in.sock
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}
	}
	in.client = &http.Client{Transport: tr, Timeout: 30 * time.Second}

	cfg := map[string]any{
		"admin": map[string]any{
			"listen": in.Admin,
			"config": map[string]any{"persist": false},
		},
	}
	if o.apps != nil {
		cfg["apps"] = o.apps
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatalf("caddytest: %v", err)
	}
	if err := os.WriteFile(in.configPath, b, 0o600); err != nil {
		t.Fatalf("caddytest: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("caddy log tail (%s):\n%s", in.LogPath, in.LogTail(40))
		}
		in.Stop()
	})
	in.start(t)
	return in
}

// FreeAddr returns 127.0.0.1:<port> for a port that was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("caddytest: free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func (in *Instance) start(t testing.TB) {
	t.Helper()
	if in.sock != "" {
		// A Caddy killed hard leaves its socket file behind.
		os.Remove(in.sock)
	}
	logf, err := os.OpenFile(in.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatalf("caddytest: %v", err)
	}
	argv := append(append([]string(nil), in.wrapper...), in.bin, "run", "--config", in.configPath)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if in.listenFile != nil {
		cmd.ExtraFiles = []*os.File{in.listenFile} // fd 3 in Caddy
	}
	// Keep Caddy's autosave, data and instance id inside the test dir.
	cmd.Env = append(os.Environ(),
		"HOME="+in.Dir,
		"XDG_CONFIG_HOME="+filepath.Join(in.Dir, "config"),
		"XDG_DATA_HOME="+filepath.Join(in.Dir, "data"),
	)
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("caddytest: starting %s: %v", in.bin, err)
	}
	exit := make(chan struct{})
	go func() {
		cmd.Wait()
		logf.Close()
		close(exit)
	}()
	in.mu.Lock()
	in.cmd, in.exit = cmd, exit
	in.mu.Unlock()

	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-exit:
			t.Fatalf("caddytest: caddy exited during start: %v\n%s", cmd.ProcessState, in.LogTail(40))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		r, err := in.request(ctx, http.MethodGet, "/config/", nil)
		cancel()
		if err == nil && r.Status == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("caddytest: admin %s did not answer within %s (last: %d %v)\n%s",
				in.Admin, startTimeout, r.Status, err, in.LogTail(40))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Restart stops Caddy and starts it again from the initial config file
// without --resume, so everything set through the admin API is lost, as
// after `service caddy restart` on a host without --resume. Admin and
// HTTPAddr stay the same.
func (in *Instance) Restart(t testing.TB) {
	t.Helper()
	in.Stop()
	in.start(t)
}

// Stop ends Caddy: SIGTERM, then SIGKILL after stopTimeout. Idempotent.
func (in *Instance) Stop() {
	in.mu.Lock()
	cmd, exit := in.cmd, in.exit
	in.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-exit:
		return
	default:
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exit:
	case <-time.After(stopTimeout):
		cmd.Process.Kill()
		<-exit
	}
}

// PID is the process id of the running Caddy, or 0.
// With Wrapper it is the wrapper's pid.
func (in *Instance) PID() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.cmd == nil || in.cmd.Process == nil {
		return 0
	}
	return in.cmd.Process.Pid
}

// OpenFiles counts the entries of /proc/<pid>/fd of the running Caddy
// (Linux). It fails the test where /proc is not there.
func (in *Instance) OpenFiles(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", in.PID()))
	if err != nil {
		t.Fatalf("caddytest: counting open files: %v", err)
	}
	return len(ents)
}

// LogTail returns the last n lines of Caddy's log.
func (in *Instance) LogTail(n int) string {
	b, err := os.ReadFile(in.LogPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Response is an admin API answer.
type Response struct {
	Status int
	Body   string
	ETag   string
}

// Do sends one admin API request (body "" means none) and fails the test
// when it cannot be sent. It does not judge the status. A connection that
// Caddy closes unanswered is retried: after every config change Caddy
// replaces its admin server, and the old one drops a connection it accepted
// at that moment without handling its request.
func (in *Instance) Do(t testing.TB, method, path, body string) Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var b []byte
	if body != "" {
		b = []byte(body)
	}
	for attempt := 0; ; attempt++ {
		resp, err := in.request(ctx, method, path, b)
		if err == nil {
			return resp
		}
		if attempt == 3 || !(errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
			t.Fatalf("caddytest: admin %s %s: %v", method, path, err)
		}
		time.Sleep(time.Duration(attempt+1) * 20 * time.Millisecond)
	}
}

// MustDo is Do that also fails the test on a non-2xx answer.
func (in *Instance) MustDo(t testing.TB, method, path, body string) Response {
	t.Helper()
	r := in.Do(t, method, path, body)
	if r.Status/100 != 2 {
		t.Fatalf("caddytest: admin %s %s: %d %s", method, path, r.Status, r.Body)
	}
	return r
}

func (in *Instance) request(ctx context.Context, method, path string, body []byte) (Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, in.base+path, rd)
	if err != nil {
		return Response{}, err
	}
	if in.sock != "" {
		req.Host = "unix/socket" // invalid, so net/http sends an empty Host
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := in.client.Do(req)
	if err != nil {
		return Response{}, err
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(resp.Body)
	if err != nil {
		return Response{}, err
	}
	return Response{Status: resp.StatusCode, Body: string(rb), ETag: resp.Header.Get("Etag")}, nil
}
