package agent_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A push webhook starts a pass at once, while another service's deploy
// still runs its watch, and the pushed service's last_deploy says so: its
// trigger is the webhook, and its wait (hook to deploy start) is a poll of
// the deploy repo, not a poll interval nor the other deploy's watch.
func TestE2EWebhookStartsPassAtOnce(t *testing.T) {
	e := newEnv(t, "@every 1h")
	const secret = "push-hook-secret"
	secretFile := filepath.Join(e.dir, "hook.secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.appendConfig(fmt.Sprintf("webhook_secret_file: %q\n", secretFile))
	e.commit("add hello and slow", map[string]string{
		"services/hello.yaml": e.helloManifest("hello", "v1", ""),
		"services/slow.yaml":  e.helloManifest("slow", "v1", ""),
	})
	e.runAgent()
	e.waitFor("both converged", 60*time.Second, func() bool {
		h, _ := e.serviceStatus("hello")
		s, _ := e.serviceStatus("slow")
		return h.Converged && s.Converged
	})

	// slow's upgrade holds its pass for a watch of a minute.
	const slowWatch = 60 * time.Second
	slow := strings.Replace(e.helloManifest("slow", "v2", ""), "watch: 1s", "watch: 60s", 1)
	e.commit("slow v2", map[string]string{"services/slow.yaml": slow})
	e.sync()
	e.waitVersion("slow", "v2", 30*time.Second) // switched: its watch runs
	watchFrom := time.Now()

	rev := e.commit("hello v2", map[string]string{"services/hello.yaml": e.helloManifest("hello", "v2", "")})
	payload := []byte(fmt.Sprintf(`{"ref":"refs/heads/main","after":%q}`, rev))
	if code := e.postHook(payload, map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": hubSignature(secret, payload)}); code != http.StatusAccepted {
		t.Fatalf("signed push = %d, want 202", code)
	}
	e.waitVersion("hello", "v2", 30*time.Second)
	if s, _ := e.serviceStatus("slow"); s.Converged || time.Since(watchFrom) >= slowWatch {
		t.Fatalf("slow's watch ended before hello went live (%+v): the test proves nothing", s)
	}
	e.waitFor("hello converged in /status", 30*time.Second, func() bool {
		h, _ := e.serviceStatus("hello")
		return h.Converged && e.status().Revision == rev
	})
	st := e.status()
	for _, s := range st.Services {
		if s.Service != "hello" {
			continue
		}
		ld := s.LastDeploy
		if ld == nil {
			t.Fatal("hello has no last_deploy")
		}
		if ld.Trigger != "webhook" {
			t.Errorf("last_deploy.trigger = %q, want webhook", ld.Trigger)
		}
		// The hook's wait is a poll of a local repo and the start of a
		// pass: it cannot include slow's watch, which still runs.
		if ld.Wait <= 0 || ld.Wait >= time.Since(watchFrom).Seconds() {
			t.Errorf("last_deploy.wait = %vs, want more than 0 and less than the %v slow's watch has run", ld.Wait, time.Since(watchFrom))
		}
		if ld.Live <= 0 || ld.Phases["gate"] <= 0 {
			t.Errorf("last_deploy = %+v: want the time to live and the gate", ld)
		}
		t.Logf("hello v2 by webhook: %+v", *ld)
		return
	}
	t.Fatal("hello missing from /status")
}
