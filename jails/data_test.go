package jails_test

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jailkeeper/jailkeeper/internal/golden"
	"github.com/jailkeeper/jailkeeper/internal/testenv"
	"github.com/jailkeeper/jailkeeper/jails"
	"github.com/jailkeeper/jailkeeper/jails/jailstest"
	"github.com/jailkeeper/jailkeeper/reconcile"
	"github.com/jailkeeper/jailkeeper/release"
	"github.com/jailkeeper/jailkeeper/zfs"
)

var _ reconcile.DataSnapshotter = (*jails.FreeBSD)(nil)

// TestFreeBSDDataDeploy replays a deploy with persistent data on the fake
// host: v1 is created (its data sets made, owned by the jail's www, quota
// set), started (nullfs-mounted by jail(8)) and snapshotted before it
// gets traffic; v2 the same, while v1 still runs and shares the data; v1
// stops. A busy nullfs mount that jail -r left behind is unmounted before
// the release's dataset is destroyed, and the data dataset outlives both
// releases. Only DestroyData removes it, and not while a release of the
// service is left.
func TestFreeBSDDataDeploy(t *testing.T) {
	testenv.Root(t) // the data dataset and the env file are chowned to the jail's www
	ctx := context.Background()
	dir := t.TempDir()
	confDir, logDir := filepath.Join(dir, "jail.conf.d"), filepath.Join(dir, "log")
	for _, d := range []string{confDir, logDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	jroot := filepath.Join(dir, "jails")
	host := jailstest.Prepared(t, dir, jailstest.Layout{Dataset: "zroot/jails", Root: jroot,
		Interface: "lo1", Own: netip.MustParsePrefix("172.16.0.1/32"), Templates: []string{"14.3-RELEASE"}})
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	f, err := jails.NewFreeBSD(jails.FreeBSDConfig{Dataset: "zroot/jails", Root: jroot,
		Template: "14.3-RELEASE", Interface: "lo1", ConfDir: confDir, LogDir: logDir,
		Pool: netip.MustParsePrefix("172.16.0.0/12"), DyingTimeout: time.Minute, PollInterval: time.Millisecond,
		Runner: host, Datasets: zfs.New(host).WithDestroyBackoff(0, 0), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	art := filepath.Join(dir, "hello")
	if err := os.WriteFile(art, []byte("#!/bin/sh\necho hello\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	spec := func(name string) release.Spec {
		return release.Spec{Name: name, Service: "hello", SHA: strings.Repeat("ab", 20), Spec: strings.Repeat("cd", 32),
			Port: 8080, Command: []string{"/usr/local/bin/hello"}, User: "www", Artifact: art,
			Data: []release.Data{{Name: "uploads", Path: "/var/db/hello", Quota: 10 << 30}, {Name: "cache", Path: "/var/cache/hello"}}}
	}
	v1, v2 := spec("hello_4b825dc642cb_1a2b3c"), spec("hello_5c936ed753dc_2b3c4d")
	var b strings.Builder
	seen := 0
	step := func(name string) {
		calls := host.Calls()
		b.WriteString("# " + name + "\n")
		for _, line := range strings.SplitAfter(host.Transcript(), "\n")[seen:] {
			b.WriteString(strings.ReplaceAll(line, dir, "<tmp>"))
		}
		seen = len(calls)
	}
	seen = len(host.Calls()) // host init and template create are not the deploy's

	if _, err := f.Create(ctx, v1); err != nil {
		t.Fatal(err)
	}
	step("create v1: the data sets are made, owned by the jail's www")
	uploads := filepath.Join(jroot, "data", "hello", "uploads")
	for _, ds := range []string{"zroot/jails/data/hello/uploads", "zroot/jails/data/hello/cache"} {
		d, ok := host.Dataset(ds)
		if !ok {
			t.Fatalf("%s not created", ds)
		}
		st, err := os.Stat(d.Mountpoint)
		if err != nil {
			t.Fatal(err)
		}
		if uid, gid := fileOwner(t, st); uid != 80 || gid != 80 {
			t.Errorf("%s owned by %d:%d, want www's 80:80 from the jail's passwd", d.Mountpoint, uid, gid)
		}
	}
	conf1, err := os.ReadFile(filepath.Join(confDir, v1.Name+".conf"))
	if err != nil {
		t.Fatal(err)
	}
	root1 := filepath.Join(jroot, "containers", v1.Name)
	if want := `mount += "` + uploads + " " + root1 + `/var/db/hello nullfs rw 0 0";`; !strings.Contains(string(conf1), want) {
		t.Errorf("conf lacks %s:\n%s", want, conf1)
	}
	env, _ := os.ReadFile(filepath.Join(root1, "usr/local/etc/jailkeeper/hello.env"))
	if !strings.Contains(string(env), "DATA_UPLOADS='/var/db/hello'\n") {
		t.Errorf("env file lacks DATA_UPLOADS:\n%s", env)
	}

	if err := f.Start(ctx, v1.Name); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(uploads, "photo.jpg"), []byte("written through v1"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := f.SnapshotData(ctx, "hello", v1.Name, []string{"uploads", "cache"}, 2); err != nil {
		t.Fatal(err)
	}
	step("start v1, snapshot before its switch")

	now = now.Add(time.Hour)
	if _, err := f.Create(ctx, v2); err != nil {
		t.Fatal(err)
	}
	if err := f.Start(ctx, v2.Name); err != nil {
		t.Fatal(err)
	}
	root2 := filepath.Join(jroot, "containers", v2.Name)
	mounted := nullfsMounts(host)
	if want := []string{root1 + "/var/cache/hello", root1 + "/var/db/hello", root2 + "/var/cache/hello", root2 + "/var/db/hello"}; !cmp.Equal(want, mounted) {
		t.Errorf("nullfs mounts with v1 and v2 running (-want +got):\n%s", cmp.Diff(want, mounted))
	}
	if err := f.SnapshotData(ctx, "hello", v2.Name, []string{"uploads", "cache"}, 2); err != nil {
		t.Fatal(err)
	}
	if err := f.Stop(ctx, v1.Name); err != nil {
		t.Fatal(err)
	}
	step("create and start v2 (both share the data), snapshot, stop v1")
	if want := []string{root2 + "/var/cache/hello", root2 + "/var/db/hello"}; !cmp.Equal(want, nullfsMounts(host)) {
		t.Errorf("nullfs mounts after v1 stopped: %v, want %v", nullfsMounts(host), want)
	}

	// jail -r could not unmount v2's data (busy): the mount is left below
	// its root. A start unmounts it before jail -c mounts the data again,
	// so restarts never stack mounts.
	if err := f.Stop(ctx, v2.Name); err != nil {
		t.Fatal(err)
	}
	host.AddMount(uploads, root2+"/var/db/hello", "nullfs")
	if err := f.Start(ctx, v2.Name); err != nil {
		t.Fatal(err)
	}
	if want := []string{root2 + "/var/cache/hello", root2 + "/var/db/hello"}; !cmp.Equal(want, nullfsMounts(host)) {
		t.Errorf("nullfs mounts after a restart over a leftover: %v, want %v", nullfsMounts(host), want)
	}
	step("v2's data mount outlives its jail -r (busy); start v2 again")

	// The same leftover before a destroy: Destroy unmounts it before zfs
	// destroy, which would otherwise fail busy; the data dataset is not
	// below the release's.
	if err := f.Stop(ctx, v2.Name); err != nil {
		t.Fatal(err)
	}
	host.AddMount(uploads, root2+"/var/db/hello", "nullfs")
	if err := f.DestroyData(ctx, "hello", "uploads"); !errors.Is(err, jails.ErrDataInUse) {
		t.Errorf("DestroyData with releases left: %v, want ErrDataInUse", err)
	}
	for _, r := range []string{v2.Name, v1.Name} {
		if err := f.Destroy(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	step("stop v2 (jail -r leaves a busy data mount), refuse to destroy data, destroy v2 and v1")
	if got := nullfsMounts(host); len(got) != 0 {
		t.Errorf("mounts left: %v", got)
	}
	if b, err := os.ReadFile(filepath.Join(uploads, "photo.jpg")); err != nil || string(b) != "written through v1" {
		t.Errorf("data after both releases were destroyed: %q %v", b, err)
	}
	var snaps []string
	for _, s := range host.Residue() {
		if strings.HasPrefix(s, "snapshot zroot/jails/data/") {
			snaps = append(snaps, s)
		}
	}
	wantSnaps := []string{
		"snapshot zroot/jails/data/hello/cache@" + v1.Name + "-20261125T120000Z",
		"snapshot zroot/jails/data/hello/cache@" + v2.Name + "-20261125T130000Z",
		"snapshot zroot/jails/data/hello/uploads@" + v1.Name + "-20261125T120000Z",
		"snapshot zroot/jails/data/hello/uploads@" + v2.Name + "-20261125T130000Z",
	}
	if diff := cmp.Diff(wantSnaps, snaps); diff != "" {
		t.Errorf("data snapshots (-want +got):\n%s", diff)
	}

	sets, err := f.ListData(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []release.DataSet{{Service: "hello", Name: "cache", Where: "zroot/jails/data/hello/cache"},
		{Service: "hello", Name: "uploads", Where: "zroot/jails/data/hello/uploads"}}
	if diff := cmp.Diff(want, sets); diff != "" {
		t.Errorf("ListData (-want +got):\n%s", diff)
	}
	if err := f.DestroyData(ctx, "hello", "uploads"); err != nil {
		t.Fatal(err)
	}
	if err := f.DestroyData(ctx, "hello", "uploads"); !errors.Is(err, release.ErrNotFound) {
		t.Errorf("DestroyData again: %v, want ErrNotFound", err)
	}
	step("list data, destroy uploads, destroy it again")
	if _, ok := host.Dataset("zroot/jails/data/hello/uploads"); ok {
		t.Error("uploads survived DestroyData")
	}
	if _, ok := host.Dataset("zroot/jails/data/hello/cache"); !ok {
		t.Error("cache was destroyed with uploads")
	}
	golden.Assert(t, "testdata/freebsd/golden/data.transcript", []byte(
		"# The FreeBSD runtime's commands for a deploy with persistent data (TestFreeBSDDataDeploy),\n"+
			"# run against the fake host jails/jailstest.\n"+b.String()))
}

// nullfsMounts lists the host's nullfs mount points, sorted.
func nullfsMounts(h *jailstest.Host) []string {
	var out []string
	for _, s := range h.Residue() {
		if p, ok := strings.CutPrefix(s, "mount "); ok && strings.HasSuffix(p, " (nullfs)") {
			out = append(out, strings.TrimSuffix(p, " (nullfs)"))
		}
	}
	slices.Sort(out)
	return out
}
