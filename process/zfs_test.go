package process_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jailkeeper/jailkeeper/artifact"
	"github.com/jailkeeper/jailkeeper/process"
	"github.com/jailkeeper/jailkeeper/release"
	"github.com/jailkeeper/jailkeeper/zfs"
	"github.com/jailkeeper/jailkeeper/zfs/zfstest"
)

// The tests in this file run the process runtime in ZFS mode against real
// ZFS (zfs-fuse, through zfstest.Pool). Pool sets PATH with t.Setenv: none
// of them may run in parallel.

// zfsTemplate makes the template dataset <parent>/templates/<name>, holding
// etc/motd, with one snapshot per content given (snapshot @s0, @s1, ...),
// and returns the name of the newest snapshot.
func zfsTemplate(t *testing.T, parent, name string, motds ...string) string {
	t.Helper()
	ctx := context.Background()
	zc := testZFS()
	for _, ds := range []string{parent, parent + "/templates"} {
		if ok, err := zc.Exists(ctx, ds); err != nil {
			t.Fatal(err)
		} else if !ok {
			if err := zc.Create(ctx, ds, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	tds := release.TemplateDataset(parent, name)
	if err := zc.Create(ctx, tds, nil); err != nil {
		t.Fatal(err)
	}
	mp, err := zc.Get(ctx, tds, "mountpoint")
	if err != nil {
		t.Fatal(err)
	}
	mnt := mp["mountpoint"].Value
	if err := os.MkdirAll(filepath.Join(mnt, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	var snap string
	for i, motd := range motds {
		if err := os.WriteFile(filepath.Join(mnt, "etc/motd"), []byte(motd), 0o644); err != nil {
			t.Fatal(err)
		}
		snap = tds + "@s" + strconv.Itoa(i)
		if err := zc.Snapshot(ctx, snap); err != nil {
			t.Fatal(err)
		}
	}
	return snap
}

// testZFS is a zfs client whose commands each have zfstest's deadline.
func testZFS() *zfs.Client { return zfs.New(zfstest.Runner()) }

// releaseDataset returns the dataset zfs reports below parent/releases for
// name, failing when there is none.
func releaseDataset(t *testing.T, parent, name string) zfs.Dataset {
	t.Helper()
	ds, err := testZFS().Inventory(context.Background(), parent+"/releases")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if d.Name == parent+"/releases/"+name {
			return d
		}
	}
	t.Fatalf("no dataset %s/releases/%s in %v", parent, name, ds)
	return zfs.Dataset{}
}

func exists(t *testing.T, name string) bool {
	t.Helper()
	ok, err := testZFS().Exists(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func clones(t *testing.T, snapshot string) []string {
	t.Helper()
	c, err := testZFS().Clones(context.Background(), snapshot)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestProcessZFSClone covers the ZFS facts of a release that the
// conformance suite (conformance_test.go) does not: the clone's dataset,
// properties and origin (the newest snapshot), the template's files in the
// root, a release of another template, and the destroy of a running
// release, whose process must stop before zfs destroy can succeed.
func TestProcessZFSClone(t *testing.T) {
	ctx := context.Background()
	parent := zfstest.Pool(t) + "/jk"
	snap := zfsTemplate(t, parent, "default", "old\n", "patched\n")
	otherSnap := zfsTemplate(t, parent, "other", "other\n")
	root := filepath.Join(t.TempDir(), "releases")
	p := newProcess(t, process.Config{Root: root, Dataset: parent})

	// Dataset/releases does not exist yet: Create makes it.
	spec := helloSpec(t, nil)
	r := create(t, p, spec)
	if r.State != release.StateReady || !strings.HasPrefix(r.IP.String(), "127.77.") {
		t.Errorf("Create = %+v, want ready on 127.77.x.y", r)
	}
	rroot := filepath.Join(root, spec.Name, "root")
	d := releaseDataset(t, parent, spec.Name)
	want := zfs.Dataset{
		Name:       parent + "/releases/" + spec.Name,
		Mountpoint: rroot,
		Origin:     snap, // the newest snapshot, not @s0
		Props:      map[string]string{"jailkeeper:managed": "yes", "jailkeeper:service": "hello"},
	}
	if diff := cmp.Diff(want, d); diff != "" {
		t.Errorf("release dataset (-want +got):\n%s", diff)
	}
	// The root is the clone: the template's file and the artifact are in it.
	if b, err := os.ReadFile(filepath.Join(rroot, "etc/motd")); err != nil || string(b) != "patched\n" {
		t.Errorf("etc/motd in the release root = %q %v, want the newest snapshot's", b, err)
	}
	if fi, err := os.Stat(filepath.Join(rroot, "usr/local/bin/hello")); err != nil || fi.Mode() != 0o755 {
		t.Errorf("installed command: %v %v", fi, err)
	}
	// release.json stays the record of the release.
	if b, err := os.ReadFile(filepath.Join(root, spec.Name, "release.json")); err != nil || !strings.Contains(string(b), `"state": "ready"`) {
		t.Errorf("release.json = %s %v", b, err)
	}

	// A spec naming a template gets a clone of that one.
	other := helloSpec(t, nil)
	other.Template = "other"
	create(t, p, other)
	if got := releaseDataset(t, parent, other.Name).Origin; got != otherSnap {
		t.Errorf("origin of a release of template other = %s, want %s", got, otherSnap)
	}
	if b, err := os.ReadFile(filepath.Join(root, other.Name, "root/etc/motd")); err != nil || string(b) != "other\n" {
		t.Errorf("etc/motd of template other = %q %v", b, err)
	}

	// Destroy a running release: its process has its working directory in
	// the clone, so the stop must come first for zfs destroy to succeed.
	if err := p.Start(ctx, spec.Name); err != nil {
		t.Fatal(err)
	}
	waitUp(t, p, r)
	if err := p.Destroy(ctx, spec.Name); err != nil {
		t.Fatal(err)
	}
	if exists(t, parent+"/releases/"+spec.Name) {
		t.Error("the clone outlived Destroy")
	}
	if c := clones(t, snap); len(c) != 0 {
		t.Errorf("clones of %s after Destroy: %v", snap, c)
	}
	if _, err := os.Stat(filepath.Join(root, spec.Name)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("release directory after Destroy: %v", err)
	}
	if _, _, err := get("http://" + r.Addr() + "/"); err == nil {
		t.Error("hello still answers after Destroy")
	}
	if got := list(t, p); len(got) != 1 || got[0].Name != other.Name {
		t.Errorf("List after Destroy = %+v, want only %s", got, other.Name)
	}
}

func TestProcessZFSCreateErrorsLeaveNoClone(t *testing.T) {
	ctx := context.Background()
	parent := zfstest.Pool(t) + "/jk"
	snap := zfsTemplate(t, parent, "default", "motd\n")
	evil := evilTarball(t)

	tests := []struct {
		name   string
		modify func(*release.Spec)
		is     error
	}{
		{"unsafe tarball", func(s *release.Spec) { s.Artifact = evil }, artifact.ErrUnsafe},
		{"missing artifact", func(s *release.Spec) { s.Artifact += ".missing" }, fs.ErrNotExist},
		{"missing env file", func(s *release.Spec) { s.EnvFile = "/nonexistent/process-test.env" }, fs.ErrNotExist},
		{"missing template", func(s *release.Spec) { s.Template = "nope" }, release.ErrNoTemplate},
		{"bad template name", func(s *release.Spec) { s.Template = "../x" }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "releases")
			p := newProcess(t, process.Config{Root: root, Dataset: parent})
			spec := helloSpec(t, nil)
			tt.modify(&spec)
			_, err := p.Create(ctx, spec)
			if err == nil {
				t.Fatal("Create succeeded")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("Create = %v, want %v", err, tt.is)
			}
			if exists(t, parent+"/releases/"+spec.Name) {
				t.Error("a failed Create left its clone")
			}
			if c := clones(t, snap); len(c) != 0 {
				t.Errorf("clones of %s after a failed Create: %v", snap, c)
			}
			if left, _ := os.ReadDir(root); len(left) != 0 {
				t.Errorf("a failed Create left %v", left)
			}
		})
	}
}

// TestProcessZFSLeftoverClone: a clone of the release's name that a crash
// left behind (its directory gone) is destroyed and cloned afresh.
func TestProcessZFSLeftoverClone(t *testing.T) {
	ctx := context.Background()
	parent := zfstest.Pool(t) + "/jk"
	snap := zfsTemplate(t, parent, "default", "motd\n")
	if err := testZFS().Create(ctx, parent+"/releases", nil); err != nil {
		t.Fatal(err)
	}
	spec := helloSpec(t, nil)
	elsewhere := t.TempDir()
	if _, err := testZFS().Clone(ctx, snap, parent+"/releases/"+spec.Name, map[string]string{"mountpoint": elsewhere}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(elsewhere, "stale"), nil, 0o644); err != nil {
		t.Fatal(err)
	}

	root := filepath.Join(t.TempDir(), "releases")
	p := newProcess(t, process.Config{Root: root, Dataset: parent})
	create(t, p, spec)
	d := releaseDataset(t, parent, spec.Name)
	if d.Mountpoint != filepath.Join(root, spec.Name, "root") || d.Props["jailkeeper:managed"] != "yes" {
		t.Errorf("release dataset = %+v, want a fresh managed clone mounted in the release", d)
	}
	if _, err := os.Stat(filepath.Join(root, spec.Name, "root/stale")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the leftover clone's file is in the new release: %v", err)
	}
}

func TestProcessZFSValidDataset(t *testing.T) {
	for _, tt := range []struct {
		name string
		ok   bool
	}{
		{"tank", true},
		{"tank/jailkeeper", true},
		{"zroot/a.b/c_d/e-f/g:h", true},
		{"", false},
		{"/tank", false},
		{"tank/", false},
		{"tank//x", false},
		{"tank/x@snap", false},
		{"tank/../x", false},
		{"tank/.", false},
		{"-o/x", false},
		{"1tank/x", false},
		{"ta:nk/x", false},
		{"tank/a b", false},
		{"tank/" + strings.Repeat("a", 251), false},
	} {
		if err := release.ValidDataset(tt.name); (err == nil) != tt.ok {
			t.Errorf("release.ValidDataset(%q) = %v, want ok %v", tt.name, err, tt.ok)
		}
	}
}

// TestProcessZFSDiskLimit: in ZFS mode the disk limit is the clone's quota,
// set by zfs clone itself, as the jail runtime does; and the release
// records its limits in release.json.
func TestProcessZFSDiskLimit(t *testing.T) {
	parent := zfstest.Pool(t) + "/jk"
	zfsTemplate(t, parent, "default", "motd\n")
	root := filepath.Join(t.TempDir(), "releases")
	p := newProcess(t, process.Config{Root: root, Dataset: parent})
	spec := helloSpec(t, nil)
	spec.Limits = release.Limits{Disk: 64 << 20, OpenFiles: 256}
	r := create(t, p, spec)
	if r.Limits != spec.Limits {
		t.Errorf("Create = %+v, want the limits recorded", r.Limits)
	}
	props, err := testZFS().Get(context.Background(), parent+"/releases/"+spec.Name, "quota")
	if err != nil {
		t.Fatal(err)
	}
	if q := props["quota"]; q.Value != "67108864" || q.Source != "local" {
		t.Errorf("quota = %+v, want 67108864 set locally", q)
	}
	if got := list(t, p); len(got) != 1 || got[0].Limits != spec.Limits {
		t.Errorf("List = %+v, want the limits read back from release.json", got)
	}
}
