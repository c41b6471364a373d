package gitsource

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jailkeeper/jailkeeper/internal/testenv"
)

// gnupg is a throwaway GnuPG home with keys made by Debian's gpg.
type gnupg struct {
	t    testing.TB
	gpg  string
	home string
}

func newGnuPG(t testing.TB) *gnupg {
	t.Helper()
	g := &gnupg{t: t, gpg: testenv.Command(t, "gpg")}
	gpgconf := testenv.Command(t, "gpgconf")
	// gpg-agent's socket lives in the home: keep its path short.
	home, err := os.MkdirTemp("", "jk-gnupg-")
	if err != nil {
		t.Fatal(err)
	}
	g.home = home
	t.Cleanup(func() {
		cmd := exec.Command(gpgconf, "--kill", "all")
		cmd.Env = g.env()
		_ = cmd.Run()
		os.RemoveAll(home)
	})
	return g
}

func (g *gnupg) env() []string { return append(os.Environ(), "GNUPGHOME="+g.home) }

func (g *gnupg) run(args ...string) []byte {
	g.t.Helper()
	cmd := exec.Command(g.gpg, append([]string{"--batch", "--no-tty"}, args...)...)
	cmd.Env = g.env()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		g.t.Fatalf("gpg %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes()
}

// newKey makes an unprotected ed25519 signing key and returns its
// fingerprint.
func (g *gnupg) newKey(uid string) string {
	g.t.Helper()
	g.run("--pinentry-mode", "loopback", "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", "never")
	for _, line := range strings.Split(string(g.run("--with-colons", "--list-secret-keys", uid)), "\n") {
		if f := strings.Split(line, ":"); f[0] == "fpr" {
			return f[9]
		}
	}
	g.t.Fatalf("no fingerprint for %s", uid)
	return ""
}

// export writes the public keys to a file, armored or binary.
func (g *gnupg) export(armor bool, fprs ...string) string {
	g.t.Helper()
	args := []string{"--export"}
	name := "keyring.gpg"
	if armor {
		args = append(args, "--armor")
		name = "keyring.asc"
	}
	p := filepath.Join(g.t.TempDir(), name)
	if err := os.WriteFile(p, g.run(append(args, fprs...)...), 0o644); err != nil {
		g.t.Fatal(err)
	}
	return p
}

// signedCommit commits everything signed by key with `git commit -S`.
func (f *fixture) signedCommit(g *gnupg, key, msg string) string {
	f.t.Helper()
	f.run(f.work, "add", "--all")
	env := append(f.nextDate(), "GNUPGHOME="+g.home)
	f.runEnv(f.work, env, "-c", "gpg.program="+g.gpg, "commit", "--quiet", "--allow-empty", "-S"+key, "-m", msg)
	return f.head()
}

// TestPollSignature: with a keyring, only commits signed by one of its keys
// are taken; an unsigned or wrongly signed head leaves the last verified
// commit in effect, also across a restart.
func TestPollSignature(t *testing.T) {
	g := newGnuPG(t)
	alice := g.newKey("Alice Ops <alice@example.org>")
	mallory := g.newKey("Mallory <mallory@example.org>")
	keyring := g.export(true, alice)

	f := newFixture(t)
	f.write(map[string]string{"services/hello.yaml": helloV1})
	c1 := f.signedCommit(g, alice, "hello v1, signed")
	f.push(false)
	dir := filepath.Join(t.TempDir(), "repo")
	s := newSource(t, Config{URL: f.bare, Dir: dir, VerifyKeyring: keyring})
	v1 := map[string]string{"hello.yaml": helloV1}

	snap := checkPoll(t, s, want{rev: c1, time: commitTime(0), changed: true, files: v1,
		stats: Stats{Polls: 1, Lists: 1, Fetches: 1}})
	if snap.Signer != alice {
		t.Errorf("Signer = %q, want %q", snap.Signer, alice)
	}

	// Unsigned head: refused, on every Poll, without fetching again.
	f.write(map[string]string{"services/hello.yaml": helloV2})
	c2 := f.commit("hello v2, unsigned")
	f.push(false)
	for i := range 2 {
		checkPoll(t, s, want{rev: c1, time: commitTime(0), changed: false, files: v1, err: ErrSignature,
			stats: Stats{Polls: 2 + i, Lists: 2 + i, Fetches: 2}})
	}
	_, err := s.Poll(context.Background())
	if err == nil || !strings.Contains(err.Error(), c2) || !strings.Contains(err.Error(), "not signed") {
		t.Errorf("error %v does not name the unsigned commit %s", err, c2)
	}

	// A restart keeps the last verified commit, not the unsigned head.
	checkPoll(t, newSource(t, Config{URL: f.bare, Dir: dir, VerifyKeyring: keyring}),
		want{rev: c1, time: commitTime(0), changed: true, files: v1, err: ErrSignature,
			stats: Stats{Polls: 1, Lists: 1}})

	// Signed by a key not in the keyring: refused.
	f.write(map[string]string{"services/hello.yaml": helloV3})
	c3 := f.signedCommit(g, mallory, "hello v3, signed by someone else")
	f.push(false)
	_, err = s.Poll(context.Background())
	if !errors.Is(err, ErrSignature) || !strings.Contains(err.Error(), c3) {
		t.Errorf("Poll error = %v, want ErrSignature naming %s", err, c3)
	}

	// Signed by Alice again: taken.
	c4 := f.signedCommit(g, alice, "hello v3, signed")
	f.push(false)
	snap = checkPoll(t, s, want{rev: c4, time: commitTime(3), changed: true,
		files: map[string]string{"hello.yaml": helloV3},
		stats: Stats{Polls: 6, Lists: 6, Fetches: 4}})
	if snap.Signer != alice {
		t.Errorf("Signer = %q, want %q", snap.Signer, alice)
	}

	// A binary keyring (gpg --export without --armor) works the same.
	bin := newSource(t, Config{URL: f.bare, VerifyKeyring: g.export(false, alice)})
	checkPoll(t, bin, want{rev: c4, time: commitTime(3), changed: true,
		stats: Stats{Polls: 1, Lists: 1, Fetches: 1}})
	// And a keyring with only Mallory refuses Alice's head.
	checkPoll(t, newSource(t, Config{URL: f.bare, VerifyKeyring: g.export(true, mallory)}),
		want{err: ErrSignature, stats: Stats{Polls: 1, Lists: 1, Fetches: 1}})
}
