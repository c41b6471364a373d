package jails_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/internal/command"
	"github.com/jailkeeper/jailkeeper/internal/golden"
	"github.com/jailkeeper/jailkeeper/internal/testenv"
	"github.com/jailkeeper/jailkeeper/jails"
	"github.com/jailkeeper/jailkeeper/release"
	"github.com/jailkeeper/jailkeeper/zfs"
)

// jexecRecorder stands in for jexec (FreeBSDConfig.Attach) on the fake
// host, which models no process inside a jail: it notes each command line
// where it falls among the host's commands, prints output and exits with
// exit (0: success).
type jexecRecorder struct {
	calls func() int // how many commands the host has run
	mu    sync.Mutex
	at    map[int][]string // host command count -> attached lines
	out   string
	exit  int
}

func (j *jexecRecorder) attach(_ context.Context, argv []string, stdin io.Reader, stdout, stderr io.Writer) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	line := command.Quote(argv)
	if j.exit != 0 {
		line += fmt.Sprintf("  # exit %d", j.exit)
	}
	n := j.calls()
	j.at[n] = append(j.at[n], line)
	if stdin != nil || stdout != stderr {
		return errors.New("jexecRecorder: want no stdin, and stdout and stderr to one writer")
	}
	io.WriteString(stdout, j.out)
	if j.exit != 0 {
		return fmt.Errorf("exit status %d", j.exit)
	}
	return nil
}

// TestFreeBSDMigrate replays a migration on the fake FreeBSD host: the
// jexec command line (the app's user, the rc.d script's env loader with
// the env file, the migrate argv), the zfs set that records it, and the
// record as a new runtime value lists it after a state change. A failing
// migration's status comes back; a stopped jail runs nothing.
func TestFreeBSDMigrate(t *testing.T) {
	testenv.Root(t) // install chowns the env file to the jail's www
	ctx := context.Background()
	host, _, spec := fakeHostRuntime(t)
	j := &jexecRecorder{calls: func() int { return len(host.Calls()) }, at: map[int][]string{}}
	dir := host.Dir()
	newRT := func() *jails.FreeBSD {
		f, err := jails.NewFreeBSD(jails.FreeBSDConfig{Dataset: "zroot/jails", Root: filepath.Join(dir, "jails"),
			Template: "14.3-RELEASE", Interface: "lo1", ConfDir: filepath.Join(dir, "jail.conf.d"), LogDir: filepath.Join(dir, "log"),
			Pool: netip.MustParsePrefix("172.16.0.0/12"), DyingTimeout: time.Minute, PollInterval: time.Millisecond,
			Runner: host, Datasets: zfs.New(host).WithDestroyBackoff(0, 0), Attach: j.attach})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	spec.Name = "hello_4b825dc642cb_1a2b3c" // a fixed name for the golden transcript
	f := newRT()
	r, err := f.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Start(ctx, r.Name); err != nil {
		t.Fatal(err)
	}

	var b strings.Builder
	from := len(host.Calls())
	step := func(name string) {
		calls := host.Calls()
		b.WriteString("# " + name + "\n")
		for i := from; i <= len(calls); i++ {
			for _, l := range j.at[i] {
				b.WriteString(l + "\n")
			}
			if i < len(calls) {
				b.WriteString(command.Quote(calls[i].Argv))
				if calls[i].Exit != 0 {
					fmt.Fprintf(&b, "  # exit %d", calls[i].Exit)
				}
				b.WriteByte('\n')
			}
		}
		from = len(calls)
		j.at = map[int][]string{}
	}

	j.out = "migrated\n"
	var out strings.Builder
	argv := []string{"/usr/local/bin/hello", "migrate", "--to", "it's 2"}
	if err := f.Migrate(ctx, r.Name, argv, &out); err != nil {
		t.Fatal(err)
	}
	if out.String() != "migrated\n" {
		t.Errorf("output = %q", out.String())
	}
	step("migrate as the app's user, with the app's environment")

	at := time.Date(2026, 11, 29, 18, 0, 0, 0, time.UTC)
	if err := f.SetMigrated(ctx, r.Name, at); err != nil {
		t.Fatal(err)
	}
	if err := f.SetStatus(ctx, r.Name, release.Status{State: release.StateLive}); err != nil {
		t.Fatal(err)
	}
	step("record it, then a state change")
	rels, err := newRT().List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rels) != 1 || !rels[0].Migrated.Equal(at) || rels[0].State != release.StateLive {
		t.Errorf("a new runtime value lists %+v, want %s live and migrated at %v", rels, r.Name, at)
	}
	from = len(host.Calls())

	j.exit, j.out = 3, "relation exists\n"
	if err := f.Migrate(ctx, r.Name, argv, &out); err == nil || err.Error() != "exit status 3" {
		t.Errorf("failing migration: %v, want exit status 3", err)
	}
	step("a failing migration")

	if err := f.Stop(ctx, r.Name); err != nil {
		t.Fatal(err)
	}
	from = len(host.Calls())
	if err := f.Migrate(ctx, r.Name, argv, &out); !errors.Is(err, jails.ErrNotRunning) {
		t.Errorf("migrate in a stopped jail: %v, want ErrNotRunning", err)
	}
	step("migrate in a stopped jail: no jexec")
	if err := f.SetMigrated(ctx, "hello_4b825dc642cb_000000", at); !errors.Is(err, release.ErrNotFound) {
		t.Errorf("SetMigrated of an unknown release: %v, want ErrNotFound", err)
	}

	golden.Assert(t, "testdata/freebsd/golden/migrate.transcript", []byte(b.String()))
}

// TestFreeBSDMigrateEnvFile: the env file jexec's shell reads is the one
// install wrote, root's and readable by the app's group.
func TestFreeBSDMigrateEnvFile(t *testing.T) {
	testenv.Root(t)
	host, newRT, spec := fakeHostRuntime(t)
	r, err := newRT().Create(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(host.Dir(), "jails", "containers", r.Name, "usr/local/etc/jailkeeper/hello.env")
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatalf("the env file Migrate names: %v", err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("%s: mode %v, want 0640", p, fi.Mode().Perm())
	}
}
