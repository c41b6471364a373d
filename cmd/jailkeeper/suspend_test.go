package main

import (
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jailkeeper/jailkeeper/agent"
)

// controlDaemon serves a real agent's control handler (no pass runs) on a
// unix socket and returns a config file whose control_socket is it, and
// the agent's state dir.
func controlDaemon(t *testing.T) (cfgPath, stateDir string) {
	t.Helper()
	dir := t.TempDir()
	sock := filepath.Join(dir, "ctl.sock")
	stateDir = filepath.Join(dir, "state")
	cfgPath = filepath.Join(dir, "jailkeeper.yaml")
	cfg := fmt.Sprintf("repo: {url: %q}\nruntime: process\nstate_dir: %s\ncontrol_socket: %s\n",
		"file://"+filepath.Join(dir, "deploy.git"), stateDir, sock)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(stateDir, 0o750); err != nil {
		t.Fatal(err)
	}
	c, err := agent.LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(a.ControlHandler())
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return cfgPath, stateDir
}

func TestSuspendAndResume(t *testing.T) {
	cfgPath, stateDir := controlDaemon(t)
	code, out, stderr := runCapture(t, "suspend", "hello", "--reason", "INC-42", "--config", cfgPath)
	if code != 0 || !strings.Contains(out, "hello suspended since ") || !strings.Contains(out, "INC-42") || !strings.Contains(out, "jailkeeper resume hello") {
		t.Errorf("suspend: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	b, err := os.ReadFile(filepath.Join(stateDir, agent.SuspendFile))
	if err != nil || !strings.Contains(string(b), `"hello"`) || !strings.Contains(string(b), "INC-42") {
		t.Errorf("%s = %q, %v", agent.SuspendFile, b, err)
	}
	code, out, _ = runCapture(t, "suspend", "hello", "--config", cfgPath)
	if code != 0 || !strings.Contains(out, "hello was already suspended since") || !strings.Contains(out, "INC-42") {
		t.Errorf("second suspend: exit %d, stdout %q", code, out)
	}
	code, out, _ = runCapture(t, "resume", "hello", "--config", cfgPath)
	if code != 0 || !strings.Contains(out, "hello resumed") {
		t.Errorf("resume: exit %d, stdout %q", code, out)
	}
	code, out, _ = runCapture(t, "resume", "hello", "--config", cfgPath)
	if code != 0 || !strings.Contains(out, "hello was not suspended") {
		t.Errorf("second resume: exit %d, stdout %q", code, out)
	}
}

func TestSuspendErrors(t *testing.T) {
	cfgPath, _ := controlDaemon(t)
	down := filepath.Join(t.TempDir(), "nobody.sock")
	for _, tt := range []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"bad name", []string{"suspend", "Hello", "--config", cfgPath}, exitInvalid, "invalid service name"},
		{"bad name resume", []string{"resume", "../x", "--config", cfgPath}, exitInvalid, "invalid service name"},
		{"no service", []string{"suspend", "--config", cfgPath}, exitInvalid, "accepts 1 arg"},
		{"long reason", []string{"suspend", "hello", "--reason", strings.Repeat("x", agent.MaxSuspendReason+1), "--config", cfgPath}, exitInvalid, "--reason"},
		{"control character", []string{"suspend", "hello", "--reason", "a\x1bb", "--config", cfgPath}, exitInvalid, "control character"},
		{"agent down", []string{"suspend", "hello", "--socket", down}, exitFailure, "is the agent running"},
		{"agent down resume", []string{"resume", "hello", "--socket", down}, exitFailure, "is the agent running"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runCapture(t, tt.args...)
			if code != tt.wantCode || !strings.Contains(stderr, tt.wantErr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, tt.wantCode, tt.wantErr)
			}
		})
	}
}
