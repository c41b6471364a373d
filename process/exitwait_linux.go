package process

import (
	"os"

	"golang.org/x/sys/unix"
)

// awaitExit returns once process pid, a child of this process, has
// exited, without holding an OS thread while it waits: a pidfd becomes
// readable when its process terminates (pidfd_open(2)), and the Go
// netpoller waits for that. The reaper then calls Wait, which returns at
// once. A goroutine blocked in Wait itself holds a thread in waitid(2):
// one per running release, 1,000 threads and about 15 MB of RSS at
// 1,000 services (issue 11). Where pidfd_open fails (a kernel before
// 5.3, the process gone already) it returns at once, and Wait blocks as
// before.
func awaitExit(pid int) {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return
	}
	f := os.NewFile(uintptr(fd), "pidfd")
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	waited := false
	_ = rc.Read(func(uintptr) bool {
		// First call: ask the poller to wait until readable; second
		// call: it is.
		if !waited {
			waited = true
			return false
		}
		return true
	})
}
