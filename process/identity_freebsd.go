package process

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"strconv"

	"golang.org/x/sys/unix"
)

// struct kinfo_proc as the kern.proc.pid sysctl returns it (sysctl(3),
// KERN_PROC_PID; sys/sys/user.h). Its layout never moves: new fields take
// the spare arrays, and ki_structsize tells the size. These offsets are those
// of the 64-bit architectures (amd64, arm64, riscv64, powerpc64), where
// KINFO_PROC_SIZE is 1088; elsewhere the size differs and identity
// refuses rather than guess.
const (
	kinfoProcSize     = 1088
	kinfoOffStructsz  = 0   // int ki_structsize
	kinfoOffPid       = 72  // pid_t ki_pid, after two ints and eight pointers
	kinfoOffStartSec  = 336 // struct timeval ki_start: time_t tv_sec
	kinfoOffStartUsec = 344 // suseconds_t tv_usec (a long)
	kinfoOffStat      = 388 // char ki_stat
	kinfoStatZombie   = 5   // SZOMB, sys/sys/proc.h
)

// identity returns when pid started, in microseconds since boot, and
// whether it is alive (not a zombie). A missing process is an error wrapping
// fs.ErrNotExist.
//
// The kernel reports ki_start as the process's start on the uptime clock plus
// kern.boottime (fill_kinfo_proc in sys/kern/kern_proc.c), and moves
// kern.boottime whenever the clock is stepped (tc_setclock in
// sys/kern/kern_tc.c: "Step our concept of UTC. This is done by modifying our
// estimate of when we booted."). So ki_start itself, and kern.boottime as a
// boot identity, change with a clock step (ntpd, a VM resumed), which would
// make every running release look like a stranger. ki_start minus
// kern.boottime does not: it is fixed for the life of the process, and after
// a reboot a process has the same one only if it has the same PID and started
// in the same microsecond after boot. FreeBSD has no boot id to add.
func identity(pid int) (id string, alive bool, err error) {
	// Read kern.boottime around the process so that a clock step in
	// between cannot produce a start time that is neither the old nor the
	// new one.
	for range 3 {
		before, err := unix.SysctlTimeval("kern.boottime")
		if err != nil {
			return "", false, fmt.Errorf("sysctl kern.boottime: %w", err)
		}
		kp, err := unix.SysctlRaw("kern.proc.pid", pid)
		if err != nil {
			if errors.Is(err, unix.ESRCH) {
				return "", false, fs.ErrNotExist
			}
			return "", false, fmt.Errorf("sysctl kern.proc.pid.%d: %w", pid, err)
		}
		after, err := unix.SysctlTimeval("kern.boottime")
		if err != nil {
			return "", false, fmt.Errorf("sysctl kern.boottime: %w", err)
		}
		if *before != *after {
			continue
		}
		start, alive, err := parseKinfo(kp, pid)
		if err != nil {
			return "", false, err
		}
		boot := int64(after.Sec)*1e6 + int64(after.Usec)
		return strconv.FormatInt(start-boot, 10), alive, nil
	}
	return "", false, errors.New("kern.boottime keeps changing: the clock is being stepped")
}

// parseKinfo reads ki_start (in microseconds since the epoch) and
// ki_stat from a struct kinfo_proc that must describe pid.
func parseKinfo(b []byte, pid int) (start int64, alive bool, err error) {
	if len(b) == 0 {
		// An exited process the kernel no longer lists.
		return 0, false, fs.ErrNotExist
	}
	if len(b) < kinfoProcSize {
		return 0, false, fmt.Errorf("kinfo_proc of %d bytes, want %d: not a 64-bit FreeBSD", len(b), kinfoProcSize)
	}
	ne := binary.NativeEndian
	if n := int32(ne.Uint32(b[kinfoOffStructsz:])); n != kinfoProcSize {
		return 0, false, fmt.Errorf("kinfo_proc ki_structsize %d, want %d: not a 64-bit FreeBSD", n, kinfoProcSize)
	}
	if got := int32(ne.Uint32(b[kinfoOffPid:])); int(got) != pid {
		return 0, false, fmt.Errorf("kinfo_proc ki_pid %d, want %d: unexpected layout", got, pid)
	}
	sec := int64(ne.Uint64(b[kinfoOffStartSec:]))
	usec := int64(ne.Uint64(b[kinfoOffStartUsec:]))
	return sec*1e6 + usec, b[kinfoOffStat] != kinfoStatZombie, nil
}
