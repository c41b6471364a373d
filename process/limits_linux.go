//go:build linux && !(mips || mipsle || mips64 || mips64le)

package process

import (
	"fmt"
	"syscall"
	"unsafe"

	"github.com/jailkeeper/jailkeeper/release"
)

// rlimitNPROC is RLIMIT_NPROC, which package syscall does not export: 6
// in include/uapi/asm-generic/resource.h, which every Linux architecture
// this file builds for uses (MIPS numbers it 8, hence the build tag).
const rlimitNPROC = 6

// rlimit64 is struct rlimit64 of prlimit64(2): two 64-bit values on every
// architecture.
type rlimit64 struct{ Cur, Max uint64 }

// LimitsApplied reports whether Start applies a release's limits on this
// system: memory, maxproc and openfiles become setrlimit(2) limits of
// the app's process on Linux (see applyLimits).
const LimitsApplied = true

// applyLimits sets the release's limits on the process pid, which Start
// has just started, with prlimit(2), soft and hard alike:
//
//   - memory: RLIMIT_DATA, the process's data segment, which Linux 4.7 and
//     later counts as all its private writable memory (heap and anonymous
//     mappings; getrlimit(2)). RLIMIT_AS would also count address space
//     reserved and never used, which Go and Java runtimes reserve in
//     gigabytes; RLIMIT_RSS, the closest to rctl's memoryuse, has had no
//     effect since Linux 2.6. So a process can use at most memory bytes,
//     counted more strictly than rctl counts resident memory.
//   - maxproc: RLIMIT_NPROC. Linux counts every process and thread of the
//     process's real user, not only the release's: in the process
//     runtime all releases run as the agent's user, so this bounds them
//     together with everything else that user runs, and it is not
//     enforced at all for root (CAP_SYS_RESOURCE, CAP_SYS_ADMIN).
//   - openfiles: RLIMIT_NOFILE.
//   - pcpu has no rlimit (RLIMIT_CPU is CPU seconds in total, a different
//     thing), and disk none either (RLIMIT_FSIZE bounds one file): pcpu
//     is not applied by the process runtime; disk is the clone's quota in
//     ZFS mode and not applied in copy mode.
//
// A limit is only ever lowered: where the agent's own hard limit is
// lower than the manifest's (openfiles 100000 under a hard limit of
// 4096), the process keeps the lower one, which is within the manifest's
// bound; raising a hard limit needs CAP_SYS_RESOURCE.
//
// Why after the start and not in the child before exec: os/exec offers no
// hook between fork and exec (SysProcAttr has no rlimits) and the
// alternatives each cost more than they give (a wrapper such as
// prlimit(1) would turn an ETXTBSY of the app into the app's failure; a
// ptraced start is refused by many hosts). cmd.Start returns once the
// app's exec succeeded, so the app runs its first instructions
// unlimited, for as long as this call takes; what it opens or forks in
// that window stays, later opens and forks meet the limits, and its
// children inherit them. A process that is gone already (ESRCH) is no
// error: the caller notices.
func applyLimits(pid int, l release.Limits) error {
	for _, lim := range []struct {
		name     string
		resource int
		value    int64
	}{
		{"memory (RLIMIT_DATA)", syscall.RLIMIT_DATA, l.Memory},
		{"maxproc (RLIMIT_NPROC)", rlimitNPROC, int64(l.MaxProc)},
		{"openfiles (RLIMIT_NOFILE)", syscall.RLIMIT_NOFILE, int64(l.OpenFiles)},
	} {
		if lim.value <= 0 {
			continue
		}
		var old rlimit64
		if err := prlimit(pid, lim.resource, nil, &old); err != nil {
			if err == syscall.ESRCH {
				return nil
			}
			return fmt.Errorf("prlimit %s: %w", lim.name, err)
		}
		v := min(uint64(lim.value), old.Max)
		if err := prlimit(pid, lim.resource, &rlimit64{Cur: v, Max: v}, nil); err != nil {
			if err == syscall.ESRCH {
				return nil
			}
			return fmt.Errorf("prlimit %s %d: %w", lim.name, v, err)
		}
	}
	return nil
}

// prlimit is prlimit64(2), which package syscall does not export.
func prlimit(pid, resource int, newLimit, old *rlimit64) error {
	_, _, errno := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), uintptr(resource),
		uintptr(unsafe.Pointer(newLimit)), uintptr(unsafe.Pointer(old)), 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}
