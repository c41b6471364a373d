package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHostShutdownCommand: `host shutdown` runs against the configured
// runtime (here the process runtime with no release running) and says
// what it stopped; it refuses while the agent holds the state dir.
func TestHostShutdownCommand(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "jailkeeper.yaml")
	state := filepath.Join(dir, "state")
	if err := os.MkdirAll(filepath.Join(state, "releases"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte("repo: {url: file:///srv/deploy.git}\nruntime: process\nstate_dir: "+state+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCapture(t, "host", "shutdown", "--config", cfg)
	if code != 0 || out != "0 of 0 running releases stopped\n" {
		t.Errorf("host shutdown: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, _, errOut = runCapture(t, "host")
	if code != 2 || !strings.Contains(errOut, "init or shutdown") {
		t.Errorf("host without a subcommand: exit %d, stderr %q", code, errOut)
	}
}
