package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/jailkeeper/jailkeeper/reconcile"
)

// secrets are the parts of the URLs below that no log line may carry.
var secrets = []string{"pa55word", "T0KEN", "deploy:"}

func assertNoSecrets(t *testing.T, what, s string) {
	t.Helper()
	for _, sec := range secrets {
		if strings.Contains(s, sec) {
			t.Errorf("%s carries the secret %q:\n%s", what, sec, s)
		}
	}
}

// TestNotifyFailureLogRedactsURL: a failed delivery logs neither the
// password nor the token of notify.url (issue 9, item 9).
func TestNotifyFailureLogRedactsURL(t *testing.T) {
	r := newReceiver(t, 500)
	refused := "http://127.0.0.1:" + closedPort(t)
	for name, base := range map[string]string{"HTTP status": r.srv.URL, "connection refused": refused} {
		t.Run(name, func(t *testing.T) {
			u := strings.Replace(base, "http://", "http://deploy:pa55word@", 1) + "/hook?token=T0KEN"
			n, log := testNotifier(t, u, 1, 5*time.Second)
			_, done := runNotifier(t, n)
			n.Notify(reconcile.Event{Kind: reconcile.EventFailed, Service: "hello"})
			n.Close()
			<-done
			if !strings.Contains(log.String(), "event not delivered") {
				t.Fatalf("no failed delivery logged:\n%s", log)
			}
			assertNoSecrets(t, "the notify log", log.String())
		})
	}
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	return port
}

// TestStartLogRedactsRepoURL: the agent's start line names the deploy repo
// without its password or query.
func TestStartLogRedactsRepoURL(t *testing.T) {
	dir := t.TempDir()
	repoURL := "https://deploy:pa55word@127.0.0.1:" + closedPort(t) + "/deploy.git?private_token=T0KEN"
	cfg, err := ParseConfig(filepath.Join(dir, "jailkeeper.yaml"), []byte(`repo: {url: "`+repoURL+`", poll: "@every 1h"}
runtime: process
state_dir: `+filepath.Join(dir, "state")+`
caddy: {admin: "unix/`+filepath.Join(dir, "admin.sock")+`"}
listen: 127.0.0.1:0
`))
	if err != nil {
		t.Fatal(err)
	}
	log := &syncBuffer{}
	a, err := New(cfg, slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := a.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "agent started") || !strings.Contains(log.String(), "127.0.0.1") {
		t.Fatalf("no start line naming the repo host:\n%s", log)
	}
	assertNoSecrets(t, "the agent's log", log.String())
}

// escServer answers every request with a 503 whose reason phrase holds
// terminal escapes, as a hostile app's health endpoint may.
func escServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = http.ReadRequest(bufio.NewReader(c))
				_, _ = io.WriteString(c, "HTTP/1.1 503 \x1b]0;owned\x07\x1b[2J\x1b[31mdown\x7f\u009b31m\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			}()
		}
	}()
	return "http://" + ln.Addr().String() + "/up"
}

func hasControl(s string) bool {
	return strings.ContainsFunc(s, unicode.IsControl)
}

// TestStatusStripsControlCharacters: a health answer's reason phrase with
// ESC bytes reaches /status without them (issue 9, item 10).
func TestStatusStripsControlCharacters(t *testing.T) {
	probeErr := NewHTTPProber().Probe(t.Context(), escServer(t), 5*time.Second)
	if probeErr == nil || !strings.Contains(probeErr.Error(), "down") {
		t.Fatalf("probe = %v, want the 503 with its reason phrase", probeErr)
	}
	a := newTestAgent(t)
	a.status = Status{Revision: "abc", Services: []reconcile.ServiceStatus{{Service: "hello", State: "failed", Message: probeErr.Error()}}}
	a.sourceErr = "deploy repo: remote: " + probeErr.Error()
	rec := do(a.Handler(nil), http.MethodGet, "/status", nil, nil)
	body := rec.Body.String()
	if strings.Contains(body, `\u001b`) || strings.Contains(body, `\u0007`) || hasControl(body[:len(body)-1]) {
		t.Errorf("/status carries control characters:\n%q", body)
	}
	var st Status
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	for what, s := range map[string]string{"message": st.Services[0].Message, "error": st.Error} {
		if hasControl(s) {
			t.Errorf("%s %q has control characters", what, s)
		}
		if !strings.Contains(s, "down") {
			t.Errorf("%s %q lost the printable text", what, s)
		}
	}
}
