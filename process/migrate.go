package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/jailkeeper/jailkeeper/release"
)

// migrateWaitDelay bounds the wait for a killed migration's output pipe:
// a child it left behind may hold it open.
const migrateWaitDelay = 5 * time.Second

// Migrate runs a manifest's migrate command in the running release name
// (reconcile.Migrator), as its command runs: argv[0] is taken relative to
// the release root (as the app's command[0] is), the working directory is
// the release root, and the environment is the app's (PATH, the
// manifest's env, the env file, PORT, HOST, ADDR; see releaseEnv). Its
// stdout and stderr go to out; stdin is empty. The child leads a process
// group of its own, and ctx ending kills the whole group, so a migration
// that started children does not outlive its timeout. The error says how
// it ended (an *exec.ExitError). As for the app, there is no isolation:
// it runs as the agent's user.
func (p *Runtime) Migrate(ctx context.Context, name string, argv []string, out io.Writer) error {
	if err := release.ValidName(name); err != nil {
		return err
	}
	if len(argv) == 0 {
		return fmt.Errorf("migrate %s: empty command", name)
	}
	rel, err := commandPath(argv[0])
	if err != nil {
		return fmt.Errorf("migrate %s: %w", name, err)
	}
	full := append([]string{filepath.Join(p.dir(name), rootDir, rel)}, argv[1:]...)
	var cmd *exec.Cmd
	err = startBusy(ctx, func() error {
		// A new Cmd for each try: one that failed to start is spent.
		var err error
		cmd, err = p.execCommand(ctx, name, release.ExecRequest{Argv: full, Stdout: out, Stderr: out})
		if err != nil {
			return err
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		cmd.WaitDelay = migrateWaitDelay
		return cmd.Start()
	})
	if err != nil {
		return fmt.Errorf("migrate %s: %w", name, err)
	}
	if err := cmd.Wait(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return err // "exit status 3", "signal: killed": reconcile quotes it
		}
		return fmt.Errorf("migrate %s: %w", name, err)
	}
	return nil
}

// SetMigrated records in release.json that name's migration finished at
// t (reconcile.Migrator), replacing the file atomically. SetStatus keeps
// the record.
func (p *Runtime) SetMigrated(ctx context.Context, name string, t time.Time) error {
	if err := release.ValidName(name); err != nil {
		return err
	}
	unlock := p.lock(name)
	defer unlock()
	r, err := p.read(name)
	if err != nil {
		return fmt.Errorf("set migrated: %w", err)
	}
	r.Migrated = t.UTC()
	if err := p.write(r); err != nil {
		return fmt.Errorf("set migrated of %s: %w", name, err)
	}
	return nil
}
