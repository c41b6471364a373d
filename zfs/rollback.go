package zfs

import (
	"context"
	"fmt"
	"strings"
)

// RollbackDiscarding rolls the filesystem of snapshot back to it and
// destroys the snapshots and bookmarks more recent than it:
// `zfs rollback -r SNAP` (zfs-rollback(8): "-r Destroy any snapshots and
// bookmarks more recent than the one specified"). It never uses -R, so a
// more recent snapshot that has clones makes zfs refuse rather than
// destroy those clones. Rolled back to the newest snapshot, -r destroys
// nothing. A missing snapshot is ErrNotFound.
func (c *Client) RollbackDiscarding(ctx context.Context, snapshot string) error {
	if err := checkSnap(snapshot); err != nil {
		return fmt.Errorf("zfs rollback: %w", err)
	}
	_, err := c.run(ctx, "rollback", "-r", snapshot)
	return err
}

// NewestSnapshot returns the newest snapshot of dataset itself ("pool/ds@snap"),
// by createtxg as Snapshots orders them, or "" when it has none. One
// command, `zfs list -H -t snapshot -d 1 -s createtxg -o name DATASET`,
// that reads only names (zfs-list(8): -H prints no header, -s sorts
// ascending, so the newest is the last line). A missing dataset is
// ErrNotFound.
func (c *Client) NewestSnapshot(ctx context.Context, dataset string) (string, error) {
	if err := checkFS(dataset); err != nil {
		return "", fmt.Errorf("zfs list snapshots: %w", err)
	}
	out, err := c.run(ctx, "list", "-H", "-t", "snapshot", "-d", "1", "-s", "createtxg", "-o", "name", dataset)
	if err != nil {
		return "", err
	}
	newest := ""
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, dataset+"@") {
			newest = line
		}
	}
	return newest, nil
}
