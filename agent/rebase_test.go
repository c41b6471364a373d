package agent

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jailkeeper/jailkeeper/reconcile"
)

func TestRebaseConfig(t *testing.T) {
	for _, tt := range []struct {
		name, yaml string
		want       reconcile.RebaseOptions
	}{
		{"defaults", ``, reconcile.RebaseOptions{MaxParallel: 1, PauseOnFailure: true}},
		{"set", `rebase: {max_parallel: 3, pause_on_failure: false}`, reconcile.RebaseOptions{MaxParallel: 3}},
		{"only parallel", `rebase: {max_parallel: 2}`, reconcile.RebaseOptions{MaxParallel: 2, PauseOnFailure: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConfig("/etc/jk.yaml", []byte("repo: {url: file:///srv/deploy.git}\n"+tt.yaml+"\n"))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, c.Rebase.Options()); diff != "" {
				t.Errorf("rebase options (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRebaseConfigErrors(t *testing.T) {
	for _, tt := range []struct {
		name, yaml, want string
	}{
		{"negative", `rebase: {max_parallel: -1}`, `rebase.max_parallel: -1 is not between 1 and 64`},
		{"too many", `rebase: {max_parallel: 65}`, `rebase.max_parallel: 65 is not between 1 and 64`},
		{"not a bool", `rebase: {pause_on_failure: sometimes}`, `pause_on_failure`},
		{"unknown key", `rebase: {parallel: 2}`, `field parallel not found`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig("/etc/jk.yaml", []byte("repo: {url: file:///srv/deploy.git}\n"+tt.yaml+"\n"))
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "/etc/jk.yaml") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want ErrConfig naming the file and %q", err, tt.want)
			}
		})
	}
}

// The resume time is stored in the state dir and read back by the next
// agent; a file that cannot be parsed is an error naming it.
func TestRebaseResumeStored(t *testing.T) {
	dir := t.TempDir()
	r, err := LoadRebaseResume(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !r.At().IsZero() {
		t.Errorf("never resumed: %s, want zero", r.At())
	}
	at := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	if err := r.Resume(at); err != nil {
		t.Fatal(err)
	}
	again, err := LoadRebaseResume(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !again.At().Equal(at) {
		t.Errorf("after a restart: %s, want %s", again.At(), at)
	}
	writeFile(t, dir+"/"+RebaseFile, "{")
	if _, err := LoadRebaseResume(dir); err == nil || !strings.Contains(err.Error(), RebaseFile) {
		t.Errorf("corrupt file: %v, want an error naming it", err)
	}
}

// POST /rebase/resume on the control socket stores the time, asks for a
// pass, and is what the executor's rebase plans count failures from
// (TestTCPListenerHasNoControl: the TCP listener has no such endpoint).
func TestRebaseResumeOverControlSocket(t *testing.T) {
	a, sock := newControlAgent(t, "")
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	a.now = func() time.Time { return now }
	srv, err := a.serveControl(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.close)
	c := unixClient(sock)
	defer c.CloseIdleConnections()
	code, body := post(t, c, "http://jailkeeper/rebase/resume", "")
	if code != http.StatusOK || !strings.Contains(body, `"resumed_at":"2026-11-29T12:00:00Z"`) {
		t.Fatalf("resume: %d %s", code, body)
	}
	if !triggered(a) {
		t.Error("resume did not ask for a pass")
	}
	again, err := LoadRebaseResume(a.cfg.StateDir)
	if err != nil || !again.At().Equal(now) {
		t.Errorf("stored resume %s (%v), want %s", again.At(), err, now)
	}
}
