package process

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/jailkeeper/jailkeeper/internal/atomicfile"
	"github.com/jailkeeper/jailkeeper/release"
	"github.com/jailkeeper/jailkeeper/zfs"
)

// templateBaseFile, in Root, holds the content hash of the copy-mode
// template directory when this runtime first looked at it: that content
// is the template's "base", as @base is a template dataset's first
// snapshot. Releases made before they recorded their template snapshot
// were copied from it, so they keep their names (see TemplateSnapshots).
// The leading dot keeps it out of the release names.
const templateBaseFile = ".template-base"

// contentPrefix starts the snapshot name that stands for a copy-mode
// template directory's content once it differs from its base.
const contentPrefix = "sha256-"

// TemplateSnapshots returns the snapshots of template ("" for the
// runtime's default), oldest first, as the names after '@'; the newest is
// what a spec that pins none is cloned from. In ZFS mode they are those of
// Dataset/templates/<T> (one `zfs list -t snapshot`), and a template
// without one is release.ErrNoTemplate. In copy mode the template
// directory has exactly one: its content, named "base" while it hashes as
// it did when this runtime first saw it, else "sha256-" and 12 hex of the
// hash of its content (names, types, permission bits, file contents,
// link targets), so changing a file of the template is a new snapshot.
// Without a template directory the empty root is "base". Safe for
// concurrent use.
func (p *Runtime) TemplateSnapshots(ctx context.Context, template string) ([]string, error) {
	if p.cfg.Dataset != "" {
		snaps, err := p.templateSnapshots(ctx, template)
		if err != nil {
			return nil, err
		}
		for i, s := range snaps {
			snaps[i] = s[strings.IndexByte(s, '@')+1:]
		}
		return snaps, nil
	}
	name, err := p.contentName(ctx)
	if err != nil {
		return nil, err
	}
	return []string{name}, nil
}

// templateSnapshots lists the full names of the snapshots of the template
// dataset of template (TemplateName when empty), oldest first.
func (p *Runtime) templateSnapshots(ctx context.Context, template string) ([]string, error) {
	if template == "" {
		template = p.cfg.TemplateName
	}
	if err := release.ValidTemplate(template); err != nil {
		return nil, err
	}
	tds := release.TemplateDataset(p.cfg.Dataset, template)
	snaps, err := p.zfs.Snapshots(ctx, tds)
	if errors.Is(err, zfs.ErrNotFound) || (err == nil && len(snaps) == 0) {
		return nil, fmt.Errorf("%w: %s (create it with zfs create, fill it, zfs snapshot %s@base)", release.ErrNoTemplate, tds, tds)
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

// templateSnapshot returns the full name of the snapshot to clone in ZFS
// mode: want when set (release.ErrNoTemplate when there is no such
// snapshot), else the newest: a patched template is a newer snapshot.
func (p *Runtime) templateSnapshot(ctx context.Context, template, want string) (string, error) {
	snaps, err := p.templateSnapshots(ctx, template)
	if err != nil {
		return "", err
	}
	if want == "" {
		return snaps[len(snaps)-1], nil
	}
	for _, s := range snaps {
		if s[strings.IndexByte(s, '@')+1:] == want {
			return s, nil
		}
	}
	return "", fmt.Errorf("%w: %s has no snapshot %s", release.ErrNoTemplate,
		snaps[0][:strings.IndexByte(snaps[0], '@')], want)
}

// copySnapshot checks that want (when set) is the copy-mode template's
// current content name and returns that name.
func (p *Runtime) copySnapshot(ctx context.Context, want string) (string, error) {
	name, err := p.contentName(ctx)
	if err != nil {
		return "", err
	}
	if want != "" && want != name {
		return "", fmt.Errorf("%w: template directory %s is %s now, not %s (copy mode keeps no earlier content)",
			release.ErrNoTemplate, p.cfg.Template, name, want)
	}
	return name, nil
}

// contentCache keeps the content hash of the template directory while
// a walk of it (names, sizes, modification times) finds it unchanged, so
// a pass reads its files again only after one changed.
type contentCache struct {
	mu          sync.Mutex
	fingerprint string
	content     string
	base        string // templateBaseFile's content, once read or written
}

// contentName is the copy-mode template's snapshot name (see
// TemplateSnapshots).
func (p *Runtime) contentName(ctx context.Context) (string, error) {
	if p.cfg.Template == "" {
		return release.BaseSnapshot, nil
	}
	c := &p.tmpl
	c.mu.Lock()
	defer c.mu.Unlock()
	fp, err := treeHash(ctx, p.cfg.Template, false)
	if err != nil {
		return "", fmt.Errorf("template directory: %w", err)
	}
	if fp != c.fingerprint || c.content == "" {
		content, err := treeHash(ctx, p.cfg.Template, true)
		if err != nil {
			return "", fmt.Errorf("template directory: %w", err)
		}
		c.fingerprint, c.content = fp, content
	}
	if c.base == "" {
		if c.base, err = p.templateBase(c.content); err != nil {
			return "", err
		}
	}
	if c.content == c.base {
		return release.BaseSnapshot, nil
	}
	return contentPrefix + c.content[:12], nil
}

// templateBase reads templateBaseFile, writing content into it first when
// it is missing.
func (p *Runtime) templateBase(content string) (string, error) {
	path := filepath.Join(p.cfg.Root, templateBaseFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := atomicfile.WriteFile(path, []byte(content+"\n"), 0o644); err != nil {
			return "", fmt.Errorf("template base: %w", err)
		}
		return content, nil
	}
	if err != nil {
		return "", fmt.Errorf("template base: %w", err)
	}
	base := strings.TrimSpace(string(b))
	if _, err := hex.DecodeString(base); err != nil || len(base) != sha256.Size*2 {
		return "", fmt.Errorf("template base %s: not a sha256 in hex", path)
	}
	return base, nil
}

// treeHash hashes the tree at dir in WalkDir's (lexical) order: each
// entry's path, type and permission bits, and with content the files'
// contents and the links' targets, else the files' sizes and modification
// times (a cheap fingerprint).
func treeHash(ctx context.Context, dir string, content bool) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%q %v\n", rel, fi.Mode())
		switch {
		case !content && !fi.IsDir():
			fmt.Fprintf(h, "%d %d\n", fi.Size(), fi.ModTime().UnixNano())
		case fi.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "-> %q\n", link)
		case fi.Mode().IsRegular():
			return hashFile(h, path)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func hashFile(h hash.Hash, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fh := sha256.New()
	if _, err := io.Copy(fh, f); err != nil {
		return err
	}
	fmt.Fprintf(h, "%x\n", fh.Sum(nil))
	return nil
}

// pickTemplate returns what create clones in ZFS mode (the full snapshot
// name, "" in copy mode) and the snapshot name the release records.
func (p *Runtime) pickTemplate(ctx context.Context, spec release.Spec) (full, name string, err error) {
	if p.cfg.Dataset == "" {
		name, err = p.copySnapshot(ctx, spec.TemplateSnapshot)
		return "", name, err
	}
	full, err = p.templateSnapshot(ctx, spec.Template, spec.TemplateSnapshot)
	if err != nil {
		return "", "", err
	}
	return full, full[strings.IndexByte(full, '@')+1:], nil
}

// DefaultTemplate is the template of a spec that names none: TemplateName
// in ZFS mode; in copy mode the template directory's base name ("none"
// without one), which names it in status and metrics.
func (p *Runtime) DefaultTemplate() string {
	switch {
	case p.cfg.Dataset != "":
		return p.cfg.TemplateName
	case p.cfg.Template != "":
		return filepath.Base(p.cfg.Template)
	}
	return "none"
}
