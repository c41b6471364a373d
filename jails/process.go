package jails

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jailkeeper/jailkeeper/artifact"
	"github.com/jailkeeper/jailkeeper/release"
	"github.com/jailkeeper/jailkeeper/zfs"
)

// Defaults for ProcessConfig.
var (
	DefaultProcessPool           = netip.MustParsePrefix("127.77.0.0/16")
	DefaultProcessStopTimeout    = 10 * time.Second
	DefaultProcessTemplateName   = "default"
	DefaultProcessDestroyRetries = 5
)

// ErrProcessPoolExhausted means every address of the pool belongs to a
// release: destroy some, or widen the pool.
var ErrProcessPoolExhausted = release.ErrPoolExhausted

// Files of a release directory <Root>/<name>/.
const (
	processRootDir     = "root"         // the release root, command[0] is relative to it
	processReleaseFile = "release.json" // the Release fields (state, ip, ...)
	processSpecFile    = "process.json" // command and env from the manifest
	processEnvFile     = "env"          // the env_file's lines, mode 0600
	processPidFile     = "pid"          // "<pid> <identity>\n", see processIdentity
	processLogFile     = "log"          // stdout and stderr of the command
)

// processPath is the PATH a release's command starts with.
const processPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// ProcessConfig configures the process runtime.
type ProcessConfig struct {
	// Root holds one directory per release; created (mode 0750) if missing.
	Root string
	// Template, when set, is a directory copied into each new release root
	// (symbolic links as links; setuid and setgid bits dropped). Copy mode
	// only: it may not be set with Dataset.
	Template string
	// Dataset, when set (tank/jailkeeper), turns on ZFS mode: each release
	// root is a clone of the newest snapshot of the template dataset
	// Dataset/templates/<T>, named Dataset/releases/<release> and mounted
	// at <Root>/<release>/root. <T> is the spec's Template, else
	// TemplateName. Dataset/releases is created (mountpoint=none) when
	// missing; it belongs to this runtime and this Root alone. Empty: copy
	// mode, Template is copied.
	Dataset string
	// TemplateName is the template of a spec that names none, in ZFS mode.
	// Default "default".
	TemplateName string
	// DestroyRetries is how many more times a busy `zfs destroy` is tried
	// (see zfs.Destroy), in ZFS mode. Default 5.
	DestroyRetries int
	// Pool is where release addresses come from; its first two addresses
	// (.0 and .1 of the prefix) are never used. Default 127.77.0.0/16. On
	// Linux every 127.0.0.0/8 address is local; elsewhere the pool's
	// addresses must be configured on an interface (lo1 aliases).
	Pool netip.Prefix
	// StopTimeout is how long Stop waits after SIGTERM before SIGKILL.
	// Default 10s.
	StopTimeout time.Duration
	// Now is the clock for Created when a Spec has none; default time.Now.
	Now func() time.Time
}

// Process runs each release as a detached process bound to its own loopback
// address: the demo, the tests and hosts without jails use it.
//
// A release is the directory <Root>/<name>/ holding root/ (the release root:
// a copy of the template directory, or in ZFS mode the mountpoint of a clone
// of the template dataset, with the artifact installed), release.json (the
// Release fields, replaced atomically), process.json (command and env), env
// (the env_file's lines, mode 0600), pid and log. The command is started in
// its own session with its working directory in root/, command[0] taken
// relative to root/, stdout and stderr appended to log. Releases keep running
// when the agent exits; a new Process on the same Root finds them again.
// In both modes release.json is the only record of a release's state: a
// clone carries jailkeeper:managed=yes and jailkeeper:service, nothing else.
//
// There is no isolation: the command runs as the agent's user (Spec.User is
// ignored) and sees the host's file system. Use the jail runtime for that.
//
// A release's process is known by its PID and an identity read from the
// system when it starts: on Linux the boot id and the start time in
// /proc/<pid>/stat, on FreeBSD the start time after boot from the
// kern.proc.pid sysctl. A live process whose identity differs (its PID was
// reused, after an exit nobody saw or a reboot) is not the release's: it does
// not count as running and is never signalled. Elsewhere NewProcess fails.
//
// Process is safe for concurrent use. Calls for one release are serialised;
// calls for different releases run in parallel.
type Process struct {
	cfg ProcessConfig

	allocMu sync.Mutex // address choice and the first write of release.json

	mu    sync.Mutex
	locks map[string]*sync.Mutex // per release
}

// NewProcess returns the process runtime for cfg, creating cfg.Root. It
// fails where the identity of a process cannot be read (a system other than
// Linux and FreeBSD, no /proc, a 32-bit FreeBSD): without it a reused PID
// would be taken for a release's process and signalled.
func NewProcess(cfg ProcessConfig) (*Process, error) {
	if cfg.Root == "" {
		return nil, errors.New("process runtime: empty root")
	}
	if _, alive, err := processIdentity(os.Getpid()); err != nil || !alive {
		return nil, fmt.Errorf("process runtime: cannot identify processes (reading its own): %v", err)
	}
	root, err := filepath.Abs(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("process runtime: %w", err)
	}
	cfg.Root = root
	if !cfg.Pool.IsValid() {
		cfg.Pool = DefaultProcessPool
	}
	cfg.Pool = cfg.Pool.Masked()
	if !cfg.Pool.Addr().Is4() || cfg.Pool.Bits() > 30 {
		return nil, fmt.Errorf("process runtime: pool %s: want an IPv4 prefix of /30 or wider", cfg.Pool)
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = DefaultProcessStopTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Dataset != "" {
		if err := checkProcessZFS(&cfg); err != nil {
			return nil, fmt.Errorf("process runtime: %w", err)
		}
	}
	if cfg.Template != "" {
		fi, err := os.Stat(cfg.Template)
		if err != nil {
			return nil, fmt.Errorf("process runtime: template: %w", err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("process runtime: template %s is not a directory", cfg.Template)
		}
	}
	if err := os.MkdirAll(cfg.Root, 0o750); err != nil {
		return nil, fmt.Errorf("process runtime: %w", err)
	}
	return &Process{cfg: cfg, locks: map[string]*sync.Mutex{}}, nil
}

// checkProcessZFS checks and defaults the ZFS-mode fields of cfg.
func checkProcessZFS(cfg *ProcessConfig) error {
	if err := ValidDataset(cfg.Dataset); err != nil {
		return fmt.Errorf("dataset: %w", err)
	}
	if n := len(cfg.Dataset) + len("/releases/") + release.MaxName; n > release.MaxDataset {
		return fmt.Errorf("dataset %s: too long, release datasets below it would have %d characters (ZFS allows %d)",
			cfg.Dataset, n, release.MaxDataset)
	}
	if cfg.Template != "" {
		return fmt.Errorf("template directory %s and dataset %s: the template is a directory (copy mode) or a dataset, not both",
			cfg.Template, cfg.Dataset)
	}
	if cfg.TemplateName == "" {
		cfg.TemplateName = DefaultProcessTemplateName
	}
	if err := ValidTemplate(cfg.TemplateName); err != nil {
		return fmt.Errorf("template name: %w", err)
	}
	if cfg.DestroyRetries <= 0 {
		cfg.DestroyRetries = DefaultProcessDestroyRetries
	}
	if _, err := exec.LookPath("zfs"); err != nil {
		return fmt.Errorf("dataset %s: %w", cfg.Dataset, err)
	}
	return nil
}

// processSpec is process.json: what Start needs beyond release.json.
type processSpec struct {
	Command []string          `json:"command"`
	Env     map[string]string `json:"env,omitempty"`
}

func (p *Process) dir(name string) string { return filepath.Join(p.cfg.Root, name) }

// dataset is the clone of release name in ZFS mode.
func (p *Process) dataset(name string) string { return p.releases() + "/" + name }

// releases is the parent of the clones in ZFS mode.
func (p *Process) releases() string { return p.cfg.Dataset + "/releases" }

func (p *Process) lock(name string) func() {
	p.mu.Lock()
	l, ok := p.locks[name]
	if !ok {
		l = &sync.Mutex{}
		p.locks[name] = l
	}
	p.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// List returns the releases under Root, sorted by name, with Running
// observed from their pidfiles. Directories that are not releases (no
// release.json, or a name that is not a release name) are skipped. A release
// whose release.json cannot be read is reported, not fatal: it is listed in
// state failed with the cause in Reason and no address.
func (p *Process) List(ctx context.Context) ([]Release, error) {
	entries, err := os.ReadDir(p.cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("list releases: %w", err)
	}
	var out []Release
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if !e.IsDir() || ValidName(e.Name()) != nil {
			continue
		}
		r, err := p.read(e.Name())
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			r = Release{
				Name:    e.Name(),
				Service: release.ServiceOf(e.Name()),
				State:   StateFailed,
				Reason:  err.Error(),
			}
		}
		if r.Running, err = p.running(e.Name()); err != nil {
			return nil, fmt.Errorf("list releases: %w", err)
		}
		out = append(out, r)
	}
	return out, nil
}

// read returns the release.json of name; an error wrapping fs.ErrNotExist
// when there is none.
func (p *Process) read(name string) (Release, error) {
	b, err := os.ReadFile(filepath.Join(p.dir(name), processReleaseFile))
	if err != nil {
		return Release{}, fmt.Errorf("release %s: %w", name, err)
	}
	var r Release
	if err := json.Unmarshal(b, &r); err != nil {
		return Release{}, fmt.Errorf("release %s: corrupt %s: %w", name, processReleaseFile, err)
	}
	if r.Name != name {
		return Release{}, fmt.Errorf("release %s: corrupt %s: it names %q", name, processReleaseFile, r.Name)
	}
	if !r.State.Valid() {
		return Release{}, fmt.Errorf("release %s: corrupt %s: state %q", name, processReleaseFile, r.State)
	}
	return r, nil
}

func (p *Process) write(r Release) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return processWriteFile(filepath.Join(p.dir(r.Name), processReleaseFile), append(b, '\n'), 0o644)
}

// Create makes the release directory: release.json in state creating (so an
// interrupted create is visible and its address taken), the release root
// root/ (the template directory copied into it, or in ZFS mode the newest
// snapshot of the template dataset cloned and mounted there: `zfs clone -o
// jailkeeper:managed=yes -o jailkeeper:service=S -o mountpoint=ROOT SNAP
// DATASET/releases/NAME`), the artifact installed with artifact.Install
// (errors wrap artifact.ErrUnsafe for a refused tarball), the env file copied
// with mode 0600, then state ready, not running. On error the clone is
// destroyed and the directory removed (should the clone resist, the
// directory stays in state creating, and Destroy or the next Create removes
// both). A template dataset without a snapshot, or none, is ErrNoTemplate. A
// release of that name that exists in another state than creating is an
// error wrapping fs.ErrExist; a leftover of an interrupted create, clone
// included, is replaced. The address is the lowest one of the pool no other
// release has; none left is ErrProcessPoolExhausted.
func (p *Process) Create(ctx context.Context, spec Spec) (Release, error) {
	if err := p.checkSpec(spec); err != nil {
		return Release{}, fmt.Errorf("create %s: %w", spec.Name, err)
	}
	unlock := p.lock(spec.Name)
	defer unlock()
	r, err := p.create(ctx, spec)
	if err != nil {
		return Release{}, fmt.Errorf("create %s: %w", spec.Name, err)
	}
	return r, nil
}

func (p *Process) checkSpec(spec Spec) error {
	if err := ValidName(spec.Name); err != nil {
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
	if _, err := processRel(spec.Command[0]); err != nil {
		return err
	}
	if p.cfg.Dataset != "" && spec.Template != "" {
		if err := ValidTemplate(spec.Template); err != nil {
			return err
		}
	}
	for k := range spec.Env {
		if err := processCheckEnvKey(k); err != nil {
			return fmt.Errorf("env: %w", err)
		}
	}
	return nil
}

// processRel turns command[0] into a path relative to the release root.
func processRel(command0 string) (string, error) {
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

func (p *Process) create(ctx context.Context, spec Spec) (_ Release, err error) {
	dir := p.dir(spec.Name)
	switch old, err := p.read(spec.Name); {
	case err == nil && old.State != StateCreating:
		return Release{}, fmt.Errorf("release exists in state %s: %w", old.State, fs.ErrExist)
	case err == nil || !errors.Is(err, fs.ErrNotExist):
		// An interrupted create, or a corrupt one: replace it.
		if err := p.stop(ctx, spec.Name); err != nil {
			return Release{}, err
		}
	}
	// Whatever is left (no release.json: a crash leftover) goes.
	if err := p.remove(ctx, spec.Name); err != nil {
		return Release{}, err
	}
	var snapshot string
	if p.cfg.Dataset != "" {
		// Before anything is made: a missing template leaves nothing.
		if snapshot, err = p.templateSnapshot(ctx, spec.Template); err != nil {
			return Release{}, err
		}
	}

	r := spec.NewRelease(p.cfg.Now())
	if err := p.reserve(&r); err != nil {
		return Release{}, err
	}
	cloned := false // whether a clone of ours may exist
	defer func() {
		if err != nil {
			err = errors.Join(err, p.undo(ctx, spec.Name, cloned))
		}
	}()

	root := filepath.Join(dir, processRootDir)
	switch {
	case p.cfg.Dataset != "":
		cloned = true
		if err := p.clone(ctx, snapshot, spec, root); err != nil {
			// The name was taken meanwhile: not ours to destroy.
			cloned = !errors.Is(err, zfs.ErrExists)
			return Release{}, err
		}
	case p.cfg.Template != "":
		if err := processCopyTree(ctx, p.cfg.Template, root); err != nil {
			return Release{}, fmt.Errorf("copy template: %w", err)
		}
	default:
		if err := os.Mkdir(root, 0o755); err != nil {
			return Release{}, err
		}
	}
	if err := ctx.Err(); err != nil {
		return Release{}, err
	}
	if spec.Artifact != "" {
		if err := artifact.Install(ctx, spec.Artifact, root, spec.Command[0]); err != nil {
			return Release{}, err
		}
	}
	if spec.EnvFile != "" {
		b, err := os.ReadFile(spec.EnvFile)
		if err != nil {
			return Release{}, fmt.Errorf("env file: %w", err)
		}
		if _, err := processParseEnv(b); err != nil {
			return Release{}, fmt.Errorf("env file %s: %w", spec.EnvFile, err)
		}
		if err := processWriteFile(filepath.Join(dir, processEnvFile), b, 0o600); err != nil {
			return Release{}, err
		}
	}
	ps, err := json.MarshalIndent(processSpec{Command: spec.Command, Env: spec.Env}, "", "  ")
	if err != nil {
		return Release{}, err
	}
	if err := processWriteFile(filepath.Join(dir, processSpecFile), append(ps, '\n'), 0o644); err != nil {
		return Release{}, err
	}
	r.State = StateReady
	if err := p.write(r); err != nil {
		return Release{}, err
	}
	return r, nil
}

// templateSnapshot returns the newest snapshot of the template dataset of a
// spec naming template (TemplateName when empty); a patched template is a
// newer snapshot.
func (p *Process) templateSnapshot(ctx context.Context, template string) (string, error) {
	if template == "" {
		template = p.cfg.TemplateName
	}
	tds := TemplateDataset(p.cfg.Dataset, template)
	snaps, err := zfs.Snapshots(ctx, tds)
	if errors.Is(err, zfs.ErrNotFound) || (err == nil && len(snaps) == 0) {
		return "", fmt.Errorf("%w: %s (create it with zfs create, fill it, zfs snapshot %s@base)", ErrNoTemplate, tds, tds)
	}
	if err != nil {
		return "", err
	}
	return snaps[len(snaps)-1].Name, nil
}

// clone clones snapshot as the release's dataset mounted at root, with
// jailkeeper:managed=yes and jailkeeper:service set by the clone itself,
// and checks that it is mounted there. It creates Dataset/releases first
// when missing.
func (p *Process) clone(ctx context.Context, snapshot string, spec Spec, root string) error {
	switch ok, err := zfs.Exists(ctx, p.releases()); {
	case err != nil:
		return err
	case !ok:
		// mountpoint=none: the parent holds clones, nothing to mount.
		_, err := zfs.Create(ctx, p.releases(), map[string]string{"mountpoint": "none"})
		if err != nil && !errors.Is(err, zfs.ErrExists) {
			return err
		}
	}
	ds := p.dataset(spec.Name)
	d, err := zfs.Clone(ctx, snapshot, ds, map[string]string{
		propManaged:  "yes",
		propService:  spec.Service,
		"mountpoint": root,
	})
	if err != nil {
		return err
	}
	if filepath.Clean(d.Mountpoint) != root {
		return fmt.Errorf("clone %s has mountpoint %s, not %s", ds, d.Mountpoint, root)
	}
	// Without the mount, the artifact would land in the host's directory
	// and disappear below the clone at its next mount.
	switch mounted, err := processMounted(root); {
	case err != nil:
		return fmt.Errorf("clone %s: %w", ds, err)
	case !mounted:
		return fmt.Errorf("clone %s is not mounted at %s", ds, root)
	}
	return nil
}

// undo removes what a failed create made, even when ctx is cancelled (the
// failure may be the cancellation): the clone when cloned, then the
// directory. A clone that resists keeps the directory, in state creating.
func (p *Process) undo(ctx context.Context, name string, cloned bool) error {
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
func (p *Process) remove(ctx context.Context, name string) error {
	if p.cfg.Dataset != "" {
		if err := p.destroyClone(ctx, name); err != nil {
			return err
		}
	}
	return p.removeDir(name)
}

// destroyClone is `zfs destroy -r` of the release's clone, retried while
// busy; a missing clone is no error.
func (p *Process) destroyClone(ctx context.Context, name string) error {
	err := zfs.Destroy(ctx, p.dataset(name), p.cfg.DestroyRetries)
	if err != nil && !errors.Is(err, zfs.ErrNotFound) {
		return err
	}
	return nil
}

// removeDir removes the release's directory, but never while something is
// mounted on its root/: that would delete the mounted file system's files.
func (p *Process) removeDir(name string) error {
	dir := p.dir(name)
	mounted, err := processMounted(filepath.Join(dir, processRootDir))
	if err != nil {
		return err
	}
	if mounted {
		return fmt.Errorf("%s is still a mount point: not removing %s", filepath.Join(dir, processRootDir), dir)
	}
	return os.RemoveAll(dir)
}

// processMounted reports whether path is a mount point: a directory on
// another device than its parent's. A missing path is not one.
func processMounted(path string) (bool, error) {
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

// reserve picks r's address and creates its directory with release.json,
// under allocMu so that concurrent creates never share an address.
func (p *Process) reserve(r *Release) error {
	p.allocMu.Lock()
	defer p.allocMu.Unlock()
	used := map[netip.Addr]bool{}
	entries, err := os.ReadDir(p.cfg.Root)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.IsDir() || ValidName(e.Name()) != nil {
			continue
		}
		if o, err := p.read(e.Name()); err == nil {
			used[o.IP] = true
		}
	}
	ip, err := processPickAddr(p.cfg.Pool, used)
	if err != nil {
		return err
	}
	r.IP = ip
	if err := os.Mkdir(p.dir(r.Name), 0o750); err != nil {
		return err
	}
	return p.write(*r)
}

// processPickAddr returns the lowest address of pool, after its first two,
// that is not in used.
func processPickAddr(pool netip.Prefix, used map[netip.Addr]bool) (netip.Addr, error) {
	a := pool.Addr().Next().Next()
	for ; a.IsValid() && pool.Contains(a); a = a.Next() {
		if !used[a] {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("%w: %s", ErrProcessPoolExhausted, pool)
}

// Start starts a release that is not running: command[0] relative to the
// release root, with the manifest's args, working directory the release root,
// in its own session (so signals to the agent's terminal or process group
// never reach it), stdin /dev/null, stdout and stderr appended to the log.
// The environment is PATH, then the manifest's env, then the env file's
// lines, then PORT, HOST and ADDR (later ones win). Starting a running
// release is a no-op. The process outlives ctx and the agent: ctx only
// bounds the preparation.
func (p *Process) Start(ctx context.Context, name string) error {
	if err := ValidName(name); err != nil {
		return err
	}
	unlock := p.lock(name)
	defer unlock()
	if err := p.start(ctx, name); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	return nil
}

func (p *Process) start(ctx context.Context, name string) error {
	r, err := p.read(name)
	if err != nil {
		return err
	}
	if running, err := p.running(name); err != nil || running {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	dir := p.dir(name)
	b, err := os.ReadFile(filepath.Join(dir, processSpecFile))
	if err != nil {
		return err
	}
	var ps processSpec
	if err := json.Unmarshal(b, &ps); err != nil {
		return fmt.Errorf("corrupt %s: %w", processSpecFile, err)
	}
	if len(ps.Command) == 0 {
		return fmt.Errorf("corrupt %s: no command", processSpecFile)
	}
	rel, err := processRel(ps.Command[0])
	if err != nil {
		return err
	}
	root := filepath.Join(dir, processRootDir)

	env := []string{"PATH=" + processPath}
	keys := make([]string, 0, len(ps.Env))
	for k := range ps.Env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		// Checked at Create; a process.json from elsewhere is checked too.
		if err := processCheckEnvKey(k); err != nil {
			return fmt.Errorf("corrupt %s: env: %w", processSpecFile, err)
		}
		env = append(env, k+"="+ps.Env[k])
	}
	switch b, err := os.ReadFile(filepath.Join(dir, processEnvFile)); {
	case err == nil:
		lines, err := processParseEnv(b)
		if err != nil {
			return fmt.Errorf("env file: %w", err)
		}
		env = append(env, lines...)
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	env = append(env,
		"PORT="+strconv.Itoa(r.Port),
		"HOST="+r.IP.String(),
		"ADDR="+r.Addr(),
	)

	logf, err := os.OpenFile(filepath.Join(dir, processLogFile), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	// Not exec.CommandContext: the process must outlive ctx and the agent.
	cmd := exec.Command(filepath.Join(root, rel), ps.Command[1:]...)
	cmd.Dir = root
	cmd.Env = env
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	pid := cmd.Process.Pid
	// Identify the process before anything reaps it: until Wait, even a
	// child that already exited is still there, a zombie.
	id, _, idErr := processIdentity(pid)
	// Reap the process when it exits while this agent lives, so no zombie
	// stays; after the agent exits, init inherits it.
	go func() {
		err := cmd.Wait()
		state := "exit status 0"
		if err != nil {
			state = err.Error()
		}
		fmt.Fprintf(logf, "jailkeeper: %s (pid %d) ended: %s\n", name, pid, state)
		logf.Close()
	}()
	switch {
	case errors.Is(idErr, fs.ErrNotExist):
		// Gone already: "-" never matches, the release is not running.
		id = "-"
	case idErr != nil:
		// A process that cannot be identified could never be told from
		// a stranger later, so never be stopped: do not leave it.
		processSignal(pid, syscall.SIGKILL)
		return fmt.Errorf("identify pid %d (killed it): %w", pid, idErr)
	}
	pidfile := fmt.Appendf(nil, "%d %s\n", pid, id)
	if err := processWriteFile(filepath.Join(dir, processPidFile), pidfile, 0o644); err != nil {
		processSignal(pid, syscall.SIGKILL)
		return fmt.Errorf("write pidfile: %w", err)
	}
	return nil
}

// Running reports whether the release's process is alive: the pidfile's
// process exists, is not a zombie and has the identity the pidfile recorded
// (same boot, same start time), so a reused PID does not count. A release
// without a directory is an error wrapping fs.ErrNotExist.
func (p *Process) Running(ctx context.Context, name string) (bool, error) {
	if err := ValidName(name); err != nil {
		return false, err
	}
	if _, err := os.Stat(p.dir(name)); err != nil {
		return false, fmt.Errorf("release %s: %w", name, err)
	}
	ok, err := p.running(name)
	if err != nil {
		return false, fmt.Errorf("release %s: %w", name, err)
	}
	return ok, nil
}

// pid returns the release's pid if its process is alive and ours, else 0.
// Ours means the identity the pidfile recorded at Start is the process's now;
// a pidfile without one ("-", or an older format) is never ours.
func (p *Process) pid(name string) (int, error) {
	b, err := os.ReadFile(filepath.Join(p.dir(name), processPidFile))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
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
	id, alive, err := processIdentity(pid)
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

func (p *Process) running(name string) (bool, error) {
	pid, err := p.pid(name)
	return pid != 0, err
}

// Stop sends SIGTERM to the release's process group, waits up to
// StopTimeout for the process to exit, then sends SIGKILL, and removes the
// pidfile. Stopping a stopped (or missing) release is a no-op. When ctx ends
// first, Stop returns ctx's error and the process may still be exiting.
func (p *Process) Stop(ctx context.Context, name string) error {
	if err := ValidName(name); err != nil {
		return err
	}
	unlock := p.lock(name)
	defer unlock()
	if err := p.stop(ctx, name); err != nil {
		return fmt.Errorf("stop %s: %w", name, err)
	}
	return nil
}

func (p *Process) stop(ctx context.Context, name string) error {
	pid, err := p.pid(name)
	if err != nil {
		return err
	}
	if pid != 0 {
		if err := processSignal(pid, syscall.SIGTERM); err != nil {
			return err
		}
		gone, err := p.waitGone(ctx, name, p.cfg.StopTimeout)
		if err != nil {
			return err
		}
		if !gone {
			if err := processSignal(pid, syscall.SIGKILL); err != nil {
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
		processSignal(pid, syscall.SIGKILL)
	}
	if err := os.Remove(filepath.Join(p.dir(name), processPidFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// processKill is kill(2); tests wrap it to see every signal sent.
var processKill = syscall.Kill

// processSignal signals the process group pid leads; a group that is gone
// is not an error.
func processSignal(pid int, sig syscall.Signal) error {
	if err := processKill(-pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill -%d -%d: %w", sig, pid, err)
	}
	return nil
}

// waitGone polls until the release's process is gone or max passed.
func (p *Process) waitGone(ctx context.Context, name string, max time.Duration) (bool, error) {
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

// SetStatus records st in release.json, replacing the file atomically.
func (p *Process) SetStatus(ctx context.Context, name string, st Status) error {
	if err := ValidName(name); err != nil {
		return err
	}
	if !st.State.Valid() {
		return fmt.Errorf("set status of %s: invalid state %q", name, st.State)
	}
	unlock := p.lock(name)
	defer unlock()
	r, err := p.read(name)
	if err != nil {
		return fmt.Errorf("set status: %w", err)
	}
	r.State, r.Reason, r.Failures, r.FailedAt = st.State, st.Reason, st.Failures, st.FailedAt.UTC()
	if st.FailedAt.IsZero() {
		r.FailedAt = time.Time{}
	}
	if err := p.write(r); err != nil {
		return fmt.Errorf("set status of %s: %w", name, err)
	}
	return nil
}

// Destroy stops the release, destroys its clone in ZFS mode (`zfs destroy
// -r`, retried DestroyRetries times while busy) and removes its directory;
// the directory is never removed while something is mounted on its root, so
// a failed destroy leaves the release listed and can be tried again.
// Destroying a missing release is a no-op.
func (p *Process) Destroy(ctx context.Context, name string) error {
	if err := ValidName(name); err != nil {
		return err
	}
	unlock := p.lock(name)
	defer unlock()
	if err := p.stop(ctx, name); err != nil {
		return fmt.Errorf("destroy %s: %w", name, err)
	}
	if err := p.remove(ctx, name); err != nil {
		return fmt.Errorf("destroy %s: %w", name, err)
	}
	return nil
}

// Log returns the path of the release's log file (stdout and stderr of its
// command), which may not exist yet.
func (p *Process) Log(name string) (string, error) {
	if err := ValidName(name); err != nil {
		return "", err
	}
	return filepath.Join(p.dir(name), processLogFile), nil
}

// processWriteFile replaces path with data atomically: a temporary file in
// the same directory, fsync, rename.
func processWriteFile(path string, data []byte, mode fs.FileMode) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Chmod(mode); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// processCopyTree copies the directory src to dst (which must not exist):
// directories, regular files and symbolic links, with permission and sticky
// bits. Anything else is an error.
func processCopyTree(ctx context.Context, src, dst string) error {
	type dirMode struct {
		path string
		mode fs.FileMode
	}
	var dirs []dirMode
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		mode := fi.Mode().Perm() | fi.Mode()&fs.ModeSticky
		switch {
		case fi.IsDir():
			dirs = append(dirs, dirMode{target, mode})
			return os.Mkdir(target, 0o700)
		case fi.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case fi.Mode().IsRegular():
			return processCopyFile(path, target, mode)
		default:
			return fmt.Errorf("%s: unsupported file type %v", path, fi.Mode().Type())
		}
	})
	if err != nil {
		return err
	}
	// Modes last and deepest first, so that read-only directories could be
	// filled.
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := os.Chmod(dirs[i].path, dirs[i].mode); err != nil {
			return err
		}
	}
	return nil
}

func processCopyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Chmod(mode); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
