package manifest

import "slices"

// allowParams are the allow.* jail parameters of jail(8) on FreeBSD 14, by
// name without the "allow." prefix: the core ones (set_hostname ... settime,
// routing from 14.3) and the ones kernel modules add (mount.* for the file
// systems, vmm). allow.dying is left out: it is a jail(8) option for dying
// jails, not a permission. Parameters that only FreeBSD 15 knows
// (setaudit, unprivileged_parent_tampering, vmm_ppt) are not accepted yet.
// jail(8) itself still rejects a parameter the running kernel lacks (a module
// that is not loaded), so this list only catches typos early, in CI.
var allowParams = []string{
	"adjtime",
	"chflags",
	"extattr",
	"mlock",
	"mount",
	"mount.devfs",
	"mount.fdescfs",
	"mount.fusefs",
	"mount.linprocfs",
	"mount.linsysfs",
	"mount.nullfs",
	"mount.procfs",
	"mount.tmpfs",
	"mount.zfs",
	"nfsd",
	"quotas",
	"raw_sockets",
	"read_msgbuf",
	"reserved_ports",
	"routing",
	"set_hostname",
	"settime",
	"socket_af",
	"suser",
	"sysvipc",
	"unprivileged_proc_debug",
	"vmm",
}

// AllowParams returns the jail permissions a manifest's allow list may name,
// sorted, without the "allow." prefix.
func AllowParams() []string { return slices.Clone(allowParams) }

func knownAllow(name string) bool {
	_, ok := slices.BinarySearch(allowParams, name)
	return ok
}
