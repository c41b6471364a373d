package jails

import (
	"context"

	"github.com/jailkeeper/jailkeeper/zfs"
)

// Datasets is what the FreeBSD runtime needs from ZFS. ZFS implements it
// with the zfs package; tests use a recording fake. Implementations must be
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
}

// ZFS is the Datasets of the running system: the zfs package's functions.
type ZFS struct{}

// Clone calls zfs.Clone.
func (ZFS) Clone(ctx context.Context, snapshot, name string, props map[string]string) (zfs.Dataset, error) {
	return zfs.Clone(ctx, snapshot, name, props)
}

// SetProps calls zfs.SetProps.
func (ZFS) SetProps(ctx context.Context, name string, props map[string]string) error {
	return zfs.SetProps(ctx, name, props)
}

// Destroy calls zfs.Destroy.
func (ZFS) Destroy(ctx context.Context, name string, retries int) error {
	return zfs.Destroy(ctx, name, retries)
}

// Inventory calls zfs.Inventory.
func (ZFS) Inventory(ctx context.Context, root string) ([]zfs.Dataset, error) {
	return zfs.Inventory(ctx, root)
}

// Snapshots calls zfs.Snapshots.
func (ZFS) Snapshots(ctx context.Context, dataset string) ([]zfs.SnapshotInfo, error) {
	return zfs.Snapshots(ctx, dataset)
}
