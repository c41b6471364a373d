package jails

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jailkeeper/jailkeeper/internal/atomicfile"
	"github.com/jailkeeper/jailkeeper/release"
	"github.com/jailkeeper/jailkeeper/zfs"
)

var userRE = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)

// checkSpec refuses a spec that could not make a working release, before
// anything is created.
func (f *FreeBSD) checkSpec(spec release.Spec) error {
	if err := release.ValidName(spec.Name); err != nil {
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
	if spec.Template != "" && release.ValidTemplate(spec.Template) != nil {
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
	if err := checkData(spec.Data); err != nil {
		return err
	}
	return checkLimits(spec.Limits)
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
func (f *FreeBSD) Create(ctx context.Context, spec release.Spec) (release.Release, error) {
	if err := f.checkSpec(spec); err != nil {
		return release.Release{}, fmt.Errorf("create %s: %w", spec.Name, err)
	}
	r, err := f.create(ctx, spec)
	if err != nil {
		return release.Release{}, fmt.Errorf("create %s: %w", spec.Name, err)
	}
	return r, nil
}

func (f *FreeBSD) create(ctx context.Context, spec release.Spec) (_ release.Release, err error) {
	tmpl := spec.Template
	if tmpl == "" {
		tmpl = f.cfg.Template
	}
	tds := release.TemplateDataset(f.cfg.Dataset, tmpl)
	snapshot, err := f.pickSnapshot(ctx, tds, tmpl, spec.TemplateSnapshot)
	if err != nil {
		return release.Release{}, err
	}
	r := spec.NewRelease(f.cfg.Now())
	r.TemplateSnapshot = snapshot[strings.IndexByte(snapshot, '@')+1:]
	r.Created = r.Created.Truncate(time.Second) // stored in whole seconds
	ds := f.dataset(spec.Name)

	if r.IP, err = f.clone(ctx, snapshot, r); err != nil {
		return release.Release{}, err
	}
	cpCreateCloned.Hit()
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
		return release.Release{}, err
	}
	cpCreateInstalled.Hit()
	mounts, err := f.prepareData(ctx, spec, r)
	if err != nil {
		return release.Release{}, err
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
		Mounts:      mounts,
	}
	// Written to a temporary file and renamed: jail(8) never reads half a
	// conf, and the temporary name (a leading dot, no .conf suffix) matches
	// no include glob.
	if err := atomicfile.WriteFile(f.confPath(r.Name), conf.render(), 0o644); err != nil {
		return release.Release{}, fmt.Errorf("jail conf: %w", err)
	}
	cpCreateConfigured.Hit()
	if err := f.cfg.Datasets.SetProps(ctx, ds, map[string]string{release.PropState: string(release.StateReady)}); err != nil {
		return release.Release{}, err
	}
	r.State = release.StateReady
	return r, nil
}

// clone picks the release's address and clones snapshot into its dataset,
// with every property set by the clone, holding the address lock
// throughout: the clone's jailkeeper:ip property is what reserves the
// address for later creates.
func (f *FreeBSD) clone(ctx context.Context, snapshot string, r release.Release) (netip.Addr, error) {
	f.net.Lock()
	defer f.net.Unlock()
	ds := f.dataset(r.Name)
	rels, leftovers, err := f.releases(ctx)
	if err != nil {
		return netip.Addr{}, err
	}
	if old, ok := rels[r.Name]; ok {
		return netip.Addr{}, fmt.Errorf("%w: %w: %s exists in state %s", release.ErrExists, zfs.ErrExists, ds, old.State)
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
	props := map[string]string{
		release.PropManaged: "yes",
		release.PropService: r.Service,
		release.PropSHA:     propValue(r.SHA),
		release.PropSpec:    propValue(r.Spec),
		release.PropIP:      ip.String(),
		release.PropPort:    strconv.Itoa(r.Port),
		release.PropState:   string(release.StateCreating),
		release.PropCreated: r.Created.Format(time.RFC3339),

		release.PropTemplateSnapshot: r.TemplateSnapshot,
	}
	maps.Copy(props, limitProps(r.Limits))
	d, err := f.cfg.Datasets.Clone(ctx, snapshot, ds, props)
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
