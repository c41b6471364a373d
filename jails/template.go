package jails

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jailkeeper/jailkeeper/release"
	"github.com/jailkeeper/jailkeeper/zfs"
)

// TemplateSnapshots returns the snapshots of template (the runtime's
// Template when ""), oldest first by createtxg, as the names after '@':
// one `zfs list -t snapshot` of Dataset/templates/<T>. The newest is what
// a release that pins none is cloned from. A template without a snapshot
// is release.ErrNoTemplate.
func (f *FreeBSD) TemplateSnapshots(ctx context.Context, template string) ([]string, error) {
	if template == "" {
		template = f.cfg.Template
	}
	if err := release.ValidTemplate(template); err != nil {
		return nil, err
	}
	tds := release.TemplateDataset(f.cfg.Dataset, template)
	snaps, err := f.templateSnapshots(ctx, tds, template)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(snaps))
	for i, s := range snaps {
		names[i] = s[strings.IndexByte(s, '@')+1:]
	}
	return names, nil
}

// templateSnapshots lists the full snapshot names of tds, oldest first.
func (f *FreeBSD) templateSnapshots(ctx context.Context, tds, template string) ([]string, error) {
	snaps, err := f.cfg.Datasets.Snapshots(ctx, tds)
	if errors.Is(err, zfs.ErrNotFound) || (err == nil && len(snaps) == 0) {
		return nil, fmt.Errorf("%w: %s (run jailkeeper template create %s)", release.ErrNoTemplate, tds, template)
	}
	if err != nil {
		return nil, err
	}
	names := make([]string, len(snaps))
	for i, s := range snaps {
		names[i] = s.Name
	}
	return names, nil
}

// pickSnapshot returns the full name of the snapshot of tds to clone:
// want when set (release.ErrNoTemplate when tds has no such snapshot),
// else the newest, since a patched template is a newer snapshot.
func (f *FreeBSD) pickSnapshot(ctx context.Context, tds, template, want string) (string, error) {
	snaps, err := f.templateSnapshots(ctx, tds, template)
	if err != nil {
		return "", err
	}
	if want == "" {
		return snaps[len(snaps)-1], nil
	}
	for _, s := range snaps {
		if s == tds+"@"+want {
			return s, nil
		}
	}
	return "", fmt.Errorf("%w: %s has no snapshot %s", release.ErrNoTemplate, tds, want)
}

// DefaultTemplate is the template of a spec that names none.
func (f *FreeBSD) DefaultTemplate() string { return f.cfg.Template }
