package agent

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/internal/testenv"
)

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd to count open files: %v", err)
	}
	return len(ents)
}

// TestIdleConnectionsDoNotExhaustFDs: idle keep-alive connections hold at
// most the connection limit of the agent's descriptors, and the agent
// keeps answering (issue 9, item 7: 118 idle connections exhausted 128
// fds, and polls, Caddy calls and listings failed).
func TestIdleConnectionsDoNotExhaustFDs(t *testing.T) {
	a := newTestAgent(t)
	a.http = httpLimits{MaxConns: 8, Idle: 200 * time.Millisecond, ReadHeader: 200 * time.Millisecond}
	srv, err := a.serve(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.close()
	before := openFDs(t)
	const idle = 100
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range idle {
		c, err := net.Dial("tcp", srv.addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if i%2 == 0 {
			// A keep-alive request answered, then nothing: idle.
			fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: agent\r\n\r\n")
		} // else: connected, never a request
	}
	// Let the server accept what it will; then count. The client side
	// holds idle descriptors itself.
	time.Sleep(100 * time.Millisecond)
	if got, limit := openFDs(t)-before-idle, 8+4; got > limit {
		t.Errorf("%d idle connections hold %d server descriptors, want at most %d (the limit and a few)", idle, got, limit)
	}
	// The agent keeps answering: idle connections time out and free
	// their slots.
	c := &http.Client{Timeout: time.Minute}
	resp, err := c.Get("http://" + srv.addr + "/status")
	if err != nil {
		t.Fatalf("status with %d idle connections: %v", idle, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status = %s", resp.Status)
	}
}

// TestTrickledBodyIsCutOff: a body sent one byte at a time is cut off by
// the read timeout instead of holding a connection forever.
func TestTrickledBodyIsCutOff(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte(hookSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	a := newTestAgent(t)
	a.cfg.WebhookSecretFile = secret
	a.http = httpLimits{Read: 300 * time.Millisecond, ReadHeader: 300 * time.Millisecond}
	srv, err := a.serve(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.close()
	c, err := net.Dial("tcp", srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const length = 200
	fmt.Fprintf(c, "POST /hooks/git HTTP/1.1\r\nHost: agent\r\nContent-Length: %d\r\nX-Gitlab-Token: x\r\n\r\n", length)
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		_, _ = io.Copy(io.Discard, c) // the answer, then EOF or reset
	}()
	for i := 0; i < length; i++ {
		select {
		case <-closed:
			return // cut off before the body was complete
		case <-time.After(50 * time.Millisecond):
		}
		if _, err := c.Write([]byte("x")); err != nil {
			return // the server closed the connection
		}
	}
	t.Errorf("a %d-byte body trickled over %v was never cut off", length, length*50*time.Millisecond)
}

// runGitAgent runs an agent over a deploy repo without services (file://,
// process runtime, no Caddy) until the test ends, and returns it, its
// HTTP base URL and a count of its polls, after its first pass.
func runGitAgent(t *testing.T, minPoll time.Duration) (a *Agent, base string, polls func() float64) {
	t.Helper()
	testenv.Command(t, "git")
	dir := t.TempDir()
	remote, work := filepath.Join(dir, "deploy.git"), filepath.Join(dir, "work")
	git := func(d string, args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = d
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	git(dir, "init", "-q", "--bare", "-b", "main", remote)
	git(dir, "init", "-q", "-b", "main", work)
	if err := os.MkdirAll(filepath.Join(work, "services"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "services", "README"), []byte("no services yet\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git(work, "add", ".")
	git(work, "-c", "user.email=dev@example.com", "-c", "user.name=Dev", "commit", "-q", "-m", "empty")
	git(work, "push", "-q", remote, "main")

	cfg, err := ParseConfig(filepath.Join(dir, "jailkeeper.yaml"), []byte(`repo: {url: "file://`+remote+`", poll: "@every 1h"}
runtime: process
state_dir: `+filepath.Join(dir, "state")+`
caddy: {admin: "unix/`+filepath.Join(dir, "admin.sock")+`"}
listen: 127.0.0.1:0
control_socket: `+filepath.Join(dir, "ctl.sock")+`
`))
	if err != nil {
		t.Fatal(err)
	}
	a, err = New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	a.minPoll = minPoll
	addr := make(chan string, 1)
	a.listening = func(s string) { addr <- s }
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	base = "http://" + <-addr
	polls = func() float64 {
		ok, _ := value(t, a.metrics, "jailkeeper_source_fetch_total", map[string]string{"result": "ok"})
		bad, _ := value(t, a.metrics, "jailkeeper_source_fetch_total", map[string]string{"result": "error"})
		return ok + bad
	}
	for polls() < 1 || !a.Ready() { // the first poll and pass, at start
		time.Sleep(10 * time.Millisecond)
	}
	return a, base, polls
}

// TestSyncBurstCoalesces: a burst of POST /sync causes at most one poll and
// one pass, not one per request (issue 9, item 7: 10 s from one client gave
// 853 passes and 2,979 polls of the deploy repo).
func TestSyncBurstCoalesces(t *testing.T) {
	// After the first poll, no other within the test.
	a, base, polls := runGitAgent(t, time.Hour)
	polls0 := polls()
	a.mu.Lock()
	passes0 := a.passes
	a.mu.Unlock()

	const burst = 1000
	var wg sync.WaitGroup
	client := &http.Client{Timeout: time.Minute}
	for w := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range burst / 10 {
				resp, err := client.Post(base+"/sync", "", nil)
				if err != nil {
					t.Errorf("worker %d: %v", w, err)
					return
				}
				_, _ = io.Copy(io.Discard, bufio.NewReader(resp.Body))
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	a.mu.Lock()
	passes := a.passes - passes0
	a.mu.Unlock()
	if p := polls() - polls0; p > 1 || passes > 1 {
		t.Errorf("%d POST /sync made %v polls and %d passes, want at most one of each", burst, p, passes)
	}
	if !strings.HasPrefix(base, "http://127.0.0.1:") {
		t.Errorf("listening on %s", base)
	}
}

// TestSyncIsNotLost: a POST /sync that comes within the minimum interval
// of the last poll waits for it, and then runs.
func TestSyncIsNotLost(t *testing.T) {
	a, base, polls := runGitAgent(t, 50*time.Millisecond)
	polls0 := polls()
	a.mu.Lock()
	passes0 := a.passes
	a.mu.Unlock()
	resp, err := http.Post(base+"/sync", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for {
		a.mu.Lock()
		passes := a.passes
		a.mu.Unlock()
		if polls() > polls0 && passes > passes0 {
			return
		}
		time.Sleep(10 * time.Millisecond) // the test's own deadline bounds this
	}
}
