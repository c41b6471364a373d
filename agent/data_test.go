package agent

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jailkeeper/jailkeeper/manifest"
	"github.com/jailkeeper/jailkeeper/process"
	"github.com/jailkeeper/jailkeeper/reconcile"
	"github.com/jailkeeper/jailkeeper/release"
)

// TestOrphanedData: the data sets of services the desired state does not
// name are orphaned; those of desired services are not.
func TestOrphanedData(t *testing.T) {
	root := t.TempDir()
	rt, err := process.New(process.Config{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"hello/uploads", "old/uploads", "old/db"} {
		if err := os.MkdirAll(filepath.Join(root, "data", d), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	got, err := orphanedData(context.Background(), rt, reconcile.Desired{Services: []manifest.Service{{Service: "hello"}}})
	if err != nil {
		t.Fatal(err)
	}
	want := []release.DataSet{
		{Service: "old", Name: "db", Where: filepath.Join(root, "data", "old", "db")},
		{Service: "old", Name: "uploads", Where: filepath.Join(root, "data", "old", "uploads")},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("orphaned data (-want +got):\n%s", diff)
	}
}
