package hostsetup_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jailkeeper/jailkeeper/hostsetup"
	"github.com/jailkeeper/jailkeeper/jails"
)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "freebsd", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestManifestSHA256(t *testing.T) {
	// The derived MANIFEST has placeholders instead of checksums: refused.
	if _, err := hostsetup.ManifestSHA256(bytes.NewReader(fixture(t, "manifest-14.x.DERIVED.txt")), "base.txz"); !errors.Is(err, jails.ErrParse) {
		t.Errorf("placeholder line accepted: %v", err)
	}
	sum := strings.Repeat("ab", 32)
	// The derived format with the placeholders filled in.
	m := strings.ReplaceAll(strings.ReplaceAll(string(fixture(t, "manifest-14.x.DERIVED.txt")), "<64-hex-sha256>", sum), "<N>", "42")
	got, err := hostsetup.ManifestSHA256(strings.NewReader(m), "base.txz")
	if err != nil || got != sum {
		t.Errorf("got %q, %v", got, err)
	}
	if _, err := hostsetup.ManifestSHA256(strings.NewReader(m), "nope.txz"); !errors.Is(err, jails.ErrParse) {
		t.Errorf("missing file: %v", err)
	}
}
