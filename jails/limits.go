package jails

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jailkeeper/jailkeeper/internal/command"
	"github.com/jailkeeper/jailkeeper/release"
)

// ErrRacct: the kernel does not account resources, so rctl(8) cannot
// limit a release: kern.racct.enable is 0 (GENERIC has options RACCT and
// RCTL with RACCT_DEFAULT_TO_DISABLED; rctl(4)) or the kernel lacks them. Set
// kern.racct.enable=1 in /boot/loader.conf and reboot (`jailkeeper host
// init` says so). It wraps release.ErrHostBusy: the host's fault, never the
// release's, so the release is not marked failed and the next pass tries
// again.
var ErrRacct = fmt.Errorf("resource limits need kern.racct.enable=1 in /boot/loader.conf and a reboot: %w", release.ErrHostBusy)

// rctlRules are the rctl(8) rules of a release's limits, in the order
// memoryuse, pcpu, maxproc, openfiles: `jail:<name>:<resource>:deny=<amount>`.
// rctl(8), RESOURCES: memoryuse is the resident set size in bytes, pcpu
// the %CPU in percent of one CPU, maxproc the number of processes,
// openfiles the file descriptor table size. rctl(8): "limiting RSS may
// kill the machine due to thrashing"; that is the operator's call.
// Amounts are written as plain
// numbers, never with rctl's expand_number(3) suffixes, so what runs is
// exactly what the manifest's size parsed to. deny on memoryuse and pcpu
// is enforced differently from the other resources (RSS is reclaimed by
// the pageout daemon, %CPU is throttled: rctl_rule_add in
// sys/kern/kern_rctl.c accepts deny for exactly these two non-deniable
// resources), which is what a limit on them means. Disk is not an rctl
// resource: it is the clone's ZFS quota (see create).
func rctlRules(name string, l release.Limits) []string {
	var rules []string
	add := func(resource string, amount int64) {
		if amount > 0 {
			rules = append(rules, "jail:"+name+":"+resource+":deny="+strconv.FormatInt(amount, 10))
		}
	}
	add("memoryuse", l.Memory)
	add("pcpu", int64(l.PCPU))
	add("maxproc", int64(l.MaxProc))
	add("openfiles", int64(l.OpenFiles))
	return rules
}

// addRules adds the release's rctl rules, all in one `rctl -a`, before
// its jail is created. A jail rule names the jail, not its JID: the
// kernel finds or creates the prison_racct of that name when the rule is
// added (prison_racct_find in sys/kern/kern_jail.c) and a jail created
// with that name attaches to it (prison_racct_attach), so the rules are in
// force before /etc/rc starts anything in the jail. Adding a rule again
// replaces the one that differs only in amount (rctl_rule_add), so this is
// idempotent. rctl prints nothing when it succeeds (usr.bin/rctl/rctl.c).
func (f *FreeBSD) addRules(ctx context.Context, name string, l release.Limits) error {
	rules := rctlRules(name, l)
	if len(rules) == 0 {
		return nil
	}
	if _, err := f.run(ctx, append([]string{"rctl", "-a"}, rules...)...); err != nil {
		if racctOff(err) {
			return fmt.Errorf("rctl: %w: %w", ErrRacct, err)
		}
		return fmt.Errorf("add resource limits: %w", err)
	}
	return nil
}

// removeRules removes every rctl rule of the release's jail with `rctl -r
// jail:<name>`, when it has rctl limits. The rules outlive the jail (they
// hold its prison_racct), so the stop removes them. No rule to remove is
// no error: rctl_rule_remove returns ESRCH, which rctl(8) prints as
// "rctl: failed to remove rule 'jail:<name>': No such process" with exit
// status 1 (warn(3) in usr.bin/rctl/rctl.c remove_rule). Neither is a
// kernel without racct: it has no rules to remove.
func (f *FreeBSD) removeRules(ctx context.Context, name string, l release.Limits) error {
	if len(rctlRules(name, l)) == 0 {
		return nil
	}
	filter := "jail:" + name
	if _, err := f.run(ctx, "rctl", "-r", filter); err != nil {
		if racctOff(err) || strings.Contains(command.Stderr(err), "'"+filter+"': No such process") {
			return nil
		}
		return fmt.Errorf("remove resource limits: %w", err)
	}
	return nil
}

// racctOff reports whether rctl failed because the kernel accounts no
// resources: rctl(8)'s enosys() prints one of these two texts with exit
// status 1 when the rctl system calls return ENOSYS (usr.bin/rctl/rctl.c).
func racctOff(err error) bool {
	s := command.Stderr(err)
	return strings.Contains(s, "RACCT/RCTL present, but disabled") ||
		strings.Contains(s, "RACCT/RCTL support not present in kernel")
}

// limitProps are the dataset properties of a release's limits, set by
// its clone: jailkeeper:limits (read back at start for the rctl rules) and
// quota, the disk limit. A ZFS quota bounds the space a dataset and its
// descendants use (zfsprops(7), quota); on a clone it counts what the
// release writes, not the blocks it shares with the template snapshot
// (zfsprops(7), used and referenced). None when there are no limits.
func limitProps(l release.Limits) map[string]string {
	props := map[string]string{}
	if !l.IsZero() {
		props[release.PropLimits] = l.String()
	}
	if l.Disk > 0 {
		props["quota"] = strconv.FormatInt(l.Disk, 10)
	}
	return props
}

// checkLimits refuses limits that no rule could carry.
func checkLimits(l release.Limits) error {
	if l.Memory < 0 || l.PCPU < 0 || l.MaxProc < 0 || l.OpenFiles < 0 || l.Disk < 0 {
		return errors.New("limits: negative value")
	}
	return nil
}
