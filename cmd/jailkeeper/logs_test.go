package main

import (
	"strings"
	"testing"
)

// TestLogsExecUsage: the argument shapes of logs and exec are checked
// before any config is read.
func TestLogsExecUsage(t *testing.T) {
	for _, args := range [][]string{
		{"logs"},
		{"logs", "hello", "extra"},
		{"logs", "hello", "-n", "-1"},
		{"exec", "hello"},
		{"exec", "hello", "id"},                // no --
		{"exec", "--", "id"},                   // no service
		{"exec", "hello", "extra", "--", "id"}, // two words before --
		{"exec", "hello", "--no-such-flag", "--", "id"},
	} {
		if code, _, stderr := runCapture(t, append(args, "--config", "/nonexistent/jailkeeper.yaml")...); code != exitInvalid || strings.Contains(stderr, "nonexistent") {
			t.Errorf("jailkeeper %s: exit %d (%q), want %d before the config is read", strings.Join(args, " "), code, stderr, exitInvalid)
		}
	}
}
