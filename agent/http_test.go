package agent

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jailkeeper/jailkeeper/internal/testenv"
	"github.com/jailkeeper/jailkeeper/reconcile"
)

const hookSecret = "s3cr3t-for-tests"

// newTestAgent is an Agent with what its HTTP handler reads and nothing
// else: no source, no runtime, no Caddy.
func newTestAgent(t *testing.T) *Agent {
	t.Helper()
	return &Agent{
		cfg:     &Config{File: "test.yaml", Listen: "127.0.0.1:0"},
		log:     slog.New(slog.DiscardHandler),
		metrics: NewMetrics(),
		trigger: make(chan struct{}, 1),
	}
}

// triggered reports (and consumes) a pending pass request.
func triggered(a *Agent) bool {
	select {
	case <-a.trigger:
		return true
	default:
		return false
	}
}

// sign is X-Hub-Signature-256 as GitHub and Gitea compute it.
func sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// pushPayload is a trimmed GitHub push event body.
var pushPayload = []byte(`{"ref":"refs/heads/main","before":"28e1879d029cb852e4844d9c718537df08844e03",` +
	`"after":"bffeb74224043ba2feb48d137756c8a9331c449a","repository":{"full_name":"ops/deploy"}}`)

func do(h http.Handler, method, path string, header http.Header, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestHandlerEndpoints(t *testing.T) {
	big := bytes.Repeat([]byte("x"), maxHookBody+1)
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Add(kv[i], kv[i+1])
		}
		return h
	}
	tests := []struct {
		name        string
		method      string
		path        string
		header      http.Header
		body        []byte
		noSecret    bool
		wantCode    int
		wantTrigger bool
	}{
		{name: "healthz", method: "GET", path: "/healthz", wantCode: 200},
		{name: "healthz HEAD", method: "HEAD", path: "/healthz", wantCode: 200},
		{name: "metrics", method: "GET", path: "/metrics", wantCode: 200},
		{name: "status", method: "GET", path: "/status", wantCode: 200},
		{name: "sync", method: "POST", path: "/sync", wantCode: 202, wantTrigger: true},
		{name: "unknown path", method: "GET", path: "/nope", wantCode: 404},

		{name: "GET sync", method: "GET", path: "/sync", wantCode: 405},
		{name: "POST metrics", method: "POST", path: "/metrics", wantCode: 405},
		{name: "POST status", method: "POST", path: "/status", wantCode: 405},
		{name: "DELETE status", method: "DELETE", path: "/status", wantCode: 405},
		{name: "POST healthz", method: "POST", path: "/healthz", wantCode: 405},
		{name: "POST readyz", method: "POST", path: "/readyz", wantCode: 405},
		{name: "GET hook", method: "GET", path: "/hooks/git", wantCode: 405},
		{name: "PUT hook", method: "PUT", path: "/hooks/git", header: hdr("X-Hub-Signature-256", sign(hookSecret, pushPayload)), body: pushPayload, wantCode: 405},

		{name: "github push", method: "POST", path: "/hooks/git",
			header: hdr("X-GitHub-Event", "push", "X-Hub-Signature-256", sign(hookSecret, pushPayload)), body: pushPayload,
			wantCode: 202, wantTrigger: true},
		{name: "gitea push", method: "POST", path: "/hooks/git",
			header: hdr("X-Gitea-Event", "push", "X-Gitea-Signature", strings.TrimPrefix(sign(hookSecret, pushPayload), "sha256="),
				"X-Hub-Signature-256", sign(hookSecret, pushPayload)), body: pushPayload,
			wantCode: 202, wantTrigger: true},
		{name: "github ping", method: "POST", path: "/hooks/git",
			header: hdr("X-GitHub-Event", "ping", "X-Hub-Signature-256", sign(hookSecret, []byte(`{"zen":"hi"}`))), body: []byte(`{"zen":"hi"}`),
			wantCode: 200},
		{name: "github signature uppercase hex", method: "POST", path: "/hooks/git",
			header: hdr("X-Hub-Signature-256", "sha256="+strings.ToUpper(strings.TrimPrefix(sign(hookSecret, pushPayload), "sha256="))), body: pushPayload,
			wantCode: 202, wantTrigger: true},
		{name: "github wrong secret", method: "POST", path: "/hooks/git",
			header: hdr("X-Hub-Signature-256", sign("other", pushPayload)), body: pushPayload, wantCode: 401},
		{name: "github signature of another body", method: "POST", path: "/hooks/git",
			header: hdr("X-Hub-Signature-256", sign(hookSecret, []byte(`{}`))), body: pushPayload, wantCode: 401},
		{name: "github signature not hex", method: "POST", path: "/hooks/git",
			header: hdr("X-Hub-Signature-256", "sha256=zz"), body: pushPayload, wantCode: 401},
		{name: "github signature without sha256= prefix", method: "POST", path: "/hooks/git",
			header: hdr("X-Hub-Signature-256", strings.TrimPrefix(sign(hookSecret, pushPayload), "sha256=")), body: pushPayload, wantCode: 401},
		{name: "github empty signature (Gitea without a secret)", method: "POST", path: "/hooks/git",
			header: hdr("X-Hub-Signature-256", "sha256="), body: pushPayload, wantCode: 401},
		{name: "bad signature not rescued by a good gitlab token", method: "POST", path: "/hooks/git",
			header: hdr("X-Hub-Signature-256", sign("other", pushPayload), "X-Gitlab-Token", hookSecret), body: pushPayload, wantCode: 401},
		{name: "missing signature", method: "POST", path: "/hooks/git",
			header: hdr("X-GitHub-Event", "push"), body: pushPayload, wantCode: 401},
		{name: "gitea signature alone is not accepted", method: "POST", path: "/hooks/git",
			header: hdr("X-Gitea-Signature", strings.TrimPrefix(sign(hookSecret, pushPayload), "sha256=")), body: pushPayload, wantCode: 401},

		{name: "gitlab token", method: "POST", path: "/hooks/git",
			header: hdr("X-Gitlab-Event", "Push Hook", "X-Gitlab-Token", hookSecret), body: pushPayload,
			wantCode: 202, wantTrigger: true},
		{name: "gitlab wrong token", method: "POST", path: "/hooks/git",
			header: hdr("X-Gitlab-Token", "s3cr3t-for-test"), body: pushPayload, wantCode: 401},
		{name: "gitlab token of another length", method: "POST", path: "/hooks/git",
			header: hdr("X-Gitlab-Token", hookSecret+"-and-more"), body: pushPayload, wantCode: 401},

		{name: "oversized body with a valid signature", method: "POST", path: "/hooks/git",
			header: hdr("X-Hub-Signature-256", sign(hookSecret, big)), body: big, wantCode: 413},
		{name: "oversized body without a signature", method: "POST", path: "/hooks/git",
			body: big, wantCode: 413},
		{name: "no secret configured", method: "POST", path: "/hooks/git", noSecret: true,
			header: hdr("X-Hub-Signature-256", sign(hookSecret, pushPayload)), body: pushPayload, wantCode: 404},
		{name: "no secret configured, empty signature", method: "POST", path: "/hooks/git", noSecret: true,
			header: hdr("X-Hub-Signature-256", sign("", pushPayload)), body: pushPayload, wantCode: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newTestAgent(t)
			secret := []byte(hookSecret)
			if tt.noSecret {
				secret = nil
			}
			rec := do(a.Handler(secret), tt.method, tt.path, tt.header, tt.body)
			if rec.Code != tt.wantCode {
				t.Errorf("%s %s = %d %q, want %d", tt.method, tt.path, rec.Code, rec.Body.String(), tt.wantCode)
			}
			if rec.Code == http.StatusMethodNotAllowed && rec.Header().Get("Allow") == "" {
				t.Error("405 without an Allow header")
			}
			if got := triggered(a); got != tt.wantTrigger {
				t.Errorf("pass triggered = %v, want %v", got, tt.wantTrigger)
			}
		})
	}
}

func TestReadyz(t *testing.T) {
	a := newTestAgent(t)
	h := a.Handler(nil)
	if rec := do(h, "GET", "/readyz", nil, nil); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("before a pass: /readyz = %d, want 503", rec.Code)
	}
	a.mu.Lock()
	a.passes++ // what Agent.pass records when a pass ends
	a.mu.Unlock()
	if rec := do(h, "GET", "/readyz", nil, nil); rec.Code != http.StatusOK {
		t.Errorf("after a pass: /readyz = %d, want 200", rec.Code)
	}
}

// The body of /status is DESIGN.md's "HTTP" JSON, key for key.
func TestStatusJSON(t *testing.T) {
	a := newTestAgent(t)
	h := a.Handler(nil)

	rec := do(h, "GET", "/status", nil, nil)
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	var empty map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &empty); err != nil {
		t.Fatalf("decode %q: %v", rec.Body.String(), err)
	}
	if diff := cmp.Diff(map[string]any{"revision": "", "services": []any{}}, empty); diff != "" {
		t.Errorf("status before a pass (-want +got):\n%s", diff)
	}

	a.mu.Lock()
	a.status = Status{Revision: testRev, Services: []reconcile.ServiceStatus{{
		Service: "hello", DesiredSHA: testSHA, LiveSHA: testSHA, LiveRelease: testRel, Converged: true, State: "live",
	}}}
	a.mu.Unlock()
	rec = do(h, "GET", "/status", nil, nil)
	var got map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("decode %q: %v", rec.Body.String(), err)
	}
	want := map[string]any{
		"revision": testRev,
		"services": []any{map[string]any{
			"service": "hello", "desired_sha": testSHA, "live_sha": testSHA, "live_release": testRel,
			"converged": true, "state": "live", "message": "",
		}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
}

func TestMetricsEndpoint(t *testing.T) {
	a := newTestAgent(t)
	exercise(a.metrics)
	rec := do(a.Handler(nil), "GET", "/metrics", nil, nil)
	if rec.Code != 200 {
		t.Fatalf("/metrics = %d", rec.Code)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type = %q, want the text format", ct)
	}
	body := rec.Body.String()
	for _, d := range designMetrics {
		if !strings.Contains(body, "\n# TYPE "+d.name+" ") {
			t.Errorf("/metrics has no %s", d.name)
		}
	}
	promtoolCheckMetrics(t, rec.Body.Bytes())
}

// promtoolCheckMetrics runs `promtool check metrics` (Debian package
// prometheus) on an exposition; it lints names, types, units and HELP.
func promtoolCheckMetrics(t *testing.T, exposition []byte) {
	t.Helper()
	promtool := testenv.Command(t, "promtool")
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(exposition)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	if len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics reported:\n%s", out)
	}
}

func TestServeWebhookSecretFile(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "secret")
	if err := os.WriteFile(good, []byte(hookSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		file    string
		wantErr bool
	}{
		{"missing file", filepath.Join(dir, "nope"), true},
		{"empty file", empty, true},
		{"secret with a trailing newline", good, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newTestAgent(t)
			a.cfg.WebhookSecretFile = tt.file
			srv, err := a.serve(context.Background())
			if tt.wantErr {
				if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "webhook_secret_file") {
					t.Errorf("serve = %v, want ErrConfig naming webhook_secret_file", err)
				}
				if srv != nil {
					srv.close()
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer srv.close()
			// The trailing newline is not part of the secret: a real
			// request over the listener signed with the bare secret passes.
			req, err := http.NewRequest(http.MethodPost, "http://"+srv.addr+"/hooks/git", bytes.NewReader(pushPayload))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("X-Hub-Signature-256", sign(hookSecret, pushPayload))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				t.Errorf("signed hook = %s, want 202", resp.Status)
			}
			if !triggered(a) {
				t.Error("signed hook triggered no pass")
			}
		})
	}
}
