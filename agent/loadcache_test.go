package agent

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jailkeeper/jailkeeper/agent/gitsource"
	"github.com/jailkeeper/jailkeeper/manifest"
)

// countingFS counts the files opened in it.
type countingFS struct {
	fs.FS
	opens atomic.Int64
}

func (c *countingFS) Open(name string) (fs.File, error) {
	if name != "." {
		c.opens.Add(1)
	}
	return c.FS.Open(name)
}

// An idle poll reads nothing that did not change: the manifests of a
// revision are parsed once, an env file is read again only when it
// changed, and what is loaded is what LoadDesired loads.
func TestLoadCacheReadsOnlyWhatChanged(t *testing.T) {
	secrets := t.TempDir()
	writeEnv := func(v string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(secrets, "hello.env"), []byte("TOKEN="+v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeEnv("one")
	plain := strings.Replace(strings.Replace(secretManifest, "hello", "plain", -1), "env_file: plain.env\n", "", 1)
	fsys := &countingFS{FS: fstest.MapFS{"hello.yaml": {Data: []byte(secretManifest)}, "plain.yaml": {Data: []byte(plain)}}}
	snap := gitsource.Snapshot{Revision: "rev1", FS: fsys, Time: time.Unix(1700000000, 0)}
	var c loadCache

	load := func(snap gitsource.Snapshot) []string {
		t.Helper()
		d, err := c.load(snap, manifest.Policy{}, "web1", secrets)
		if err != nil {
			t.Fatal(err)
		}
		// The reference reads the files behind the counter's back.
		want, err := LoadDesired(fsys.FS, manifest.Policy{}, "web1", secrets, snap.Revision, snap.Time)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, d); diff != "" {
			t.Fatalf("cached load differs from LoadDesired (-want +got):\n%s", diff)
		}
		var names []string
		for _, s := range d.Services {
			names = append(names, s.ReleaseName())
		}
		return names
	}

	first := load(snap)
	opens, reads := fsys.opens.Load(), c.reads
	for range 5 {
		if got := load(snap); !cmp.Equal(got, first) {
			t.Fatalf("idle poll: releases %v, want %v", got, first)
		}
	}
	if got := fsys.opens.Load() - opens; got != 0 {
		t.Errorf("5 idle polls opened %d manifest files, want 0", got)
	}
	if got := c.reads - reads; got != 0 {
		t.Errorf("5 idle polls read %d files (manifests and env files), want 0", got)
	}

	// A rotated secret is read again, and rolls out.
	time.Sleep(10 * time.Millisecond) // a later modification time on any file system
	writeEnv("two")
	rotated := load(snap)
	if got := c.reads - reads; got != 1 {
		t.Errorf("rotating the env file read %d files, want 1", got)
	}
	if rotated[0] == first[0] || rotated[1] != first[1] {
		t.Errorf("after rotation %v, was %v: want hello's release renamed, plain's kept", rotated, first)
	}

	// A new revision is parsed again.
	opens = fsys.opens.Load()
	load(gitsource.Snapshot{Revision: "rev2", FS: fsys, Time: snap.Time})
	if got := fsys.opens.Load() - opens; got != 2 {
		t.Errorf("a new revision opened %d manifest files, want its 2", got)
	}
}
