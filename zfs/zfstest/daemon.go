package zfstest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The daemon check. zfs(8) talks to zfs-fuse over a unix socket: a dead
// daemon makes it fail at once ("Please make sure that the zfs-fuse daemon
// is running."), a hung one (stopped, or stuck in a FUSE request) makes it
// wait forever. So the check is one `zfs list -H -o name` bounded by
// probeTimeout, tried up to probeTries times before the daemon counts as
// hung: a busy machine may be slow once, a hung daemon is slow every time.
var (
	probeTimeout = 5 * time.Second
	probeTries   = 3
	// startTimeout bounds the wait for a new daemon's first answer.
	startTimeout = 30 * time.Second
	// stopTimeout bounds the wait for killed daemons to be gone.
	stopTimeout = 10 * time.Second
)

type health int

const (
	healthy health = iota
	dead
	hung
)

// deadText is what zfs-fuse's zfs(8) prints when it cannot reach the daemon.
const deadText = "zfs-fuse daemon is running"

// probe runs `zfs list -H -o name` once, bounded by probeTimeout, and
// says whether the daemon answered, and if not, why.
func probe(realZFS string) (health, string) {
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, realZFS, "list", "-H", "-o", "name")
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	switch {
	case err == nil:
		return healthy, ""
	case ctx.Err() != nil:
		return hung, fmt.Sprintf("zfs list -H -o name: no answer within %s", probeTimeout)
	case bytes.Contains(out, []byte(deadText)) || len(daemonPIDs()) == 0:
		return dead, fmt.Sprintf("zfs list -H -o name: %v: %s", err, bytes.TrimSpace(out))
	}
	// The daemon answered with an error of its own (a damaged pool of
	// someone else's test, say): it is alive, and others may be using it.
	return healthy, ""
}

// check probes up to tries times while the probe times out.
func check(realZFS string, tries int) (health, string) {
	for i := 1; ; i++ {
		h, why := probe(realZFS)
		if h != hung || i >= tries {
			if h == hung {
				why = fmt.Sprintf("%s, %d times in a row", why, i)
			}
			return h, why
		}
	}
}

// daemon is what the harness needs to check and start zfs-fuse.
type daemon struct {
	zfsFuse, zpool, zfs string // absolute paths of the real programs
}

// ensure makes sure a zfs-fuse daemon answers. The caller holds the start
// lock. A dead or hung daemon (check with tries probes) is killed with its
// watchdog, the FUSE mounts of this package's pools are detached (the
// daemon that served them is gone) and a new daemon is started through
// the watchdog. Then the mounts of this package's pools that are no longer
// imported are detached too. It returns why it restarted the daemon, or
// "" when it answered.
func (d daemon) ensure(tries int) (restarted string, err error) {
	h, why := check(d.zfs, tries)
	if h != healthy {
		if err := stopDaemons(); err != nil {
			return why, fmt.Errorf("restart zfs-fuse (%s): %w", why, err)
		}
		if err := unmountStale(map[string]bool{}); err != nil {
			return why, fmt.Errorf("restart zfs-fuse (%s): %w", why, err)
		}
		if err := d.start(); err != nil {
			return why, fmt.Errorf("restart zfs-fuse (%s): %w", why, err)
		}
	}
	// Mounts first, then pools: a mount seen before its pool's import
	// cannot exist, so a live pool's mount is never taken for stale.
	mounts, err := fuseMounts()
	if err != nil {
		return why, err
	}
	out, err := runTimed(d.zpool, "list", "-H", "-o", "name")
	if err != nil {
		return why, err
	}
	imported := map[string]bool{}
	for _, name := range strings.Fields(string(out)) {
		imported[name] = true
	}
	return why, detach(mounts, imported)
}

// start writes the watchdog script and starts it in its own session; the
// watchdog starts zfs-fuse. It waits until the daemon answers.
func (d daemon) start() error {
	script := filepath.Join(stateDir, "zfs-fuse-watchdog.sh")
	// A watchdog of an earlier run may still be reading the old script:
	// replace the file, never rewrite it in place.
	tmp := script + ".tmp"
	if err := os.WriteFile(tmp, []byte(watchdogScript), 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, script); err != nil {
		return err
	}
	log := filepath.Join(stateDir, "zfs-fuse.log")
	cmd := exec.Command("sh", script, filepath.Join(stateDir, "lease"), log, d.zfsFuse)
	cmd.Dir = "/"
	// Its own session: it outlives this process and stops the daemon
	// after the last test process has gone.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start zfs-fuse watchdog: %w", err)
	}
	_ = cmd.Process.Release()
	// A readiness wait, not an assertion.
	deadline := time.Now().Add(startTimeout)
	for {
		h, why := probe(d.zfs)
		if h == healthy {
			return nil
		}
		if time.Now().After(deadline) {
			logText, _ := os.ReadFile(log)
			return fmt.Errorf("zfs-fuse did not answer within %s (%s); %s:\n%s", startTimeout, why, log, logText)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// daemonPIDs returns the live zfs-fuse processes.
func daemonPIDs() []int {
	var pids []int
	for _, pid := range allPIDs() {
		if comm(pid) == "zfs-fuse" && alive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// watchdogPIDs returns the live watchdog shells (of any run).
func watchdogPIDs() []int {
	var pids []int
	for _, pid := range allPIDs() {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || !alive(pid) {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) > 1 && filepath.Base(args[0]) == "sh" && filepath.Base(args[1]) == "zfs-fuse-watchdog.sh" {
			pids = append(pids, pid)
		}
	}
	return pids
}

// stopDaemons kills every zfs-fuse and every watchdog shell with its
// process group (the watchdog's session: the shell, its flock and its
// daemon), with SIGKILL, which also ends a stopped process, and waits
// until they are gone. Only one zfs-fuse can run on a machine, so any
// that is left is the one that did not answer.
func stopDaemons() error {
	for _, pid := range watchdogPIDs() {
		if pgid, err := syscall.Getpgid(pid); err == nil && pgid == pid {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		} else {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	pids := daemonPIDs()
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	deadline := time.Now().Add(stopTimeout)
	for {
		left := daemonPIDs()
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("zfs-fuse %v still running %s after SIGKILL", left, stopTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func allPIDs() []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

func comm(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(b))
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...: comm may hold blanks and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	state := b[i+2]
	return state != 'Z' && state != 'X'
}

// mount is one FUSE mount of a dataset of a pool this package made.
type mount struct {
	pool, dataset, path string
}

// fuseMounts returns zfs-fuse's mounts (type fuse.zfs, source the dataset
// name) of pools named by this package, from /proc/self/mountinfo.
func fuseMounts() ([]mount, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var out []mount
	for _, line := range strings.Split(string(b), "\n") {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - TYPE SOURCE SUPEROPTS
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(g) < 2 || (g[0] != "fuse" && !strings.HasPrefix(g[0], "fuse.")) {
			continue
		}
		pool, _, _ := strings.Cut(g[1], "/")
		if !poolRE.MatchString(pool) {
			continue
		}
		out = append(out, mount{pool: pool, dataset: g[1], path: unescapeMount(f[4])})
	}
	return out, nil
}

// unescapeMount undoes the octal escapes of mountinfo (\040 for a blank,
// \011, \012, \134).
func unescapeMount(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// unmountStale detaches the mounts of this package's pools that are not
// in imported.
func unmountStale(imported map[string]bool) error {
	mounts, err := fuseMounts()
	if err != nil {
		return err
	}
	return detach(mounts, imported)
}

// detach lazily unmounts (umount2 MNT_DETACH, as umount -l) the mounts
// whose pool is not imported, deepest first. The syscall, not umount(8):
// it does not stat the mount point, which would hang on a hung daemon.
func detach(mounts []mount, imported map[string]bool) error {
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i].path) > len(mounts[j].path) })
	var errs []error
	for _, m := range mounts {
		if imported[m.pool] {
			continue
		}
		err := detachMount(m.path)
		// EINVAL: no longer a mount point (a parent's detach took it).
		if err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("umount -l %s (stale %s): %w", m.path, m.dataset, err))
		}
	}
	return errors.Join(errs...)
}

// runTimed runs a harness command bounded by CommandTimeout and returns
// its stdout; an error names the command and says when it timed out.
func runTimed(name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), CommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		argv := strings.Join(append([]string{name}, args...), " ")
		if ctx.Err() != nil {
			return out, fmt.Errorf("%s: no answer within %s: %w", argv, CommandTimeout, err)
		}
		return out, fmt.Errorf("%s: %w: %s", argv, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}
