package process

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jailkeeper/jailkeeper/artifact"
	"github.com/jailkeeper/jailkeeper/internal/atomicfile"
	"github.com/jailkeeper/jailkeeper/release"
	"github.com/jailkeeper/jailkeeper/zfs"
)

// Create makes the release directory: release.json in state creating (so an
// interrupted create is visible and its address taken), the release root
// root/ (the template directory copied into it, or in ZFS mode the newest
// snapshot of the template dataset cloned and mounted there: `zfs clone -o
// jailkeeper:managed=yes -o jailkeeper:service=S -o mountpoint=ROOT SNAP
// DATASET/releases/NAME`), the artifact installed with artifact.Install
// (errors wrap artifact.ErrUnsafe for a refused tarball), the env file copied
// with mode 0600, the spec's data sets made where missing (ensureData:
// <Root>/data/<service>/<name>, shared with every release of the service
// and never removed here, not even on error), then state ready, not
// running. On error the clone is
// destroyed and the directory removed (should the clone resist, the
// directory stays in state creating, and Destroy or the next Create removes
// both). A template dataset without a snapshot, or none, is
// release.ErrNoTemplate. A release of that name that exists in another
// state than creating is an error wrapping fs.ErrExist; a leftover of an
// interrupted create, clone included, is replaced. The address is the
// lowest one of the pool no other release has and no process holds with
// the spec's port (a bind probe); none left is release.ErrPoolExhausted.
func (p *Runtime) Create(ctx context.Context, spec release.Spec) (release.Release, error) {
	if err := p.checkSpec(spec); err != nil {
		return release.Release{}, fmt.Errorf("create %s: %w", spec.Name, err)
	}
	unlock := p.lock(spec.Name)
	defer unlock()
	defer p.listed.forget(spec.Name) // List reads its files again
	r, err := p.create(ctx, spec)
	if err != nil {
		return release.Release{}, fmt.Errorf("create %s: %w", spec.Name, err)
	}
	return r, nil
}

func (p *Runtime) checkSpec(spec release.Spec) error {
	if err := release.ValidName(spec.Name); err != nil {
		return err
	}
	if release.ServiceOf(spec.Name) != spec.Service {
		return fmt.Errorf("release name %s does not belong to service %q", spec.Name, spec.Service)
	}
	if spec.Port < 1 || spec.Port > 65535 {
		return fmt.Errorf("port %d out of range", spec.Port)
	}
	if len(spec.Command) == 0 || spec.Command[0] == "" {
		return errors.New("empty command")
	}
	if _, err := commandPath(spec.Command[0]); err != nil {
		return err
	}
	if p.cfg.Dataset != "" && spec.Template != "" {
		if err := release.ValidTemplate(spec.Template); err != nil {
			return err
		}
	}
	for k := range spec.Env {
		if err := release.ValidEnvKey(k); err != nil {
			return fmt.Errorf("env: %w", err)
		}
	}
	return checkData(spec.Data)
}

// commandPath turns command[0] into a path relative to the release root.
func commandPath(command0 string) (string, error) {
	rel := strings.TrimLeft(command0, "/")
	for _, c := range strings.Split(rel, "/") {
		if c == ".." {
			return "", fmt.Errorf("command %q leaves the release root", command0)
		}
	}
	rel = filepath.Clean(rel)
	if rel == "." {
		return "", fmt.Errorf("command %q names no file", command0)
	}
	return rel, nil
}

func (p *Runtime) create(ctx context.Context, spec release.Spec) (_ release.Release, err error) {
	dir := p.dir(spec.Name)
	switch old, err := p.read(spec.Name); {
	case err == nil && old.State != release.StateCreating:
		return release.Release{}, fmt.Errorf("release exists in state %s: %w: %w", old.State, release.ErrExists, fs.ErrExist)
	case err == nil || !errors.Is(err, fs.ErrNotExist):
		// An interrupted create, or a corrupt one: replace it.
		if err := p.stop(ctx, spec.Name); err != nil {
			return release.Release{}, err
		}
	}
	// Whatever is left (no release.json: a crash leftover) goes.
	if err := p.remove(ctx, spec.Name); err != nil {
		return release.Release{}, err
	}
	// Before anything is made: a missing template leaves nothing.
	snapshot, snapName, err := p.pickTemplate(ctx, spec)
	if err != nil {
		return release.Release{}, err
	}

	r := spec.NewRelease(p.cfg.Now())
	r.TemplateSnapshot = snapName
	if err := p.reserve(&r); err != nil {
		return release.Release{}, err
	}
	cpCreateReserved.Hit()
	cloned := false // whether a clone of ours may exist
	defer func() {
		if err != nil {
			err = errors.Join(err, p.undo(ctx, spec.Name, cloned))
		}
	}()

	root := filepath.Join(dir, rootDir)
	switch {
	case p.cfg.Dataset != "":
		cloned = true
		if err := p.clone(ctx, snapshot, spec, root); err != nil {
			// The name was taken meanwhile: not ours to destroy.
			cloned = !errors.Is(err, zfs.ErrExists)
			return release.Release{}, err
		}
	case p.cfg.Template != "":
		if err := copyTree(ctx, p.cfg.Template, root); err != nil {
			return release.Release{}, fmt.Errorf("copy template: %w", err)
		}
	default:
		if err := os.Mkdir(root, 0o755); err != nil {
			return release.Release{}, err
		}
	}
	cpCreateRooted.Hit()
	if err := ctx.Err(); err != nil {
		return release.Release{}, err
	}
	if spec.Artifact != "" {
		if err := artifact.Install(ctx, spec.Artifact, root, spec.Command[0]); err != nil {
			return release.Release{}, err
		}
	}
	cpCreateInstalled.Hit()
	if spec.EnvFile != "" {
		b, err := os.ReadFile(spec.EnvFile)
		if err != nil {
			return release.Release{}, fmt.Errorf("env file: %w", err)
		}
		if _, err := release.ParseEnvFile(b); err != nil {
			return release.Release{}, fmt.Errorf("env file %s: %w", spec.EnvFile, err)
		}
		if err := atomicfile.WriteFile(filepath.Join(dir, envFile), b, 0o600); err != nil {
			return release.Release{}, err
		}
	}
	data := p.dataMounts(spec.Service, spec.Data)
	if err := p.ensureData(ctx, spec.Service, data); err != nil {
		return release.Release{}, err
	}
	ps, err := json.MarshalIndent(commandSpec{Command: spec.Command, Env: spec.Env, Data: data}, "", "  ")
	if err != nil {
		return release.Release{}, err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, specFile), append(ps, '\n'), 0o644); err != nil {
		return release.Release{}, err
	}
	cpCreateConfigured.Hit()
	r.State = release.StateReady
	if err := p.write(r); err != nil {
		return release.Release{}, err
	}
	p.setStrayFree(spec.Name, true) // a new directory: no process works in it
	return r, nil
}

// undo removes what a failed create made, even when ctx is cancelled (the
// failure may be the cancellation): the clone when cloned, then the
// directory. A clone that resists keeps the directory, in state creating.
func (p *Runtime) undo(ctx context.Context, name string, cloned bool) error {
	ctx = context.WithoutCancel(ctx)
	if cloned {
		if err := p.destroyClone(ctx, name); err != nil {
			return err
		}
	}
	return p.removeDir(name)
}

// remove destroys the release's clone in ZFS mode (a missing one is no
// error), then removes its directory.
func (p *Runtime) remove(ctx context.Context, name string) error {
	if p.cfg.Dataset != "" {
		if err := p.destroyClone(ctx, name); err != nil {
			return err
		}
	}
	return p.removeDir(name)
}

// removeDir removes the release's directory, but never while something is
// mounted on its root/: that would delete the mounted file system's files.
func (p *Runtime) removeDir(name string) error {
	dir := p.dir(name)
	mounted, err := isMountPoint(filepath.Join(dir, rootDir))
	if err != nil {
		return err
	}
	if mounted {
		return fmt.Errorf("%s is still a mount point: not removing %s", filepath.Join(dir, rootDir), dir)
	}
	if err := os.RemoveAll(dir); err == nil || !errors.Is(err, fs.ErrPermission) {
		return err
	}
	// An artifact's directory modes (0555 holding 0000) stop an agent that
	// is not root from removing what it created: make every directory
	// ours to read and write, then remove again.
	if err := ownDirs(dir); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	return os.RemoveAll(dir)
}

// ownDirs gives the owner rwx on every directory below dir, each before it
// is read. It goes through an os.Root on dir and never follows a symbolic
// link out of it.
func ownDirs(dir string) error {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer r.Close()
	return fs.WalkDir(r.FS(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		return r.Chmod(path, 0o700)
	})
}

// isMountPoint reports whether path is a mount point: a directory on
// another device than its parent's. A missing path is not one.
func isMountPoint(path string) (bool, error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !fi.IsDir() {
		return false, nil
	}
	pfi, err := os.Stat(filepath.Dir(path))
	if err != nil {
		return false, err
	}
	st, ok1 := fi.Sys().(*syscall.Stat_t)
	pst, ok2 := pfi.Sys().(*syscall.Stat_t)
	if !ok1 || !ok2 {
		return false, fmt.Errorf("%s: no device numbers", path)
	}
	return st.Dev != pst.Dev, nil
}

// Start starts a release that is not running: command[0] relative to the
// release root, with the manifest's args, working directory the release root,
// in its own session (so signals to the agent's terminal or process group
// never reach it), stdin /dev/null, stdout and stderr appended to the log.
// The environment is PATH, then the manifest's env, then the env file's
// lines, then PORT, HOST and ADDR (later ones win). Starting a running
// release is a no-op. The process outlives ctx and the agent: ctx only
// bounds the preparation. An exec that fails with ETXTBSY (an executable
// just written, whose write descriptor a child forked meanwhile still
// holds) is tried again a few times; one that lasts is
// release.ErrHostBusy. Exit tells why a started process is gone. The
// release's limits are set on the process right after it starts, on
// Linux (applyLimits, LimitsApplied).
func (p *Runtime) Start(ctx context.Context, name string) error {
	if err := release.ValidName(name); err != nil {
		return err
	}
	unlock := p.lock(name)
	defer unlock()
	defer p.listed.forget(name) // List reads its files again
	if err := p.start(ctx, name); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	return nil
}

func (p *Runtime) start(ctx context.Context, name string) error {
	r, err := p.read(name)
	if err != nil {
		return err
	}
	if running, err := p.running(name); err != nil || running {
		return err
	}
	if !p.strayFree(name) {
		if err := p.killStrays(ctx, name, r); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	dir := p.dir(name)
	b, err := os.ReadFile(filepath.Join(dir, specFile))
	if err != nil {
		return err
	}
	var ps commandSpec
	if err := json.Unmarshal(b, &ps); err != nil {
		return fmt.Errorf("corrupt %s: %w", specFile, err)
	}
	if len(ps.Command) == 0 {
		return fmt.Errorf("corrupt %s: no command", specFile)
	}
	rel, err := commandPath(ps.Command[0])
	if err != nil {
		return err
	}
	root := filepath.Join(dir, rootDir)
	if err := p.ensureData(ctx, r.Service, ps.Data); err != nil {
		return err
	}

	env, err := releaseEnv(dir, r, ps)
	if err != nil {
		return err
	}

	logf, err := os.OpenFile(filepath.Join(dir, logFile), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	rec := &exitRecord{done: make(chan struct{})}
	if fi, err := logf.Stat(); err == nil {
		rec.offset = fi.Size()
	}
	var cmd *exec.Cmd
	err = startBusy(ctx, func() error {
		// Not exec.CommandContext: the process must outlive ctx and the
		// agent. A new Cmd for each try: one that failed to start is spent.
		cmd = exec.Command(filepath.Join(root, rel), ps.Command[1:]...)
		cmd.Dir = root
		cmd.Env = env
		cmd.Stdout = logf
		cmd.Stderr = logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		return cmd.Start()
	})
	if err != nil {
		logf.Close()
		return err
	}
	p.setExit(name, rec)
	p.setStrayFree(name, false) // its app may leave children when it dies
	pid := cmd.Process.Pid
	// At once: the app runs unlimited until then (applyLimits).
	limErr := applyLimits(pid, r.Limits)
	cpStartForked.Hit()
	// Identify the process before anything reaps it: until Wait, even a
	// child that already exited is still there, a zombie.
	id, _, idErr := identity(pid)
	rec.pid.Store(int64(pid))
	// Reap the process when it exits while this agent lives, so no zombie
	// stays; after the agent exits, init inherits it.
	go func() {
		awaitExit(pid)
		err := cmd.Wait()
		state := "exit status 0"
		if err != nil {
			state = err.Error()
		}
		fmt.Fprintf(logf, "jailkeeper: %s (pid %d) ended: %s\n", name, pid, state)
		logf.Close()
		rec.state = state
		close(rec.done)
	}()
	switch {
	case errors.Is(idErr, fs.ErrNotExist):
		// Gone already: "-" never matches, the release is not running.
		id = "-"
	case idErr != nil:
		// A process that cannot be identified could never be told from
		// a stranger later, so never be stopped: do not leave it.
		signalGroup(pid, syscall.SIGKILL)
		return fmt.Errorf("identify pid %d (killed it): %w", pid, idErr)
	case limErr != nil:
		// Never leave it running without its limits.
		signalGroup(pid, syscall.SIGKILL)
		return fmt.Errorf("resource limits of pid %d (killed it): %w", pid, limErr)
	}
	pidfile := fmt.Appendf(nil, "%d %s\n", pid, id)
	// No fsync: a pidfile means something only while the machine that
	// wrote it is up (a crash of the machine ends the process, and a
	// lost or empty pidfile then reads as not running, which is true),
	// and the fsync was one of the costliest parts of a start under load.
	if err := atomicfile.WriteFileUnsynced(filepath.Join(dir, pidFile), pidfile, 0o644); err != nil {
		signalGroup(pid, syscall.SIGKILL)
		return fmt.Errorf("write pidfile: %w", err)
	}
	return nil
}

// pid returns the release's pid if its process is alive and ours, else 0.
// Ours means the identity the pidfile recorded at Start is the process's now;
// a pidfile without one ("-", or an older format) is never ours.
func (p *Runtime) pid(name string) (int, error) {
	b, err := os.ReadFile(filepath.Join(p.dir(name), pidFile))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return livePID(b)
}

// livePID returns the PID a pidfile's content b names when that process
// is alive and has the identity recorded, else 0.
func livePID(b []byte) (int, error) {
	fields := strings.Fields(string(b))
	if len(fields) != 2 {
		return 0, nil // corrupt: nothing we can safely signal
	}
	pid, err := strconv.Atoi(fields[0])
	if err != nil || pid <= 1 {
		return 0, nil
	}
	want := fields[1]
	if want == "-" {
		return 0, nil // never identified: cannot be told from a stranger
	}
	id, alive, err := identity(pid)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if !alive || id != want {
		return 0, nil // dead, or the PID was reused by another process
	}
	return pid, nil
}

func (p *Runtime) running(name string) (bool, error) {
	pid, err := p.pid(name)
	return pid != 0, err
}

// Stop sends SIGTERM to the release's process group, waits up to
// StopTimeout for the process to exit, then sends SIGKILL, and removes the
// pidfile. Stopping a stopped (or missing) release is a no-op. When ctx ends
// first, Stop returns ctx's error and the process may still be exiting.
func (p *Runtime) Stop(ctx context.Context, name string) error {
	if err := release.ValidName(name); err != nil {
		return err
	}
	unlock := p.lock(name)
	defer unlock()
	defer p.listed.forget(name) // List reads its files again
	if err := p.stop(ctx, name); err != nil {
		return fmt.Errorf("stop %s: %w", name, err)
	}
	return nil
}

func (p *Runtime) stop(ctx context.Context, name string) error {
	pid, err := p.pid(name)
	if err != nil {
		return err
	}
	if pid != 0 {
		if err := signalGroup(pid, syscall.SIGTERM); err != nil {
			return err
		}
		cpStopSignalled.Hit()
		gone, err := p.waitGone(ctx, name, p.cfg.StopTimeout)
		if err != nil {
			return err
		}
		if !gone {
			if err := signalGroup(pid, syscall.SIGKILL); err != nil {
				return err
			}
			// SIGKILL cannot be ignored; only a process stuck in the
			// kernel outlives this wait.
			if gone, err = p.waitGone(ctx, name, 10*time.Second); err != nil {
				return err
			}
			if !gone {
				return fmt.Errorf("pid %d survived SIGKILL", pid)
			}
		}
		// Children that ignored SIGTERM outlive their leader.
		signalGroup(pid, syscall.SIGKILL)
		cpStopGone.Hit()
	}
	if r, err := p.read(name); err == nil {
		if err := p.killStrays(ctx, name, r); err != nil {
			return err
		}
		p.setStrayFree(name, true)
	}
	if err := os.Remove(filepath.Join(p.dir(name), pidFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// sysKill is kill(2); tests wrap it to see every signal sent.
var sysKill = syscall.Kill

// signalGroup signals the process group pid leads; a group that is gone
// is not an error.
func signalGroup(pid int, sig syscall.Signal) error {
	if err := sysKill(-pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill -%d -%d: %w", sig, pid, err)
	}
	return nil
}

// waitGone polls until the release's process is gone or max passed.
func (p *Runtime) waitGone(ctx context.Context, name string, max time.Duration) (bool, error) {
	deadline := time.NewTimer(max)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		running, err := p.running(name)
		if err != nil || !running {
			return !running, err
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-deadline.C:
			return false, nil
		case <-tick.C:
		}
	}
}

// Destroy stops the release, destroys its clone in ZFS mode (`zfs destroy
// -r`, retried DestroyRetries times while busy) and removes its directory;
// the directory is never removed while something is mounted on its root, so
// a failed destroy leaves the release listed and can be tried again.
// Destroying a missing release is a no-op.
func (p *Runtime) Destroy(ctx context.Context, name string) error {
	if err := release.ValidName(name); err != nil {
		return err
	}
	unlock := p.lock(name)
	defer unlock()
	defer p.listed.forget(name) // List reads its files again
	if err := p.stop(ctx, name); err != nil {
		return fmt.Errorf("destroy %s: %w", name, err)
	}
	cpDestroyStopped.Hit()
	if p.cfg.Dataset != "" {
		if err := p.destroyClone(ctx, name); err != nil {
			return fmt.Errorf("destroy %s: %w", name, err)
		}
		cpDestroyDataset.Hit()
	}
	if err := p.removeDir(name); err != nil {
		return fmt.Errorf("destroy %s: %w", name, err)
	}
	p.setExit(name, nil)
	p.setStrayFree(name, false)
	return nil
}
