package process

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/jailkeeper/jailkeeper/internal/command"
	"github.com/jailkeeper/jailkeeper/release"
	"github.com/jailkeeper/jailkeeper/zfs"
)

// Defaults for Config.
var (
	DefaultPool           = netip.MustParsePrefix("127.77.0.0/16")
	DefaultStopTimeout    = 10 * time.Second
	DefaultTemplateName   = "default"
	DefaultDestroyRetries = 5
)

// Files of a release directory <Root>/<name>/.
const (
	rootDir     = "root"         // the release root, command[0] is relative to it
	releaseFile = "release.json" // the Release fields (state, ip, ...)
	specFile    = "process.json" // command and env from the manifest
	envFile     = "env"          // the env_file's lines, mode 0600
	pidFile     = "pid"          // "<pid> <identity>\n", see identity
	logFile     = "log"          // stdout and stderr of the command
)

// defaultPATH is the PATH a release's command starts with.
const defaultPATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Config configures the process runtime.
type Config struct {
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
	// (see zfs.Client.Destroy), in ZFS mode. Default 5.
	DestroyRetries int
	// ZFS runs the zfs commands of ZFS mode. Default zfs.New(command.Exec{}).
	ZFS *zfs.Client
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

// Runtime is the process runtime (see the package doc): it runs each release
// as a detached process bound to its own loopback address. It implements
// the reconcile.Runtime contract.
//
// Runtime is safe for concurrent use. Calls for one release are
// serialised; calls for different releases run in parallel.
type Runtime struct {
	cfg Config
	zfs *zfs.Client // cfg.ZFS

	allocMu sync.Mutex // address choice and the first write of release.json
	book    addrBook   // under allocMu

	mu    sync.Mutex
	locks map[string]*sync.Mutex // per release
	exits map[string]*exitRecord // per release this value started, see Exit
	// releases that can have no stray process (strayfree.go)
	noStrays map[string]bool

	listed listCache // what the last List read

	tmpl contentCache // the copy-mode template's content name
}

// New checks cfg, fills in the defaults and returns the process runtime,
// creating cfg.Root. In ZFS mode it checks that the zfs command is there but
// runs nothing. It fails where the identity of a process cannot be read (a system other than
// Linux and FreeBSD, no /proc, a 32-bit FreeBSD): without it a reused PID
// would be taken for a release's process and signalled.
func New(cfg Config) (*Runtime, error) {
	if cfg.Root == "" {
		return nil, errors.New("process runtime: empty root")
	}
	if _, alive, err := identity(os.Getpid()); err != nil || !alive {
		return nil, fmt.Errorf("process runtime: cannot identify processes (reading its own): %v", err)
	}
	root, err := filepath.Abs(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("process runtime: %w", err)
	}
	cfg.Root = root
	if !cfg.Pool.IsValid() {
		cfg.Pool = DefaultPool
	}
	cfg.Pool = cfg.Pool.Masked()
	if !cfg.Pool.Addr().Is4() || cfg.Pool.Bits() > 30 {
		return nil, fmt.Errorf("process runtime: pool %s: want an IPv4 prefix of /30 or wider", cfg.Pool)
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = DefaultStopTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Dataset != "" {
		if err := checkZFS(&cfg); err != nil {
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
	if cfg.ZFS == nil {
		cfg.ZFS = zfs.New(command.Exec{})
	}
	return &Runtime{cfg: cfg, zfs: cfg.ZFS, locks: map[string]*sync.Mutex{}, exits: map[string]*exitRecord{}}, nil
}

// commandSpec is process.json: what Start needs beyond release.json.
type commandSpec struct {
	Command []string          `json:"command"`
	Env     map[string]string `json:"env,omitempty"`
	Data    []dataMount       `json:"data,omitempty"` // see data.go
}

func (p *Runtime) dir(name string) string { return filepath.Join(p.cfg.Root, name) }

func (p *Runtime) lock(name string) func() {
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

// Running reports whether the release's process is alive: the pidfile's
// process exists, is not a zombie and has the identity the pidfile recorded
// (same boot, same start time), so a reused PID does not count. A release
// without a directory is an error wrapping fs.ErrNotExist.
func (p *Runtime) Running(ctx context.Context, name string) (bool, error) {
	if err := release.ValidName(name); err != nil {
		return false, err
	}
	if _, err := os.Stat(p.dir(name)); errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("release %s: %w: %w", name, release.ErrNotFound, err)
	} else if err != nil {
		return false, fmt.Errorf("release %s: %w", name, err)
	}
	ok, err := p.running(name)
	if err != nil {
		return false, fmt.Errorf("release %s: %w", name, err)
	}
	return ok, nil
}

// Log returns the path of the release's log file (stdout and stderr of its
// command), which may not exist yet.
func (p *Runtime) Log(name string) (string, error) {
	if err := release.ValidName(name); err != nil {
		return "", err
	}
	return filepath.Join(p.dir(name), logFile), nil
}
