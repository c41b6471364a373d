package process

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"testing"
)

// readProcStat reads what os.ReadFile reads, and a process that is gone
// is fs.ErrNotExist to identity, as it was with os.ReadFile.
func TestReadProcStat(t *testing.T) {
	got, err := readProcStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := parseStat(got); err != nil {
		t.Fatalf("parseStat(readProcStat(self)): %v", err)
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	// Reaped: its PID names no process (unless reused at once, which
	// this check would then miss, not fail on).
	if _, _, err := identity(cmd.Process.Pid); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("identity of a reaped process: %v, want fs.ErrNotExist", err)
	} else if err == nil {
		t.Logf("pid %d was reused at once", cmd.Process.Pid)
	}
}
