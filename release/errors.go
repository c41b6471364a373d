package release

import "errors"

// Errors that every runtime returns, wrapped, for errors.Is.
var (
	// ErrNotFound: no release of that name exists on this host.
	ErrNotFound = errors.New("release not found")
	// ErrExists: a release of that name exists already; Create never
	// overwrites one.
	ErrExists = errors.New("release exists")
	// ErrPoolExhausted: every address of the runtime's pool is in use:
	// destroy some releases, or widen the pool.
	ErrPoolExhausted = errors.New("address pool exhausted")
	// ErrNoTemplate: the template dataset is missing or has no snapshot
	// to clone (jailkeeper template create makes one).
	ErrNoTemplate = errors.New("template has no snapshot")
	// ErrAddressInUse: the release's address (and port) is held by
	// something that is not the release: a process or jail of an earlier,
	// unidentified run, or a stranger. It is the host's fault, never the
	// release's: the deploy is retried on another address and the release
	// is not marked failed.
	ErrAddressInUse = errors.New("address in use")
	// ErrHostBusy: a passing fault of the host, not of the release (an
	// executable still open for writing in a forked child: ETXTBSY). The
	// release is not marked failed; the next pass tries again.
	ErrHostBusy = errors.New("host busy")
)
