package process_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jailkeeper/jailkeeper/process"
	"github.com/jailkeeper/jailkeeper/release"
	"github.com/jailkeeper/jailkeeper/zfs/zfstest"
)

// In copy mode a content hash of the template directory stands in for a
// snapshot: its first content is "base", a changed file is a new name, a
// release records the name of what it copied, and a spec asking for
// content the directory no longer has is release.ErrNoTemplate.
func TestCopyModeTemplateSnapshots(t *testing.T) {
	ctx := context.Background()
	tmpl := filepath.Join(t.TempDir(), "template")
	if err := os.MkdirAll(filepath.Join(tmpl, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	motd := filepath.Join(tmpl, "etc", "motd")
	if err := os.WriteFile(motd, []byte("one\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(t.TempDir(), "releases")
	p := newProcess(t, process.Config{Root: root, Template: tmpl})
	snaps := func(p *process.Runtime) []string {
		t.Helper()
		s, err := p.TemplateSnapshots(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if got := snaps(p); !cmp.Equal(got, []string{"base"}) {
		t.Fatalf("first content: %v, want [base]", got)
	}
	spec := helloSpec(t, nil)
	spec.TemplateSnapshot = "base"
	if r := create(t, p, spec); r.TemplateSnapshot != "base" {
		t.Errorf("release on the first content records %q, want base", r.TemplateSnapshot)
	}

	if err := os.WriteFile(motd, []byte("two\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	changed := snaps(p)
	if len(changed) != 1 || !strings.HasPrefix(changed[0], "sha256-") || len(changed[0]) != len("sha256-")+12 {
		t.Fatalf("changed content: %v, want [sha256-<12 hex>]", changed)
	}
	// Another runtime on the same root (a restart) names them alike.
	if got := snaps(newProcess(t, process.Config{Root: root, Template: tmpl})); !cmp.Equal(got, changed) {
		t.Errorf("after a restart: %v, want %v", got, changed)
	}
	stale := helloSpec(t, nil)
	stale.TemplateSnapshot = "base"
	if _, err := p.Create(ctx, stale); !errors.Is(err, release.ErrNoTemplate) {
		t.Errorf("create on content the directory no longer has: %v, want ErrNoTemplate", err)
	}
	next := helloSpec(t, nil)
	if r := create(t, p, next); r.TemplateSnapshot != changed[0] {
		t.Errorf("release on the changed content records %q, want %s", r.TemplateSnapshot, changed[0])
	}
	if err := os.WriteFile(motd, []byte("one\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := snaps(p); !cmp.Equal(got, []string{"base"}) {
		t.Errorf("first content back: %v, want [base]", got)
	}
}

// In ZFS mode a spec's TemplateSnapshot picks the snapshot to clone, the
// release records it, and one the template does not have is
// release.ErrNoTemplate; without one the newest is cloned.
func TestZFSTemplateSnapshotPin(t *testing.T) {
	ctx := context.Background()
	parent := zfstest.Pool(t) + "/jk"
	zfsTemplate(t, parent, process.DefaultTemplateName, "first\n", "second\n")
	root := filepath.Join(t.TempDir(), "releases")
	p := newProcess(t, process.Config{Root: root, Dataset: parent})
	got, err := p.TemplateSnapshots(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if !cmp.Equal(got, []string{"s0", "s1"}) {
		t.Errorf("snapshots %v, want [s0 s1]", got)
	}
	pinned := helloSpec(t, nil)
	pinned.TemplateSnapshot = "s0"
	r := create(t, p, pinned)
	if r.TemplateSnapshot != "s0" {
		t.Errorf("pinned release records %q, want s0", r.TemplateSnapshot)
	}
	b, err := os.ReadFile(filepath.Join(root, pinned.Name, "root", "etc", "motd"))
	if err != nil || string(b) != "first\n" {
		t.Errorf("pinned release's motd %q (%v), want the first", b, err)
	}
	newest := helloSpec(t, nil)
	if r := create(t, p, newest); r.TemplateSnapshot != "s1" {
		t.Errorf("release without a pin records %q, want the newest s1", r.TemplateSnapshot)
	}
	bad := helloSpec(t, nil)
	bad.TemplateSnapshot = "nope"
	if _, err := p.Create(ctx, bad); !errors.Is(err, release.ErrNoTemplate) {
		t.Errorf("create on a missing snapshot: %v, want ErrNoTemplate", err)
	}
	ds, err := testZFS().Inventory(ctx, parent+"/releases")
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 3 { // the parent and the two releases' clones
		t.Errorf("datasets below releases: %d, want the parent and two clones", len(ds))
	}
}
