//go:build !linux

package jails

import (
	"errors"
	"io/fs"
	"syscall"
)

// processIdentity has no start time off Linux: it reports pid alive when
// kill(pid, 0) finds it (EPERM: it exists, another user's) and it still leads
// its own process group, as the session a release runs in does (kill(2),
// getpgid(2)). A missing process is an error wrapping fs.ErrNotExist.
func processIdentity(pid int) (id string, alive bool, err error) {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		if errors.Is(err, syscall.ESRCH) {
			return "", false, fs.ErrNotExist
		}
		return "", false, err
	}
	pgid, err := syscall.Getpgid(pid)
	if err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return "", false, fs.ErrNotExist
		}
		return "", false, err
	}
	return "", pgid == pid, nil
}
