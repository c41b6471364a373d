package jails

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/jailkeeper/jailkeeper/release"
	"github.com/jailkeeper/jailkeeper/zfs"
)

// Migrate runs a manifest's migrate command in the release's running jail
// (reconcile.Migrator): jexec as the app's user (the one its rc.d script
// hands daemon -u, as Exec), through the envLoader the app itself starts
// with, so the command gets the app's environment, secrets included,
// read from the env file as the app's user, and never on a command line
// that ps(1) shows. argv[0] is a path inside the jail. stdout and stderr
// go to out; stdin is empty. The argv is migrateArgv's; it goes to
// cfg.Attach (default: attachMigrate, which kills the command's whole
// process group when ctx ends). A jail that is not running is
// ErrNotRunning. The command's exit status comes back as the error (an
// *exec.ExitError by default).
func (f *FreeBSD) Migrate(ctx context.Context, name string, argv []string, out io.Writer) error {
	if err := release.ValidName(name); err != nil {
		return err
	}
	if len(argv) == 0 {
		return fmt.Errorf("migrate %s: empty command", name)
	}
	running, err := f.running(ctx, name)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", name, err)
	}
	if !running {
		return fmt.Errorf("migrate %s: %w", name, ErrNotRunning)
	}
	user, err := f.appUser(name)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", name, err)
	}
	envFile, err := f.envFile(name)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", name, err)
	}
	attach := f.cfg.Attach
	if attach == nil {
		attach = attachMigrate
	}
	return attach(ctx, migrateArgv(name, user, envFile, argv), nil, out, out)
}

// migrateArgv is the command line of Migrate: jexecArgv's (jexec -U, the
// jail's own user, no -l) running the rc.d script's envLoader with the env
// file as $0 and the migration as "$@", as daemon(8)'s child runs the app
// (see rcScript.daemonArgv).
func migrateArgv(jail, user, envFile string, argv []string) []string {
	return jexecArgv(jail, user, append([]string{"/bin/sh", "-c", envLoader, envFile}, argv...))
}

// envFile is the path inside the jail of the release's env file, which
// install wrote (rcScript.envFile).
func (f *FreeBSD) envFile(name string) (string, error) {
	jr, err := os.OpenRoot(f.root(name))
	if err != nil {
		return "", err
	}
	defer jr.Close()
	return rcScript{RCName: rcName(jr, release.ServiceOf(name))}.envFile(), nil
}

// migrateWaitDelay bounds the wait for a killed migration's output: a
// process it left behind in the jail may hold the pipe open.
const migrateWaitDelay = 5 * time.Second

// attachMigrate runs argv as attachExec does, in a process group of its
// own. jexec calls jail_attach(2), then setusercontext without
// LOGIN_SETLOGIN (no new session), then execvp(3) the command
// (usr.sbin/jexec/jexec.c): the migration is the same process, in the same
// group, and its children inherit the group. So ctx ending kills the
// migration and every process it started (kill(2) with a negative pid;
// the host's root may signal jailed processes).
func attachMigrate(ctx context.Context, argv []string, stdin io.Reader, stdout, stderr io.Writer) error {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = jexecEnv("")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = migrateWaitDelay
	return cmd.Run()
}

// SetMigrated stores in the release's jailkeeper:migrated_at property that
// its migration finished at t (reconcile.Migrator), with one zfs set.
// SetStatus sets other properties and keeps it.
func (f *FreeBSD) SetMigrated(ctx context.Context, name string, t time.Time) error {
	if err := release.ValidName(name); err != nil {
		return err
	}
	err := f.cfg.Datasets.SetProps(ctx, f.dataset(name), map[string]string{
		release.PropMigrated: t.UTC().Format(time.RFC3339Nano),
	})
	if errors.Is(err, zfs.ErrNotFound) {
		return fmt.Errorf("set migrated of %s: %w: %w", name, release.ErrNotFound, err)
	}
	if err != nil {
		return fmt.Errorf("set migrated of %s: %w", name, err)
	}
	return nil
}
