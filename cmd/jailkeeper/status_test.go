package main

import (
	"bytes"
	"strings"
	"testing"
	"unicode"

	"github.com/jailkeeper/jailkeeper/agent"
	"github.com/jailkeeper/jailkeeper/reconcile"
)

// TestPrintStatusStripsControlCharacters: what an app or a remote side
// wrote (a health answer's reason phrase, a git server's message) reaches
// the operator's terminal without escapes, whatever the agent sent.
func TestPrintStatusStripsControlCharacters(t *testing.T) {
	esc := "\x1b]0;owned\x07\x1b[2J\x1b[31mdown\x7f\u009b31m\r"
	st := agent.Status{Revision: "abc", Error: "deploy repo: " + esc, Services: []reconcile.ServiceStatus{
		{Service: "hello", LiveRelease: "hello_" + esc, State: "failed", Message: "GET /up: 503 " + esc},
	}}
	var out bytes.Buffer
	if err := printStatus(&out, st); err != nil {
		t.Fatal(err)
	}
	got := strings.TrimSuffix(out.String(), "\n")
	for _, line := range strings.Split(got, "\n") {
		if strings.ContainsFunc(line, unicode.IsControl) {
			t.Errorf("status line %q has control characters", line)
		}
	}
	if strings.Count(got, "down") != 3 {
		t.Errorf("printable text lost:\n%s", got)
	}
}
