package zfs_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jailkeeper/jailkeeper/internal/command"
	"github.com/jailkeeper/jailkeeper/zfs"
	"github.com/jailkeeper/jailkeeper/zfs/zfstest"
)

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantIs(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error = %v, want one matching %q", err, target)
	}
}

// client returns a Client over real zfs (the wrapper Pool put on PATH),
// each command bounded by zfstest.CommandTimeout, and a context for the
// test.
func client(t *testing.T) (*zfs.Client, context.Context) {
	return zfs.New(zfstest.Runner()), t.Context()
}

func exists(t *testing.T, name string) bool {
	t.Helper()
	ok, err := zfs.New(zfstest.Runner()).Exists(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// template makes pool/templates/T with a file in it and snapshot @base,
// and pool/containers, as `jailkeeper host init` and `template create` do.
func template(t *testing.T, pool string) (snapshot string) {
	t.Helper()
	z, ctx := client(t)
	noErr(t, z.Create(ctx, pool+"/templates", nil))
	noErr(t, z.Create(ctx, pool+"/containers", nil))
	noErr(t, z.Create(ctx, pool+"/templates/14.3-RELEASE", nil))
	mp := must[map[string]zfs.Property](t)(z.Get(ctx, pool+"/templates/14.3-RELEASE", "mountpoint"))["mountpoint"].Value
	noErr(t, os.WriteFile(filepath.Join(mp, "COPYRIGHT"), []byte("base\n"), 0o644))
	noErr(t, z.Snapshot(ctx, pool+"/templates/14.3-RELEASE@base"))
	return pool + "/templates/14.3-RELEASE@base"
}

func releaseProps(state string) map[string]string {
	return map[string]string{
		"jailkeeper:managed": "yes",
		"jailkeeper:service": "hello",
		"jailkeeper:sha":     "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
		"jailkeeper:state":   state,
		"jailkeeper:reason":  "health gate: GET /up: 503\tafter 3 tries",
	}
}

func TestCreateSnapshotClone(t *testing.T) {
	pool := zfstest.Pool(t)
	z, ctx := client(t)
	snap := template(t, pool)

	wantIs(t, z.Snapshot(ctx, snap), zfs.ErrExists)
	err := z.Create(ctx, pool+"/containers", nil)
	wantIs(t, err, zfs.ErrExists)

	name := pool + "/containers/hello_4b825dc642cb_9f86d0"
	props := releaseProps("creating")
	props["atime"] = "off"          // a native property passes, and is not in Props
	props["jailkeeper:failed"] = "" // empty: left unset
	d, err := z.Clone(ctx, snap, name, props)
	noErr(t, err)
	want := zfs.Dataset{Name: name, Mountpoint: d.Mountpoint, Origin: snap, Props: releaseProps("creating")}
	if diff := cmp.Diff(want, d); diff != "" {
		t.Errorf("Clone (-want +got):\n%s", diff)
	}
	if !strings.HasSuffix(d.Mountpoint, "/mnt/containers/hello_4b825dc642cb_9f86d0") {
		t.Errorf("Mountpoint = %q", d.Mountpoint)
	}
	if b, err := os.ReadFile(filepath.Join(d.Mountpoint, "COPYRIGHT")); err != nil || string(b) != "base\n" {
		t.Errorf("the clone lacks the template's file: %q, %v", b, err)
	}
	// The properties were set by the clone itself: read them back from zfs.
	inv := must[[]zfs.Dataset](t)(z.Inventory(ctx, name))
	if diff := cmp.Diff([]zfs.Dataset{want}, inv); diff != "" {
		t.Errorf("Inventory of the clone (-want +got):\n%s", diff)
	}
	got, err := z.Get(ctx, name, "atime", "jailkeeper:state", "jailkeeper:failed")
	noErr(t, err)
	wantGet := map[string]zfs.Property{
		"atime":             {Value: "off", Source: "local"},
		"jailkeeper:state":  {Value: "creating", Source: "local"},
		"jailkeeper:failed": {Value: "-", Source: "-"}, // empty: never set
	}
	if diff := cmp.Diff(wantGet, got); diff != "" {
		t.Errorf("Get of the clone (-want +got):\n%s", diff)
	}

	_, err = z.Clone(ctx, snap, name, nil)
	wantIs(t, err, zfs.ErrExists)
	_, err = z.Clone(ctx, pool+"/templates/14.3-RELEASE@nope", pool+"/containers/x", nil)
	wantIs(t, err, zfs.ErrNotFound)
	if exists(t, pool+"/containers/x") {
		t.Error("a failed clone left its dataset")
	}
}

func TestInventoryLocalVsInherited(t *testing.T) {
	pool := zfstest.Pool(t)
	z, ctx := client(t)
	snap := template(t, pool)
	// Set on the parent: children inherit it, and inherited does not count.
	noErr(t, z.SetProps(ctx, pool+"/containers", map[string]string{"jailkeeper:managed": "no"}))
	a := pool + "/containers/a_4b825dc642cb_9f86d0"
	b := pool + "/containers/b_4b825dc642cb_9f86d0"
	must[zfs.Dataset](t)(z.Clone(ctx, snap, a, releaseProps("live")))
	must[zfs.Dataset](t)(z.Clone(ctx, snap, b, map[string]string{"jailkeeper:service": "b"}))
	noErr(t, z.Create(ctx, a+"/var", nil)) // inherits all of a's
	noErr(t, z.Snapshot(ctx, a+"@keep"))   // snapshots are not listed

	// Several properties in one zfs set; an existing one changes; an empty
	// value removes one (here: one that was never set).
	noErr(t, z.SetProps(ctx, b, map[string]string{"jailkeeper:state": "failed", "jailkeeper:service": "bee", "jailkeeper:reason": ""}))
	// An empty value removes a local property.
	noErr(t, z.SetProps(ctx, a, map[string]string{"jailkeeper:reason": ""}))
	aProps := releaseProps("live")
	delete(aProps, "jailkeeper:reason")

	got := must[[]zfs.Dataset](t)(z.Inventory(ctx, pool+"/containers"))
	top := filepath.Dir(filepath.Dir(got[0].Mountpoint)) // the pool's temp dir
	for i := range got {
		got[i].Mountpoint = strings.TrimPrefix(got[i].Mountpoint, top)
	}
	want := []zfs.Dataset{
		{Name: pool + "/containers", Mountpoint: "/mnt/containers", Props: map[string]string{"jailkeeper:managed": "no"}},
		{Name: a, Mountpoint: "/mnt/containers/a_4b825dc642cb_9f86d0", Origin: snap, Props: aProps},
		{Name: a + "/var", Mountpoint: "/mnt/containers/a_4b825dc642cb_9f86d0/var", Props: map[string]string{}},
		{Name: b, Mountpoint: "/mnt/containers/b_4b825dc642cb_9f86d0", Origin: snap, Props: map[string]string{
			"jailkeeper:service": "bee", "jailkeeper:state": "failed",
		}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Inventory (-want +got):\n%s", diff)
	}

	_, err := z.Inventory(ctx, pool+"/nope")
	wantIs(t, err, zfs.ErrNotFound)
}

func TestSnapshotsNewestLast(t *testing.T) {
	pool := zfstest.Pool(t)
	z, ctx := client(t)
	ds := pool + "/tpl"
	noErr(t, z.Create(ctx, ds, nil))
	noErr(t, z.Create(ctx, ds+"/child", nil))
	if got := must[[]zfs.SnapshotInfo](t)(z.Snapshots(ctx, ds)); len(got) != 0 {
		t.Fatalf("Snapshots of a dataset without any = %v", got)
	}
	// Within one second: names out of order, creation ties; createtxg decides.
	for _, s := range []string{"base", "2-patched", "1-patched"} {
		noErr(t, z.Snapshot(ctx, ds+"@"+s))
	}
	noErr(t, z.Snapshot(ctx, ds+"/child@other"))
	got := must[[]zfs.SnapshotInfo](t)(z.Snapshots(ctx, ds))
	var names []string
	for i, s := range got {
		names = append(names, s.Name)
		if i > 0 && s.CreateTxg <= got[i-1].CreateTxg {
			t.Errorf("createtxg not increasing: %+v", got)
		}
		if s.Created.IsZero() {
			t.Errorf("%s: zero Created", s.Name)
		}
	}
	if diff := cmp.Diff([]string{ds + "@base", ds + "@2-patched", ds + "@1-patched"}, names); diff != "" {
		t.Errorf("Snapshots order (-want +got):\n%s", diff)
	}
	_, err := z.Snapshots(ctx, pool+"/nope")
	wantIs(t, err, zfs.ErrNotFound)
}

func TestClones(t *testing.T) {
	pool := zfstest.Pool(t)
	z, ctx := client(t)
	snap := template(t, pool)
	if has := must[bool](t)(z.HasClones(ctx, snap)); has {
		t.Error("HasClones before any clone = true")
	}
	must[zfs.Dataset](t)(z.Clone(ctx, snap, pool+"/containers/b", nil))
	must[zfs.Dataset](t)(z.Clone(ctx, snap, pool+"/a", nil))
	if has := must[bool](t)(z.HasClones(ctx, snap)); !has {
		t.Error("HasClones after cloning = false")
	}
	got := must[[]string](t)(z.Clones(ctx, snap))
	if diff := cmp.Diff([]string{pool + "/a", pool + "/containers/b"}, got); diff != "" {
		t.Errorf("Clones (-want +got):\n%s", diff)
	}
	_, err := z.HasClones(ctx, pool+"/templates/14.3-RELEASE@nope")
	wantIs(t, err, zfs.ErrNotFound)
}

// Destroying what clones depend on fails and leaves everything; -r takes
// children and snapshots along.
func TestDestroyDependents(t *testing.T) {
	pool := zfstest.Pool(t)
	z, ctx := client(t)
	snap := template(t, pool)
	tpl := pool + "/templates/14.3-RELEASE"
	clone := pool + "/containers/hello_4b825dc642cb_9f86d0"
	must[zfs.Dataset](t)(z.Clone(ctx, snap, clone, releaseProps("live")))
	noErr(t, z.Create(ctx, clone+"/var", nil))
	noErr(t, z.Snapshot(ctx, clone+"@pre"))

	err := z.Destroy(ctx, snap, 3)
	wantIs(t, err, zfs.ErrDependents)
	var zerr *command.Error
	// zfs-fuse and OpenZFS both say "snapshot is cloned" for destroy -r.
	if !errors.As(err, &zerr) || zerr.Exit != 1 || !strings.Contains(zerr.Stderr, "snapshot is cloned") ||
		!strings.Contains(strings.Join(zerr.Argv, " "), "destroy -r "+snap) {
		t.Errorf("destroy of a snapshot with clones: %#v", zerr)
	}
	wantIs(t, z.Destroy(ctx, tpl, 3), zfs.ErrDependents) // filesystem has dependent clones
	for _, n := range []string{tpl, snap, clone} {
		if !exists(t, n) {
			t.Errorf("%s is gone after a refused destroy", n)
		}
	}

	// Retries: zfs-fuse may call a dataset busy for a moment after an
	// unmount, as FreeBSD may after a jail stops.
	noErr(t, z.Destroy(ctx, clone, 5)) // with its child and snapshot
	for _, n := range []string{clone, clone + "/var", clone + "@pre"} {
		if exists(t, n) {
			t.Errorf("%s still exists after destroy -r", n)
		}
	}
	if has := must[bool](t)(z.HasClones(ctx, snap)); has {
		t.Error("HasClones after destroying the clone = true")
	}
	noErr(t, z.Destroy(ctx, tpl, 5))
	if exists(t, tpl) || exists(t, snap) {
		t.Error("template or its snapshot still exists")
	}
}

func TestDestroyBusy(t *testing.T) {
	pool := zfstest.Pool(t)
	z, ctx := client(t)
	name := pool + "/busy"
	noErr(t, z.Create(ctx, name, nil))
	release := zfstest.Busy(t, name)

	err := z.Destroy(ctx, name, 2)
	wantIs(t, err, zfs.ErrBusy)
	if !strings.Contains(err.Error(), "after 3 attempts") {
		t.Errorf("error does not count the attempts: %v", err)
	}
	var zerr *command.Error
	if !errors.As(err, &zerr) || zerr.Exit != 1 || zerr.Stderr == "" {
		t.Errorf("busy destroy error lacks exit code or stderr: %#v", zerr)
	}
	if !exists(t, name) {
		t.Fatal("the busy dataset is gone")
	}

	release()
	// zfs-fuse may still say "dataset is busy" for a moment: the retries
	// are what absorbs that.
	noErr(t, z.Destroy(ctx, name, 10))
	if exists(t, name) {
		t.Error("dataset still exists")
	}
}

func TestNotFound(t *testing.T) {
	pool := zfstest.Pool(t)
	z, ctx := client(t)
	missing := pool + "/nope"
	wantIs(t, z.Destroy(ctx, missing, 3), zfs.ErrNotFound)
	wantIs(t, z.SetProps(ctx, missing, map[string]string{"jailkeeper:state": "live"}), zfs.ErrNotFound)
	wantIs(t, z.Snapshot(ctx, missing+"@s"), zfs.ErrNotFound)
	if err := z.Create(ctx, missing+"/child", nil); err == nil {
		t.Error("Create below a missing parent succeeded")
	}
	if exists(t, missing) || exists(t, missing+"@s") {
		t.Error("Exists(missing) = true")
	}
	if !exists(t, pool) {
		t.Error("Exists(pool) = false")
	}
}

// NewestSnapshot names the newest snapshot of the dataset itself, and
// RollbackDiscarding to an older one destroys those after it (zfs
// rollback -r), as template update relies on.
func TestNewestSnapshotAndRollbackDiscarding(t *testing.T) {
	pool := zfstest.Pool(t)
	z, ctx := client(t)
	ds := pool + "/tpl"
	noErr(t, z.Create(ctx, ds, nil))
	noErr(t, z.Create(ctx, ds+"/child", nil))
	if got := must[string](t)(z.NewestSnapshot(ctx, ds)); got != "" {
		t.Fatalf("NewestSnapshot of a dataset without any = %q", got)
	}
	for _, s := range []string{"base", "2-patched", "1-patched"} {
		noErr(t, z.Snapshot(ctx, ds+"@"+s))
	}
	noErr(t, z.Snapshot(ctx, ds+"/child@later"))
	if got := must[string](t)(z.NewestSnapshot(ctx, ds)); got != ds+"@1-patched" {
		t.Errorf("NewestSnapshot = %q, want %s@1-patched (by createtxg, not name; not the child's)", got, ds)
	}
	noErr(t, z.RollbackDiscarding(ctx, ds+"@base"))
	var names []string
	for _, s := range must[[]zfs.SnapshotInfo](t)(z.Snapshots(ctx, ds)) {
		names = append(names, s.Name)
	}
	if diff := cmp.Diff([]string{ds + "@base"}, names); diff != "" {
		t.Errorf("snapshots after rollback -r to @base (-want +got):\n%s", diff)
	}
	_, err := z.NewestSnapshot(ctx, pool+"/nope")
	wantIs(t, err, zfs.ErrNotFound)
	wantIs(t, z.RollbackDiscarding(ctx, ds+"@nope"), zfs.ErrNotFound)
}
