package jails_test

import (
	"testing"

	"github.com/jailkeeper/jailkeeper/release"
	"github.com/jailkeeper/jailkeeper/zfs"
)

// The property names release defines live in the namespace whose local
// values zfs.Inventory returns: otherwise no release would be listed.
func TestPropPrefix(t *testing.T) {
	if release.PropPrefix != zfs.Prefix {
		t.Fatalf("release.PropPrefix %q, zfs.Prefix %q", release.PropPrefix, zfs.Prefix)
	}
}
