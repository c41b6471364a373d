package process

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"

	"github.com/jailkeeper/jailkeeper/release"
	"github.com/jailkeeper/jailkeeper/zfs"
)

// checkZFS checks and defaults the ZFS-mode fields of cfg.
func checkZFS(cfg *Config) error {
	if err := release.ValidDataset(cfg.Dataset); err != nil {
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
		cfg.TemplateName = DefaultTemplateName
	}
	if err := release.ValidTemplate(cfg.TemplateName); err != nil {
		return fmt.Errorf("template name: %w", err)
	}
	if cfg.DestroyRetries <= 0 {
		cfg.DestroyRetries = DefaultDestroyRetries
	}
	if _, err := exec.LookPath("zfs"); err != nil {
		return fmt.Errorf("dataset %s: %w", cfg.Dataset, err)
	}
	return nil
}

// dataset is the clone of release name in ZFS mode.
func (p *Runtime) dataset(name string) string { return p.releases() + "/" + name }

// releases is the parent of the clones in ZFS mode.
func (p *Runtime) releases() string { return p.cfg.Dataset + "/releases" }

// clone clones snapshot as the release's dataset mounted at root, with
// jailkeeper:managed=yes, jailkeeper:service and the disk limit (quota) set
// by the clone itself,
// and checks that it is mounted there. It creates Dataset/releases first
// when missing.
func (p *Runtime) clone(ctx context.Context, snapshot string, spec release.Spec, root string) error {
	switch ok, err := p.zfs.Exists(ctx, p.releases()); {
	case err != nil:
		return err
	case !ok:
		// mountpoint=none: the parent holds clones, nothing to mount.
		err := p.zfs.Create(ctx, p.releases(), map[string]string{"mountpoint": "none"})
		if err != nil && !errors.Is(err, zfs.ErrExists) {
			return err
		}
	}
	ds := p.dataset(spec.Name)
	props := map[string]string{
		release.PropManaged: "yes",
		release.PropService: spec.Service,
		"mountpoint":        root,
	}
	if spec.Limits.Disk > 0 {
		// The disk limit, as the jail runtime sets it (zfsprops(7), quota).
		props["quota"] = strconv.FormatInt(spec.Limits.Disk, 10)
	}
	d, err := p.zfs.Clone(ctx, snapshot, ds, props)
	if err != nil {
		return err
	}
	if filepath.Clean(d.Mountpoint) != root {
		return fmt.Errorf("clone %s has mountpoint %s, not %s", ds, d.Mountpoint, root)
	}
	// Without the mount, the artifact would land in the host's directory
	// and disappear below the clone at its next mount.
	switch mounted, err := isMountPoint(root); {
	case err != nil:
		return fmt.Errorf("clone %s: %w", ds, err)
	case !mounted:
		return fmt.Errorf("clone %s is not mounted at %s", ds, root)
	}
	return nil
}

// destroyClone is `zfs destroy -r` of the release's clone, retried while
// busy; a missing clone is no error.
func (p *Runtime) destroyClone(ctx context.Context, name string) error {
	err := p.zfs.Destroy(ctx, p.dataset(name), p.cfg.DestroyRetries)
	if err != nil && !errors.Is(err, zfs.ErrNotFound) {
		return err
	}
	return nil
}
