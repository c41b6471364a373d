package hostsetup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jailkeeper/jailkeeper/internal/command"
	"github.com/jailkeeper/jailkeeper/release"
	"github.com/jailkeeper/jailkeeper/zfs"
)

// TemplateUpdateConfig says which template to patch.
type TemplateUpdateConfig struct {
	Dataset string // zroot/jails; the template is Dataset/templates/Name
	Root    string // Dataset's mountpoint; the template is at Root/templates/Name
	// Name is the template, a FreeBSD release name like 14.3-RELEASE: it
	// is what freebsd-update is told the tree runs (--currently-running).
	Name string
	// Now names the snapshot and times the steps; default time.Now.
	Now func() time.Time
}

// TemplateUpdate is `jailkeeper template update NAME`: it patches the
// template dataset Dataset/templates/Name in place and snapshots it.
// Releases depend only on a template's snapshots, never on the live
// dataset, so patching it changes no release: existing releases stay on
// the snapshot they were cloned from, new releases clone the newest one.
//
// The steps: the newest snapshot is looked up (a template without one is
// an error: template create did not finish); `freebsd-version -u` of the
// tree is recorded; freebsd-update fetch install runs as `template create
// --update` runs it; `pkg -r DIR upgrade -y` runs if the template has pkg
// (DIR/usr/local/sbin/pkg); `freebsd-version -u` is recorded again and the
// change printed; the snapshot Dataset/templates/Name@<UTC time>
// (release.TemplateSnapshot) is taken. If any step fails, the dataset is
// rolled back to the snapshot it started from (`zfs rollback -r`), so a
// half-updated template is never snapshotted; the error says so, and
// wraps both errors if the rollback fails too.
//
// Every command is printed to out before it runs, with a note before each
// step and the time it took after it. With dryRun nothing is run: the
// plan is printed, checks as comments.
func TemplateUpdate(ctx context.Context, cfg TemplateUpdateConfig, r command.Runner, dryRun bool, out io.Writer) error {
	if !versionRE.MatchString(cfg.Name) {
		return fmt.Errorf("template update: %q is not a FreeBSD release name like 14.3-RELEASE", cfg.Name)
	}
	if cfg.Dataset == "" || !filepath.IsAbs(cfg.Root) {
		return fmt.Errorf("template update: invalid jails config (dataset %q, root %q)", cfg.Dataset, cfg.Root)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	h := &hostSteps{ctx: ctx, r: r, dry: dryRun, out: out}
	if dryRun {
		h.note("jailkeeper template update %s, dry run: nothing is run or written.", cfg.Name)
	}
	if err := templateUpdate(h, cfg); err != nil {
		return fmt.Errorf("template update %s: %w", cfg.Name, err)
	}
	return nil
}

func templateUpdate(h *hostSteps, cfg TemplateUpdateConfig) error {
	tds := release.TemplateDataset(cfg.Dataset, cfg.Name)
	dir := filepath.Join(cfg.Root, "templates", cfg.Name)
	from, err := newestSnapshot(h, tds)
	if err != nil {
		return err
	}
	h.note("the template dataset %s, mounted at %s; it is at %s", tds, dir, from)
	if h.dry {
		h.note("  on any failure below: zfs rollback -r %s, and no snapshot is taken", from)
	}
	before := userland(h, dir)
	if err := patchTemplate(h, cfg, dir); err != nil {
		return rollback(h, from, err)
	}
	after := userland(h, dir)
	switch {
	case h.dry:
		h.note("then print freebsd-version -u before and after")
	case before == after:
		h.note("userland unchanged: %s", before)
	default:
		h.note("userland: %s -> %s", before, after)
	}
	snap := tds + "@" + release.TemplateSnapshot(cfg.Now())
	h.note("snapshot: new releases clone the newest snapshot")
	if err := h.zfsDo().Snapshot(h.ctx, snap); err != nil {
		return rollback(h, from, err)
	}
	h.note("new releases clone %s; existing releases stay on their snapshot", snap)
	return nil
}

// newestSnapshot is the template's newest snapshot by createtxg
// (zfs.Client.NewestSnapshot): the state a failed update rolls back to.
// In a dry run it is a placeholder.
func newestSnapshot(h *hostSteps, tds string) (string, error) {
	snap, err := h.zfsCheck().NewestSnapshot(h.ctx, tds)
	switch {
	case errors.Is(err, errDryRun):
		return tds + "@<newest snapshot>", nil
	case errors.Is(err, zfs.ErrNotFound):
		return "", fmt.Errorf("%s does not exist: make it with template create: %w", tds, err)
	case err != nil:
		return "", err
	case snap == "":
		return "", fmt.Errorf("%s has no snapshot (template create did not finish): run template create again", tds)
	}
	return snap, nil
}

// patchTemplate runs the commands that change the tree at dir:
// freebsd-update, then pkg upgrade if the template has pkg.
func patchTemplate(h *hostSteps, cfg TemplateUpdateConfig, dir string) error {
	start := cfg.Now()
	if err := freebsdUpdate(h, dir, cfg.Name); err != nil {
		return err
	}
	h.doneIn("freebsd-update", cfg.Now().Sub(start))
	pkg := filepath.Join(dir, "usr", "local", "sbin", "pkg")
	if h.dry {
		h.note("only if %s exists:", pkg)
	} else if _, err := os.Stat(pkg); errors.Is(err, os.ErrNotExist) {
		h.note("skipped pkg upgrade: the template has no %s", pkg)
		return nil
	} else if err != nil {
		return err
	}
	// pkg(8): -r DIR installs (here: upgrades) the packages within the
	// root directory DIR, with the host's pkg and repository config;
	// pkg-upgrade(8) -y assumes yes at the confirmation prompt, which
	// would otherwise wait for a terminal.
	h.note("upgrade the template's packages")
	start = cfg.Now()
	if err := h.do("pkg", "-r", dir, "upgrade", "-y"); err != nil {
		return err
	}
	h.doneIn("pkg upgrade", cfg.Now().Sub(start))
	return nil
}

// userland is `DIR/bin/freebsd-version -u`: the template's own copy
// prints the version and patch level of the userland it belongs to, which
// is hardcoded into it at build time (freebsd-version(1) -u), so running
// it from the host reads the template, not the host. The output is not
// parsed, only compared and shown; a failure shows as "unknown (...)".
func userland(h *hostSteps, dir string) string {
	out, err := h.check(filepath.Join(dir, "bin", "freebsd-version"), "-u")
	if err != nil {
		return fmt.Sprintf("unknown (%v)", err)
	}
	return strings.TrimSpace(string(out))
}

// rollbackTimeout bounds the rollback when the update's context has
// ended; a rollback is one ZFS transaction, seconds at most.
const rollbackTimeout = time.Minute

// rollback returns the template to snapshot after cause made the update
// fail: `zfs rollback -r` (zfs-rollback(8): the dataset reverts to the
// snapshot and changes since are discarded; -r destroys any more recent
// snapshot, of which an update that failed took none). It runs even when
// the update's context has ended (Ctrl-C during freebsd-update is the
// likeliest failure), bounded by rollbackTimeout instead.
func rollback(h *hostSteps, snapshot string, cause error) error {
	h.note("update failed: %v", cause)
	h.note("rolling back to %s so that a half-updated template is never snapshotted", snapshot)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(h.ctx), rollbackTimeout)
	defer cancel()
	rh := *h
	rh.ctx = ctx
	if err := rh.zfsDo().RollbackDiscarding(ctx, snapshot); err != nil {
		return fmt.Errorf("%w; rollback to %s failed too: %w", cause, snapshot, err)
	}
	h.note("rolled back: the template is at %s again", snapshot)
	return fmt.Errorf("%w (rolled back to %s)", cause, snapshot)
}

// doneIn notes how long a step took (not in a dry run).
func (h *hostSteps) doneIn(what string, d time.Duration) {
	if !h.dry {
		h.note("%s done in %s", what, d.Round(time.Second))
	}
}
