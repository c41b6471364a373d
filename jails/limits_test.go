package jails_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jailkeeper/jailkeeper/internal/command"
	"github.com/jailkeeper/jailkeeper/internal/golden"
	"github.com/jailkeeper/jailkeeper/internal/testenv"
	"github.com/jailkeeper/jailkeeper/jails"
	"github.com/jailkeeper/jailkeeper/jails/jailstest"
	"github.com/jailkeeper/jailkeeper/release"
)

// limitsSpec is the fake host's spec with every limit of the manifest
// example (DESIGN.md: memory 512M, pcpu 50, maxproc 200, openfiles 4096,
// disk 5G) and a fixed name, so transcripts are stable.
func limitsSpec(spec release.Spec) release.Spec {
	spec.Name = "hello_4b825dc642cb_5e6f70"
	spec.Limits = release.Limits{Memory: 512 << 20, PCPU: 50, MaxProc: 200, OpenFiles: 4096, Disk: 5 << 30}
	spec.Created = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	return spec
}

// rctlArgv is every rctl command the host ran, one per line.
func rctlArgv(calls []jailstest.Call) string {
	var b strings.Builder
	for _, c := range calls {
		if c.Argv[0] == "rctl" {
			b.WriteString(strings.Join(c.Argv, " ") + "\n")
		}
	}
	return b.String()
}

// TestFreeBSDLimits: a release with limits gets its rctl rules before its
// jail is created and loses them when it stops, and its clone carries the
// disk limit as a ZFS quota. The rctl argv at start and at stop are golden
// files; the whole life (create, start, stop, destroy) on the fake host
// is a golden transcript.
func TestFreeBSDLimits(t *testing.T) {
	testenv.Root(t) // install chowns the env file to the jail's www
	ctx := context.Background()
	host, newRT, spec := fakeHostRuntime(t)
	spec = limitsSpec(spec)
	f := newRT()
	var tr strings.Builder
	step := func(name string, from int) int {
		calls := host.Calls()
		tr.WriteString("# " + name + "\n")
		for _, c := range calls[from:] {
			line := strings.ReplaceAll(command.Quote(c.Argv), host.Dir(), "<tmp>")
			if c.Exit != 0 {
				line += "  # exit " + strconv.Itoa(c.Exit)
			}
			tr.WriteString(line + "\n")
		}
		return len(calls)
	}

	setup := len(host.Calls()) // host init and template create
	r, err := f.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(spec.Limits, r.Limits); diff != "" {
		t.Errorf("created release's limits (-want +got):\n%s", diff)
	}
	n := step("create", setup)
	d, _ := host.Dataset("zroot/jails/containers/" + spec.Name)
	if d.Props["quota"] != "5368709120" || d.Props["jailkeeper:limits"] != "memory=536870912,pcpu=50,maxproc=200,openfiles=4096,disk=5368709120" {
		t.Errorf("clone properties %v, want quota=5368709120 and jailkeeper:limits", d.Props)
	}
	rels, err := newRT().List(ctx) // a restarted agent reads them back
	if err != nil || len(rels) != 1 || rels[0].Limits != spec.Limits {
		t.Errorf("List = %+v, %v; want the limits back", rels, err)
	}
	n = step("list", n)

	before := len(host.Calls())
	if err := f.Start(ctx, spec.Name); err != nil {
		t.Fatal(err)
	}
	startCalls := host.Calls()[before:]
	golden.Assert(t, "testdata/freebsd/golden/rctl-start.argv", []byte(rctlArgv(startCalls)))
	ia := slices.IndexFunc(startCalls, func(c jailstest.Call) bool { return c.Argv[0] == "rctl" })
	ij := slices.IndexFunc(startCalls, func(c jailstest.Call) bool { return c.Argv[0] == "jail" })
	if ia < 0 || ij < 0 || ia > ij {
		t.Errorf("rctl -a at %d, jail -c at %d: the rules must be in place before the jail is created", ia, ij)
	}
	want := []string{
		"jail:" + spec.Name + ":memoryuse:deny=536870912",
		"jail:" + spec.Name + ":pcpu:deny=50",
		"jail:" + spec.Name + ":maxproc:deny=200",
		"jail:" + spec.Name + ":openfiles:deny=4096",
	}
	if diff := cmp.Diff(want, host.Rules(spec.Name)); diff != "" {
		t.Errorf("rules while running (-want +got):\n%s", diff)
	}
	n = step("start", n)

	before = len(host.Calls())
	if err := f.Stop(ctx, spec.Name); err != nil {
		t.Fatal(err)
	}
	golden.Assert(t, "testdata/freebsd/golden/rctl-stop.argv", []byte(rctlArgv(host.Calls()[before:])))
	if got := host.Rules(spec.Name); len(got) != 0 {
		t.Errorf("rules after Stop: %v", got)
	}
	n = step("stop", n)

	if err := f.Destroy(ctx, spec.Name); err != nil {
		t.Fatal(err)
	}
	step("destroy", n)
	if got := host.Residue(); slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, spec.Name) }) {
		t.Errorf("Destroy left %v", got)
	}
	golden.Assert(t, "testdata/freebsd/golden/limits.transcript", []byte(
		"# A release with limits on the fake FreeBSD host (TestFreeBSDLimits): rctl rules\n"+
			"# before jail -c, rctl -r after jail -r, the disk limit as the clone's quota.\n"+tr.String()))
}

// TestFreeBSDLimitsWithoutRacct: on a kernel that accounts nothing
// (kern.racct.enable=0) a release with limits does not start, and the
// error is the host's (release.ErrHostBusy), naming the loader.conf line.
// A release without limits starts as before.
func TestFreeBSDLimitsWithoutRacct(t *testing.T) {
	testenv.Root(t)
	ctx := context.Background()
	host, newRT, spec := fakeHostRuntime(t)
	host.SetRacct(false)
	f := newRT()
	limited := limitsSpec(spec)
	if _, err := f.Create(ctx, limited); err != nil {
		t.Fatal(err)
	}
	err := f.Start(ctx, limited.Name)
	if !errors.Is(err, jails.ErrRacct) || !errors.Is(err, release.ErrHostBusy) || !strings.Contains(err.Error(), "kern.racct.enable=1") {
		t.Errorf("Start without racct = %v, want ErrRacct (a host fault) naming kern.racct.enable=1", err)
	}
	if js := host.Jails(); len(js) != 0 {
		t.Errorf("jails after the refused start: %+v", js)
	}
	if _, err := f.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := f.Start(ctx, spec.Name); err != nil {
		t.Errorf("a release without limits: %v", err)
	}
	if err := f.Stop(ctx, spec.Name); err != nil {
		t.Error(err)
	}
	// The limited release, never started, is destroyed without rctl
	// complaining: there is nothing to remove.
	if err := f.Destroy(ctx, limited.Name); err != nil {
		t.Errorf("Destroy without racct: %v", err)
	}
}

// TestFreeBSDLimitsRemovedWhenJailFails: rules added for a start whose
// jail -c fails are removed again.
func TestFreeBSDLimitsRemovedWhenJailFails(t *testing.T) {
	testenv.Root(t)
	ctx := context.Background()
	host, newRT, spec := fakeHostRuntime(t)
	spec = limitsSpec(spec)
	f := newRT()
	if _, err := f.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	host.SetFault(jailstest.FailOnce([]string{"jail"}, jailstest.Fault{Stderr: "jail: " + spec.Name + ": exec.start failed\n"}))
	if err := f.Start(ctx, spec.Name); err == nil {
		t.Fatal("Start succeeded although jail -c failed")
	}
	if got := host.Rules(spec.Name); len(got) != 0 {
		t.Errorf("rules after a failed start: %v", got)
	}
	if got := rctlArgv(host.Calls()); !strings.Contains(got, "rctl -r jail:"+spec.Name+"\n") {
		t.Errorf("rctl commands:\n%s", got)
	}
}
