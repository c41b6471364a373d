package zfs

import (
	"errors"
	"strings"

	"github.com/jailkeeper/jailkeeper/internal/command"
)

// Sentinel errors. A failed zfs command matches at most one of them with
// errors.Is, chosen from its stderr (see classify).
var (
	// ErrNotFound: the dataset or snapshot does not exist.
	ErrNotFound = errors.New("dataset does not exist")
	// ErrExists: create, clone or snapshot onto a name that exists.
	ErrExists = errors.New("dataset already exists")
	// ErrBusy: the dataset could not be unmounted or destroyed because
	// something uses it (a process inside the mountpoint, a dying jail, a
	// user hold). Destroy retries it; it may clear by itself.
	ErrBusy = errors.New("dataset is busy")
	// ErrDependents: the dataset or snapshot has clones (or, without -r,
	// children) and was not destroyed. Retrying does not help: the clones
	// must go first.
	ErrDependents = errors.New("dataset has dependent clones or children")
	// ErrInvalid: a name or property was refused before any command ran.
	ErrInvalid = errors.New("invalid argument")
)

// cmdError is a failed zfs command: the runner's *command.Error (argv, exit
// status, stderr), which it prints unchanged, plus the sentinel its stderr
// names. It is unexported on purpose: callers use errors.As with
// *command.Error and errors.Is with the sentinels.
type cmdError struct {
	err  error // holds a *command.Error
	kind error // one of the sentinels
}

func (e *cmdError) Error() string { return e.err.Error() }

// Unwrap returns the sentinel and the runner's error.
func (e *cmdError) Unwrap() []error { return []error{e.kind, e.err} }

// classified returns err, a failed command's error from a command.Runner,
// wrapped so that it also matches the sentinel its stderr names, if any.
func classified(err error) error {
	if err == nil {
		return nil
	}
	if kind := classify(command.Stderr(err)); kind != nil {
		return &cmdError{err: err, kind: kind}
	}
	return err
}

// The stderr texts each sentinel stands for. libzfs prints
// "cannot <action> '<name>': <description>"; the descriptions come from
// zfs_standard_error() in openzfs lib/libzfs/libzfs_util.c. The captured
// FreeBSD outputs are in testdata/ (see its .source files).
var patterns = []struct {
	kind  error
	texts []string
}{
	// ENOENT: "cannot open 'P/D': dataset does not exist" (FreeBSD, REAL).
	{ErrNotFound, []string{"dataset does not exist"}},
	// EEXIST: "cannot create 'P/D': dataset already exists" (REAL).
	{ErrExists, []string{"dataset already exists"}},
	// "cannot destroy 'P/D@s': snapshot has dependent clones" (FreeBSD
	// 14.1, REAL), "filesystem has dependent clones", "filesystem has
	// children" / "volume has children" (libzfs zfs_destroy paths), and
	// for `destroy -r` of a snapshot "cannot destroy snapshot P/D@s:
	// snapshot is cloned" (libzfs zfs_destroy_snaps_nvl; zfs-fuse, REAL).
	{ErrDependents, []string{"has dependent clones", "has children", "snapshot is cloned"}},
	// EBUSY, in the wordings seen:
	//   "cannot unmount '/m': pool or dataset is busy"  FreeBSD 13+, OpenZFS
	//   "cannot destroy 'P/D': dataset is busy"          OpenZFS, zfs-fuse
	//   "cannot unmount '/m': Device busy"               FreeBSD before 13 (strerror)
	//   "umount: /m: target is busy."                   Linux umount(8), run by zfs-fuse
	//   "Device or resource busy"                        glibc strerror(EBUSY)
	{ErrBusy, []string{"dataset is busy", "Device busy", "target is busy", "Device or resource busy"}},
}

// classify returns the sentinel that stderr names, or nil.
func classify(stderr string) error {
	for _, p := range patterns {
		for _, t := range p.texts {
			if strings.Contains(stderr, t) {
				return p.kind
			}
		}
	}
	return nil
}
