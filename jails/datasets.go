package jails

import (
	"context"

	"github.com/jailkeeper/jailkeeper/zfs"
)

// Datasets is what the FreeBSD runtime needs from ZFS. *zfs.Client
// implements it; tests use it over a fake host or a recording fake. Implementations must be
// safe for concurrent use and return errors that match the zfs package's
// sentinels (zfs.ErrNotFound, zfs.ErrExists, zfs.ErrBusy).
type Datasets interface {
	// Clone clones snapshot into name with props set by the clone itself.
	Clone(ctx context.Context, snapshot, name string, props map[string]string) (zfs.Dataset, error)
	// SetProps sets props on name, all in one command.
	SetProps(ctx context.Context, name string, props map[string]string) error
	// Destroy destroys name recursively, retrying up to retries more times
	// while zfs says it is busy.
	Destroy(ctx context.Context, name string, retries int) error
	// Inventory returns root and every filesystem below it with its
	// mountpoint and local jailkeeper:* properties.
	Inventory(ctx context.Context, root string) ([]zfs.Dataset, error)
	// Snapshots returns the snapshots of dataset, oldest first.
	Snapshots(ctx context.Context, dataset string) ([]zfs.SnapshotInfo, error)
	// Create creates the filesystem name with props (persistent data).
	Create(ctx context.Context, name string, props map[string]string) error
	// Exists reports whether the dataset or snapshot name exists.
	Exists(ctx context.Context, name string) (bool, error)
	// Snapshot creates the snapshot name ("pool/ds@snap").
	Snapshot(ctx context.Context, name string) error
}
