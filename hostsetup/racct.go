package hostsetup

import (
	"errors"
	"fmt"
	"strings"

	"github.com/jailkeeper/jailkeeper/internal/command"
)

// RacctLine is the loader.conf(5) line that turns resource accounting on.
// kern.racct.enable is a loader tunable (rctl(4), LOADER TUNABLES: it
// defaults to 1 unless the kernel has options RACCT_DEFAULT_TO_DISABLED,
// which GENERIC has), read at boot (CTLFLAG_RDTUN in
// sys/kern/kern_racct.c), so it takes a reboot: sysctl(8) cannot set it on
// a running system.
const RacctLine = "kern.racct.enable=1"

// checkRacct tells whether rctl(8) limits will work: it reads
// `sysctl -n kern.racct.enable` and, when it is 0, prints the line to add
// to /boot/loader.conf and that a reboot is needed. It never edits
// loader.conf: that file decides how the host boots, and a tunable takes
// effect only at the next boot anyway. Limits are needed only by releases
// whose manifest (or the agent's defaults.limits) sets memory, pcpu,
// maxproc or openfiles; the check runs either way, changes nothing and
// never fails host init. Without racct such a release does not start
// (jails.ErrRacct, retried each pass); releases without limits, and the
// disk limit (a ZFS quota), are not affected.
func checkRacct(h *hostSteps) {
	h.note("resource limits: rctl(8) needs kern.racct.enable=1 (only for manifests or defaults.limits with memory, pcpu, maxproc or openfiles)")
	out, err := h.check("sysctl", "-n", "kern.racct.enable")
	v := strings.TrimSpace(string(out))
	switch {
	case errors.Is(err, errDryRun):
		h.note("if it prints 0: add %s to /boot/loader.conf and reboot (host init does not edit loader.conf)", RacctLine)
		return
	case err != nil && strings.Contains(command.Stderr(err), "unknown oid"):
		// sysctl(8) on a name the kernel lacks: "sysctl: unknown oid
		// 'kern.racct.enable'" (sbin/sysctl/sysctl.c, parse), exit 1: a
		// kernel built without options RACCT.
		h.note("warning: this kernel has no RACCT (no kern.racct.enable): releases with memory, pcpu, maxproc or openfiles limits cannot start; build a kernel with options RACCT and RCTL, or leave those limits out")
		return
	case err != nil:
		h.note("warning: sysctl -n kern.racct.enable: %v; releases with limits need it to be 1", err)
		return
	case v == "1":
		h.note("ok: kern.racct.enable=1")
		return
	case v != "0":
		h.note("warning: sysctl -n kern.racct.enable printed %q, not 0 or 1; releases with limits need it to be 1", v)
		return
	}
	h.note("kern.racct.enable=%s: resource accounting is off, so releases with memory, pcpu, maxproc or", v)
	h.note("openfiles limits do not start (the agent retries them; releases without limits run).")
	h.note("Add this line to /boot/loader.conf and reboot; host init does not edit loader.conf:")
	fmt.Fprintf(h.out, "#\n#   %s\n#\n", RacctLine)
}
