package gitsource

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// loadKeyring reads an armored or binary OpenPGP public keyring (`gpg
// --export [--armor]`) and returns it armored, the form go-git's
// Commit.Verify takes.
func loadKeyring(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	kr, err := armorKeyring(b)
	if err != nil {
		return "", fmt.Errorf("%s: %w", file, err)
	}
	return kr, nil
}

// armorKeyring parses an armored or binary public keyring and returns it
// armored.
func armorKeyring(b []byte) (string, error) {
	var list openpgp.EntityList
	var err error
	if bytes.Contains(b, []byte("-----BEGIN PGP")) {
		list, err = openpgp.ReadArmoredKeyRing(bytes.NewReader(b))
	} else {
		list, err = openpgp.ReadKeyRing(bytes.NewReader(b))
	}
	if err != nil {
		return "", err
	}
	if len(list) == 0 {
		return "", errors.New("no keys")
	}
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PublicKeyType, nil)
	if err != nil {
		return "", err
	}
	for _, e := range list {
		if err := e.Serialize(w); err != nil {
			return "", fmt.Errorf("key %s: %w", e.PrimaryKey.KeyIdString(), err)
		}
	}
	if err := w.Close(); err != nil {
		return "", err
	}
	return buf.String(), nil
}

// verify checks c's OpenPGP signature against the armored keyring and
// returns the signer's fingerprint. Errors wrap ErrSignature.
func verify(c *object.Commit, keyring string) (string, error) {
	sig := c.PGPSignature
	switch {
	case sig == "":
		return "", fmt.Errorf("commit %s: %w: not signed", c.Hash, ErrSignature)
	case !strings.Contains(sig, "-----BEGIN PGP SIGNATURE-----"):
		// An SSH or X.509 signature (gpg.format ssh/x509).
		return "", fmt.Errorf("commit %s: %w: not an OpenPGP signature", c.Hash, ErrSignature)
	}
	e, err := c.Verify(keyring)
	if err != nil {
		return "", fmt.Errorf("commit %s: %w: %v (is the signing key in repo.verify_keyring?)", c.Hash, ErrSignature, err)
	}
	return fmt.Sprintf("%X", e.PrimaryKey.Fingerprint), nil
}

// maxDescentWalk bounds the commits checkDescent reads from the head
// backwards. A head that is not a descendant makes the walk read its whole
// history, so the bound caps what one refused force push costs; a head
// pushed on top of the last verified commit finds it within as many
// commits as were pushed.
const maxDescentWalk = 100_000

// refusal is a head checkDescent refused, kept so that the next Polls of
// the same head against the same last verified commit do not walk the
// history again.
type refusal struct {
	rev, base plumbing.Hash
	err       error
}

// checkDescent refuses rev unless it is the last verified commit
// (refs/jailkeeper/good/<branch>, read on every call so that an operator
// can move or delete it) or descends from it. With no such ref (a new
// clone), any rev passes. Refusals wrap ErrSignature and ErrDowngrade.
func (s *Source) checkDescent(ctx context.Context, rev plumbing.Hash) error {
	name := plumbing.ReferenceName(goodRefPrefix + s.cfg.Branch)
	ref, err := s.repo.Reference(name, true)
	switch {
	case errors.Is(err, plumbing.ErrReferenceNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("read %s in %s: %w", name, s.cfg.Dir, err)
	}
	base := ref.Hash()
	if base == rev {
		return nil
	}
	if s.refused.err != nil && s.refused.rev == rev && s.refused.base == base {
		return s.refused.err
	}
	found, cut, err := descends(ctx, s.repo, rev, base, maxDescentWalk)
	if err != nil {
		return fmt.Errorf("commit %s: history: %w", rev, err)
	}
	if found {
		return nil
	}
	why := fmt.Sprintf("(branch %s reset to an older commit or rewritten)", s.cfg.Branch)
	if cut {
		why = fmt.Sprintf("within its %d newest ancestors", maxDescentWalk)
	}
	err = fmt.Errorf("commit %s: %w: %w %s %s; to accept it: git --git-dir=%s update-ref %s %s",
		rev, ErrSignature, ErrDowngrade, base, why, s.cfg.Dir, name, rev)
	s.refused = refusal{rev: rev, base: base, err: err}
	return err
}

// descends reports whether base is rev or one of its ancestors, reading at
// most limit commits; cut is true when the walk stopped there. It stops
// with ctx.Err() when ctx is done.
func descends(ctx context.Context, repo *git.Repository, rev, base plumbing.Hash, limit int) (found, cut bool, err error) {
	c, err := repo.CommitObject(rev)
	if err != nil {
		return false, false, err
	}
	n := 0
	err = object.NewCommitPreorderIter(c, nil, nil).ForEach(func(c *object.Commit) error {
		if c.Hash == base {
			found = true
			return storer.ErrStop
		}
		if n++; n >= limit {
			cut = true
			return storer.ErrStop
		}
		if n%1024 == 0 {
			return ctx.Err()
		}
		return nil
	})
	return found, cut, err
}
