package process_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/process"
	"github.com/jailkeeper/jailkeeper/release"
)

// migrateArgv is the demo's migration, as a manifest names it.
var migrateArgv = []string{"/usr/local/bin/hello", "migrate"}

// startHello creates and starts a hello release with env and stops it
// when the test ends.
func startHello(t *testing.T, p *process.Runtime, env map[string]string) release.Release {
	t.Helper()
	r := create(t, p, helloSpec(t, env))
	if err := p.Start(context.Background(), r.Name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop(context.Background(), r.Name) })
	waitUp(t, p, r)
	return r
}

// TestProcessMigrate runs the demo's migration in a running release: its
// argv[0] inside the release root, the app's environment and working
// directory, stdout and stderr to out; and records it in release.json,
// where a later SetStatus keeps it.
func TestProcessMigrate(t *testing.T) {
	p := newProcess(t, process.Config{})
	log := filepath.Join(t.TempDir(), "migrations")
	r := startHello(t, p, map[string]string{"HELLO_MIGRATE_LOG": log})
	ctx := context.Background()

	var out bytes.Buffer
	if err := p.Migrate(ctx, r.Name, migrateArgv, &out); err != nil {
		t.Fatalf("migrate: %v; output %q", err, out.String())
	}
	root, err := filepath.EvalSymlinks(filepath.Join(filepath.Dir(mustLog(t, p, r.Name)), "root"))
	if err != nil {
		t.Fatal(err)
	}
	want := "hello " + helloVersion + " migrating on " + r.Addr() + "\nworking directory " + root + "\nmigrated\n"
	if out.String() != want {
		t.Errorf("output = %q, want %q", out.String(), want)
	}
	if b, err := os.ReadFile(log); err != nil || string(b) != helloVersion+" "+r.Addr()+"\n" {
		t.Errorf("migration log = %q, %v", b, err)
	}

	at := time.Date(2026, 11, 29, 18, 0, 0, 0, time.UTC)
	if err := p.SetMigrated(ctx, r.Name, at); err != nil {
		t.Fatal(err)
	}
	if err := p.SetStatus(ctx, r.Name, release.Status{State: release.StateLive}); err != nil {
		t.Fatal(err)
	}
	rels, err := p.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rels) != 1 || !rels[0].Migrated.Equal(at) || rels[0].State != release.StateLive {
		t.Errorf("listed %+v, want live and migrated at %v", rels, at)
	}
	if err := p.SetMigrated(ctx, releaseName("hello"), at); !errors.Is(err, release.ErrNotFound) {
		t.Errorf("SetMigrated of an unknown release: %v, want ErrNotFound", err)
	}
}

// TestProcessMigrateFails: a migration's exit status and output come back;
// one that outlives ctx is killed; a stopped release or a command outside
// the release root runs nothing.
func TestProcessMigrateFails(t *testing.T) {
	p := newProcess(t, process.Config{})
	ctx := context.Background()

	r := startHello(t, p, map[string]string{"HELLO_MIGRATE_FAIL": "1"})
	var out bytes.Buffer
	err := p.Migrate(ctx, r.Name, migrateArgv, &out)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("failing migration: %v, want exit status 3", err)
	}
	if !strings.Contains(out.String(), "step 6 of 6\nhello: migration failed on purpose\n") {
		t.Errorf("output = %q, want its stdout and stderr", out.String())
	}

	r = startHello(t, p, map[string]string{"HELLO_MIGRATE_SLEEP": "1h"})
	tctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	out.Reset()
	if err := p.Migrate(tctx, r.Name, migrateArgv, &out); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("migration past its ctx: %v, want killed", err)
	}

	if err := p.Migrate(ctx, r.Name, []string{"/../../bin/true"}, &out); err == nil || !strings.Contains(err.Error(), "leaves the release root") {
		t.Errorf("argv[0] outside the release: %v", err)
	}
	if err := p.Stop(ctx, r.Name); err != nil {
		t.Fatal(err)
	}
	if err := p.Migrate(ctx, r.Name, migrateArgv, &out); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Errorf("migrate in a stopped release: %v, want refused as not running", err)
	}
}
