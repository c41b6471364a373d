package process

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/jailkeeper/jailkeeper/release"
)

// A List in which nothing changed reads no release.json and no pidfile
// again (issue 11); what changed is read again, and every List says what
// a fresh Runtime's List says.
func TestListReadsOnlyWhatChanged(t *testing.T) {
	root := t.TempDir()
	p, err := New(Config{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	id, _, err := identity(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	const n = 5
	var names []string
	for i := range n {
		r := release.Release{Name: fmt.Sprintf("svc%d_0123456789ab_abcdef", i), Service: fmt.Sprintf("svc%d", i), SHA: "0123456789ab",
			Spec: "abcdef", IP: netip.AddrFrom4([4]byte{127, 77, 0, byte(2 + i)}), Port: 8080, State: release.StateLive,
			Created: time.Unix(1700000000, 0).UTC()}
		if err := os.Mkdir(p.dir(r.Name), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := p.write(r); err != nil {
			t.Fatal(err)
		}
		// Alive and ours: the pidfile names this process.
		if err := os.WriteFile(filepath.Join(p.dir(r.Name), pidFile), fmt.Appendf(nil, "%d %s\n", os.Getpid(), id), 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, r.Name)
	}
	ctx := context.Background()
	reads := func() int { p.listed.mu.Lock(); defer p.listed.mu.Unlock(); return p.listed.reads }
	list := func(what string) []release.Release {
		t.Helper()
		got, err := p.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		fresh, err := New(Config{Root: root})
		if err != nil {
			t.Fatal(err)
		}
		want, err := fresh.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got, cmpopts.EquateComparable(netip.Addr{})); diff != "" {
			t.Fatalf("%s: List differs from a fresh Runtime's (-want +got):\n%s", what, diff)
		}
		return got
	}

	first := list("first")
	if got := reads(); got != 2*n {
		t.Errorf("first List read %d files, want %d", got, 2*n)
	}
	for _, r := range first {
		if !r.Running || r.State != release.StateLive {
			t.Fatalf("%s: %+v, want live and running", r.Name, r)
		}
	}
	before := reads()
	for range 3 {
		list("idle")
	}
	if got := reads() - before; got != 0 {
		t.Errorf("3 idle Lists read %d files, want 0", got)
	}

	// A state change and a stop are seen, reading only those files.
	if err := p.SetStatus(ctx, names[1], release.Status{State: release.StateRetired}); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(p.dir(names[2]), pidFile)); err != nil {
		t.Fatal(err)
	}
	before = reads()
	got := list("after a change")
	if n := reads() - before; n != 1 {
		t.Errorf("List after one state change and one stop read %d files, want 1", n)
	}
	if got[1].State != release.StateRetired || got[2].Running {
		t.Errorf("after the change: %+v, %+v; want %s retired and %s stopped", got[1], got[2], names[1], names[2])
	}
}
