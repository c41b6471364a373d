package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jailkeeper/jailkeeper/agent"
)

// daemon serves a real agent's HTTP handler (no pass runs) on 127.0.0.1 and
// returns its address and a config file whose listen points at it.
func daemon(t *testing.T) (addr, cfgPath string) {
	t.Helper()
	dir := t.TempDir()
	srvAddr := "127.0.0.1:0"
	cfgPath = filepath.Join(dir, "jailkeeper.yaml")
	write := func(listen string) {
		cfg := fmt.Sprintf("repo: {url: %q}\nruntime: process\nstate_dir: %s\ncaddy: {admin: %q}\nlisten: %q\n",
			"file://"+filepath.Join(dir, "deploy.git"), filepath.Join(dir, "state"), "unix/"+filepath.Join(dir, "admin.sock"), listen)
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(srvAddr)
	cfg, err := agent.LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler(nil))
	t.Cleanup(srv.Close)
	addr = strings.TrimPrefix(srv.URL, "http://")
	write(addr)
	return addr, cfgPath
}

func TestStatusAndSyncTalkToDaemon(t *testing.T) {
	addr, cfgPath := daemon(t)

	code, out, stderr := runCapture(t, "status", "--config", cfgPath)
	if code != 0 || !strings.Contains(out, "SERVICE") || !strings.HasPrefix(out, "revision ") {
		t.Errorf("status: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	code, out, stderr = runCapture(t, "status", "-o", "json", "--addr", addr)
	var st agent.Status
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.Services == nil {
		t.Errorf("status -o json: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	code, out, stderr = runCapture(t, "sync", "--addr", "http://"+addr)
	if code != 0 || !strings.Contains(out, "pass triggered") {
		t.Errorf("sync: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
}

func TestDaemonErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().String()
	ln.Close() // nothing listens there now
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"status, daemon down", []string{"status", "--addr", down}, exitFailure, "is the agent running?"},
		{"sync, daemon down", []string{"sync", "--addr", down}, exitFailure, "is the agent running?"},
		{"bad output format", []string{"status", "-o", "yaml", "--addr", down}, exitInvalid, "--output"},
		{"missing config", []string{"status", "--config", filepath.Join(t.TempDir(), "missing.yaml")}, exitInvalid, "read config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runCapture(t, tt.args...)
			if code != tt.wantCode || !strings.Contains(stderr, tt.wantErr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, tt.wantCode, tt.wantErr)
			}
		})
	}
}
