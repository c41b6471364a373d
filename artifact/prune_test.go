package artifact_test

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jailkeeper/jailkeeper/artifact"
)

func TestPrune(t *testing.T) {
	root := t.TempDir()
	var sums []string
	for _, name := range []string{"a", "b", "c", "d"} {
		content := []byte(strings.Repeat(name, 100))
		if err := os.WriteFile(filepath.Join(root, name), content, 0o644); err != nil {
			t.Fatal(err)
		}
		sums = append(sums, sum(content))
	}
	s, dir := newStore(t, artifact.Options{FileRoot: root})
	ctx := context.Background()
	base := time.Now().Add(-time.Hour)
	for i, name := range []string{"a", "b", "c", "d"} {
		p, err := s.Fetch(ctx, "file://"+root+"/"+name, sums[i])
		if err != nil {
			t.Fatal(err)
		}
		// a is the oldest use, d the newest.
		used := base.Add(time.Duration(i) * time.Minute)
		if err := os.Chtimes(p, used, used); err != nil {
			t.Fatal(err)
		}
	}
	// Not sums: never touched.
	for _, f := range []string{".fetch-123", "README"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A hit on b makes it the most recent use.
	if _, err := s.Fetch(ctx, "file://"+root+"/b", sums[1]); err != nil {
		t.Fatal(err)
	}

	// a is needed (a current manifest names it); of the rest, 150 bytes
	// may stay: only the most recently used, b.
	res, err := s.Prune(map[string]bool{sums[0]: true}, 150)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{sums[2], sums[3]}, res.Removed); diff != "" {
		t.Errorf("removed (-want +got):\n%s", diff)
	}
	if res.Freed != 200 || res.Kept != 200 {
		t.Errorf("freed %d, kept %d; want 200, 200", res.Freed, res.Kept)
	}
	left := func() []string {
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		sort.Strings(names)
		return names
	}
	want := []string{sums[0], sums[1], ".fetch-123", "README"}
	sort.Strings(want)
	if diff := cmp.Diff(want, left()); diff != "" {
		t.Errorf("cache after prune (-want +got):\n%s", diff)
	}

	// A bound of 0 keeps exactly what is needed.
	if _, err := s.Prune(map[string]bool{sums[0]: true}, 0); err != nil {
		t.Fatal(err)
	}
	want = []string{sums[0], ".fetch-123", "README"}
	sort.Strings(want)
	if diff := cmp.Diff(want, left()); diff != "" {
		t.Errorf("cache after prune to 0 (-want +got):\n%s", diff)
	}
	// What was pruned is fetched again when needed.
	if _, err := s.Fetch(ctx, "file://"+root+"/c", sums[2]); err != nil {
		t.Fatal(err)
	}
}
