package hostsetup_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/hostsetup"
	"github.com/jailkeeper/jailkeeper/internal/command/commandtest"
	"github.com/jailkeeper/jailkeeper/internal/golden"
)

// templateUpdate is a template 14.3-RELEASE under a temporary root, with
// the Replay answers every update needs:
//
//   - the snapshot listing names the template's snapshots, one per line:
//     zfs list -H -o name prints the names and nothing else (zfs-list(8),
//     -H: no header, tab-separated fields; one field here). The names are
//     the ones template create makes.
//   - freebsd-version -u answers two placeholder tokens, not a version
//     string: no freebsd-version output is captured in the fixtures, and
//     TemplateUpdate only compares and prints what it says.
//
// freebsd-update and pkg get no fixture (none is captured): they succeed
// with empty output, and the tests assert their argv only.
type templateUpdate struct {
	cfg  hostsetup.TemplateUpdateConfig
	tmp  string
	dir  string
	r    commandtest.Replay
	out  bytes.Buffer
	argv struct{ list, version, update, pkg, rollback []string }
}

func newTemplateUpdate(t *testing.T, withPkg bool) *templateUpdate {
	t.Helper()
	u := &templateUpdate{tmp: t.TempDir()}
	u.cfg = hostsetup.TemplateUpdateConfig{
		Dataset: "zroot/jails", Root: filepath.Join(u.tmp, "jails"), Name: "14.3-RELEASE",
		Now: func() time.Time { return time.Date(2026, 11, 29, 15, 4, 5, 0, time.UTC) },
	}
	u.dir = filepath.Join(u.cfg.Root, "templates", "14.3-RELEASE")
	if err := os.MkdirAll(filepath.Join(u.dir, "usr", "local", "sbin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if withPkg {
		if err := os.WriteFile(filepath.Join(u.dir, "usr", "local", "sbin", "pkg"), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	u.argv.list = []string{"zfs", "list", "-H", "-t", "snapshot", "-d", "1", "-s", "createtxg", "-o", "name", tds}
	u.argv.version = []string{filepath.Join(u.dir, "bin", "freebsd-version"), "-u"}
	u.argv.update = []string{"env", "PAGER=/bin/cat", "freebsd-update", "--not-running-from-cron", "--currently-running", "14.3-RELEASE", "-b", u.dir, "fetch", "install"}
	u.argv.pkg = []string{"pkg", "-r", u.dir, "upgrade", "-y"}
	u.argv.rollback = []string{"zfs", "rollback", "-r", tds + "@20261101T000000Z"}
	u.r.On(u.argv.list, commandtest.OK(tds+"@base\n"+tds+"@20261101T000000Z\n"))
	u.r.On(u.argv.version, commandtest.OK("<userland before>\n"), commandtest.OK("<userland after>\n"))
	return u
}

func (u *templateUpdate) run(dry bool) error {
	return hostsetup.TemplateUpdate(context.Background(), u.cfg, &u.r, dry, &u.out)
}

// untmp replaces the temporary root in s, so goldens do not depend on it.
func (u *templateUpdate) untmp(s string) []byte {
	return []byte(strings.ReplaceAll(s, u.tmp, "<tmp>"))
}

func TestTemplateUpdate(t *testing.T) {
	u := newTemplateUpdate(t, true)
	if err := u.run(false); err != nil {
		t.Fatal(err)
	}
	golden.Assert(t, "testdata/golden/template-update-pkg.transcript", u.untmp(u.r.Transcript()))
	golden.Assert(t, "testdata/golden/template-update-pkg.out", u.untmp(u.out.String()))
	for _, want := range []string{
		"# userland: <userland before> -> <userland after>\n",
		"zfs snapshot " + tds + "@20261129T150405Z\n",
		"# new releases clone " + tds + "@20261129T150405Z; existing releases stay on their snapshot\n",
	} {
		if !strings.Contains(u.out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, u.out.String())
		}
	}
	if strings.Contains(u.r.Transcript(), "rollback") {
		t.Errorf("rolled back after a successful update:\n%s", u.r.Transcript())
	}
}

// A template without pkg (base.txz alone has none) is not given a pkg
// upgrade; a patch that changes nothing says so and is still snapshotted.
func TestTemplateUpdateNoPkg(t *testing.T) {
	u := newTemplateUpdate(t, false)
	u.r.On(u.argv.version, commandtest.OK("<userland>\n"))
	if err := u.run(false); err != nil {
		t.Fatal(err)
	}
	golden.Assert(t, "testdata/golden/template-update-no-pkg.transcript", u.untmp(u.r.Transcript()))
	if strings.Contains(u.r.Transcript(), "pkg") {
		t.Errorf("ran pkg in a template without it:\n%s", u.r.Transcript())
	}
	for _, want := range []string{
		"# skipped pkg upgrade: the template has no " + filepath.Join(u.dir, "usr/local/sbin/pkg") + "\n",
		"# userland unchanged: <userland>\n",
		"zfs snapshot " + tds + "@20261129T150405Z\n",
	} {
		if !strings.Contains(u.out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, u.out.String())
		}
	}
}

// Any failure rolls the template back to the snapshot it started from,
// and no snapshot of the half-updated tree is left. The failures carry no
// stderr: none of these is captured, and TemplateUpdate reads none.
func TestTemplateUpdateFailureRollsBack(t *testing.T) {
	snapshot := []string{"zfs", "snapshot", tds + "@20261129T150405Z"}
	for _, tc := range []struct {
		name string
		fail func(u *templateUpdate) []string // the failing argv
	}{
		{"freebsd-update", func(u *templateUpdate) []string { return u.argv.update }},
		{"pkg upgrade", func(u *templateUpdate) []string { return u.argv.pkg }},
		{"snapshot", func(*templateUpdate) []string { return snapshot }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := newTemplateUpdate(t, true)
			failing := tc.fail(u)
			u.r.On(failing, commandtest.Fail(1, ""))
			err := u.run(false)
			if err == nil || !strings.Contains(err.Error(), "rolled back to "+tds+"@20261101T000000Z") {
				t.Fatalf("TemplateUpdate = %v, want an error saying it rolled back", err)
			}
			calls := u.r.Calls()
			last := calls[len(calls)-1].Argv
			if !slices.Equal(last, u.argv.rollback) {
				t.Errorf("last command %q, want %q", last, u.argv.rollback)
			}
			for _, c := range calls {
				if slices.Equal(c.Argv, snapshot) && c.Response.Exit == 0 {
					t.Errorf("snapshotted a failed update:\n%s", u.r.Transcript())
				}
			}
			if !strings.Contains(u.out.String(), "# rolling back to "+tds+"@20261101T000000Z so that a half-updated template is never snapshotted\n") {
				t.Errorf("output does not say it rolls back:\n%s", u.out.String())
			}
			if tc.name == "freebsd-update" {
				golden.Assert(t, "testdata/golden/template-update-rollback.transcript", u.untmp(u.r.Transcript()))
				golden.Assert(t, "testdata/golden/template-update-rollback.out", u.untmp(u.out.String()))
			}
		})
	}

	// A rollback that fails too is reported with both errors.
	u := newTemplateUpdate(t, true)
	u.r.On(u.argv.update, commandtest.Fail(1, ""))
	u.r.On(u.argv.rollback, commandtest.Fail(1, ""))
	err := u.run(false)
	if err == nil || !strings.Contains(err.Error(), "rollback to "+tds+"@20261101T000000Z failed too") || !strings.Contains(err.Error(), "freebsd-update") {
		t.Errorf("TemplateUpdate = %v, want both the update and the rollback error", err)
	}
}

func TestTemplateUpdateDryRun(t *testing.T) {
	u := newTemplateUpdate(t, true)
	if err := u.run(true); err != nil {
		t.Fatal(err)
	}
	if tr := u.r.Transcript(); tr != "" {
		t.Errorf("a dry run ran commands:\n%s", tr)
	}
	golden.Assert(t, "testdata/golden/template-update-dry-run.out", u.untmp(u.out.String()))
}

// A template that does not exist, or that has no snapshot (template create
// stopped before @base), is not touched.
func TestTemplateUpdateNeedsASnapshot(t *testing.T) {
	u := newTemplateUpdate(t, true)
	// errors.md: zfs list on a missing dataset (REAL).
	u.r.On(u.argv.list, commandtest.Fail(1, "cannot open '"+tds+"': dataset does not exist\n"))
	if err := u.run(false); err == nil || !strings.Contains(err.Error(), "make it with template create") {
		t.Errorf("missing template: %v", err)
	}
	u.r.On(u.argv.list, commandtest.OK(""))
	if err := u.run(false); err == nil || !strings.Contains(err.Error(), "has no snapshot") {
		t.Errorf("template without snapshot: %v", err)
	}
	for _, c := range u.r.Calls() {
		if !slices.Equal(c.Argv, u.argv.list) {
			t.Errorf("ran %q on a template it cannot roll back", c.Argv)
		}
	}
	if err := hostsetup.TemplateUpdate(context.Background(), hostsetup.TemplateUpdateConfig{Dataset: "zroot/jails", Root: "/j", Name: "../x"}, &u.r, true, &bytes.Buffer{}); err == nil {
		t.Error("bad template name accepted")
	}
}

// cancelOn cancels a context when the command argv starts, as Ctrl-C
// during freebsd-update does, and passes every command on to r.
type cancelOn struct {
	r      *commandtest.Replay
	argv   []string
	cancel context.CancelFunc
}

func (c cancelOn) Run(ctx context.Context, argv []string, stdin io.Reader) ([]byte, error) {
	if slices.Equal(argv, c.argv) {
		c.cancel()
	}
	return c.r.Run(ctx, argv, stdin)
}

// An update interrupted half-way (its context ends: Ctrl-C, a signal)
// still rolls back, or the half-updated tree would stay live.
func TestTemplateUpdateInterruptedRollsBack(t *testing.T) {
	u := newTemplateUpdate(t, true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := hostsetup.TemplateUpdate(ctx, u.cfg, cancelOn{&u.r, u.argv.update, cancel}, false, &u.out)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "rolled back to") {
		t.Errorf("TemplateUpdate = %v, want context.Canceled and rolled back", err)
	}
	calls := u.r.Calls()
	if last := calls[len(calls)-1]; !slices.Equal(last.Argv, u.argv.rollback) || last.Response.Exit != 0 {
		t.Errorf("not rolled back:\n%s", u.r.Transcript())
	}
}
