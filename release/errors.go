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
)
