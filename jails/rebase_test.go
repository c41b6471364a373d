package jails_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/caddy"
	"github.com/jailkeeper/jailkeeper/internal/golden"
	"github.com/jailkeeper/jailkeeper/internal/testenv"
	"github.com/jailkeeper/jailkeeper/manifest"
	"github.com/jailkeeper/jailkeeper/reconcile"
	"github.com/jailkeeper/jailkeeper/release"
)

// Template rebase on the FreeBSD path: the reconcile Executor drives the
// jail runtime over the fake host, as the agent does. A release made
// before releases recorded their template snapshot (its dataset has no
// jailkeeper:template_snapshot) keeps its name and is not redeployed. A
// new snapshot of the template then rolls the two services one at a
// time (rebase.max_parallel 1), each to a jail cloned from it; the golden
// transcript is the pass that rolls the first.
func TestFreeBSDRebase(t *testing.T) {
	testenv.Root(t) // install chowns the env file to the jail's www
	ctx := context.Background()
	host, newRT, spec := fakeHostRuntime(t)
	clock := &testClock{now: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)}
	proxy, prober := &memProxy{routes: map[string]caddy.Route{}}, &okProber{}
	newExec := func() *reconcile.Executor {
		return reconcile.NewExecutor(reconcile.Options{Runtime: newRT(), Proxy: proxy, Prober: prober,
			Fetcher: fixedFetcher(spec.Artifact), Now: clock.Now, Parallel: 2,
			Rebase: reconcile.RebaseOptions{MaxParallel: 1, PauseOnFailure: true}})
	}
	hello, world := standbySvc(strings.Repeat("1", 40)), standbySvc(strings.Repeat("2", 40))
	world.Service, world.Hostnames = "world", []string{"world.example.com"}
	d := reconcile.Desired{Revision: "r1", Services: []manifest.Service{hello, world}}
	names := []string{hello.ReleaseName(), world.ReleaseName()}
	pass := func() reconcile.Result {
		t.Helper()
		res, err := newExec().Pass(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		clock.advance(time.Minute)
		return res
	}
	pass()
	prop := func(name string) string {
		t.Helper()
		ds, ok := host.Dataset("zroot/jails/containers/" + name)
		if !ok {
			t.Fatalf("no dataset of %s", name)
		}
		return ds.Props[release.PropTemplateSnapshot]
	}
	for _, n := range names {
		if got := prop(n); got != "base" {
			t.Errorf("%s: %s = %q, want base", n, release.PropTemplateSnapshot, got)
		}
	}

	// hello's release as an agent before this change made it.
	host.MustRun(t, "zfs", "inherit", release.PropTemplateSnapshot, "zroot/jails/containers/"+names[0])
	mark := len(host.Calls())
	res := pass()
	for _, st := range res.Steps {
		if st.Kind != reconcile.KindNone || !slices.Contains(names, st.Target) {
			t.Errorf("after the upgrade: %s, want none on the old release", st)
		}
	}
	for _, c := range host.Calls()[mark:] {
		if c.Argv[0] == "jail" || (c.Argv[0] == "zfs" && c.Argv[1] == "clone") {
			t.Errorf("after the upgrade the agent ran %s", strings.Join(c.Argv, " "))
		}
	}

	const snap = "20261129T150405Z"
	host.MustRun(t, "zfs", "snapshot", "zroot/jails/templates/14.3-RELEASE@"+snap)
	mark = len(host.Calls())
	res = pass()
	var b strings.Builder
	for _, c := range host.Calls()[mark:] {
		b.WriteString(strings.ReplaceAll(strings.Join(c.Argv, " "), host.Dir(), "<tmp>") + "\n")
	}
	golden.Assert(t, "testdata/freebsd/golden/rebase.transcript", []byte(b.String()))
	if res.Steps[0].Kind != reconcile.KindDeploy || res.Steps[1].Kind != reconcile.KindNone {
		t.Errorf("first pass after the snapshot: %s / %s, want hello deployed, world waiting", res.Steps[0], res.Steps[1])
	}
	if r := res.Services[1].Rebase; r == nil || r.State != reconcile.RebasePending {
		t.Errorf("world's rebase %+v, want pending", r)
	}
	pass()
	res = pass()
	rels, err := newRT().List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rels {
		if r.State != release.StateLive {
			continue
		}
		if r.TemplateSnapshot != snap || slices.Contains(names, r.Name) {
			t.Errorf("live %s on %q, want a new release on %s", r.Name, r.TemplateSnapshot, snap)
		}
		ds, _ := host.Dataset("zroot/jails/containers/" + r.Name)
		if want := "zroot/jails/templates/14.3-RELEASE@" + snap; ds.Origin != want {
			t.Errorf("%s cloned from %s, want %s", r.Name, ds.Origin, want)
		}
	}
	if len(res.Rebase) != 1 || res.Rebase[0].Current != 2 || res.Rebase[0].Rebasing() {
		t.Errorf("rebase after both rolled: %+v, want 2 current", res.Rebase)
	}
}
