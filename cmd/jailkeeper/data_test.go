package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/jailkeeper/jailkeeper/agent"
	"github.com/jailkeeper/jailkeeper/release"
)

// TestDataDestroyUsage: data destroy wants a service, a data set name and
// --yes, all checked before any config is read.
func TestDataDestroyUsage(t *testing.T) {
	for _, args := range [][]string{
		{"data", "destroy"},
		{"data", "destroy", "hello"},
		{"data", "destroy", "hello", "uploads"}, // no --yes
		{"data", "destroy", "hello", "uploads", "extra", "--yes"},
		{"data", "destroy", "Hello", "uploads", "--yes"},
		{"data", "destroy", "hello", "../etc", "--yes"},
		{"data", "list", "extra"},
	} {
		code, _, stderr := runCapture(t, append(args, "--config", "/nonexistent/jailkeeper.yaml")...)
		if code != exitInvalid || strings.Contains(stderr, "nonexistent") {
			t.Errorf("jailkeeper %s: exit %d (%q), want %d before the config is read", strings.Join(args, " "), code, stderr, exitInvalid)
		}
	}
	if _, _, stderr := runCapture(t, "data", "destroy", "hello", "uploads", "--config", "/nonexistent/jailkeeper.yaml"); !strings.Contains(stderr, "--yes") {
		t.Errorf("without --yes: %q, want it to ask for --yes", stderr)
	}
}

// TestPrintStatusOrphanedData: status lists the data no manifest names,
// with the command that removes it, and nothing when there is none.
func TestPrintStatusOrphanedData(t *testing.T) {
	var out bytes.Buffer
	if err := printStatus(&out, agent.Status{Revision: "abc"}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "orphaned") {
		t.Errorf("status without orphans:\n%s", out.String())
	}
	out.Reset()
	st := agent.Status{Revision: "abc", OrphanedData: []release.DataSet{
		{Service: "old", Name: "uploads", Where: "zroot/jails/data/old/uploads"},
	}}
	if err := printStatus(&out, st); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"orphaned data", "zroot/jails/data/old/uploads", "jailkeeper data destroy old uploads --yes"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, out.String())
		}
	}
}
