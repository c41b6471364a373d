package zfstest

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/internal/testenv"
)

var (
	//go:embed testdata/zfs-compat.sh
	compatScript string
	//go:embed testdata/zfs-fuse-watchdog.sh
	watchdogScript string
)

// stateDir holds the lease and start lock shared by all test processes
// on the machine, the watchdog script and the daemon's log.
const stateDir = "/run/jailkeeper-zfstest"

// vdevSize is the size of the sparse file each pool lives on; zpool
// refuses files under 64 MiB.
const vdevSize = 256 << 20

// poolPrefix starts every pool name this package makes: jkt<pid>x<n>.
const poolPrefix = "jkt"

var (
	poolSeq atomic.Int64
	poolRE  = regexp.MustCompile(`^` + poolPrefix + `([0-9]+)x[0-9]+$`)

	leaseOnce sync.Once
	leaseFile *os.File // held open, with a shared flock, until the process exits
	leaseErr  error
)

// Pool creates a ZFS pool for the test on a sparse file in a temp dir,
// mounted at <tempdir>/mnt, and returns its name (unique per test,
// "jkt<pid>x<n>"). It destroys the pool when the test ends. It starts the
// zfs-fuse daemon if none is running, and puts the compatibility wrapper
// (testdata/zfs-compat.sh) first on PATH as `zfs` for the rest of the test.
// It needs root, Linux, zfs-fuse, zpool, zfs, flock and /dev/fuse.
func Pool(t testing.TB) string {
	t.Helper()
	testenv.Root(t)
	if runtime.GOOS != "linux" {
		testenv.Need(t, "zfstest runs zfs-fuse, which is Linux only")
	}
	zfsFuse := testenv.Command(t, "zfs-fuse")
	zpool := testenv.Command(t, "zpool")
	realZFS := testenv.Command(t, "zfs")
	testenv.Command(t, "flock")
	fuse(t)
	startDaemon(t, daemon{zfsFuse: zfsFuse, zpool: zpool, zfs: realZFS})

	name := fmt.Sprintf("%s%dx%d", poolPrefix, os.Getpid(), poolSeq.Add(1))
	dir := t.TempDir()
	vdev := filepath.Join(dir, "vdev")
	f, err := os.Create(vdev)
	if err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(f.Truncate(vdevSize), f.Close()); err != nil {
		t.Fatal(err)
	}
	// cachefile=none: a restarted daemon does not import the pool again.
	mustRun(t, zpool, "create", "-o", "cachefile=none", "-m", filepath.Join(dir, "mnt"), name, vdev)
	t.Cleanup(func() { destroyPool(t, zpool, name) })

	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	script := strings.ReplaceAll(compatScript, "@REAL_ZFS@", realZFS)
	if err := os.WriteFile(filepath.Join(bin, "zfs"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	return name
}

// fuse makes sure /dev/fuse exists, loading the module if needed.
func fuse(t testing.TB) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err == nil {
		return
	}
	out, err := exec.Command("modprobe", "fuse").CombinedOutput()
	if _, serr := os.Stat("/dev/fuse"); serr != nil {
		testenv.Need(t, "/dev/fuse missing (modprobe fuse: %v %s)", err, bytes.TrimSpace(out))
	}
}

// startDaemon takes this process's lease and, under the start lock, makes
// sure a zfs-fuse daemon answers: it starts one through the watchdog when
// none runs, and restarts a dead or hung one (daemon.ensure). It also
// destroys pools left by test processes that died without cleaning up.
func startDaemon(t testing.TB, d daemon) {
	t.Helper()
	takeLease(t)
	unlock := lockStart(t)
	defer unlock()
	restarted, err := d.ensure(probeTries)
	if restarted != "" {
		t.Logf("zfstest: restarted zfs-fuse: %s", restarted)
	}
	if err != nil {
		t.Fatalf("zfstest: %v", err)
	}
	removeStalePools(t, d.zpool)
}

// takeLease takes this process's shared lease once; it is held until the
// process exits.
func takeLease(t testing.TB) {
	t.Helper()
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	lease := filepath.Join(stateDir, "lease")
	leaseOnce.Do(func() {
		f, err := os.OpenFile(lease, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			leaseErr = err
			return
		}
		// Blocks while a watchdog holds it exclusively to stop its daemon.
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH); err != nil {
			f.Close()
			leaseErr = fmt.Errorf("flock %s: %w", lease, err)
			return
		}
		leaseFile = f
	})
	if leaseFile == nil {
		t.Fatalf("zfstest lease: %v", leaseErr)
	}
}

// lockStart takes the start lock, which serialises checking, starting and
// restarting the daemon, and returns its release.
func lockStart(t testing.TB) (unlock func()) {
	t.Helper()
	lock, err := os.OpenFile(filepath.Join(stateDir, "start.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		lock.Close()
		t.Fatalf("flock start.lock: %v", err)
	}
	return func() { lock.Close() } // closing drops the flock
}

// removeStalePools destroys pools named by this package whose process is
// gone (a test killed before its cleanup ran).
func removeStalePools(t testing.TB, zpool string) {
	t.Helper()
	out, err := runTimed(zpool, "list", "-H", "-o", "name")
	if err != nil {
		t.Fatalf("zfstest: %v", err)
	}
	for _, name := range strings.Fields(string(out)) {
		m := poolRE.FindStringSubmatch(name)
		if m == nil {
			continue
		}
		pid, err := strconv.Atoi(m[1])
		if err != nil || pid == os.Getpid() || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue
		}
		if _, err := runTimed(zpool, "destroy", "-f", name); err != nil {
			t.Logf("zfstest: destroying stale pool: %v", err)
		}
	}
}

// destroyPool destroys the pool, retrying while a mount is busy, then with
// -f. Failing to destroy it fails the test.
func destroyPool(t testing.TB, zpool, name string) {
	t.Helper()
	var err error
	for i := 0; i < 10; i++ {
		if _, err = runTimed(zpool, "destroy", name); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, err2 := runTimed(zpool, "destroy", "-f", name); err2 != nil {
		t.Errorf("zfstest: %v; with -f: %v", err, err2)
	}
}

// mustRun runs a command bounded by CommandTimeout and fails the test,
// naming the command, when it fails or times out.
func mustRun(t testing.TB, name string, args ...string) []byte {
	t.Helper()
	out, err := runTimed(name, args...)
	if err != nil {
		t.Fatalf("zfstest: %v", err)
	}
	return out
}

// Busy makes dataset busy the way a jail's process does: it starts a
// process whose working directory is the dataset's mountpoint, so that
// unmounting it fails. release stops that process; it is also run when the
// test ends and may be called more than once. zfs-fuse may report the
// dataset busy for a moment after release.
func Busy(t testing.TB, dataset string) (release func()) {
	t.Helper()
	out := mustRun(t, "zfs", "get", "-H", "-o", "value", "mountpoint,mounted", dataset)
	f := strings.Fields(string(out))
	if len(f) != 2 || f[1] != "yes" || !filepath.IsAbs(f[0]) {
		t.Fatalf("zfstest.Busy: %s is not mounted (mountpoint, mounted: %q)", dataset, f)
	}
	cmd := exec.Command("sleep", "3600")
	cmd.Dir = f[0]
	if err := cmd.Start(); err != nil {
		t.Fatalf("zfstest.Busy: %v", err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
	}
	t.Cleanup(release)
	return release
}
