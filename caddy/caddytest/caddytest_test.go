package caddytest_test

import (
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/jailkeeper/jailkeeper/caddy/caddytest"
)

func TestStartRestartStop(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opts   []caddytest.Option
		prefix string
	}{
		{"unix", nil, "unix//"},
		{"tcp", []caddytest.Option{caddytest.TCPAdmin()}, "127.0.0.1:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := caddytest.Start(t, tc.opts...)
			if !strings.HasPrefix(in.Admin, tc.prefix) {
				t.Fatalf("Admin = %q, want prefix %q", in.Admin, tc.prefix)
			}
			if !strings.HasPrefix(in.HTTPAddr, "127.0.0.1:") {
				t.Fatalf("HTTPAddr = %q", in.HTTPAddr)
			}
			in.MustDo(t, http.MethodPut, "/config/apps/http/servers/x",
				`{"listen":["`+in.HTTPAddr+`"],"automatic_https":{"disable":true}}`)
			if r := in.MustDo(t, http.MethodGet, "/config/apps/http/servers/x/listen", ""); !strings.Contains(r.Body, in.HTTPAddr) {
				t.Fatalf("listen = %s", r.Body)
			}
			if in.OpenFiles(t) == 0 {
				t.Fatal("OpenFiles = 0 for a running caddy")
			}

			pid := in.PID()
			in.Restart(t)
			if in.PID() == pid {
				t.Fatalf("PID unchanged across Restart: %d", pid)
			}
			// Without --resume the API-set server is gone.
			if r := in.MustDo(t, http.MethodGet, "/config/", ""); strings.Contains(r.Body, "servers") {
				t.Fatalf("config after Restart still has the server: %s", r.Body)
			}

			pid = in.PID()
			in.Stop()
			in.Stop() // idempotent
			if processAlive(pid) == nil {
				t.Fatalf("caddy %d still running after Stop", pid)
			}
			if b, err := os.ReadFile(in.LogPath); err != nil || len(b) == 0 {
				t.Fatalf("log %s: %v, %d bytes", in.LogPath, err, len(b))
			}
		})
	}
}

func TestWithApps(t *testing.T) {
	in := caddytest.Start(t, caddytest.WithApps(`{"http":{"servers":{"other":{"listen":["127.0.0.1:0"]}}}}`))
	check := func() {
		t.Helper()
		r := in.MustDo(t, http.MethodGet, "/config/apps/http/servers/other/listen", "")
		if strings.TrimSpace(r.Body) != `["127.0.0.1:0"]` {
			t.Fatalf("other server listen = %s", r.Body)
		}
	}
	check()
	in.Restart(t)
	check()
}

// processAlive returns nil when /proc has the pid (Linux). A zombie counts
// as gone: Stop waits for the process, so there should be none.
func processAlive(pid int) error {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return err
	}
	if strings.Contains(string(b), ") Z ") {
		return os.ErrNotExist
	}
	return nil
}
