package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/jailkeeper/jailkeeper/agent"
	"github.com/jailkeeper/jailkeeper/reconcile"
)

// status prints one line per template with services to roll, and why a
// paused one is; a template whose services are all current prints nothing.
func TestPrintStatusShowsRebase(t *testing.T) {
	st := agent.Status{Revision: "abc", Rebase: []reconcile.RebaseStatus{
		{Template: "14.3-RELEASE", Snapshot: "20261129T150405Z", Current: 2, Pending: 2, Failed: 1, Paused: true,
			Reason: "svc3 failed on 14.3-RELEASE@20261129T150405Z: health gate: 503\x1b[2J; " + reconcile.ResumeHint},
		{Template: "15.0-RELEASE", Snapshot: "base", Current: 3},
	}}
	var out bytes.Buffer
	if err := printStatus(&out, st); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"rebase 14.3-RELEASE@20261129T150405Z paused: 2 current, 0 rolling, 2 pending, 0 held, 1 failed\n",
		"  svc3 failed on 14.3-RELEASE@20261129T150405Z: health gate: 503",
		"jailkeeper rebase resume",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("status lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "15.0-RELEASE") || strings.Contains(got, "\x1b") {
		t.Errorf("status shows a current template or an escape:\n%q", got)
	}
}
