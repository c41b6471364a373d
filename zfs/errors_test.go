package zfs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jailkeeper/jailkeeper/internal/command"
)

func readFixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// FreeBSD stderr, each line verbatim from a captured fixture (checked
// below, so none is made up), and the sentinel it must map to.
func TestClassifyFreeBSD(t *testing.T) {
	tests := []struct {
		fixture, stderr string
		want            error
	}{
		{"zfs-destroy-snapshot-with-clones.14.1.txt",
			"cannot destroy 'zroot/ROOT/default@2024-07-18-21:34:02-0': snapshot has dependent clones\n" +
				"use '-R' to destroy the following datasets:\n" +
				"zroot/ROOT/14.1-RELEASE_2024-07-18_213402\n", ErrDependents},
		{"errors.freebsd.md", "cannot destroy 'prod/helix-zvols/ses-...': volume has children\n", ErrDependents},
		{"errors.freebsd.md", "cannot unmount '/jails/containers/thejail': pool or dataset is busy\n", ErrBusy},
		{"errors.freebsd.md", "cannot create 'apps/tns-csi/nvmeof/pvc-<uid>': dataset already exists\n", ErrExists},
		{"errors.freebsd.md", "cannot open 'system/jails/jail-testing.freshports': dataset does not exist\n", ErrNotFound},
		{"errors.freebsd.md", "cannot destroy snapshot <pool/ds@snap>: dataset is busy", ErrBusy},
		{"errors.freebsd.md", "cannot unmount '<mnt>': Device busy", ErrBusy},
	}
	for _, tt := range tests {
		if !strings.Contains(readFixture(t, tt.fixture), tt.stderr) {
			t.Errorf("%q is not in testdata/%s", tt.stderr, tt.fixture)
		}
		if got := classify(tt.stderr); got != tt.want {
			t.Errorf("classify(%q) = %v, want %v", tt.stderr, got, tt.want)
		}
	}
}

// Every captured zfs-fuse failure maps to the sentinel its command
// stands for.
func TestClassifyZFSFuse(t *testing.T) {
	want := map[string]error{
		"destroy zroot/jails/templates/14.3-RELEASE@base":                                                ErrDependents,
		"destroy -r zroot/jails/templates/14.3-RELEASE":                                                  ErrDependents,
		"destroy zroot/jails/containers/hello_4b825dc642cb_9f86d0":                                       ErrDependents,
		"destroy -r zroot/jails/containers/nope":                                                         ErrNotFound,
		"list -H -o name zroot/jails/nope":                                                               ErrNotFound,
		"get -Hp -r -o name,property,value,source all zroot/nope":                                        ErrNotFound,
		"create zroot/jails/containers":                                                                  ErrExists,
		"clone zroot/jails/templates/14.3-RELEASE@base zroot/jails/containers/hello_aaaaaaaaaaaa_bbbbbb": ErrExists,
		"snapshot zroot/jails/templates/14.3-RELEASE@base":                                               ErrExists,
		"clone zroot/jails/templates/14.3-RELEASE@nope zroot/jails/containers/x":                         ErrNotFound,
		"destroy -r zroot/jails/containers/hello_aaaaaaaaaaaa_bbbbbb":                                    ErrBusy,
		"destroy -r zroot/jails/templates/14.3-RELEASE@base":                                             ErrDependents,
	}
	blocks := strings.Split(strings.TrimSpace(readFixture(t, "errors.zfs-fuse.txt")), "\n\n")
	if len(blocks) != 13 {
		t.Fatalf("got %d blocks in errors.zfs-fuse.txt, want 13", len(blocks))
	}
	for _, b := range blocks {
		lines := strings.Split(b, "\n")
		cmd := strings.TrimPrefix(lines[0], "# zfs ")
		stderr := strings.Join(lines[1:len(lines)-1], "\n")
		w, ok := want[cmd]
		if !ok {
			t.Errorf("no expectation for %q", cmd)
			continue
		}
		if got := classify(stderr); got != w {
			t.Errorf("zfs %s: classify(%q) = %v, want %v", cmd, stderr, got, w)
		}
	}
}

// A failed command keeps the runner's *command.Error, text included, and
// also matches the sentinel its stderr names.
func TestClassifiedKeepsCommandError(t *testing.T) {
	argv := []string{"zfs", "destroy", "-r", "p/a"}
	ce := &command.Error{Argv: argv, Exit: 1, Stderr: "cannot open 'p/a': dataset does not exist\n", Err: errors.New("exit status 1")}
	err := classified(ce)
	if !errors.Is(err, ErrNotFound) || errors.Is(err, ErrBusy) {
		t.Errorf("errors.Is: NotFound %v, Busy %v", errors.Is(err, ErrNotFound), errors.Is(err, ErrBusy))
	}
	var back *command.Error
	if !errors.As(err, &back) || back != ce {
		t.Errorf("errors.As to *command.Error failed")
	}
	if got, want := err.Error(), "zfs destroy -r p/a: exit 1: cannot open 'p/a': dataset does not exist"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	// Without a known text, the runner's error passes through unchanged.
	other := &command.Error{Argv: argv, Exit: 2, Stderr: "internal error\n"}
	if classified(other) != error(other) || classified(nil) != nil {
		t.Error("classified changed an unclassified error or nil")
	}
}
