package zfstest_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	gozfs "github.com/mistifyio/go-zfs/v3"

	"github.com/jailkeeper/jailkeeper/zfs/zfstest"
)

// zfsOut runs the zfs on PATH (the wrapper), bounded by
// zfstest.CommandTimeout, and returns its stdout.
func zfsOut(t *testing.T, args ...string) string {
	t.Helper()
	out, err := zfstest.Runner().Run(t.Context(), append([]string{"zfs"}, args...), nil)
	if err != nil {
		t.Fatal(err) // names argv, exit status and stderr
	}
	return string(out)
}

// bounded runs call, which cannot take a context (go-zfs runs zfs with
// exec.Command), and fails the test naming it when it does not return
// within zfstest.CommandTimeout.
func bounded(t *testing.T, name string, call func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		call()
	}()
	select {
	case <-done:
	case <-time.After(zfstest.CommandTimeout):
		t.Fatalf("%s: no answer within %s", name, zfstest.CommandTimeout)
	}
}

// TestWrapperListP checks gap 1 and 2: go-zfs's `zfs list -Hp` with
// written and logicalused works through the wrapper and gives exact byte
// counts, the ones `zfs get -Hp` reports.
func TestWrapperListP(t *testing.T) {
	pool := zfstest.Pool(t)
	zfsOut(t, "create", pool+"/a")
	zfsOut(t, "snapshot", pool+"/a@s1")

	var d *gozfs.Dataset
	var err error
	bounded(t, "go-zfs GetDataset", func() { d, err = gozfs.GetDataset(pool + "/a") })
	if err != nil {
		t.Fatalf("go-zfs GetDataset through the wrapper: %v", err)
	}
	used, err := strconv.ParseUint(strings.TrimSpace(zfsOut(t, "get", "-Hp", "-o", "value", "used", pool+"/a")), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	if d.Used != used || d.Used == 0 {
		t.Errorf("go-zfs Used = %d, zfs get -Hp used = %d", d.Used, used)
	}
	if d.Type != "filesystem" || !strings.HasSuffix(d.Mountpoint, "/mnt/a") || d.Written != 0 || d.Logicalused != 0 {
		t.Errorf("go-zfs dataset = %+v", d)
	}
	var snaps []*gozfs.Dataset
	bounded(t, "go-zfs Snapshots", func() { snaps, err = gozfs.Snapshots(pool) })
	if err != nil {
		t.Fatalf("go-zfs Snapshots: %v", err)
	}
	if len(snaps) != 1 || snaps[0].Name != pool+"/a@s1" || snaps[0].Type != "snapshot" {
		t.Errorf("go-zfs Snapshots = %+v", snaps)
	}

	// A missing dataset keeps zfs's message and exit status.
	bounded(t, "go-zfs GetDataset", func() { _, err = gozfs.GetDataset(pool + "/nope") })
	if err == nil || !strings.Contains(err.Error(), "dataset does not exist") {
		t.Errorf("GetDataset(missing) error = %v", err)
	}
}

// TestWrapperGetT checks gap 3: -t filesystem drops the snapshot rows.
func TestWrapperGetT(t *testing.T) {
	pool := zfstest.Pool(t)
	zfsOut(t, "create", pool+"/a")
	zfsOut(t, "snapshot", pool+"/a@s1")
	all := zfsOut(t, "get", "-Hp", "-r", "-o", "name,property,value", "type", pool)
	fs := zfsOut(t, "get", "-Hp", "-r", "-t", "filesystem", "-o", "name,property,value", "type", pool)
	if !strings.Contains(all, pool+"/a@s1\ttype\tsnapshot") {
		t.Fatalf("zfs get -r without -t lacks the snapshot:\n%s", all)
	}
	want := pool + "\ttype\tfilesystem\n" + pool + "/a\ttype\tfilesystem\n"
	if diff := cmp.Diff(want, fs); diff != "" {
		t.Errorf("zfs get -t filesystem (-want +got):\n%s", diff)
	}
}

// TestWrapperSetMany checks gap 4: several properties in one zfs set.
func TestWrapperSetMany(t *testing.T) {
	pool := zfstest.Pool(t)
	zfsOut(t, "set", "jailkeeper:a=1", "jailkeeper:b=x y=z", pool)
	got := zfsOut(t, "get", "-H", "-o", "property,value,source", "jailkeeper:a,jailkeeper:b", pool)
	want := "jailkeeper:a\t1\tlocal\njailkeeper:b\tx y=z\tlocal\n"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("after zfs set of two properties (-want +got):\n%s", diff)
	}
}

// TestBusy checks that Busy makes a destroy fail until released.
func TestBusy(t *testing.T) {
	pool := zfstest.Pool(t)
	zfsOut(t, "create", pool+"/b")
	release := zfstest.Busy(t, pool+"/b")
	if out, err := zfstest.Runner().Run(t.Context(), []string{"zfs", "destroy", pool + "/b"}, nil); err == nil {
		t.Fatalf("zfs destroy of a busy dataset succeeded: %s", out)
	}
	release()
	release() // a second call is harmless
}
