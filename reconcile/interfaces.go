package reconcile

import (
	"context"
	"time"

	"github.com/jailkeeper/jailkeeper/caddy"
	"github.com/jailkeeper/jailkeeper/release"
)

// Runtime creates and runs releases. process.Runtime and jails.FreeBSD
// implement it, and release/runtimetest pins this contract for both.
// Implementations must be safe for concurrent use by different services;
// calls for one release are serialised by the Executor.
type Runtime interface {
	// List returns every release jailkeeper manages on this host, with
	// Running observed from the system. A new Runtime value after a crash
	// lists the same releases and states.
	List(ctx context.Context) ([]release.Release, error)
	// Create clones the template, installs the artifact and picks an address.
	// The release is left in state ready and not running. On error,
	// including ctx ending, nothing of the release is left behind; a
	// release of that name that exists already is release.ErrExists.
	Create(ctx context.Context, spec release.Spec) (release.Release, error)
	// Start starts a ready, retired or failed release. Starting a running
	// release is a no-op; an unknown one is release.ErrNotFound.
	Start(ctx context.Context, name string) error
	// Stop stops the release; stopping a stopped or unknown release is a
	// no-op.
	Stop(ctx context.Context, name string) error
	// Running reports whether the release's process or jail is up; an
	// unknown release is release.ErrNotFound.
	Running(ctx context.Context, name string) (bool, error)
	// SetStatus records the release's state durably; an unknown release is
	// release.ErrNotFound.
	SetStatus(ctx context.Context, name string, st release.Status) error
	// Destroy stops the release and removes everything of it; destroying
	// an unknown release is a no-op, so an interrupted destroy can finish.
	// A busy release is retried a bounded number of times, then the error
	// is returned with the release still listed, stopped.
	Destroy(ctx context.Context, name string) error
}

// Exiter is implemented by a Runtime that can tell why a release's
// process is gone (process.Runtime does). Exit returns nil while the
// release runs, else why it stopped: its exit status and last log lines,
// wrapping release.ErrAddressInUse when its address was held by another
// process. A gate that finds the release not running quotes it, and an
// address in use is the host's fault: the deploy retries on another
// address and marks nothing failed.
type Exiter interface {
	Exit(ctx context.Context, name string) error
}

// Proxy routes each service's hostnames to one upstream. caddy.Client
// implements it. Safe for concurrent use; writes from concurrent callers may
// be batched into one.
type Proxy interface {
	// Routes returns jailkeeper's routes by service.
	Routes(ctx context.Context) (map[string]caddy.Route, error)
	// Set creates or updates the routes.
	Set(ctx context.Context, routes ...caddy.Route) error
	// Remove deletes the services' routes; missing ones are not an error.
	Remove(ctx context.Context, services ...string) error
	// Drain waits until Caddy has no request in flight to upstream, or max
	// has passed, or ctx is done.
	Drain(ctx context.Context, upstream string, max time.Duration) error
}

// Prober asks a release whether it is healthy.
type Prober interface {
	// Probe returns nil when GET url answered 2xx within timeout.
	Probe(ctx context.Context, url string, timeout time.Duration) error
}

// Fetcher provides verified artifacts. artifact.Store implements it.
type Fetcher interface {
	// Fetch returns the local path of the artifact at url whose sha256 is sum,
	// downloading it unless cached. Nothing unverified is ever returned.
	Fetch(ctx context.Context, url, sum string) (string, error)
}
