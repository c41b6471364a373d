//go:build unix

// Package cloexec keeps the descriptors a daemon inherited from reaching
// the processes it starts.
//
// Go opens every descriptor of its own close-on-exec, and os/exec passes a
// child only stdin, stdout, stderr and ExtraFiles. A descriptor the agent
// inherited without close-on-exec (a lock `flock(1)` holds for its
// command, a socket of a service manager) is passed on to every exec all
// the same: to each release the process runtime starts, and to jail(8) and
// the commands it runs. A release that outlives the agent then holds it,
// a lock among them, for as long as it runs.
package cloexec

import (
	"os"
	"strconv"
	"syscall"
)

// maxScan bounds the descriptors scanned where they cannot be listed.
const maxScan = 1 << 16

// Inherited marks every open descriptor above stderr close-on-exec. Call
// it once, early in a daemon's main: it changes the whole process.
func Inherited() {
	// Linux lists the open descriptors; FreeBSD's /dev/fd does only with
	// fdescfs(5) mounted, so there every possible one is marked (marking
	// one that is not open is a no-op, EBADF).
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		for _, e := range ents {
			if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
				syscall.CloseOnExec(fd)
			}
		}
		return
	}
	limit := maxScan
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil && uint64(rl.Cur) < maxScan {
		limit = int(rl.Cur)
	}
	for fd := 3; fd < limit; fd++ {
		syscall.CloseOnExec(fd)
	}
}
