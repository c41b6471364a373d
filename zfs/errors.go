package zfs

import (
	"errors"
	"fmt"
	"os/exec"
	"strings"

	gozfs "github.com/mistifyio/go-zfs/v3"
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

// Error is a zfs command that failed: it ran and exited non-zero, or could
// not be started. It unwraps to the cause (an *exec.ExitError, or go-zfs's
// *zfs.Error for the commands go-zfs runs) and to the sentinel its stderr
// names, if any.
type Error struct {
	// Argv is the command as run, program first. For commands run by go-zfs
	// it is go-zfs's space-joined command line split on blanks, so a value
	// containing a blank appears as several elements.
	Argv []string
	// ExitCode is the exit status, or -1 when the command did not exit
	// normally (not found on PATH, killed by a signal or by ctx).
	ExitCode int
	// Stderr is what the command wrote to its standard error.
	Stderr string
	// Err is the underlying error.
	Err error

	kind error // one of the sentinels, or nil
}

func (e *Error) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if msg == "" {
		msg = e.Err.Error()
	}
	return fmt.Sprintf("%s: exit %d: %s", strings.Join(e.Argv, " "), e.ExitCode, msg)
}

// Unwrap returns the sentinel named by stderr (if any) and the cause.
func (e *Error) Unwrap() []error {
	errs := make([]error, 0, 2)
	if e.kind != nil {
		errs = append(errs, e.kind)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// newError builds an *Error for argv that failed with err and stderr.
func newError(argv []string, stderr string, err error) *Error {
	code := -1
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	}
	return &Error{Argv: argv, ExitCode: code, Stderr: stderr, Err: err, kind: classify(stderr)}
}

// fromGoZFS turns a go-zfs *zfs.Error into an *Error (keeping it as the
// cause); other errors are returned unchanged.
func fromGoZFS(err error) error {
	if err == nil {
		return nil
	}
	var ge *gozfs.Error
	if !errors.As(err, &ge) {
		return err
	}
	e := newError(strings.Fields(ge.Debug), ge.Stderr, ge.Err)
	e.Err = ge
	return e
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
