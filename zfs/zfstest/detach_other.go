//go:build !linux

package zfstest

import "errors"

// detachMount is Linux only, like zfs-fuse; Pool never gets here elsewhere.
func detachMount(path string) error {
	return errors.New("umount -l " + path + ": zfstest detaches mounts on Linux only")
}
