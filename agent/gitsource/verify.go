package gitsource

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/go-git/go-git/v5/plumbing/object"
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
