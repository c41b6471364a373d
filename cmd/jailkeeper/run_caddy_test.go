package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jailkeeper/jailkeeper/internal/testenv"
)

func TestRunCaddyUsage(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no listen", []string{"run-caddy", "--", "true"}, "--listen"},
		{"no command", []string{"run-caddy", "--listen", "127.0.0.1:0"}, "arg"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCapture(t, tc.args...)
			if code != exitInvalid || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want %d naming %q", code, stderr, exitInvalid, tc.want)
			}
		})
	}
}

// TestRunCaddyHandsOverSocket runs a command in Caddy's place that checks
// descriptor 3 is the listening socket, and passes its exit status on.
func TestRunCaddyHandsOverSocket(t *testing.T) {
	sh := testenv.Command(t, "sh")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	out := filepath.Join(t.TempDir(), "fd3")
	// /proc/self/fd/3 names the socket on Linux; elsewhere only its presence
	// is checked.
	script := `test -e /dev/fd/3 || exit 7; readlink /proc/self/fd/3 > "$1" 2>/dev/null; exit 3`
	code, _, stderr := runCapture(t, "run-caddy", "--listen", addr, "--", sh, "-c", script, "sh", out)
	if code != 3 {
		t.Fatalf("exit %d (stderr %q), want the command's 3", code, stderr)
	}
	if b, err := os.ReadFile(out); err == nil && !strings.HasPrefix(string(b), "socket:") {
		t.Errorf("fd 3 is %q, want a socket", b)
	}
}
