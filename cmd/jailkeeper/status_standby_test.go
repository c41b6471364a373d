package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/agent"
	"github.com/jailkeeper/jailkeeper/reconcile"
)

func TestPrintStatusShowsStandby(t *testing.T) {
	until := time.Date(2026, 11, 29, 12, 17, 0, 0, time.UTC)
	st := agent.Status{Revision: "abc", Services: []reconcile.ServiceStatus{
		{Service: "hello", LiveRelease: "hello_222222222222_9f86d0", State: "live", Converged: true,
			Standby: "hello_111111111111_9f86d0", StandbyUntil: until},
		{Service: "web", LiveRelease: "web_333333333333_9f86d0", State: "live", Converged: true},
	}}
	var out bytes.Buffer
	if err := printStatus(&out, st); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if got, want := lines[len(lines)-1], "standby hello: hello_111111111111_9f86d0 until 2026-11-29T12:17:00Z"; got != want {
		t.Errorf("last line %q, want %q\n%s", got, want, out.String())
	}
	if n := strings.Count(out.String(), "standby "); n != 1 {
		t.Errorf("%d standby lines, want 1 (web has none):\n%s", n, out.String())
	}
}
