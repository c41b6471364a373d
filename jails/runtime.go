package jails

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/jailkeeper/jailkeeper/internal/command"
	"github.com/jailkeeper/jailkeeper/release"
	"github.com/jailkeeper/jailkeeper/zfs"
)

// Errors of the FreeBSD runtime, for errors.Is. It also returns, wrapped,
// release.ErrNotFound, release.ErrPoolExhausted and release.ErrNoTemplate
// (the template dataset has no snapshot to clone: run `jailkeeper template
// create VERSION`).
var (
	// ErrDying: the jail was removed but is still dying (jls -d shows
	// DYING) after the wait: its name, address and root are not free yet.
	ErrDying = errors.New("jail is still dying")
	// ErrAddressTaken: the release's address is held by another jail, or
	// configured on an interface as an address that is not the release's.
	// It wraps release.ErrAddressInUse: the host's fault, never the
	// release's, so reconcile retries on another address.
	ErrAddressTaken = fmt.Errorf("address held by another jail: %w", release.ErrAddressInUse)
	// ErrPoolOverlap: the pool overlaps the network of an address on
	// another interface than the runtime's; releases would take addresses
	// the host routes elsewhere.
	ErrPoolOverlap = errors.New("address pool overlaps another interface's network")
)

// FreeBSDConfig configures the jail runtime. Dataset, Root, Template,
// Interface, ConfDir and Pool are required; the rest have defaults.
type FreeBSDConfig struct {
	// Dataset is the parent of jailkeeper's datasets (zroot/jails):
	// Dataset/templates/<T> holds the templates, Dataset/containers/<name>
	// the releases.
	Dataset string
	// Root is Dataset's mountpoint (/usr/local/jails); a release's jail root
	// is Root/containers/<name>.
	Root string
	// Template is the template of a spec that names none (14.3-RELEASE).
	Template string
	// Interface carries the releases' addresses (lo1).
	Interface string
	// ConfDir holds one jail.conf(5) file per release (/etc/jail.conf.d).
	ConfDir string
	// Pool is where release addresses come from (172.16.0.0/12). Its first
	// host address is the interface's own (see InterfaceAddr).
	Pool netip.Prefix
	// ExecTimeout is jail(8)'s exec.timeout: how long exec.start and
	// exec.stop (/etc/rc, /etc/rc.shutdown) may take. Default 60s.
	ExecTimeout time.Duration
	// StopTimeout is jail(8)'s stop.timeout: how long processes get after
	// SIGTERM when the jail stops. Default 30s.
	StopTimeout time.Duration
	// DyingTimeout bounds the wait for a dying jail to go away before a
	// start or destroy. A jail whose TCP sockets sit in TIME_WAIT dies in
	// about a minute. Default 90s.
	DyingTimeout time.Duration
	// PollInterval is how often jls is asked while waiting. Default 1s.
	PollInterval time.Duration
	// DestroyRetries is how many more times a busy `zfs destroy` is tried.
	// Default 5.
	DestroyRetries int
	// LogDir is where jail(8) writes each jail's console log
	// (exec.consolelog): LogDir/jail_<name>_console.log, rc.d/jail's
	// naming. Default /var/log.
	LogDir string
	// Runner runs jail, jls, ifconfig, mount and umount. Default
	// command.Exec{}.
	Runner command.Runner
	// Attach runs a command with the caller's stdin, stdout and stderr
	// (jexec for Exec), which a Runner cannot carry. Default: os/exec,
	// typed argv, killed when ctx ends.
	Attach func(ctx context.Context, argv []string, stdin io.Reader, stdout, stderr io.Writer) error
	// Datasets manages the ZFS datasets. Default zfs.New(Runner).
	Datasets Datasets
	// Now is the clock for creation times. Default time.Now.
	Now func() time.Time
}

// FreeBSD runs releases in jails on ZFS clones of a template (DESIGN.md,
// "Runtimes"). It keeps no state of its own: releases are datasets with
// jailkeeper:* user properties, running jails are what jls reports. It
// implements the reconcile.Runtime contract and is safe for concurrent use
// by different releases; calls for one release must be serialised by the
// caller.
type FreeBSD struct {
	cfg FreeBSDConfig
	// net serialises the address work: a create's choice of address and
	// its stale-alias sweep take it exclusively, so two creates never pick
	// the same address; starts and stops take it shared around jail -c/-r,
	// which add and remove aliases, so the sweep never mistakes an alias of
	// a jail being started for a leftover.
	net sync.RWMutex
}

// NewFreeBSD checks cfg, fills in the defaults and returns the runtime. It
// runs nothing.
func NewFreeBSD(cfg FreeBSDConfig) (*FreeBSD, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("jail runtime: "+format, args...)) }
	if cfg.Dataset == "" || strings.HasPrefix(cfg.Dataset, "/") || strings.HasSuffix(cfg.Dataset, "/") {
		bad("dataset %q is not a ZFS dataset name", cfg.Dataset)
	}
	for field, p := range map[string]string{"root": cfg.Root, "conf_dir": cfg.ConfDir} {
		if !filepath.IsAbs(p) {
			bad("%s %q is not an absolute path", field, p)
		}
	}
	if release.ValidTemplate(cfg.Template) != nil {
		bad("template %q is not a template name", cfg.Template)
	}
	if !ifaceRE.MatchString(cfg.Interface) {
		bad("interface %q is not an interface name", cfg.Interface)
	}
	if !cfg.Pool.IsValid() || !cfg.Pool.Addr().Is4() || cfg.Pool.Bits() > 30 {
		bad("pool %s is not an IPv4 prefix of /30 or wider", cfg.Pool)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	cfg.Root = filepath.Clean(cfg.Root)
	cfg.ConfDir = filepath.Clean(cfg.ConfDir)
	cfg.Pool = cfg.Pool.Masked()
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.ExecTimeout, 60*time.Second)
	def(&cfg.StopTimeout, 30*time.Second)
	def(&cfg.DyingTimeout, 90*time.Second)
	def(&cfg.PollInterval, time.Second)
	if cfg.DestroyRetries <= 0 {
		cfg.DestroyRetries = 5
	}
	if cfg.LogDir == "" {
		cfg.LogDir = "/var/log"
	}
	if cfg.Runner == nil {
		cfg.Runner = command.Exec{}
	}
	if cfg.Datasets == nil {
		cfg.Datasets = zfs.New(cfg.Runner)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &FreeBSD{cfg: cfg}, nil
}

// ifaceRE: a FreeBSD interface name (at most IFNAMSIZ-1, 15, bytes).
var ifaceRE = regexp.MustCompile(`^[a-z][a-z0-9_.]{0,14}$`)

// ValidInterface reports whether name may name the interface that carries
// the releases' addresses (lo1): a lowercase letter, then up to 14
// lowercase letters, digits, '_' or '.'.
func ValidInterface(name string) error {
	if !ifaceRE.MatchString(name) {
		return fmt.Errorf("%q is not an interface name", name)
	}
	return nil
}

func (f *FreeBSD) containers() string { return f.cfg.Dataset + "/containers" }

func (f *FreeBSD) dataset(name string) string { return f.containers() + "/" + name }

func (f *FreeBSD) root(name string) string { return filepath.Join(f.cfg.Root, "containers", name) }

func (f *FreeBSD) confPath(name string) string { return filepath.Join(f.cfg.ConfDir, name+".conf") }

func (f *FreeBSD) consoleLog(name string) string {
	return filepath.Join(f.cfg.LogDir, "jail_"+name+"_console.log")
}

// InterfaceAddr is the interface's own address in pool: its first host
// address. `host init` configures it and the runtime never hands it out.
func InterfaceAddr(pool netip.Prefix) netip.Addr { return pool.Masked().Addr().Next() }

// run runs argv through the runner; errors carry the command (see
// command.Error).
func (f *FreeBSD) run(ctx context.Context, argv ...string) ([]byte, error) {
	return f.cfg.Runner.Run(ctx, argv, nil)
}
