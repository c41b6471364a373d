//go:build !linux && !freebsd

package process

import (
	"fmt"
	"runtime"
)

// identity cannot tell a process from a later one that reuses its PID
// here (only Linux's /proc and FreeBSD's kern.proc.pid sysctl are read), so
// it always fails: New refuses to run rather than signal a stranger.
func identity(pid int) (id string, alive bool, err error) {
	return "", false, fmt.Errorf("process start times are not read on %s", runtime.GOOS)
}
