package agent

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jailkeeper/jailkeeper/reconcile"
)

func TestWindowsConfigErrors(t *testing.T) {
	for _, tt := range []struct {
		name, yaml, want string
	}{
		{"bad kind", `windows: [{kind: block, schedule: "0 9 * * *", duration: 1h}]`, `windows[0].kind: "block" is not deny or allow`},
		{"bad cron", `windows: [{kind: deny, schedule: "0 25 * * *", duration: 1h}]`, `windows[0].schedule: `},
		{"no schedule", `windows: [{kind: deny, duration: 1h}]`, `windows[0].schedule: is required`},
		{"every", `windows: [{kind: deny, schedule: "@every 1h", duration: 1h}]`, `windows[0].schedule: "@every 1h" counts from whenever it is asked`},
		{"never", `windows: [{kind: allow, schedule: "0 0 30 2 *", duration: 1h}]`, `windows[0].schedule: "0 0 30 2 *" never activates`},
		{"bad duration", `windows: [{kind: deny, schedule: "0 9 * * *", duration: 1x}]`, `windows[0].duration: "1x" is not a positive duration`},
		{"negative duration", `windows: [{kind: deny, schedule: "0 9 * * *", duration: -1h}]`, `windows[0].duration: "-1h" is not a positive duration`},
		{"no duration", `windows: [{kind: deny, schedule: "0 9 * * *"}]`, `windows[0].duration: is required`},
		{"bad glob", `windows: [{kind: deny, schedule: "0 9 * * *", duration: 1h}, {kind: deny, schedule: "0 9 * * *", duration: 1h, services: [ok, "[bad"]}]`, `windows[1].services[1]: "[bad" is not a glob`},
		{"unknown key", `windows: [{kind: deny, schedule: "0 9 * * *", duration: 1h, service: [x]}]`, `field service not found`},
		{"relative socket", `control_socket: run/jk.sock`, `control_socket: "run/jk.sock" is not an absolute path`},
		{"long socket", `control_socket: /` + strings.Repeat("d", 100) + `/jk.sock`, `is too long for a unix socket`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig("/etc/jk.yaml", []byte("repo: {url: file:///srv/deploy.git}\n"+tt.yaml+"\n"))
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "/etc/jk.yaml") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want ErrConfig naming the file and %q", err, tt.want)
			}
		})
	}
}

func TestWindowsConfigDefaults(t *testing.T) {
	c, err := ParseConfig("/etc/jk.yaml", []byte(`repo: {url: file:///srv/deploy.git}
windows:
  - {kind: deny, schedule: "CRON_TZ=Europe/Berlin 0 9 * * 1-5", duration: 8h, services: ["*"]}
  - {kind: allow, schedule: "@daily", duration: 90m}
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.ControlSocket != "/var/run/jailkeeper.sock" {
		t.Errorf("control_socket = %q, want the default", c.ControlSocket)
	}
	want := []WindowConfig{
		{Kind: "deny", Schedule: "CRON_TZ=Europe/Berlin 0 9 * * 1-5", Duration: "8h", Services: []string{"*"}},
		{Kind: "allow", Schedule: "@daily", Duration: "90m"},
	}
	if diff := cmp.Diff(want, c.Windows); diff != "" {
		t.Errorf("windows (-want +got):\n%s", diff)
	}
}

// 2026-11-23 is a Monday.
func at(day, hour, minute int) time.Time {
	return time.Date(2026, 11, day, hour, minute, 0, 0, time.UTC)
}

func mustWindows(t *testing.T, cfgs ...WindowConfig) *Windows {
	t.Helper()
	ws, err := NewWindows(cfgs, at(23, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	return ws
}

// TestWindowsWait: whether a service's windows hold it at a given time
// and until when, on an injected clock.
func TestWindowsWait(t *testing.T) {
	office := WindowConfig{Kind: "deny", Schedule: "0 9 * * 1-5", Duration: "8h", Services: []string{"*"}}
	nightly := WindowConfig{Kind: "allow", Schedule: "0 2 * * *", Duration: "2h", Services: []string{"billing*"}}
	lunch := WindowConfig{Kind: "deny", Schedule: "30 16 * * *", Duration: "2h", Services: []string{"web"}}
	berlin := WindowConfig{Kind: "deny", Schedule: "CRON_TZ=Europe/Berlin 0 9 * * *", Duration: "1h"}
	always := WindowConfig{Kind: "deny", Schedule: "* * * * *", Duration: "1h", Services: []string{"frozen"}}
	tests := []struct {
		name    string
		windows []WindowConfig
		service string
		now     time.Time
		want    *reconcile.WindowWait
	}{
		{"no windows", nil, "web", at(23, 10, 0), nil},
		{"inside deny", []WindowConfig{office}, "web", at(23, 10, 0),
			&reconcile.WindowWait{Until: at(23, 17, 0), Window: `deny "0 9 * * 1-5" for 8h0m0s`}},
		{"deny starts now", []WindowConfig{office}, "web", at(23, 9, 0),
			&reconcile.WindowWait{Until: at(23, 17, 0), Window: `deny "0 9 * * 1-5" for 8h0m0s`}},
		{"deny ended", []WindowConfig{office}, "web", at(23, 17, 0), nil},
		{"before deny", []WindowConfig{office}, "web", at(23, 8, 59), nil},
		{"weekend", []WindowConfig{office}, "web", at(28, 10, 0), nil},
		{"overlapping deny windows chain", []WindowConfig{office, lunch}, "web", at(23, 10, 0),
			&reconcile.WindowWait{Until: at(23, 18, 30), Window: `deny "0 9 * * 1-5" for 8h0m0s`}},
		{"glob does not match", []WindowConfig{lunch}, "api", at(23, 17, 0), nil},
		{"outside allow", []WindowConfig{nightly}, "billing_eu", at(23, 12, 0),
			&reconcile.WindowWait{Until: at(24, 2, 0), Window: `outside allow "0 2 * * *" for 2h0m0s`}},
		{"inside allow", []WindowConfig{nightly}, "billing_eu", at(24, 3, 59), nil},
		{"allow of another service", []WindowConfig{nightly}, "web", at(23, 12, 0), nil},
		// Friday noon: the allow window opens at 02:00 on Saturday.
		{"allow and deny", []WindowConfig{office, nightly}, "billing", at(27, 12, 0),
			&reconcile.WindowWait{Until: at(28, 2, 0), Window: `deny "0 9 * * 1-5" for 8h0m0s`}},
		{"time zone", []WindowConfig{berlin}, "web", at(23, 8, 30),
			&reconcile.WindowWait{Until: at(23, 9, 0), Window: `deny "CRON_TZ=Europe/Berlin 0 9 * * *" for 1h0m0s`}},
		{"never ends", []WindowConfig{always}, "frozen", at(23, 12, 0),
			&reconcile.WindowWait{Window: `deny "* * * * *" for 1h0m0s`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mustWindows(t, tt.windows...).Wait(tt.service, tt.now)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Wait(%s, %s) (-want +got):\n%s", tt.service, tt.now, diff)
			}
		})
	}
}

// TestWindowsWaitIsCached: services that share their windows share one
// answer per pass time, so a thousand services cost one search.
func TestWindowsWaitIsCached(t *testing.T) {
	ws := mustWindows(t, WindowConfig{Kind: "deny", Schedule: "0 9 * * 1-5", Duration: "8h"})
	a, b := ws.Wait("a", at(23, 10, 0)), ws.Wait("b", at(23, 10, 0))
	if a == nil || a != b {
		t.Errorf("Wait = %p, %p; want one shared answer", a, b)
	}
	if c := ws.Wait("a", at(23, 18, 0)); c != nil {
		t.Errorf("Wait at another time = %+v, want a fresh answer (nil)", c)
	}
}

func BenchmarkWindowsWaitNeverEnds(b *testing.B) {
	ws, err := NewWindows([]WindowConfig{{Kind: "deny", Schedule: "* * * * *", Duration: "1h"}}, at(23, 0, 0))
	if err != nil {
		b.Fatal(err)
	}
	now := at(23, 12, 0)
	for b.Loop() {
		now = now.Add(time.Second) // a new pass: no cache hit
		ws.Wait("web", now)
	}
}
