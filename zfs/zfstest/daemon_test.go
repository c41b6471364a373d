package zfstest

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/internal/testenv"
)

// exclusiveWait bounds how long the test waits in CI for the other test
// processes to stop using the shared daemon.
const exclusiveWait = 15 * time.Minute

// TestHungDaemonIsRestarted stops the shared zfs-fuse with SIGSTOP, which
// makes every zfs and zpool command wait for it as a daemon stuck in a
// FUSE request does, and checks that the harness's check finds it hung,
// kills it with its watchdog, detaches the mounts of the pools it served
// and starts a daemon that answers, which it leaves running.
//
// Killing the daemon breaks every pool on it, so the test runs only while
// it holds the start lock (no process checks or starts the daemon
// meanwhile; a new test process waits on that lock before it touches the
// daemon) and no other process holds a lease (none is between its Pool
// call and its exit). Outside CI it skips when another process holds a
// lease; in CI it waits for them, up to exclusiveWait.
func TestHungDaemonIsRestarted(t *testing.T) {
	testenv.Root(t)
	if runtime.GOOS != "linux" {
		testenv.Need(t, "zfstest runs zfs-fuse, which is Linux only")
	}
	d := daemon{zfsFuse: testenv.Command(t, "zfs-fuse"), zpool: testenv.Command(t, "zpool"), zfs: testenv.Command(t, "zfs")}
	testenv.Command(t, "flock")
	fuse(t)
	takeLease(t)
	unlock := exclusive(t)
	defer unlock()

	if _, err := d.ensure(probeTries); err != nil {
		t.Fatal(err)
	}
	pool, mnt := rawPool(t, d)
	mustRun(t, d.zfs, "create", pool+"/a")
	mounts := poolMounts(t, pool)
	if len(mounts) != 2 {
		t.Fatalf("mounts of %s before the restart = %v, want the pool's and %s/a's", pool, mounts, pool)
	}
	if !strings.HasPrefix(mounts[0], mnt) {
		t.Fatalf("mount %s is not below %s", mounts[0], mnt)
	}

	old := daemonPIDs()
	if len(old) != 1 {
		t.Fatalf("zfs-fuse processes = %v, want one", old)
	}
	if err := syscall.Kill(old[0], syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if alive(old[0]) && comm(old[0]) == "zfs-fuse" {
			_ = syscall.Kill(old[0], syscall.SIGCONT)
		}
	})
	if h, why := probe(d.zfs); h != hung {
		t.Fatalf("probe of a stopped daemon = %v (%s), want hung", h, why)
	}

	// One probe: this daemon is stopped for certain.
	restarted, err := d.ensure(1)
	if err != nil {
		t.Fatalf("ensure: %v", err)
	}
	t.Logf("restarted: %s", restarted)
	if !strings.Contains(restarted, "no answer within") {
		t.Errorf("ensure gave reason %q, want a timed-out probe", restarted)
	}
	if alive(old[0]) && comm(old[0]) == "zfs-fuse" {
		t.Errorf("the stopped zfs-fuse %d still runs", old[0])
	}
	now := daemonPIDs()
	if len(now) != 1 || now[0] == old[0] {
		t.Fatalf("zfs-fuse processes after the restart = %v (old %d), want one new", now, old[0])
	}
	if h, why := probe(d.zfs); h != healthy {
		t.Errorf("new daemon: %s", why)
	}
	if left := poolMounts(t, pool); len(left) != 0 {
		t.Errorf("stale mounts of %s left: %v", pool, left)
	}
	if out := mustRun(t, d.zpool, "list", "-H", "-o", "name"); strings.Contains(string(out), pool) {
		t.Errorf("%s is imported in the new daemon (cachefile=none should prevent it)", pool)
	}
	// The new daemon works: a pool comes and goes.
	p2, _ := rawPool(t, d)
	mustRun(t, d.zfs, "create", p2+"/b")
	mustRun(t, d.zpool, "destroy", p2)
}

// exclusive takes the start lock at a moment when no other process holds
// a lease, and returns its release. Outside CI it skips the test when
// others hold one; in CI it waits for them.
func exclusive(t *testing.T) (unlock func()) {
	t.Helper()
	deadline := time.Now().Add(exclusiveWait)
	for {
		unlock := lockStart(t)
		others, err := otherLeases()
		if err != nil {
			unlock()
			t.Fatal(err)
		}
		if len(others) == 0 {
			return unlock
		}
		unlock()
		if !testenv.CI() {
			t.Skipf("skipped: test processes %v use the shared zfs-fuse (leases on %s/lease); this test kills that daemon, so it runs only when no other process uses it (in CI it waits for them)", others, stateDir)
		}
		if time.Now().After(deadline) {
			t.Fatalf("test processes %v still use the shared zfs-fuse after %s", others, exclusiveWait)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// otherLeases returns the pids, other than this process's, that hold a
// flock on the lease file, from /proc/locks:
//
//	N: FLOCK  ADVISORY  READ  PID MAJ:MIN:INODE 0 EOF
//
// (held; a waiting request has "->" after "N:"). The pid is the process
// that took the lock, which may have passed the descriptor on: any pid
// but this one counts.
func otherLeases() ([]int, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(stateDir, "lease"), &st); err != nil {
		return nil, err
	}
	dev := uint64(st.Dev)
	major := (dev>>8)&0xfff | (dev>>32)&^uint64(0xfff)
	minor := dev&0xff | (dev>>12)&^uint64(0xff)
	id := fmt.Sprintf("%02x:%02x:%d", major, minor, st.Ino)
	b, err := os.ReadFile("/proc/locks")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || f[1] != "FLOCK" || f[5] != id {
			continue
		}
		pid, err := strconv.Atoi(f[4])
		if err == nil && pid != os.Getpid() {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// rawPool makes a pool as Pool does, without Pool's daemon check (the
// caller holds the start lock) and with a cleanup that destroys it only
// while it is imported.
func rawPool(t *testing.T, d daemon) (name, mnt string) {
	t.Helper()
	name = fmt.Sprintf("%s%dx%d", poolPrefix, os.Getpid(), poolSeq.Add(1))
	dir := t.TempDir()
	vdev := filepath.Join(dir, "vdev")
	f, err := os.Create(vdev)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(vdevSize); err != nil {
		t.Fatal(err)
	}
	f.Close()
	mnt = filepath.Join(dir, "mnt")
	mustRun(t, d.zpool, "create", "-o", "cachefile=none", "-m", mnt, name, vdev)
	t.Cleanup(func() {
		if out, err := runTimed(d.zpool, "list", "-H", "-o", "name", name); err == nil && strings.TrimSpace(string(out)) == name {
			destroyPool(t, d.zpool, name)
			return
		}
		// Not imported: detach what is left of its mounts, and only those
		// (other processes may use the daemon by now).
		ms, _ := fuseMounts()
		var own []mount
		for _, m := range ms {
			if m.pool == name {
				own = append(own, m)
			}
		}
		if err := detach(own, map[string]bool{}); err != nil {
			t.Error(err)
		}
	})
	return name, mnt
}

// poolMounts returns the mount points of pool's datasets.
func poolMounts(t *testing.T, pool string) []string {
	t.Helper()
	ms, err := fuseMounts()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range ms {
		if m.pool == pool {
			out = append(out, m.path)
		}
	}
	return out
}

func TestUnescapeMount(t *testing.T) {
	for in, want := range map[string]string{
		`/tmp/a\040b`: "/tmp/a b",
		`/x\134y`:     `/x\y`,
		`/plain`:      "/plain",
		`/end\04`:     `/end\04`,
	} {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
}
