package process

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jailkeeper/jailkeeper/release"
)

// reserve reads the release.json of a release only when it has not seen
// it (issue 11), and still never hands out an address that a release
// records: the addresses it finds in use are always those a fresh Runtime
// finds, after creates, a status change, a removal and a create again of
// a removed name.
func TestReserveReadsOnlyNewReleases(t *testing.T) {
	root := t.TempDir()
	pool := netip.PrefixFrom(netip.AddrFrom4([4]byte{127, 77, byte(128 + rand.IntN(128)), 0}), 24)
	p, err := New(Config{Root: root, Pool: pool})
	if err != nil {
		t.Fatal(err)
	}
	port := 20000 + rand.IntN(20000)
	reserve := func(i int) release.Release {
		t.Helper()
		r := release.Release{Name: fmt.Sprintf("svc%d_0123456789ab_abcdef", i), Service: fmt.Sprintf("svc%d", i), SHA: "0123456789ab",
			Spec: "abcdef", Port: port, State: release.StateCreating, Created: time.Unix(1700000000, 0).UTC()}
		if err := p.reserve(&r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	// reads returns the release.json files reserve read since the last call,
	// and checks its addresses in use against a fresh Runtime's.
	last := 0
	reads := func(what string) int {
		t.Helper()
		fresh, err := New(Config{Root: root, Pool: pool})
		if err != nil {
			t.Fatal(err)
		}
		want, err := fresh.book.used(fresh)
		if err != nil {
			t.Fatal(err)
		}
		got, err := p.book.used(p)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: addresses in use (-fresh runtime +book):\n%s", what, diff)
		}
		n := p.book.reads - last
		last = p.book.reads
		return n
	}

	seen := map[netip.Addr]string{}
	var rels []release.Release
	for i := range 5 {
		r := reserve(i)
		if other, dup := seen[r.IP]; dup {
			t.Fatalf("%s got %s, the address of %s", r.Name, r.IP, other)
		}
		seen[r.IP] = r.Name
		rels = append(rels, r)
	}
	// Each reserve records its own choice: no release.json is read but by
	// the fresh Runtimes of the checks.
	if n := reads("after 5 creates"); n != 0 {
		t.Errorf("reserve read %d release.json files for 5 creates, want 0", n)
	}
	// A status change keeps the address: nothing to read again.
	if err := p.SetStatus(context.Background(), rels[2].Name, release.Status{State: release.StateLive}); err != nil {
		t.Fatal(err)
	}
	if n := reads("after a status change"); n != 0 {
		t.Errorf("after a status change reserve read %d release.json files, want 0", n)
	}
	// A release another Runtime made (an agent before a restart) is read
	// once.
	other, err := New(Config{Root: root, Pool: pool})
	if err != nil {
		t.Fatal(err)
	}
	r := release.Release{Name: "other_0123456789ab_abcdef", Service: "other", SHA: "0123456789ab",
		Spec: "abcdef", Port: port, State: release.StateCreating, Created: time.Unix(1700000000, 0).UTC()}
	if err := other.reserve(&r); err != nil {
		t.Fatal(err)
	}
	if n := reads("after another Runtime's create"); n != 1 {
		t.Errorf("after another Runtime's create reserve read %d release.json files, want 1", n)
	}

	// A release gone frees its address: the next create gets it, being
	// the lowest free one.
	if err := os.RemoveAll(p.dir(rels[0].Name)); err != nil {
		t.Fatal(err)
	}
	if r := reserve(9); r.IP != rels[0].IP {
		t.Errorf("after %s was removed the next create got %s, want its address %s", rels[0].Name, r.IP, rels[0].IP)
	}
	reads("after a removal and a create")
	// A name created again (an interrupted create replaced) gets a new
	// address, which the book knows.
	if err := os.RemoveAll(p.dir(rels[1].Name)); err != nil {
		t.Fatal(err)
	}
	if r := reserve(7); r.IP != rels[1].IP {
		t.Errorf("after %s was removed the next create got %s, want its address %s", rels[1].Name, r.IP, rels[1].IP)
	}
	if r := reserve(1); r.IP == rels[1].IP {
		t.Errorf("%s created again got %s, the address of svc7 now", r.Name, r.IP)
	}
	reads("after a name was created again")
}
