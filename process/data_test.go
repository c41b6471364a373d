package process_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jailkeeper/jailkeeper/process"
	"github.com/jailkeeper/jailkeeper/release"
	"github.com/jailkeeper/jailkeeper/zfs/zfstest"
)

// runOnce starts release name and waits until its command has ended.
func runOnce(t *testing.T, p *process.Runtime, name string) {
	t.Helper()
	if err := p.Start(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the command to end", func() bool { return strings.Contains(readLog(t, p, name), "ended: exit status 0") })
}

// dataShellSpec is a shell release of service "shell" with two data sets.
func dataShellSpec(script string) release.Spec {
	spec := shellSpec(script)
	spec.Data = []release.Data{{Name: "uploads", Path: "/var/db/shell"}, {Name: "cache_db", Path: "/var/db/cache"}}
	return spec
}

// Every release of a service gets the same data directory, as DATA_<NAME>:
// what one release wrote, the next reads; destroying a release keeps the
// data; only DestroyData removes it, and never while a release runs.
func TestProcessDataOutlivesReleases(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "releases")
	p := newProcess(t, process.Config{Root: root, Template: shellTemplate(t)})

	v1 := dataShellSpec(`echo "$DATA_UPLOADS|$DATA_CACHE_DB" > env.out; echo written-by-v1 > "$DATA_UPLOADS/file"`)
	r1, err := p.Create(ctx, v1)
	if err != nil {
		t.Fatal(err)
	}
	runOnce(t, p, r1.Name)
	dir := filepath.Join(root, "data", "shell", "uploads")
	b, err := os.ReadFile(filepath.Join(root, r1.Name, "root", "env.out"))
	if err != nil {
		t.Fatal(err)
	}
	if want := dir + "|" + filepath.Join(root, "data", "shell", "cache_db") + "\n"; string(b) != want {
		t.Errorf("DATA_UPLOADS|DATA_CACHE_DB = %q, want %q", b, want)
	}
	if err := p.Destroy(ctx, r1.Name); err != nil {
		t.Fatal(err)
	}

	v2 := dataShellSpec(`cat "$DATA_UPLOADS/file" > read.out`)
	r2 := create(t, p, v2)
	runOnce(t, p, r2.Name)
	if b, err := os.ReadFile(filepath.Join(root, r2.Name, "root", "read.out")); err != nil || string(b) != "written-by-v1\n" {
		t.Errorf("v2 read %q (%v), want what v1 wrote", b, err)
	}
	if rels := list(t, p); len(rels) != 1 || rels[0].Name != r2.Name {
		t.Errorf("List = %v: the data directory is no release", rels)
	}

	got, err := p.ListData(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []release.DataSet{
		{Service: "shell", Name: "cache_db", Where: filepath.Join(root, "data", "shell", "cache_db")},
		{Service: "shell", Name: "uploads", Where: dir},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ListData (-want +got):\n%s", diff)
	}

	// Copy mode has no snapshots: SnapshotData does nothing.
	if err := p.SnapshotData(ctx, "shell", r2.Name, []string{"uploads"}, 2); err != nil {
		t.Errorf("SnapshotData in copy mode: %v", err)
	}

	v3 := dataShellSpec(`sleep 1000`)
	r3 := create(t, p, v3)
	if err := p.Start(ctx, r3.Name); err != nil {
		t.Fatal(err)
	}
	if err := p.DestroyData(ctx, "shell", "uploads"); !errors.Is(err, process.ErrDataInUse) {
		t.Errorf("DestroyData while %s runs: %v, want ErrDataInUse", r3.Name, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "file")); err != nil {
		t.Errorf("data after a refused destroy: %v", err)
	}
	if err := p.Stop(ctx, r3.Name); err != nil {
		t.Fatal(err)
	}
	if err := p.DestroyData(ctx, "shell", "uploads"); !errors.Is(err, process.ErrDataInUse) {
		t.Errorf("DestroyData while %s is kept, stopped: %v, want ErrDataInUse", r3.Name, err)
	}
	for _, r := range []string{r2.Name, r3.Name} {
		if err := p.Destroy(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.DestroyData(ctx, "shell", "uploads"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("data directory after DestroyData: %v", err)
	}
	if err := p.DestroyData(ctx, "shell", "uploads"); !errors.Is(err, release.ErrNotFound) {
		t.Errorf("DestroyData again: %v, want ErrNotFound", err)
	}
	if _, err := os.Stat(filepath.Join(root, "data", "shell", "cache_db")); err != nil {
		t.Errorf("the other data set went with uploads: %v", err)
	}
	for _, bad := range [][2]string{{"Shell", "uploads"}, {"shell", "../x"}, {"shell", "Up"}} {
		if err := p.DestroyData(ctx, bad[0], bad[1]); err == nil {
			t.Errorf("DestroyData(%q, %q) accepted", bad[0], bad[1])
		}
	}
}

// In ZFS mode each data set is a dataset with its quota, mounted at the
// same directory, snapshotted before each switch; only jailkeeper's own
// snapshots beyond keep are pruned.
func TestProcessZFSData(t *testing.T) {
	ctx := context.Background()
	parent := zfstest.Pool(t) + "/jk"
	zfsTemplate(t, parent, "default", "motd\n")
	root := filepath.Join(t.TempDir(), "releases")
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	p := newProcess(t, process.Config{Root: root, Dataset: parent, Now: func() time.Time { return now }})

	spec := helloSpec(t, nil)
	spec.Data = []release.Data{{Name: "uploads", Path: "/var/db/hello", Quota: 64 << 20}}
	r := create(t, p, spec)
	ds := parent + "/data/hello/uploads"
	props, err := testZFS().Get(ctx, ds, "mountpoint", "quota")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "data", "hello", "uploads")
	if props["mountpoint"].Value != dir || props["quota"].Value != "67108864" {
		t.Errorf("data dataset: %v, want mountpoint %s and quota 67108864", props, dir)
	}
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}

	zc := testZFS()
	if err := zc.Snapshot(ctx, ds+"@before-upgrade"); err != nil { // the operator's own
		t.Fatal(err)
	}
	var want []string
	for i := range 4 {
		now = now.Add(time.Minute)
		if err := p.SnapshotData(ctx, "hello", r.Name, []string{"uploads"}, 2); err != nil {
			t.Fatalf("snapshot %d: %v", i, err)
		}
		want = append(want, ds+"@"+release.DataSnapshot(r.Name, now))
	}
	snaps, err := zc.Snapshots(ctx, ds)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range snaps {
		got = append(got, s.Name)
	}
	if diff := cmp.Diff(append([]string{ds + "@before-upgrade"}, want[2:]...), got); diff != "" {
		t.Errorf("snapshots after four switches, keep 2 (-want +got):\n%s", diff)
	}

	// Destroying the release keeps the data.
	if err := p.Destroy(ctx, r.Name); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "f")); err != nil || string(b) != "kept" {
		t.Errorf("data after the release was destroyed: %q %v", b, err)
	}
	sets, err := p.ListData(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]release.DataSet{{Service: "hello", Name: "uploads", Where: ds}}, sets); diff != "" {
		t.Errorf("ListData (-want +got):\n%s", diff)
	}
	if err := p.DestroyData(ctx, "hello", "uploads"); err != nil {
		t.Fatal(err)
	}
	if exists(t, ds) {
		t.Errorf("%s exists after DestroyData", ds)
	}
}
