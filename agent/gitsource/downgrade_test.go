package gitsource

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
)

// signedMerge merges rev into the checked-out branch with a merge commit
// signed by key (`git merge --no-ff -S`).
func (f *fixture) signedMerge(g *gnupg, key, rev, msg string) string {
	f.t.Helper()
	env := append(f.nextDate(), "GNUPGHOME="+g.home)
	f.runEnv(f.work, env, "-c", "gpg.program="+g.gpg, "merge", "--quiet", "--no-ff", "-S"+key, "-m", msg, rev)
	return f.head()
}

// TestPollDowngrade: with a keyring, a head validly signed but not
// descending from the last verified commit (the branch reset to an older
// commit, or history rewritten) is refused and the last verified commit
// stays in effect, also across a restart, until the operator accepts it by
// moving refs/jailkeeper/good/<branch>.
func TestPollDowngrade(t *testing.T) {
	g := newGnuPG(t)
	alice := g.newKey("Alice Ops <alice@example.org>")
	keyring := g.export(true, alice)

	f := newFixture(t)
	f.write(map[string]string{"services/hello.yaml": helloV1})
	c1 := f.signedCommit(g, alice, "hello v1") // commit 0
	f.push(false)
	dir := filepath.Join(t.TempDir(), "repo")
	s := newSource(t, Config{URL: f.bare, Dir: dir, VerifyKeyring: keyring})
	v1 := map[string]string{"hello.yaml": helloV1}
	v2 := map[string]string{"hello.yaml": helloV2}
	checkPoll(t, s, want{rev: c1, time: commitTime(0), changed: true, files: v1,
		stats: Stats{Polls: 1, Lists: 1, Fetches: 1}})

	f.write(map[string]string{"services/hello.yaml": helloV2})
	c2 := f.signedCommit(g, alice, "hello v2") // commit 1
	f.push(false)
	checkPoll(t, s, want{rev: c2, time: commitTime(1), changed: true, files: v2,
		stats: Stats{Polls: 2, Lists: 2, Fetches: 2}})

	// Someone with push rights but no key resets the branch to c1, which
	// Alice did sign: refused, on every Poll, without fetching again.
	f.run(f.work, "reset", "--quiet", "--hard", c1)
	f.push(true)
	for i := range 2 {
		checkPoll(t, s, want{rev: c2, time: commitTime(1), changed: false, files: v2, err: ErrDowngrade,
			stats: Stats{Polls: 3 + i, Lists: 3 + i, Fetches: 3}})
	}
	_, err := s.Poll(context.Background())
	if !errors.Is(err, ErrSignature) {
		t.Errorf("downgrade error %v does not wrap ErrSignature (the agent counts those)", err)
	}
	for _, w := range []string{c1, c2, "git --git-dir=" + dir + " update-ref refs/jailkeeper/good/main " + c1} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("downgrade error %v does not name %q", err, w)
		}
	}

	// A restart keeps c2 and refuses c1 still.
	checkPoll(t, newSource(t, Config{URL: f.bare, Dir: dir, VerifyKeyring: keyring}),
		want{rev: c2, time: commitTime(1), changed: true, files: v2, err: ErrDowngrade,
			stats: Stats{Polls: 1, Lists: 1}})

	// History rewritten onto a newly signed commit that skips c2: refused.
	f.write(map[string]string{"services/hello.yaml": helloV3})
	c3 := f.signedCommit(g, alice, "hello v3, rewritten on v1") // commit 2
	f.push(true)
	checkPoll(t, s, want{rev: c2, time: commitTime(1), changed: false, files: v2, err: ErrDowngrade,
		stats: Stats{Polls: 6, Lists: 6, Fetches: 4}})

	// A force push back onto a descendant of c2 is taken.
	f.run(f.work, "reset", "--quiet", "--hard", c2)
	c4 := f.signedCommit(g, alice, "v2 again, on v2") // commit 3
	f.push(true)
	checkPoll(t, s, want{rev: c4, time: commitTime(3), changed: true, files: v2,
		stats: Stats{Polls: 7, Lists: 7, Fetches: 5}})

	// The rewrite is intended after all: refused, then the operator accepts
	// c3 with the command the error gives; the next Poll takes it.
	f.run(f.work, "reset", "--quiet", "--hard", c3)
	f.push(true)
	_, err = s.Poll(context.Background())
	if !errors.Is(err, ErrDowngrade) {
		t.Fatalf("Poll of rewritten c3 = %v, want ErrDowngrade", err)
	}
	_, cmd, ok := strings.Cut(err.Error(), "to accept it: git ")
	if !ok {
		t.Fatalf("error %v gives no command", err)
	}
	f.run(t.TempDir(), strings.Fields(cmd)...)
	v3 := map[string]string{"hello.yaml": helloV3}
	checkPoll(t, s, want{rev: c3, time: commitTime(2), changed: true, files: v3,
		stats: Stats{Polls: 9, Lists: 9, Fetches: 6}})

	// A merge whose second parent is the last verified commit descends from
	// it.
	f.run(f.work, "checkout", "--quiet", "-b", "other", c1)
	f.write(map[string]string{"services/world.yaml": worldV1})
	f.signedCommit(g, alice, "world on v1")      // commit 4
	m := f.signedMerge(g, alice, c3, "merge v3") // commit 5
	f.run(f.work, "push", "--quiet", "--force", "origin", "other:main")
	checkPoll(t, s, want{rev: m, time: commitTime(5), changed: true,
		files: map[string]string{"hello.yaml": helloV3, "world.yaml": worldV1},
		stats: Stats{Polls: 10, Lists: 10, Fetches: 7}})

	// An unsigned descendant is a signature failure, not a downgrade.
	f.commit("unsigned") // commit 6
	f.run(f.work, "push", "--quiet", "origin", "other:main")
	_, err = s.Poll(context.Background())
	if !errors.Is(err, ErrSignature) || errors.Is(err, ErrDowngrade) {
		t.Errorf("unsigned descendant: %v, want ErrSignature without ErrDowngrade", err)
	}
}

// TestPollDowngradeRefDeleted: deleting refs/jailkeeper/good/<branch> lets
// the next signed head in, whatever its history.
func TestPollDowngradeRefDeleted(t *testing.T) {
	g := newGnuPG(t)
	alice := g.newKey("Alice Ops <alice@example.org>")
	keyring := g.export(true, alice)
	f := newFixture(t)
	f.write(map[string]string{"services/hello.yaml": helloV1})
	c1 := f.signedCommit(g, alice, "hello v1")
	f.write(map[string]string{"services/hello.yaml": helloV2})
	c2 := f.signedCommit(g, alice, "hello v2")
	f.push(false)
	dir := filepath.Join(t.TempDir(), "repo")
	s := newSource(t, Config{URL: f.bare, Dir: dir, VerifyKeyring: keyring})
	checkPoll(t, s, want{rev: c2, time: commitTime(1), changed: true,
		stats: Stats{Polls: 1, Lists: 1, Fetches: 1}})

	f.run(f.work, "reset", "--quiet", "--hard", c1)
	f.push(true)
	checkPoll(t, s, want{rev: c2, time: commitTime(1), err: ErrDowngrade,
		stats: Stats{Polls: 2, Lists: 2, Fetches: 2}})
	f.run(t.TempDir(), "--git-dir="+dir, "update-ref", "-d", goodRefPrefix+"main")
	checkPoll(t, s, want{rev: c1, time: commitTime(0), changed: true,
		files: map[string]string{"hello.yaml": helloV1},
		stats: Stats{Polls: 3, Lists: 3, Fetches: 2}})
}

// TestPollNoKeyringFollowsReset: without a keyring there is no descent
// check; a reset branch is followed (TestPollHistory has more).
func TestPollNoKeyringFollowsReset(t *testing.T) {
	f := newFixture(t)
	f.write(map[string]string{"services/hello.yaml": helloV1})
	c1 := f.commit("hello v1")
	f.write(map[string]string{"services/hello.yaml": helloV2})
	f.commit("hello v2")
	f.push(false)
	s := newSource(t, Config{URL: f.bare})
	checkPoll(t, s, want{rev: f.head(), time: commitTime(1), changed: true,
		stats: Stats{Polls: 1, Lists: 1, Fetches: 1}})
	f.run(f.work, "reset", "--quiet", "--hard", c1)
	f.push(true)
	checkPoll(t, s, want{rev: c1, time: commitTime(0), changed: true,
		stats: Stats{Polls: 2, Lists: 2, Fetches: 2}})
}

// linearHistory makes a repository of n commits in a row with `git
// fast-import` and returns it opened with go-git and its commits, oldest
// first.
func linearHistory(t testing.TB, n int) (*git.Repository, []plumbing.Hash) {
	t.Helper()
	f := newFixture(t)
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "commit refs/heads/main\nmark :%d\ncommitter Dee Ploy <deploy@example.org> %d +0000\ndata 0\n", i+1, epoch.Unix()+int64(i))
		if i > 0 {
			fmt.Fprintf(&b, "from :%d\n", i)
		}
		fmt.Fprintf(&b, "M 644 inline n\ndata %d\n%d\n\n", len(fmt.Sprint(i))+1, i)
	}
	cmd := f.command(f.bare, "fast-import", "--quiet")
	cmd.Stdin = strings.NewReader(b.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git fast-import: %v\n%s", err, out)
	}
	revs := strings.Fields(f.run(f.bare, "rev-list", "--reverse", "main"))
	if len(revs) != n {
		t.Fatalf("rev-list: %d commits, want %d", len(revs), n)
	}
	repo, err := git.PlainOpen(f.bare)
	if err != nil {
		t.Fatal(err)
	}
	hashes := make([]plumbing.Hash, n)
	for i, r := range revs {
		hashes[i] = plumbing.NewHash(r)
	}
	return repo, hashes
}

func TestDescends(t *testing.T) {
	repo, c := linearHistory(t, 6)
	for _, tc := range []struct {
		name       string
		rev, base  plumbing.Hash
		limit      int
		found, cut bool
	}{
		{"same commit", c[3], c[3], 10, true, false},
		{"parent", c[4], c[3], 10, true, false},
		{"root from head", c[5], c[0], 10, true, false},
		{"older head", c[2], c[4], 10, false, false},
		{"walk cut before the base", c[5], c[0], 3, false, true},
		{"base within the limit", c[5], c[3], 3, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			found, cut, err := descends(t.Context(), repo, tc.rev, tc.base, tc.limit)
			if err != nil || found != tc.found || cut != tc.cut {
				t.Errorf("descends = %v, %v, %v; want %v, %v, nil", found, cut, err, tc.found, tc.cut)
			}
		})
	}
}

// BenchmarkDescentRefused measures the worst case of the descent check: a
// head whose whole history (10,000 commits) must be read to find that it
// does not contain the last verified commit. checkDescent pays it once per
// refused head; a head pushed on top of the last verified commit stops at
// it.
func BenchmarkDescentRefused(b *testing.B) {
	const n = 10_000
	repo, c := linearHistory(b, n+1)
	head, newer := c[n-1], c[n]
	for b.Loop() {
		found, cut, err := descends(b.Context(), repo, head, newer, maxDescentWalk)
		if err != nil || found || cut {
			b.Fatalf("descends = %v, %v, %v", found, cut, err)
		}
	}
}
