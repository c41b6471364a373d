package process

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/jailkeeper/jailkeeper/release"
)

// A List in which nothing changed reads no release.json and no pidfile
// again, and stats the files of one release in ListRounds (issue 11);
// what this Runtime changed is read again at the next List, what changed
// behind its back within ListRounds Lists, and a process that died is
// seen at the next List. Every List once seen says what a fresh Runtime's
// List says.
func TestListReadsOnlyWhatChanged(t *testing.T) {
	root := t.TempDir()
	p, err := New(Config{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	id, _, err := identity(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	const n = 2 * ListRounds
	var names []string
	for i := range n {
		r := release.Release{Name: fmt.Sprintf("svc%02d_0123456789ab_abcdef", i), Service: fmt.Sprintf("svc%02d", i), SHA: "0123456789ab",
			Spec: "abcdef", IP: netip.AddrFrom4([4]byte{127, 77, 0, byte(2 + i)}), Port: 8080, State: release.StateLive,
			Created: time.Unix(1700000000, 0).UTC()}
		if err := os.Mkdir(p.dir(r.Name), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := p.write(r); err != nil {
			t.Fatal(err)
		}
		// Alive and ours: the pidfile names this process.
		if err := os.WriteFile(filepath.Join(p.dir(r.Name), pidFile), fmt.Appendf(nil, "%d %s\n", os.Getpid(), id), 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, r.Name)
	}
	ctx := context.Background()
	counts := func() (reads, stats int) {
		p.listed.mu.Lock()
		defer p.listed.mu.Unlock()
		return p.listed.reads, p.listed.stats
	}
	fresh := func() []release.Release {
		t.Helper()
		f, err := New(Config{Root: root})
		if err != nil {
			t.Fatal(err)
		}
		want, err := f.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return want
	}
	list := func(what string) []release.Release {
		t.Helper()
		got, err := p.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(fresh(), got, cmpopts.EquateComparable(netip.Addr{})); diff != "" {
			t.Fatalf("%s: List differs from a fresh Runtime's (-want +got):\n%s", what, diff)
		}
		return got
	}

	first := list("first")
	if got, _ := counts(); got != 2*n {
		t.Errorf("first List read %d files, want %d", got, 2*n)
	}
	for _, r := range first {
		if !r.Running || r.State != release.StateLive {
			t.Fatalf("%s: %+v, want live and running", r.Name, r)
		}
	}
	reads0, stats0 := counts()
	for range ListRounds {
		list("idle")
	}
	if reads, stats := counts(); reads != reads0 || stats-stats0 != 2*n {
		t.Errorf("%d idle Lists read %d files and stat'ed %d, want 0 and %d", ListRounds, reads-reads0, stats-stats0, 2*n)
	}

	// A state change this Runtime made is seen at the next List, reading
	// only that file.
	if err := p.SetStatus(ctx, names[1], release.Status{State: release.StateRetired}); err != nil {
		t.Fatal(err)
	}
	reads0, _ = counts()
	got := list("after a state change")
	if reads, _ := counts(); reads-reads0 != 1 {
		t.Errorf("List after one state change read %d files, want 1", reads-reads0)
	}
	if got[1].State != release.StateRetired {
		t.Errorf("after the change: %+v; want %s retired", got[1], names[1])
	}

	// A pidfile removed and a release.json edited by hand: seen within
	// ListRounds Lists.
	if err := os.Remove(filepath.Join(p.dir(names[2]), pidFile)); err != nil {
		t.Fatal(err)
	}
	r3 := first[3]
	r3.Running, r3.State = false, release.StateFailed
	b, err := json.Marshal(r3)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p.dir(names[3]), releaseFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	want := fresh()
	seen := false
	for i := 0; i < ListRounds && !seen; i++ {
		got, err := p.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		seen = cmp.Equal(want, got, cmpopts.EquateComparable(netip.Addr{}))
	}
	if !seen {
		t.Errorf("changes made behind the Runtime's back unseen after %d Lists", ListRounds)
	}

	// A process that dies is seen at the next List: here a child of the
	// test, not of the Runtime, so List asks the kernel.
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	cid, _, err := identity(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p.dir(names[4]), pidFile), fmt.Appendf(nil, "%d %s\n", cmd.Process.Pid, cid), 0o644); err != nil {
		t.Fatal(err)
	}
	for range ListRounds {
		list("a process started")
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if got := list("a process died"); got[4].Running {
		t.Errorf("after its process died: %+v, want not running", got[4])
	}
}

// A process the Runtime started and that dies is seen by the next List
// once the Runtime has reaped it, although List asks nothing of the
// kernel about its own children.
func TestListSeesItsChildDie(t *testing.T) {
	p, err := New(Config{Root: filepath.Join(t.TempDir(), "releases"), Pool: netip.MustParsePrefix("127.77.250.0/24")})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r := release.Release{Name: "sleeper_0123456789ab_abcdef", Service: "sleeper", SHA: "0123456789ab", Spec: "abcdef",
		IP: netip.MustParseAddr("127.77.250.2"), Port: 8080, State: release.StateReady, Created: time.Unix(1700000000, 0).UTC()}
	if err := os.MkdirAll(filepath.Join(p.dir(r.Name), rootDir), 0o750); err != nil {
		t.Fatal(err)
	}
	// The command is taken relative to the release root, as in a jail.
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep(1) here")
	}
	bin, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p.dir(r.Name), rootDir, "sleep"), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(commandSpec{Command: []string{"/sleep", "60"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p.dir(r.Name), specFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := p.write(r); err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx, r.Name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop(context.Background(), r.Name) })
	running := func() bool {
		t.Helper()
		got, err := p.List(ctx)
		if err != nil || len(got) != 1 {
			t.Fatalf("List = %+v, %v", got, err)
		}
		return got[0].Running
	}
	for range ListRounds {
		if !running() {
			t.Fatal("List: a started release not running")
		}
	}
	rec := p.exit(r.Name)
	if err := syscall.Kill(int(rec.pid.Load()), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-rec.done // reaped
	if running() {
		t.Error("List after its process died and was reaped: running")
	}
}
