//go:build linux

package process_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/jailkeeper/jailkeeper/process"
	"github.com/jailkeeper/jailkeeper/release"
)

// limitsScript waits for the test to create ./go (Start has returned by
// then, so the limits are in place), then writes what the app sees:
// /proc/self/limits of a child it starts, and its own from the shell's
// ulimit.
const limitsScript = `while [ ! -e go ]; do sleep 0.01; done
cat /proc/self/limits > limits.tmp
ulimit -n >> limits.tmp
mv limits.tmp limits.out
exec sleep 1000`

// appLimits starts a release of limitsScript with l and returns what the
// app saw: the rows of /proc/self/limits by name, and its `ulimit -n`.
func appLimits(t *testing.T, l release.Limits) (map[string][2]string, string) {
	t.Helper()
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "releases")
	p := newProcess(t, process.Config{Root: root, Template: shellTemplate(t)})
	spec := shellSpec(limitsScript)
	spec.Limits = l
	create(t, p, spec)
	if err := p.Start(ctx, spec.Name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop(context.Background(), spec.Name) })
	dir := filepath.Join(root, spec.Name, "root")
	if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var out []byte
	waitFor(t, "the app to write its limits", func() bool {
		var err error
		out, err = os.ReadFile(filepath.Join(dir, "limits.out"))
		return err == nil
	})
	rows := map[string][2]string{}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for _, line := range lines[1 : len(lines)-1] { // after the header, before ulimit's line
		// "Max open files            64                   64                   files"
		name := strings.TrimSpace(line[:26])
		f := strings.Fields(line[26:])
		if len(f) >= 2 {
			rows[name] = [2]string{f[0], f[1]}
		}
	}
	return rows, lines[len(lines)-1]
}

// TestProcessLimitsSeenByApp: the app of a release with limits runs under
// the matching rlimits, soft and hard: memory as RLIMIT_DATA ("Max data
// size"), maxproc as RLIMIT_NPROC ("Max processes"), openfiles as
// RLIMIT_NOFILE ("Max open files"). pcpu and disk have none.
func TestProcessLimitsSeenByApp(t *testing.T) {
	if !process.LimitsApplied {
		t.Fatal("the process runtime applies no limits on Linux")
	}
	var before syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_AS, &before); err != nil {
		t.Fatal(err)
	}
	rows, ulimit := appLimits(t, release.Limits{Memory: 512 << 20, PCPU: 50, MaxProc: 200, OpenFiles: 64, Disk: 5 << 30})
	for name, want := range map[string]string{
		"Max data size":  "536870912",
		"Max processes":  "200",
		"Max open files": "64",
	} {
		if got := rows[name]; got != [2]string{want, want} {
			t.Errorf("%s: soft and hard %q, want %s", name, got, want)
		}
	}
	if ulimit != "64" {
		t.Errorf("the app's ulimit -n = %q, want 64", ulimit)
	}
	// Nothing else was touched: the address space stays the agent's.
	want := "unlimited"
	if before.Max != ^uint64(0) {
		want = strconv.FormatUint(before.Max, 10)
	}
	if got := rows["Max address space"]; got[1] != want {
		t.Errorf("Max address space %q, want the hard limit %s untouched", got, want)
	}
}

// TestProcessLimitsNeverRaised: a limit above the agent's own hard limit
// leaves the process at that hard limit, which is within the manifest's
// bound; the process runtime never raises a limit, even as root.
func TestProcessLimitsNeverRaised(t *testing.T) {
	var own syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &own); err != nil {
		t.Fatal(err)
	}
	if own.Max > 1<<30 {
		t.Skipf("hard RLIMIT_NOFILE %d: nothing above it to ask for", own.Max)
	}
	rows, _ := appLimits(t, release.Limits{OpenFiles: int(own.Max) + 1000})
	want := strconv.FormatUint(own.Max, 10)
	if got := rows["Max open files"]; got != [2]string{want, want} {
		t.Errorf("Max open files %q, want soft and hard at the agent's hard limit %s", got, want)
	}
}
