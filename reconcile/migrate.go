package reconcile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jailkeeper/jailkeeper/internal/command"
	"github.com/jailkeeper/jailkeeper/internal/crashpoint"
	"github.com/jailkeeper/jailkeeper/manifest"
	"github.com/jailkeeper/jailkeeper/release"
)

// Migrator is implemented by a Runtime that can run a manifest's migrate
// command in a release: jails.FreeBSD (jexec as the app's user) and
// process.Runtime (a child process). The migrate step runs it in a new
// release after its start and before its gate; a Runtime without it fails
// every release whose manifest has a migrate. Calls for one release are
// serialised by the Executor.
type Migrator interface {
	// Migrate runs argv in the running release name as its app runs: the
	// app's user, the app's environment (the manifest's env, the env
	// file, PORT, HOST, ADDR, the data paths), argv[0] a path inside the
	// release. The command's stdout and stderr both go to out. It returns
	// nil when the command exited 0, else an error that says how it ended
	// (exit status, signal); ctx ending kills it.
	Migrate(ctx context.Context, name string, argv []string, out io.Writer) error
	// SetMigrated records durably that name's migration finished at t:
	// List reports it as Release.Migrated from then on, whatever
	// SetStatus stores later. An unknown release is release.ErrNotFound.
	SetMigrated(ctx context.Context, name string, t time.Time) error
}

// PhaseMigrate times the manifest's migrate command, between the start
// and the gate; only a deploy that runs one times it (see migrates).
const PhaseMigrate Phase = "migrate"

// cpMigrateRan is the crash point between a migration that finished and
// its record: a crash there runs the migration again on the next pass,
// which is why migrations must be idempotent.
var cpMigrateRan = crashpoint.New("reconcile.migrate.ran")

// MigrateOutputLines is how many of a failed migration's last output lines
// its failure reason quotes.
const MigrateOutputLines = 5

// migrates reports whether dp's deploy runs its manifest's migration. A
// rollback never does (KindRollback, and a target that has been live or
// retired, or is kept as a standby: any state but ready and failed), nor
// a target whose migration is recorded as finished. The code of a
// release that served before runs against data its successor migrated:
// migrations must be backward compatible (expand, then contract), and
// running an older release's migration again would undo nothing.
func (dp *deployment) migrates() bool {
	t := dp.target
	return len(dp.spec.Migrate) > 0 && dp.st.Kind == KindDeploy && t.Migrated.IsZero() &&
		(t.State == release.StateReady || t.State == release.StateFailed)
}

// migrationError is a migration that ran and failed: its command exited
// non-zero, was killed or timed out. It is the release's fault.
type migrationError struct {
	err    error
	output string // the last lines, sanitised, joined by " | "
}

func (e *migrationError) Error() string {
	if e.output == "" {
		return e.err.Error() + "; no output"
	}
	return e.err.Error() + "; output: " + e.output
}

func (e *migrationError) Unwrap() error { return e.err }

// migrateTarget runs the manifest's migrate command in the started
// target, bounded by migrate_timeout, and records that it finished. Live
// traffic stays where it is meanwhile: the target gets none until its
// gate has passed.
func migrateTarget(ctx context.Context, dp *deployment) error {
	if !dp.migrates() {
		return nil
	}
	m, ok := dp.e.rt.(Migrator)
	if !ok {
		return &migrationError{err: errors.New("this runtime cannot run migrations")}
	}
	timeout := dp.spec.MigrateTimeout
	if timeout <= 0 {
		timeout = manifest.DefaultMigrateTimeout
	}
	// An app that died at once (its address held: the host's fault) is
	// reported as the gate would, before and after the migration.
	if err := dp.e.checkRunning(ctx, dp.target.Name); err != nil {
		return err
	}
	// The data as it was before the migration changed it is what a
	// rollback by hand needs: take the switch's snapshot now.
	if err := snapshotData(ctx, dp); err != nil {
		return &snapshotError{err}
	}
	argv := dp.spec.Migrate
	dp.log.Info("running migration", "step", "migrate", "command", command.Quote(argv), "timeout", timeout)
	out := &tailBuffer{max: migrateTail}
	mctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := m.Migrate(mctx, dp.target.Name, argv, out); err != nil {
		if ctx.Err() != nil {
			return ctx.Err() // preempted or shutting down: no verdict
		}
		if err := dp.e.checkRunning(ctx, dp.target.Name); err != nil {
			return err
		}
		if errors.Is(mctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("not done within %s (killed): %w", timeout, err)
		}
		return &migrationError{err: err, output: lastOutputLines(out.bytes(), MigrateOutputLines)}
	}
	cpMigrateRan.Hit()
	now := dp.e.now()
	if err := m.SetMigrated(ctx, dp.target.Name, now); err != nil {
		return &recordError{fmt.Errorf("record migration of %s: %w", dp.target.Name, err)}
	}
	dp.target.Migrated = now
	dp.log.Info("migration finished", "step", "migrate")
	return nil
}

// recordError: the migration finished, and storing that failed. It is
// not the release's fault.
type recordError struct{ err error }

func (e *recordError) Error() string { return e.err.Error() }
func (e *recordError) Unwrap() error { return e.err }

// snapshotError: the data snapshot before the migration failed, the
// host's fault (snapshotFailed).
type snapshotError struct{ err error }

func (e *snapshotError) Error() string { return e.err.Error() }
func (e *snapshotError) Unwrap() error { return e.err }

// checkRunning returns nil while the release runs, else why it stopped
// (notRunning), as the gate reports it.
func (e *Executor) checkRunning(ctx context.Context, name string) error {
	running, err := e.rt.Running(ctx, name)
	if err != nil {
		return fmt.Errorf("check %s: %w", name, err)
	}
	if !running {
		return e.notRunning(ctx, name)
	}
	return nil
}

// migrateFailed: a migration that failed, or a release whose app died
// before it ended, fails the release, with the last output lines or why
// the app died in the reason; traffic never moved to it. An app that died
// of a fault of the host is hostFailed, as at the gate. A migration that
// finished and could not be recorded stops the target and marks nothing:
// the next pass runs the migration again.
func migrateFailed(ctx context.Context, dp *deployment, err error) error {
	var re *recordError
	var se *snapshotError
	switch {
	case errors.As(err, &se):
		return snapshotFailed(ctx, dp, se.err)
	case hostFault(err):
		return dp.e.hostFailed(ctx, dp, fmt.Errorf("migrate: %w", err))
	case errors.As(err, &re):
		if serr := dp.e.rt.Stop(ctx, dp.target.Name); serr != nil {
			return errors.Join(err, fmt.Errorf("stop %s: %w", dp.target.Name, serr))
		}
		return fmt.Errorf("migrate: %w", err)
	}
	return dp.e.fail(ctx, dp, fmt.Errorf("migrate %s: %w", command.Quote(dp.spec.Migrate), err), false)
}

// migrateTail bounds the output a migration keeps: its last bytes, enough
// for MigrateOutputLines lines of any length the reason keeps.
const migrateTail = 8 << 10

// tailBuffer keeps the last max bytes written to it. Safe for concurrent
// use: a runtime may write stdout and stderr from two goroutines.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(p)
	if len(p) > b.max {
		p = p[len(p)-b.max:]
	}
	if over := len(b.buf) + len(p) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	b.buf = append(b.buf, p...)
	return n, nil
}

func (b *tailBuffer) bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.buf...)
}

// csi matches terminal control sequences (ESC [ ... final byte).
var csi = regexp.MustCompile(`\x1b\[[0-9;?]*[ -/]*[@-~]`)

// lastOutputLines returns the last n non-empty lines of out, each without
// terminal escapes or control characters and cut at 200 bytes, joined by
// " | ": a failure reason is one line (a ZFS property holds no newline)
// and is shown in a terminal.
func lastOutputLines(out []byte, n int) string {
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		l = csi.ReplaceAllString(l, "")
		l = strings.ToValidUTF8(l, "?")
		l = strings.TrimSpace(strings.Map(func(r rune) rune {
			if unicode.IsControl(r) {
				return -1
			}
			return r
		}, l))
		if len(l) > 200 {
			cut := 200
			for cut > 0 && !utf8.RuneStart(l[cut]) {
				cut--
			}
			l = l[:cut] + "..."
		}
		if l != "" {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines[max(len(lines)-n, 0):], " | ")
}
