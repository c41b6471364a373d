package zfs

import (
	"context"
	"fmt"

	"github.com/jailkeeper/jailkeeper/internal/command"
)

// The package-level functions below are the API before Client. Each runs
// the same argv as the Client method it names, through command.Exec. They
// stay until every caller holds a Client.

func std() *Client { return New(command.Exec{}) }

// Create creates name with props, then reads it back with
// `zfs list -H -o mountpoint,origin NAME` for the returned Dataset (which
// carries the non-empty jailkeeper:* entries of props). If only the read
// back fails, the dataset exists and the error says so.
//
// Deprecated: use Client.Create (and Client.Get for the mountpoint).
func Create(ctx context.Context, name string, props map[string]string) (Dataset, error) {
	c := std()
	if err := c.Create(ctx, name, props); err != nil {
		return Dataset{}, err
	}
	d, err := c.mountpointOrigin(ctx, name)
	if err != nil {
		return Dataset{}, fmt.Errorf("zfs create %s: done, but reading it back: %w", name, err)
	}
	for k, v := range own(props) {
		if v != "" {
			d.Props[k] = v
		}
	}
	return d, nil
}

// Snapshot runs Client.Snapshot with the default client.
//
// Deprecated: use Client.Snapshot.
func Snapshot(ctx context.Context, name string) error { return std().Snapshot(ctx, name) }

// Clone runs Client.Clone with the default client.
//
// Deprecated: use Client.Clone.
func Clone(ctx context.Context, snapshot, name string, props map[string]string) (Dataset, error) {
	return std().Clone(ctx, snapshot, name, props)
}

// SetProps runs Client.SetProps with the default client.
//
// Deprecated: use Client.SetProps.
func SetProps(ctx context.Context, name string, props map[string]string) error {
	return std().SetProps(ctx, name, props)
}

// Destroy runs Client.Destroy with the default client.
//
// Deprecated: use Client.Destroy.
func Destroy(ctx context.Context, name string, retries int) error {
	return std().Destroy(ctx, name, retries)
}

// Exists runs Client.Exists with the default client.
//
// Deprecated: use Client.Exists.
func Exists(ctx context.Context, name string) (bool, error) { return std().Exists(ctx, name) }

// Snapshots runs Client.Snapshots with the default client.
//
// Deprecated: use Client.Snapshots.
func Snapshots(ctx context.Context, dataset string) ([]SnapshotInfo, error) {
	return std().Snapshots(ctx, dataset)
}

// Clones runs Client.Clones with the default client.
//
// Deprecated: use Client.Clones.
func Clones(ctx context.Context, snapshot string) ([]string, error) {
	return std().Clones(ctx, snapshot)
}

// HasClones runs Client.HasClones with the default client.
//
// Deprecated: use Client.HasClones.
func HasClones(ctx context.Context, snapshot string) (bool, error) {
	return std().HasClones(ctx, snapshot)
}

// Inventory runs Client.Inventory with the default client.
//
// Deprecated: use Client.Inventory.
func Inventory(ctx context.Context, root string) ([]Dataset, error) {
	return std().Inventory(ctx, root)
}
