package jails

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jailkeeper/jailkeeper/internal/atomicfile"
	"github.com/jailkeeper/jailkeeper/internal/command"
	"github.com/jailkeeper/jailkeeper/release"
	"github.com/jailkeeper/jailkeeper/zfs"
)

// Errors of the FreeBSD runtime, for errors.Is.
var (
	// ErrNoTemplate: the template dataset has no snapshot to clone; run
	// `jailkeeper template create VERSION`.
	ErrNoTemplate = errors.New("template has no snapshot")
	// ErrNotFound: no release of that name exists on this host.
	ErrNotFound = release.ErrNotFound
	// ErrDying: the jail was removed but is still dying (jls -d shows
	// DYING) after the wait: its name, address and root are not free yet.
	ErrDying = errors.New("jail is still dying")
	// ErrAddressTaken: the release's address is held by another jail.
	ErrAddressTaken = errors.New("address held by another jail")
	// ErrPoolExhausted: every address of the pool is in use.
	ErrPoolExhausted = release.ErrPoolExhausted
	// ErrPoolOverlap: the pool overlaps the network of an address on
	// another interface than the runtime's; releases would take addresses
	// the host routes elsewhere.
	ErrPoolOverlap = errors.New("address pool overlaps another interface's network")
)

// Datasets is what the FreeBSD runtime needs from ZFS. ZFS implements it
// with the zfs package; tests use a recording fake. Implementations must be
// safe for concurrent use and return errors that match the zfs package's
// sentinels (zfs.ErrNotFound, zfs.ErrExists, zfs.ErrBusy).
type Datasets interface {
	// Clone clones snapshot into name with props set by the clone itself.
	Clone(ctx context.Context, snapshot, name string, props map[string]string) (zfs.Dataset, error)
	// SetProps sets props on name, all in one command.
	SetProps(ctx context.Context, name string, props map[string]string) error
	// Destroy destroys name recursively, retrying up to retries more times
	// while zfs says it is busy.
	Destroy(ctx context.Context, name string, retries int) error
	// Inventory returns root and every filesystem below it with its
	// mountpoint and local jailkeeper:* properties.
	Inventory(ctx context.Context, root string) ([]zfs.Dataset, error)
	// Snapshots returns the snapshots of dataset, oldest first.
	Snapshots(ctx context.Context, dataset string) ([]zfs.SnapshotInfo, error)
}

// ZFS is the Datasets of the running system: the zfs package's functions.
type ZFS struct{}

// Clone calls zfs.Clone.
func (ZFS) Clone(ctx context.Context, snapshot, name string, props map[string]string) (zfs.Dataset, error) {
	return zfs.Clone(ctx, snapshot, name, props)
}

// SetProps calls zfs.SetProps.
func (ZFS) SetProps(ctx context.Context, name string, props map[string]string) error {
	return zfs.SetProps(ctx, name, props)
}

// Destroy calls zfs.Destroy.
func (ZFS) Destroy(ctx context.Context, name string, retries int) error {
	return zfs.Destroy(ctx, name, retries)
}

// Inventory calls zfs.Inventory.
func (ZFS) Inventory(ctx context.Context, root string) ([]zfs.Dataset, error) {
	return zfs.Inventory(ctx, root)
}

// Snapshots calls zfs.Snapshots.
func (ZFS) Snapshots(ctx context.Context, dataset string) ([]zfs.SnapshotInfo, error) {
	return zfs.Snapshots(ctx, dataset)
}

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
	// Datasets manages the ZFS datasets. Default ZFS{}.
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
	if ValidTemplate(cfg.Template) != nil {
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
		cfg.Datasets = ZFS{}
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

// The jailkeeper:* user properties of a release dataset (DESIGN.md, "State
// is the system"). An empty string is stored as "-" (see propValue).
const (
	propManaged  = zfs.Prefix + "managed"
	propService  = zfs.Prefix + "service"
	propSHA      = zfs.Prefix + "sha"
	propSpec     = zfs.Prefix + "spec"
	propIP       = zfs.Prefix + "ip"
	propPort     = zfs.Prefix + "port"
	propState    = zfs.Prefix + "state"
	propCreated  = zfs.Prefix + "created"
	propReason   = zfs.Prefix + "reason"
	propFailures = zfs.Prefix + "failures"
	propFailedAt = zfs.Prefix + "failed_at"
)

// propValue keeps empty values out of zfs set: "-" stands for "". It is
// what zfs get shows for an unset user property, but only a local value
// counts (zfs.ParseGet), so the two never mix.
func propValue(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func fromProp(s string) string {
	if s == "-" {
		return ""
	}
	return s
}

func (f *FreeBSD) containers() string          { return f.cfg.Dataset + "/containers" }
func (f *FreeBSD) dataset(name string) string  { return f.containers() + "/" + name }
func (f *FreeBSD) root(name string) string     { return filepath.Join(f.cfg.Root, "containers", name) }
func (f *FreeBSD) confPath(name string) string { return filepath.Join(f.cfg.ConfDir, name+".conf") }
func (f *FreeBSD) consoleLog(name string) string {
	return filepath.Join(f.cfg.LogDir, "jail_"+name+"_console.log")
}

// TemplateDataset is the dataset of template t under dataset.
func TemplateDataset(dataset, t string) string { return dataset + "/templates/" + t }

// InterfaceAddr is the interface's own address in pool: its first host
// address. `host init` configures it and the runtime never hands it out.
func InterfaceAddr(pool netip.Prefix) netip.Addr { return pool.Masked().Addr().Next() }

// run runs argv through the runner; errors carry the command (see
// command.Error).
func (f *FreeBSD) run(ctx context.Context, argv ...string) ([]byte, error) {
	return f.cfg.Runner.Run(ctx, argv, nil)
}

// releases reads the releases from the dataset inventory, by name. It also
// returns the leftovers: datasets directly below Dataset/containers with a
// release's name but without jailkeeper:managed=yes. Only a crash between
// zfs clone creating a clone and setting its properties leaves one (see
// zfs.Clone); it would block that release's name forever.
func (f *FreeBSD) releases(ctx context.Context) (rels map[string]Release, leftovers map[string]bool, err error) {
	ds, err := f.cfg.Datasets.Inventory(ctx, f.containers())
	if err != nil {
		return nil, nil, fmt.Errorf("list releases: %w", err)
	}
	rels, leftovers = map[string]Release{}, map[string]bool{}
	for _, d := range ds {
		name, ok := strings.CutPrefix(d.Name, f.containers()+"/")
		if !ok || strings.Contains(name, "/") || ValidName(name) != nil {
			continue
		}
		if d.Props[propManaged] != "yes" {
			leftovers[name] = true
			continue
		}
		r, err := releaseFromProps(name, d.Props)
		if err != nil {
			return nil, nil, fmt.Errorf("list releases: dataset %s: %w", d.Name, err)
		}
		rels[name] = r
	}
	return rels, leftovers, nil
}

func releaseFromProps(name string, p map[string]string) (Release, error) {
	r := Release{
		Name:    name,
		Service: p[propService],
		SHA:     p[propSHA],
		Spec:    p[propSpec],
		State:   State(p[propState]),
		Reason:  fromProp(p[propReason]),
	}
	var errs []error
	if !r.State.Valid() {
		errs = append(errs, fmt.Errorf("%s %q", propState, p[propState]))
	}
	if s := fromProp(p[propIP]); s != "" {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", propIP, err))
		}
		r.IP = ip
	}
	if s := fromProp(p[propPort]); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", propPort, err))
		}
		r.Port = n
	}
	if s := fromProp(p[propFailures]); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", propFailures, err))
		}
		r.Failures = n
	}
	for prop, t := range map[string]*time.Time{propCreated: &r.Created, propFailedAt: &r.FailedAt} {
		if s := fromProp(p[prop]); s != "" {
			v, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", prop, err))
			}
			*t = v
		}
	}
	return r, errors.Join(errs...)
}

// jails runs `jls --libxo=json -v -d`: every jail, dying ones included,
// with name, state and all addresses.
func (f *FreeBSD) jails(ctx context.Context) ([]Jail, error) {
	out, err := f.run(ctx, "jls", "--libxo=json", "-v", "-d")
	if err != nil {
		return nil, fmt.Errorf("list jails: %w", err)
	}
	return ParseJLS(bytes.NewReader(out))
}

// jail returns the jail called name, if jls lists it.
func (f *FreeBSD) jail(ctx context.Context, name string) (Jail, bool, error) {
	js, err := f.jails(ctx)
	if err != nil {
		return Jail{}, false, err
	}
	for _, j := range js {
		if j.Name == name {
			return j, true, nil
		}
	}
	return Jail{}, false, nil
}

// List returns every release on this host with Running from jls, sorted by
// name. Datasets below Dataset/containers without jailkeeper:managed=yes
// set locally are not releases and are left out.
func (f *FreeBSD) List(ctx context.Context) ([]Release, error) {
	rels, _, err := f.releases(ctx)
	if err != nil {
		return nil, err
	}
	js, err := f.jails(ctx)
	if err != nil {
		return nil, err
	}
	running := map[string]bool{}
	for _, j := range js {
		if !j.Dying() {
			running[j.Name] = true
		}
	}
	out := make([]Release, 0, len(rels))
	for _, r := range rels {
		r.Running = running[r.Name]
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Release) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Running reports whether the release's jail is up (listed by jls and not
// dying).
func (f *FreeBSD) Running(ctx context.Context, name string) (bool, error) {
	if err := ValidName(name); err != nil {
		return false, err
	}
	j, ok, err := f.jail(ctx, name)
	return ok && !j.Dying(), err
}

// SetStatus stores st in the release's properties with one zfs set.
func (f *FreeBSD) SetStatus(ctx context.Context, name string, st Status) error {
	if err := ValidName(name); err != nil {
		return err
	}
	if !st.State.Valid() {
		return fmt.Errorf("set status of %s: invalid state %q", name, st.State)
	}
	failedAt := ""
	if !st.FailedAt.IsZero() {
		failedAt = st.FailedAt.UTC().Format(time.RFC3339Nano)
	}
	err := f.cfg.Datasets.SetProps(ctx, f.dataset(name), map[string]string{
		propState:    string(st.State),
		propReason:   propValue(oneLine(st.Reason)),
		propFailures: strconv.Itoa(st.Failures),
		propFailedAt: propValue(failedAt),
	})
	if errors.Is(err, zfs.ErrNotFound) {
		return fmt.Errorf("set status of %s: %w: %w", name, ErrNotFound, err)
	}
	if err != nil {
		return fmt.Errorf("set status of %s: %w", name, err)
	}
	return nil
}

// oneLine makes s fit a ZFS property: no newlines, at most 1024 bytes.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 1024 {
		s = s[:1024]
	}
	return s
}

var userRE = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)

// checkSpec refuses a spec that could not make a working release, before
// anything is created.
func (f *FreeBSD) checkSpec(spec Spec) error {
	if err := ValidName(spec.Name); err != nil {
		return err
	}
	// <service>_<sha12>_<spec6> (ValidName): all but the last 1+12+1+6 bytes.
	if spec.Name[:len(spec.Name)-20] != spec.Service {
		return fmt.Errorf("release name %s does not belong to service %q", spec.Name, spec.Service)
	}
	if spec.Port < 1 || spec.Port > 65535 {
		return fmt.Errorf("port %d out of range", spec.Port)
	}
	if len(spec.Command) == 0 || !strings.HasPrefix(spec.Command[0], "/") ||
		slices.Contains(strings.Split(spec.Command[0], "/"), "..") {
		return fmt.Errorf("command %q: command[0] must be an absolute path inside the jail", spec.Command)
	}
	for _, a := range spec.Command {
		// The rc.d script carries the command (command.ShellQuote).
		if strings.ContainsAny(a, "\x00\n") {
			return errors.New("command contains a NUL or a newline")
		}
	}
	if !userRE.MatchString(spec.User) {
		return fmt.Errorf("user %q is not a user name", spec.User)
	}
	if spec.Template != "" && ValidTemplate(spec.Template) != nil {
		return fmt.Errorf("template %q is not a template name", spec.Template)
	}
	for k, v := range spec.Env {
		if err := release.ValidEnvKey(k); err != nil {
			return fmt.Errorf("env: %w", err)
		}
		if strings.ContainsRune(v, 0) {
			return fmt.Errorf("env %s: NUL in value", k)
		}
	}
	for _, a := range spec.Allow {
		if !allowRE.MatchString(a) {
			return fmt.Errorf("allow %q is not a jail permission", a)
		}
	}
	if spec.Artifact == "" {
		return errors.New("no artifact")
	}
	return nil
}

// allowRE matches allow.* parameter names without the prefix (jail(8):
// allow.raw_sockets, allow.mount.zfs ...).
var allowRE = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$`)

// Create clones the newest snapshot of the spec's template (DESIGN.md:
// `zfs clone -o props <dataset>/templates/<T>@<snap> <dataset>/containers/<name>`,
// all jailkeeper:* properties set by the clone, state creating), picks an
// address, installs everything the jail needs from the host into the clone
// (the artifact, an rc.d script, its rc.conf.d variables, a
// newsyslog.conf.d entry, the environment; see install) and writes the
// jail.conf file,
// then marks the release ready. The jail is not started. On any error the
// clone and the conf are removed again; a release that exists already is
// an error matching zfs.ErrExists (an interrupted create is destroyed by
// the caller first: its state is still creating); a dataset of that name
// without jailkeeper:managed, left by a crash inside zfs clone, is destroyed
// and cloned again.
func (f *FreeBSD) Create(ctx context.Context, spec Spec) (Release, error) {
	if err := f.checkSpec(spec); err != nil {
		return Release{}, fmt.Errorf("create %s: %w", spec.Name, err)
	}
	r, err := f.create(ctx, spec)
	if err != nil {
		return Release{}, fmt.Errorf("create %s: %w", spec.Name, err)
	}
	return r, nil
}

func (f *FreeBSD) create(ctx context.Context, spec Spec) (_ Release, err error) {
	tmpl := spec.Template
	if tmpl == "" {
		tmpl = f.cfg.Template
	}
	tds := TemplateDataset(f.cfg.Dataset, tmpl)
	snaps, err := f.cfg.Datasets.Snapshots(ctx, tds)
	if errors.Is(err, zfs.ErrNotFound) || (err == nil && len(snaps) == 0) {
		return Release{}, fmt.Errorf("%w: %s (run jailkeeper template create %s)", ErrNoTemplate, tds, tmpl)
	}
	if err != nil {
		return Release{}, err
	}
	snapshot := snaps[len(snaps)-1].Name // newest: a patched template is a newer snapshot
	r := spec.NewRelease(f.cfg.Now())
	r.Created = r.Created.Truncate(time.Second) // stored in whole seconds
	ds := f.dataset(spec.Name)

	if r.IP, err = f.clone(ctx, snapshot, r); err != nil {
		return Release{}, err
	}
	defer func() {
		if err != nil {
			rmErr := os.Remove(f.confPath(spec.Name))
			if errors.Is(rmErr, fs.ErrNotExist) {
				rmErr = nil
			}
			err = errors.Join(err, rmErr, f.undoClone(ctx, ds))
		}
	}()

	if err := f.install(ctx, spec, r); err != nil {
		return Release{}, err
	}
	conf := jailConf{
		Name:        r.Name,
		Service:     r.Service,
		Path:        f.root(r.Name),
		Interface:   f.cfg.Interface,
		IP:          r.IP,
		ConsoleLog:  f.consoleLog(r.Name),
		ExecTimeout: f.cfg.ExecTimeout,
		StopTimeout: f.cfg.StopTimeout,
		Allow:       spec.Allow,
	}
	// Written to a temporary file and renamed: jail(8) never reads half a
	// conf, and the temporary name (a leading dot, no .conf suffix) matches
	// no include glob.
	if err := atomicfile.WriteFile(f.confPath(r.Name), conf.render(), 0o644); err != nil {
		return Release{}, fmt.Errorf("jail conf: %w", err)
	}
	if err := f.cfg.Datasets.SetProps(ctx, ds, map[string]string{propState: string(StateReady)}); err != nil {
		return Release{}, err
	}
	r.State = StateReady
	return r, nil
}

// clone picks the release's address and clones snapshot into its dataset,
// with every property set by the clone, holding the address lock
// throughout: the clone's jailkeeper:ip property is what reserves the
// address for later creates.
func (f *FreeBSD) clone(ctx context.Context, snapshot string, r Release) (netip.Addr, error) {
	f.net.Lock()
	defer f.net.Unlock()
	ds := f.dataset(r.Name)
	rels, leftovers, err := f.releases(ctx)
	if err != nil {
		return netip.Addr{}, err
	}
	if old, ok := rels[r.Name]; ok {
		return netip.Addr{}, fmt.Errorf("%w: %s exists in state %s", zfs.ErrExists, ds, old.State)
	}
	if leftovers[r.Name] {
		if err := f.cfg.Datasets.Destroy(ctx, ds, f.cfg.DestroyRetries); err != nil {
			return netip.Addr{}, fmt.Errorf("remove the leftover %s of an interrupted clone: %w", ds, err)
		}
	}
	ip, err := f.allocate(ctx, rels)
	if err != nil {
		return netip.Addr{}, err
	}
	d, err := f.cfg.Datasets.Clone(ctx, snapshot, ds, map[string]string{
		propManaged: "yes",
		propService: r.Service,
		propSHA:     propValue(r.SHA),
		propSpec:    propValue(r.Spec),
		propIP:      ip.String(),
		propPort:    strconv.Itoa(r.Port),
		propState:   string(StateCreating),
		propCreated: r.Created.Format(time.RFC3339),
	})
	if err != nil {
		// zfs clone may have created the dataset before the error (zfs.Clone
		// reads the clone back with a second command): remove whatever is
		// there, unless the name was taken by someone else meanwhile.
		if !errors.Is(err, zfs.ErrExists) {
			err = errors.Join(err, f.undoClone(ctx, ds))
		}
		return netip.Addr{}, err
	}
	if d.Mountpoint != "" && filepath.Clean(d.Mountpoint) != f.root(r.Name) {
		err = fmt.Errorf("clone %s is mounted at %s, not at %s: check the mountpoint of %s (jailkeeper host init)",
			ds, d.Mountpoint, f.root(r.Name), f.cfg.Dataset)
		return netip.Addr{}, errors.Join(err, f.undoClone(ctx, ds))
	}
	return ip, nil
}

// undoClone destroys the clone ds of a create that failed, even when ctx
// is cancelled (the failure may be the cancellation). A clone that is not
// there is no error.
func (f *FreeBSD) undoClone(ctx context.Context, ds string) error {
	err := f.cfg.Datasets.Destroy(context.WithoutCancel(ctx), ds, f.cfg.DestroyRetries)
	if errors.Is(err, zfs.ErrNotFound) {
		return nil
	}
	return err
}

// Start starts the release's jail with `jail -f CONF -c NAME` (not `service
// jail`, which exits 0 when a jail fails) and checks it with `jls -j NAME`.
// A running jail is left alone. A dying one is waited for (DyingTimeout).
// jail(8) adds the release's alias itself, and fails with "SIOCAIFADDR:
// File exists" when it is already there (testdata/freebsd/FACTS.md §3), so an alias of the
// release's address that no jail holds, left by a crash, is removed first.
func (f *FreeBSD) Start(ctx context.Context, name string) error {
	if err := ValidName(name); err != nil {
		return err
	}
	if err := f.start(ctx, name); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	return nil
}

func (f *FreeBSD) start(ctx context.Context, name string) error {
	rels, _, err := f.releases(ctx)
	if err != nil {
		return err
	}
	r, ok := rels[name]
	if !ok {
		return ErrNotFound
	}
	conf := f.confPath(name)
	if _, err := os.Stat(conf); err != nil {
		return fmt.Errorf("jail conf: %w", err)
	}
	j, ok, err := f.jail(ctx, name)
	switch {
	case err != nil:
		return err
	case ok && !j.Dying():
		return nil
	case ok:
		if err := f.waitGone(ctx, name); err != nil {
			return err
		}
	}

	f.net.RLock()
	defer f.net.RUnlock()
	if err := f.clearAlias(ctx, name, r.IP); err != nil {
		return err
	}
	if _, err := f.run(ctx, "jail", "-f", conf, "-c", name); err != nil {
		// "already exists": started meanwhile by someone else (rc.d/jail?).
		if strings.Contains(command.Stderr(err), "already exists") {
			if up, _ := f.running(ctx, name); up {
				return nil
			}
		}
		return err
	}
	up, err := f.running(ctx, name)
	if err != nil {
		return err
	}
	if !up {
		return fmt.Errorf("jail -c succeeded but jls -j %s does not find the jail (did /etc/rc start anything?)", name)
	}
	return nil
}

// running asks `jls -j NAME`, which exits 1 with `jls: jail "NAME" not
// found` when there is no such jail (testdata/freebsd/FACTS.md §1, REAL). Only the exit status
// is used.
func (f *FreeBSD) running(ctx context.Context, name string) (bool, error) {
	_, err := f.run(ctx, "jls", "-j", name)
	if err == nil {
		return true, nil
	}
	if code, ok := command.ExitCode(err); ok && code == 1 && strings.Contains(command.Stderr(err), "not found") {
		return false, nil
	}
	return false, err
}

// waitGone waits until jls -d no longer lists the jail, polling every
// PollInterval for at most DyingTimeout; then it fails with ErrDying.
func (f *FreeBSD) waitGone(ctx context.Context, name string) error {
	deadline := time.NewTimer(f.cfg.DyingTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(f.cfg.PollInterval)
	defer tick.Stop()
	for {
		j, ok, err := f.jail(ctx, name)
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		if !j.Dying() {
			return fmt.Errorf("jail %s is running again", name)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("%w: %s still DYING after %s (jls -d)", ErrDying, name, f.cfg.DyingTimeout)
		case <-tick.C:
		}
	}
}

// Stop stops the release's jail with `jail -f CONF -r NAME`: exec.stop
// runs /etc/rc.shutdown, remaining processes get SIGTERM and stop.timeout.
// A jail that is not running, or only dying, is already stopped. A dying
// jail is not waited for here: TCP sockets in TIME_WAIT keep a stopped jail
// dying for about a minute, and nothing needs it gone until a start or a
// destroy, which wait for it.
func (f *FreeBSD) Stop(ctx context.Context, name string) error {
	if err := ValidName(name); err != nil {
		return err
	}
	if err := f.stop(ctx, name); err != nil {
		return fmt.Errorf("stop %s: %w", name, err)
	}
	return nil
}

func (f *FreeBSD) stop(ctx context.Context, name string) error {
	j, ok, err := f.jail(ctx, name)
	if err != nil || !ok || j.Dying() {
		return err
	}
	argv := []string{"jail", "-f", f.confPath(name), "-r", name}
	if _, err := os.Stat(f.confPath(name)); errors.Is(err, fs.ErrNotExist) {
		argv = []string{"jail", "-r", name} // no conf left: remove it without exec.stop
	}
	f.net.RLock()
	_, err = f.run(ctx, argv...)
	f.net.RUnlock()
	if err != nil {
		// jail: "NAME" not found (testdata/freebsd/FACTS.md §3): it went away by itself.
		if !strings.Contains(command.Stderr(err), `"`+name+`" not found`) {
			return err
		}
	}
	if j, ok, err := f.jail(ctx, name); err != nil {
		return err
	} else if ok && !j.Dying() {
		return fmt.Errorf("jail %s still running after jail -r", name)
	}
	return nil
}

// Destroy stops the jail, waits for it to stop dying (its root stays busy
// until then), unmounts whatever is still mounted below the release's root
// (deepest first; a jail -r that failed half-way can leave devfs mounted),
// destroys the dataset with `zfs destroy -r` (retried while busy) and
// removes the conf and the console log. It never deletes files itself, so
// nothing still mounted can be removed with them. A missing release is
// not an error. On error the conf stays, so the jail can still be managed
// and the next pass tries again.
func (f *FreeBSD) Destroy(ctx context.Context, name string) error {
	if err := ValidName(name); err != nil {
		return err
	}
	if err := f.destroy(ctx, name); err != nil {
		return fmt.Errorf("destroy %s: %w", name, err)
	}
	return nil
}

func (f *FreeBSD) destroy(ctx context.Context, name string) error {
	if err := f.stop(ctx, name); err != nil {
		return err
	}
	if err := f.waitGone(ctx, name); err != nil {
		return err
	}
	if err := f.unmountBelow(ctx, f.root(name)); err != nil {
		return err
	}
	err := f.cfg.Datasets.Destroy(ctx, f.dataset(name), f.cfg.DestroyRetries)
	if err != nil && !errors.Is(err, zfs.ErrNotFound) {
		return err
	}
	for _, p := range []string{f.confPath(name), f.consoleLog(name)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// unmountBelow unmounts every file system mounted strictly below root,
// deepest first, as `mount -p --libxo=json` lists them. root itself (the
// clone) is left to zfs destroy.
func (f *FreeBSD) unmountBelow(ctx context.Context, root string) error {
	out, err := f.run(ctx, "mount", "-p", "--libxo=json")
	if err != nil {
		return fmt.Errorf("list mounts: %w", err)
	}
	mounts, err := ParseMounts(bytes.NewReader(out))
	if err != nil {
		return err
	}
	var below []string
	for _, m := range mounts {
		p := filepath.Clean(m.Path)
		if strings.HasPrefix(p, root+"/") {
			below = append(below, p)
		}
	}
	// Deepest first: a longer path is never the parent of a shorter one.
	slices.SortFunc(below, func(a, b string) int {
		if c := strings.Count(b, "/") - strings.Count(a, "/"); c != 0 {
			return c
		}
		return strings.Compare(b, a)
	})
	for _, p := range slices.Compact(below) {
		if _, err := f.run(ctx, "umount", p); err != nil {
			return fmt.Errorf("unmount below %s: %w", root, err)
		}
	}
	return nil
}
