package zfstest

import "syscall"

// detachMount is umount -l: umount2(2) with MNT_DETACH.
func detachMount(path string) error { return syscall.Unmount(path, syscall.MNT_DETACH) }
