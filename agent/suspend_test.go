package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jailkeeper/jailkeeper/reconcile"
)

func TestSuspensionsSurviveReload(t *testing.T) {
	dir := t.TempDir()
	s, err := LoadSuspensions(dir)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 25, 12, 0, 0, 500, time.UTC)
	if changed, err := s.Suspend("hello", "incident 42", now); err != nil || !changed {
		t.Fatalf("Suspend = %v, %v", changed, err)
	}
	// Again: the time stays, an empty reason keeps the old one.
	if changed, err := s.Suspend("hello", "", now.Add(time.Hour)); err != nil || changed {
		t.Fatalf("second Suspend = %v, %v; want no change", changed, err)
	}
	if _, err := s.Suspend("other", "", now); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(filepath.Join(dir, SuspendFile))
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", info.Mode().Perm())
	}
	// A new agent (a restart) reads the same.
	again, err := LoadSuspensions(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]reconcile.Suspension{
		"hello": {Reason: "incident 42", Since: now.Truncate(time.Second)},
		"other": {Since: now.Truncate(time.Second)},
	}
	if diff := cmp.Diff(want, again.List()); diff != "" {
		t.Errorf("after reload (-want +got):\n%s", diff)
	}
	if changed, err := again.Resume("hello"); err != nil || !changed {
		t.Fatalf("Resume = %v, %v", changed, err)
	}
	if changed, err := again.Resume("hello"); err != nil || changed {
		t.Fatalf("second Resume = %v, %v; want no change", changed, err)
	}
	third, err := LoadSuspensions(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := third.Get("hello"); ok {
		t.Error("resume did not survive a reload")
	}
}

func TestSuspensionsRefuseBadInput(t *testing.T) {
	dir := t.TempDir()
	s, err := LoadSuspensions(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ svc, reason string }{
		{"Hello", ""}, {"../x", ""}, {"hello", "a\x1b[2Jb"}, {"hello", strings.Repeat("x", MaxSuspendReason+1)},
	} {
		if _, err := s.Suspend(tt.svc, tt.reason, time.Now()); err == nil {
			t.Errorf("Suspend(%q, %q) accepted", tt.svc, tt.reason)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, SuspendFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("refused suspends wrote the file: %v", err)
	}
	// A damaged file is an error naming it: forgetting a suspend would
	// deploy what an operator froze.
	for _, body := range []string{"{", `{"services": {"BAD": {}}}`, `{"services": {}, "extra": 1}`} {
		if err := os.WriteFile(filepath.Join(dir, SuspendFile), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadSuspensions(dir); err == nil || !strings.Contains(err.Error(), SuspendFile) {
			t.Errorf("LoadSuspensions(%q) = %v, want an error naming the file", body, err)
		}
	}
}

// newControlAgent is an Agent built by New from a config whose state dir
// and control socket are in a temporary directory.
func newControlAgent(t *testing.T, extra string) (*Agent, string) {
	t.Helper()
	dir := t.TempDir()
	cfg, err := ParseConfig(filepath.Join(dir, "jailkeeper.yaml"), []byte(`repo: {url: "file://`+dir+`/deploy.git"}
runtime: process
state_dir: `+filepath.Join(dir, "state")+`
control_socket: `+filepath.Join(dir, "ctl.sock")+`
listen: 127.0.0.1:0
`+extra))
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(cfg.StateDir, 0o750); err != nil {
		t.Fatal(err)
	}
	return a, cfg.ControlSocket
}

func unixClient(path string) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
}

func post(t *testing.T, c *http.Client, url, body string) (int, string) {
	t.Helper()
	resp, err := c.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestControlSocket: suspend and resume over the control socket, which is
// mode 0600 and owned by the agent's user; the state shows in the metric,
// survives a new agent, and the socket is gone after close.
func TestControlSocket(t *testing.T) {
	a, sock := newControlAgent(t, "")
	srv, err := a.serveControl(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			srv.close()
		}
	})
	info, err := os.Lstat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Type() != os.ModeSocket || info.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want a socket with 0600", info.Mode())
	}
	if st, ok := info.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != os.Geteuid() {
		t.Errorf("socket owner %+v, want uid %d", info.Sys(), os.Geteuid())
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(sock), ".jk*")); len(left) != 0 {
		t.Errorf("temporary socket directory left: %v", left)
	}

	c := unixClient(sock)
	code, body := post(t, c, "http://jailkeeper/suspend/hello", `{"reason": "incident 42"}`)
	if code != http.StatusOK {
		t.Fatalf("suspend: %d %s", code, body)
	}
	var reply ControlReply
	if err := json.Unmarshal([]byte(body), &reply); err != nil || !reply.Suspended || !reply.Changed || reply.Since.Reason != "incident 42" {
		t.Errorf("suspend reply = %s (%v)", body, err)
	}
	if !triggered(a) {
		t.Error("suspend did not ask for a pass")
	}
	if v, ok := value(t, a.metrics, "jailkeeper_service_suspended", map[string]string{"service": "hello"}); !ok || v != 1 {
		t.Errorf("jailkeeper_service_suspended{hello} = %v, %v; want 1", v, ok)
	}
	if why, held := a.exec.Gate("hello", reconcile.ChangeRebase); !held || !strings.Contains(why, "incident 42") {
		t.Errorf("Gate(hello) = %q, %v; want held by the suspend", why, held)
	}
	for _, bad := range []string{"/suspend/Hello", "/suspend/a..b"} {
		if code, body := post(t, c, "http://jailkeeper"+bad, ""); code != http.StatusBadRequest {
			t.Errorf("POST %s = %d %s, want 400", bad, code, body)
		}
	}
	if code, _ := post(t, c, "http://jailkeeper/suspend/hello", `{"reason": "`+strings.Repeat("x", MaxSuspendReason+1)+`"}`); code != http.StatusBadRequest {
		t.Errorf("an overlong reason got %d, want 400", code)
	}

	// A restarted agent still has it suspended.
	again, err := LoadSuspensions(a.cfg.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	if sus, ok := again.Get("hello"); !ok || sus.Reason != "incident 42" {
		t.Errorf("after reload: %+v, %v", sus, ok)
	}

	code, body = post(t, c, "http://jailkeeper/resume/hello", "")
	if code != http.StatusOK || !strings.Contains(body, `"changed":true`) {
		t.Fatalf("resume: %d %s", code, body)
	}
	if v, _ := value(t, a.metrics, "jailkeeper_service_suspended", map[string]string{"service": "hello"}); v != 0 {
		t.Errorf("after resume jailkeeper_service_suspended{hello} = %v, want 0 while hello is a known service", v)
	}
	c.CloseIdleConnections()
	srv.close()
	closed = true
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left after close: %v", err)
	}
}

// TestTCPListenerHasNoControl: the HTTP listener, which any local user
// (or, with a non-loopback listen, the network) reaches, has no suspend
// or resume.
func TestTCPListenerHasNoControl(t *testing.T) {
	a, _ := newControlAgent(t, "")
	srv := httptest.NewServer(a.Handler([]byte(hookSecret)))
	t.Cleanup(srv.Close)
	for _, p := range []string{"/suspend/hello", "/resume/hello", "/suspended", "/control/suspend/hello", "/rebase/resume"} {
		for _, method := range []string{http.MethodPost, http.MethodGet, http.MethodPut} {
			req, err := http.NewRequest(method, srv.URL+p, bytes.NewReader([]byte(`{"reason":"x"}`)))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("%s %s on the TCP listener = %d, want 404", method, p, resp.StatusCode)
			}
		}
	}
	if got := a.suspend.List(); len(got) != 0 {
		t.Errorf("the TCP listener suspended %v", got)
	}
	if triggered(a) {
		t.Error("the TCP listener's control paths asked for a pass")
	}
}

func TestControlSocketPath(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "ctl.sock")
	a, _ := newControlAgent(t, "")
	a.cfg.ControlSocket = sock

	// A regular file at the path is left alone.
	if err := os.WriteFile(sock, []byte("not a socket"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := a.serveControl(t.Context()); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("serveControl over a file = %v", err)
	}
	if b, _ := os.ReadFile(sock); string(b) != "not a socket" {
		t.Error("the file was replaced")
	}
	os.Remove(sock)

	// A socket nobody answers on (an agent that died) is replaced.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	srv, err := a.serveControl(t.Context())
	if err != nil {
		t.Fatalf("serveControl over a stale socket: %v", err)
	}
	t.Cleanup(srv.close)

	// One an agent answers on is not.
	b, _ := newControlAgent(t, "")
	b.cfg.ControlSocket = sock
	if _, err := b.serveControl(t.Context()); err == nil || !strings.Contains(err.Error(), "another jailkeeper listens") {
		t.Errorf("second agent on the socket: %v", err)
	}
	if code, _ := post(t, unixClient(sock), "http://jailkeeper/resume/hello", ""); code != http.StatusOK {
		t.Errorf("the first agent's socket stopped answering: %d", code)
	}
}
