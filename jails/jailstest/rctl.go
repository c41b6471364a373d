package jailstest

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// rctlState is the host's RCTL database: the jail rules rctl(8) added,
// and whether the kernel accounts resources at all.
type rctlState struct {
	// off: kern.racct.enable=0 (SetRacct).
	off bool
	// rules by jail name, each "jail:NAME:RESOURCE:ACTION=AMOUNT".
	rules map[string][]string
}

// SetRacct sets kern.racct.enable: with false, every rctl command fails
// as on a GENERIC kernel booted without kern.racct.enable=1 in
// loader.conf. The default is true.
func (h *Host) SetRacct(on bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.rctl.off = !on
}

// Rules returns the rctl rules of the jail called name, in the order they
// were added.
func (h *Host) Rules(name string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.rctl.rules[name])
}

// rctlRuleRE is a jail rule with an action and a plain amount, the only
// form the fake models.
var rctlRuleRE = regexp.MustCompile(`^jail:([^:]+):([a-z]+):([a-z]+)=([0-9]+)$`)

// rctlResources are rctl(8)'s RESOURCES that the fake knows.
var rctlResources = []string{"cputime", "datasize", "stacksize", "coredumpsize", "memoryuse", "memorylocked",
	"maxproc", "openfiles", "vmemoryuse", "pseudoterminals", "swapuse", "nthr", "msgqqueued", "msgqsize",
	"nmsgq", "nsem", "nsemop", "nshm", "shmsize", "wallclock", "pcpu", "readbps", "writebps", "readiops", "writeiops"}

// rctlCmd answers the forms the runtime uses:
//
//	rctl -a jail:NAME:RESOURCE:deny=AMOUNT ...
//	rctl -r jail:NAME
//
// DERIVED from usr.bin/rctl/rctl.c and sys/kern/kern_rctl.c (no rctl
// output was captured): both print nothing when they succeed; each
// argument that fails prints "rctl: failed to add rule 'RULE': ERROR" or
// "rctl: failed to remove rule 'FILTER': ERROR" (warn(3)) and the exit
// status is the number of arguments that failed (cumulated_error); a
// filter that matches no rule fails with ESRCH, "No such process"
// (rctl_rule_remove). With racct off the first argument ends the command
// with exit 1 and "rctl: RACCT/RCTL present, but disabled; enable using
// kern.racct.enable=1 tunable" (enosys). Adding a deny rule replaces the
// one of the same subject and resource that differs only in amount
// (rctl_rule_add). An unknown resource or action is EINVAL
// (rctl_string_to_rule: str2value).
func (h *Host) rctlCmd(argv, args []string) result {
	if len(args) < 2 || (args[0] != "-a" && args[0] != "-r") {
		return unsupported(argv, "want -a RULE... or -r jail:NAME")
	}
	if h.rctl.off {
		return fail("rctl: RACCT/RCTL present, but disabled; enable using kern.racct.enable=1 tunable\n")
	}
	if h.rctl.rules == nil {
		h.rctl.rules = map[string][]string{}
	}
	var stderr strings.Builder
	failed := 0
	for _, a := range args[1:] {
		if args[0] == "-r" {
			name, ok := strings.CutPrefix(a, "jail:")
			if !ok || name == "" || strings.Contains(name, ":") {
				return unsupported(argv, "filter "+a)
			}
			if len(h.rctl.rules[name]) == 0 {
				fmt.Fprintf(&stderr, "rctl: failed to remove rule '%s': No such process\n", a)
				failed++
				continue
			}
			delete(h.rctl.rules, name)
			continue
		}
		m := rctlRuleRE.FindStringSubmatch(a)
		if m == nil {
			return unsupported(argv, "rule "+a)
		}
		if !slices.Contains(rctlResources, m[2]) || m[3] != "deny" {
			fmt.Fprintf(&stderr, "rctl: failed to add rule '%s': Invalid argument\n", a)
			failed++
			continue
		}
		prefix := "jail:" + m[1] + ":" + m[2] + ":deny="
		rs := slices.DeleteFunc(h.rctl.rules[m[1]], func(r string) bool { return strings.HasPrefix(r, prefix) })
		h.rctl.rules[m[1]] = append(rs, a)
	}
	if failed > 0 {
		return result{stderr: stderr.String(), exit: failed}
	}
	return ok("")
}
