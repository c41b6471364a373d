package zfs_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jailkeeper/jailkeeper/internal/command"
	"github.com/jailkeeper/jailkeeper/internal/command/commandtest"
	"github.com/jailkeeper/jailkeeper/internal/golden"
	"github.com/jailkeeper/jailkeeper/zfs"
)

// These tests run the Client against commandtest.Replay: no zfs, no root.
// Every answer is captured output (testdata/*.source) or no output at all,
// which is what the commands whose output is not read print on success.

func fixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// captured returns the value of prop for dataset name in the real zfs-fuse
// capture testdata/zfs-get-all.zfs-fuse.tsv.
func captured(t *testing.T, name, prop string) string {
	t.Helper()
	for _, line := range strings.Split(fixture(t, "zfs-get-all.zfs-fuse.tsv"), "\n") {
		f := strings.Split(line, "\t")
		if len(f) == 4 && f[0] == name && f[1] == prop {
			return f[2]
		}
	}
	t.Fatalf("no %s of %s in testdata/zfs-get-all.zfs-fuse.tsv", prop, name)
	return ""
}

func newReplay() (*commandtest.Replay, *zfs.Client) {
	r := &commandtest.Replay{}
	return r, zfs.New(r).WithDestroyBackoff(0, 0)
}

const (
	tplSnap = "zroot/jails/templates/14.3-RELEASE@base"
	relDS   = "zroot/jails/containers/hello_4b825dc642cb_9f86d0"
)

// TestArgv pins the exact argv of every method (testdata/argv.golden,
// the table in doc.go), which a fake FreeBSD host answers.
func TestArgv(t *testing.T) {
	r, z := newReplay()
	ctx := t.Context()
	// The clone's read-back, in the -H form, with the values zfs-fuse
	// printed for this clone in the capture.
	r.On([]string{"zfs", "list", "-H", "-o", "mountpoint,origin", relDS},
		commandtest.OK(captured(t, relDS, "mountpoint")+"\t"+captured(t, relDS, "origin")+"\n"))
	r.OnPrefix([]string{"zfs", "get", "-Hp", "-r", "-t", "filesystem"}, commandtest.File(t, "testdata/zfs-get-all.zfs-fuse.tsv"))
	r.OnPrefix([]string{"zfs", "get", "-Hp", "-o"}, commandtest.File(t, "testdata/zfs-get-user-props.DERIVED.tsv"))

	props := map[string]string{
		"jailkeeper:managed": "yes",
		"jailkeeper:service": "hello",
		"jailkeeper:reason":  "health gate: GET /up: 503\tafter 3 tries",
		"jailkeeper:failed":  "", // empty: not set by create or clone, inherited away by SetProps
		"mountpoint":         "/usr/local/jails/containers/hello_4b825dc642cb_9f86d0",
	}
	noErr(t, z.Create(ctx, "zroot/jails/containers", nil))
	noErr(t, z.Create(ctx, "zroot/jails", map[string]string{"mountpoint": "/usr/local/jails"}))
	noErr(t, z.Snapshot(ctx, tplSnap))
	noErr(t, z.Rollback(ctx, tplSnap))
	d, err := z.Clone(ctx, tplSnap, relDS, props)
	noErr(t, err)
	want := zfs.Dataset{Name: relDS, Mountpoint: "/zroot/jails/containers/hello_4b825dc642cb_9f86d0", Origin: tplSnap,
		Props: map[string]string{"jailkeeper:managed": "yes", "jailkeeper:service": "hello", "jailkeeper:reason": props["jailkeeper:reason"]}}
	if diff := cmp.Diff(want, d); diff != "" {
		t.Errorf("Clone (-want +got):\n%s", diff)
	}
	noErr(t, z.SetProps(ctx, relDS, map[string]string{"jailkeeper:state": "live", "jailkeeper:ip": "172.16.0.2", "jailkeeper:reason": "", "jailkeeper:failed": ""}))
	noErr(t, z.SetProps(ctx, relDS, nil)) // runs nothing
	noErr(t, z.Destroy(ctx, relDS, 3))
	noErr(t, z.Destroy(ctx, tplSnap, 0))
	noErr(t, z.CheckDestroy(ctx, "zroot/jails/templates/14.3-RELEASE"))
	if ok, err := z.Exists(ctx, relDS); err != nil || !ok {
		t.Errorf("Exists = %v, %v", ok, err)
	}
	got, err := z.Get(ctx, "zroot/jails/web", "org.example:managed", "org.example:role")
	noErr(t, err)
	wantProps := map[string]zfs.Property{
		"org.example:managed": {Value: "yes", Source: "inherited from zroot/jails"},
		"org.example:role":    {Value: "web server", Source: "local"},
	}
	if diff := cmp.Diff(wantProps, got); diff != "" {
		t.Errorf("Get (-want +got):\n%s", diff)
	}
	snaps, err := z.Snapshots(ctx, "zroot/jails/templates/14.3-RELEASE")
	if err != nil || len(snaps) != 0 {
		t.Errorf("Snapshots of empty output = %v, %v", snaps, err)
	}
	if has, err := z.HasClones(ctx, tplSnap); err != nil || has {
		t.Errorf("HasClones of empty output = %v, %v", has, err)
	}
	inv, err := z.Inventory(ctx, "zroot/jails")
	noErr(t, err)
	if len(inv) == 0 || inv[0].Name != "zroot/jails" {
		t.Errorf("Inventory = %+v", inv)
	}
	golden.Assert(t, "testdata/argv.golden", []byte(r.Transcript()))
}

// Failures answered with captured stderr come back as the runner's
// *command.Error (argv, exit status, stderr verbatim) that also matches
// the sentinel.
func TestCapturedErrors(t *testing.T) {
	lines := strings.SplitN(fixture(t, "zfs-destroy-snapshot-with-clones.14.1.txt"), "\n", 2)
	// Lines 2-4 of the capture are the stderr of `zfs destroy SNAP`
	// (without -r) on FreeBSD 14.1, exit 1 (see its .source); what
	// matters here is the text zfs prints, which the runner passes on.
	snap := strings.Fields(lines[0])[3]
	dependents := lines[1]
	busy := "cannot unmount '/jails/containers/thejail': pool or dataset is busy\n" // errors.freebsd.md, REAL
	missing := "cannot open 'system/jails/jail-testing.freshports': dataset does not exist\n"
	exists := "cannot create 'apps/tns-csi/nvmeof/pvc-<uid>': dataset already exists\n"
	for _, s := range []string{busy, missing, exists} {
		if !strings.Contains(fixture(t, "errors.freebsd.md"), s) {
			t.Fatalf("%q is not in testdata/errors.freebsd.md", s)
		}
	}

	tests := []struct {
		name   string
		argv   []string
		stderr string
		call   func(context.Context, *zfs.Client) error
		want   error
	}{
		{"destroy of a snapshot with clones", []string{"zfs", "destroy", "-r", snap}, dependents,
			func(ctx context.Context, z *zfs.Client) error { return z.Destroy(ctx, snap, 5) }, zfs.ErrDependents},
		{"dry-run destroy of a snapshot with clones", []string{"zfs", "destroy", "-n", "-r", snap}, dependents,
			func(ctx context.Context, z *zfs.Client) error { return z.CheckDestroy(ctx, snap) }, zfs.ErrDependents},
		{"snapshot of a missing dataset", []string{"zfs", "snapshot", "system/jails/jail-testing.freshports@s"}, missing,
			func(ctx context.Context, z *zfs.Client) error {
				return z.Snapshot(ctx, "system/jails/jail-testing.freshports@s")
			}, zfs.ErrNotFound},
		{"clone onto an existing name", []string{"zfs", "clone", tplSnap, relDS}, exists,
			func(ctx context.Context, z *zfs.Client) error {
				_, err := z.Clone(ctx, tplSnap, relDS, nil)
				return err
			}, zfs.ErrExists},
		{"inventory of a missing root", []string{"zfs", "get", "-Hp", "-r", "-t", "filesystem", "-o", "name,property,value,source", "all", "system/jails/jail-testing.freshports"}, missing,
			func(ctx context.Context, z *zfs.Client) error {
				_, err := z.Inventory(ctx, "system/jails/jail-testing.freshports")
				return err
			}, zfs.ErrNotFound},
		{"busy destroy, retries exhausted", []string{"zfs", "destroy", "-r", relDS}, busy,
			func(ctx context.Context, z *zfs.Client) error { return z.Destroy(ctx, relDS, 2) }, zfs.ErrBusy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, z := newReplay()
			r.On(tt.argv, commandtest.Fail(1, tt.stderr))
			err := tt.call(t.Context(), z)
			wantIs(t, err, tt.want)
			var ce *command.Error
			if !errors.As(err, &ce) || ce.Exit != 1 || ce.Stderr != tt.stderr || !cmp.Equal(ce.Argv, tt.argv) {
				t.Errorf("error %v: want a *command.Error with argv %q, exit 1 and the stderr", err, tt.argv)
			}
			if !strings.Contains(err.Error(), command.Quote(tt.argv)) {
				t.Errorf("error %q does not name the command", err)
			}
		})
	}
}

func TestDestroyRetriesWhileBusy(t *testing.T) {
	busy := commandtest.Fail(1, "cannot unmount '/jails/containers/thejail': pool or dataset is busy\n")
	argv := []string{"zfs", "destroy", "-r", relDS}

	r, z := newReplay()
	r.On(argv, busy, busy, commandtest.OK(""))
	noErr(t, z.Destroy(t.Context(), relDS, 2))
	if n := len(r.Calls()); n != 3 {
		t.Errorf("%d attempts, want 3", n)
	}

	r, z = newReplay()
	r.On(argv, busy)
	err := z.Destroy(t.Context(), relDS, 2)
	wantIs(t, err, zfs.ErrBusy)
	if !strings.Contains(err.Error(), "still busy after 3 attempts") || len(r.Calls()) != 3 {
		t.Errorf("after %d calls: %v", len(r.Calls()), err)
	}

	// Not busy: no retry.
	r, z = newReplay()
	r.On(argv, commandtest.Fail(1, "cannot open 'p/a': dataset does not exist\n"))
	wantIs(t, z.Destroy(t.Context(), relDS, 5), zfs.ErrNotFound)
	if n := len(r.Calls()); n != 1 {
		t.Errorf("%d attempts of a missing dataset, want 1", n)
	}

	// ctx ends during the wait: the error has both.
	r = &commandtest.Replay{}
	r.On(argv, busy)
	z = zfs.New(r).WithDestroyBackoff(time.Hour, time.Hour)
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		for len(r.Calls()) == 0 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	err = z.Destroy(ctx, relDS, 5)
	if !errors.Is(err, context.Canceled) || !errors.Is(err, zfs.ErrBusy) {
		t.Errorf("Destroy cancelled while waiting = %v", err)
	}
}

func TestExists(t *testing.T) {
	argv := []string{"zfs", "list", "-H", "-o", "name", relDS}
	r, z := newReplay()
	r.On(argv, commandtest.Fail(1, "cannot open '"+relDS+"': dataset does not exist\n"))
	if ok, err := z.Exists(t.Context(), relDS); ok || err != nil {
		t.Errorf("Exists(missing) = %v, %v", ok, err)
	}
	r.On(argv, commandtest.Fail(1, "internal error: out of memory\n"))
	if _, err := z.Exists(t.Context(), relDS); err == nil {
		t.Error("Exists hid an unknown failure")
	}
}

// A clone whose read-back fails exists: the error says so and still
// carries the read-back's command.
func TestCloneReadBackFails(t *testing.T) {
	r, z := newReplay()
	r.On([]string{"zfs", "list", "-H", "-o", "mountpoint,origin", relDS}, commandtest.Fail(1, "cannot open '"+relDS+"': dataset does not exist\n"))
	_, err := z.Clone(t.Context(), tplSnap, relDS, nil)
	if err == nil || !strings.Contains(err.Error(), "cloned, but reading it back") || !errors.Is(err, zfs.ErrNotFound) {
		t.Errorf("Clone with a failed read-back = %v", err)
	}
	r.On([]string{"zfs", "list", "-H", "-o", "mountpoint,origin", relDS}, commandtest.OK("no tab\n"))
	if _, err := z.Clone(t.Context(), tplSnap, relDS, nil); err == nil {
		t.Error("Clone accepted a read-back without a TAB")
	}
}

// Invalid input is refused before any command runs.
func TestInvalid(t *testing.T) {
	r, z := newReplay()
	ctx := t.Context()
	tests := []struct {
		name string
		err  error
	}{
		{"option-like name", z.Destroy(ctx, "-R", 0)},
		{"empty name", z.SetProps(ctx, "", nil)},
		{"space in name", z.Snapshot(ctx, "p/a b@s")},
		{"snapshot without @", z.Snapshot(ctx, "p/a")},
		{"rollback to a filesystem", z.Rollback(ctx, "p/a")},
		{"create of a snapshot", z.Create(ctx, "p/a@s", nil)},
		{"clone of a filesystem", func() error { _, err := z.Clone(ctx, "p/a", "p/b", nil); return err }()},
		{"clone onto a snapshot", func() error { _, err := z.Clone(ctx, "p/a@s", "p/b@s", nil); return err }()},
		{"uppercase property", z.SetProps(ctx, "p/a", map[string]string{"Jailkeeper:x": "1"})},
		{"newline in value", z.SetProps(ctx, "p/a", map[string]string{"jailkeeper:reason": "a\nb"})},
		{"value too long", z.SetProps(ctx, "p/a", map[string]string{"jailkeeper:reason": strings.Repeat("x", 8193)})},
		{"option as property", func() error { _, err := z.Get(ctx, "p/a", "-r"); return err }()},
		{"get without property", func() error { _, err := z.Get(ctx, "p/a"); return err }()},
		{"inventory of a snapshot", func() error { _, err := z.Inventory(ctx, "p/a@s"); return err }()},
		{"snapshots of a snapshot", func() error { _, err := z.Snapshots(ctx, "p/a@s"); return err }()},
	}
	for _, tt := range tests {
		if !errors.Is(tt.err, zfs.ErrInvalid) {
			t.Errorf("%s: error = %v, want ErrInvalid", tt.name, tt.err)
		}
	}
	if calls := r.Transcript(); calls != "" {
		t.Errorf("commands ran for invalid input:\n%s", calls)
	}
}

func TestCanceled(t *testing.T) {
	r, z := newReplay()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := z.Destroy(ctx, "p/a", 3); !errors.Is(err, context.Canceled) {
		t.Errorf("Destroy with a canceled ctx = %v", err)
	}
	if _, err := z.Clone(ctx, "p/a@s", "p/b", nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Clone with a canceled ctx = %v", err)
	}
	if _, err := z.Inventory(ctx, "p"); !errors.Is(err, context.Canceled) {
		t.Errorf("Inventory with a canceled ctx = %v", err)
	}
	if calls := r.Transcript(); calls != "" {
		t.Errorf("commands ran with a canceled ctx:\n%s", calls)
	}
}
