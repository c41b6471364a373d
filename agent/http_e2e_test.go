package agent_test

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/agent"
	"github.com/jailkeeper/jailkeeper/internal/testenv"
	"github.com/jailkeeper/jailkeeper/reconcile"
)

// appendConfig adds YAML lines to the env's agent config before runAgent.
func (e *env) appendConfig(lines string) {
	e.t.Helper()
	f, err := os.OpenFile(e.cfgPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(lines); err != nil {
		e.t.Fatal(err)
	}
}

// helloSHA is the app SHA helloManifest writes for name and version.
func helloSHA(name, version string) string {
	sum := sha256.Sum256([]byte(name + version))
	return hex.EncodeToString(sum[:20])
}

// eventSink is an outgoing-webhook receiver on 127.0.0.1.
type eventSink struct {
	url    string
	mu     sync.Mutex
	events []reconcile.Event
}

func newEventSink(t *testing.T) *eventSink {
	t.Helper()
	s := &eventSink{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev reconcile.Event
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.events = append(s.events, ev)
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

// find returns the first event of kind for sha.
func (s *eventSink) find(kind reconcile.EventKind, sha string) (reconcile.Event, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ev := range s.events {
		if ev.Kind == kind && ev.SHA == sha {
			return ev, true
		}
	}
	return reconcile.Event{}, false
}

// postHook sends body to /hooks/git with header and returns the status code.
func (e *env) postHook(body []byte, header map[string]string) int {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+e.listen+"/hooks/git", bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func hubSignature(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// A signed push makes a commit live although the next poll is an hour
// away; unsigned and badly signed pushes are refused. The outgoing webhook
// reports the deploy.
func TestE2EPushHookGoesLive(t *testing.T) {
	e := newEnv(t, "@every 1h")
	const secret = "push-hook-secret"
	secretFile := filepath.Join(e.dir, "hook.secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sink := newEventSink(t)
	e.appendConfig(fmt.Sprintf("webhook_secret_file: %q\nnotify: {url: %q, timeout: 5s, retries: 3}\n", secretFile, sink.url))

	e.commit("add hello", map[string]string{"services/hello.yaml": e.helloManifest("hello", "v1", "")})
	e.runAgent() // the first pass runs at start
	e.waitVersion("hello", "v1", 60*time.Second)

	rev := e.commit("hello v2", map[string]string{"services/hello.yaml": e.helloManifest("hello", "v2", "")})
	payload := []byte(fmt.Sprintf(`{"ref":"refs/heads/main","before":"0000000000000000000000000000000000000000","after":%q,`+
		`"repository":{"full_name":"ops/deploy"},"pusher":{"name":"dev"}}`, rev))
	if code := e.postHook(payload, map[string]string{"X-GitHub-Event": "push"}); code != http.StatusUnauthorized {
		t.Errorf("unsigned push = %d, want 401", code)
	}
	if code := e.postHook(payload, map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": hubSignature("wrong", payload)}); code != http.StatusUnauthorized {
		t.Errorf("badly signed push = %d, want 401", code)
	}
	if code := e.postHook(payload, map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": hubSignature(secret, payload)}); code != http.StatusAccepted {
		t.Fatalf("signed push = %d, want 202", code)
	}
	e.waitVersion("hello", "v2", 60*time.Second)
	e.waitFor("status at the pushed revision", 10*time.Second, func() bool { return e.status().Revision == rev })

	// The outgoing webhook saw the v2 deploy start and go live.
	v2 := helloSHA("hello", "v2")
	e.waitFor("live event for v2 at the receiver", 30*time.Second, func() bool {
		_, ok := sink.find(reconcile.EventLive, v2)
		return ok
	})
	started, ok := sink.find(reconcile.EventDeployStarted, v2)
	if !ok {
		t.Fatal("no deploy_started event for v2")
	}
	live, _ := sink.find(reconcile.EventLive, v2)
	if started.Revision != rev || live.Revision != rev || live.Release == "" || live.Release != started.Release {
		t.Errorf("events: started %+v, live %+v; want both for revision %s and one release", started, live, rev)
	}
	if live.Previous == "" || !strings.HasPrefix(live.Previous, "hello_"+helloSHA("hello", "v1")[:12]) {
		t.Errorf("live.previous = %q, want the v1 release", live.Previous)
	}
}

// metricLines returns the exposition lines of the agent's /metrics that
// start with prefix.
func (e *env) metricLines(prefix string) []string {
	e.t.Helper()
	b, err := e.agentGet("/metrics")
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), prefix) {
			out = append(out, sc.Text())
		}
	}
	return out
}

// jailkeeper runs the CLI built by the harness and returns its stdout.
func (e *env) jailkeeper(args ...string) string {
	e.t.Helper()
	cmd := exec.Command(filepath.Join(e.bin, "jailkeeper"), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		e.t.Fatalf("jailkeeper %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// Before any pass /readyz is 503; `jailkeeper sync` (POST /sync) starts a
// pass without waiting for the poll; a pruned service leaves the scrape;
// `jailkeeper status` reads the daemon; promtool accepts the live /metrics.
func TestE2ESyncReadyzPrune(t *testing.T) {
	promtool := testenv.Command(t, "promtool")
	e := newEnv(t, "@every 1h")
	e.runAgent() // the deploy repo has no commit yet: no pass can run

	if _, err := e.agentGet("/readyz"); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("/readyz before any pass: %v, want 503", err)
	}
	if got := e.metricLines(`jailkeeper_reconcile_total{result="ok"}`); len(got) != 1 || !strings.HasSuffix(got[0], " 0") {
		t.Errorf("reconcile_total before any pass = %v, want 0", got)
	}

	e.commit("add hello and x", map[string]string{
		"services/hello.yaml": e.helloManifest("hello", "v1", ""),
		"services/x.yaml":     e.helloManifest("x", "v1", ""),
	})
	if out := e.jailkeeper("sync", "--config", e.cfgPath); !strings.Contains(out, "pass triggered") {
		t.Errorf("jailkeeper sync printed %q", out)
	}
	e.waitVersion("hello", "v1", 60*time.Second)
	e.waitVersion("x", "v1", 60*time.Second)
	e.waitFor("/readyz 200", 30*time.Second, func() bool {
		_, err := e.agentGet("/readyz")
		return err == nil
	})
	e.waitFor(`jailkeeper_service_converged{service="x"} 1`, 30*time.Second, func() bool {
		got := e.metricLines(`jailkeeper_service_converged{service="x"}`)
		return len(got) == 1 && strings.HasSuffix(got[0], " 1")
	})

	// `jailkeeper status` asks the daemon, as a table and as JSON.
	table := e.jailkeeper("status", "--addr", e.listen)
	for _, want := range []string{"SERVICE", "hello", "x_"} {
		if !strings.Contains(table, want) {
			t.Errorf("jailkeeper status has no %q:\n%s", want, table)
		}
	}
	var st agent.Status
	if err := json.Unmarshal([]byte(e.jailkeeper("status", "-o", "json", "--config", e.cfgPath)), &st); err != nil {
		t.Fatalf("jailkeeper status -o json: %v", err)
	}
	if len(st.Services) != 2 || st.Services[0].LiveSHA == "" || st.Revision == "" {
		t.Errorf("jailkeeper status -o json = %+v, want two live services", st)
	}

	// Prune x: its per-service state leaves the scrape.
	e.commit("remove x", map[string]string{"services/x.yaml": ""})
	e.sync()
	state := []string{"jailkeeper_service_converged{", "jailkeeper_service_info{", "jailkeeper_releases{"}
	e.waitFor("x gone from the scrape", 60*time.Second, func() bool {
		for _, prefix := range state {
			for _, l := range e.metricLines(prefix) {
				if strings.Contains(l, `service="x"`) {
					return false
				}
			}
		}
		return true
	})
	for _, prefix := range state {
		hello := 0
		for _, l := range e.metricLines(prefix) {
			if strings.Contains(l, `service="hello"`) {
				hello++
			}
		}
		if hello == 0 {
			t.Errorf("%s...} for hello gone too", prefix)
		}
	}
	if e.version("x") != "" {
		t.Error("x still served after prune")
	}

	b, err := e.agentGet("/metrics")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(b)
	if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics on the live agent: %v\n%s", err, out)
	}
}
