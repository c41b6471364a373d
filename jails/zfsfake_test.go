package jails_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/jailkeeper/jailkeeper/internal/command"
	"github.com/jailkeeper/jailkeeper/internal/command/commandtest"
	"github.com/jailkeeper/jailkeeper/jails"
	"github.com/jailkeeper/jailkeeper/zfs"
)

// fakeZFS implements jails.Datasets in memory for the FreeBSD runtime's
// tests, which run without ZFS (the zfs package has its own tests against
// real ZFS). Every call is first run through the shared Replay runner as
// the zfs command the zfs package would run, so it lands in the same
// transcript as jail, jls and ifconfig, and a test can make it fail with a
// captured zfs error text. Clone copies the template's directory to the
// clone's mountpoint; Destroy removes it.
type fakeZFS struct {
	r       *commandtest.Replay
	dataset string // zroot/jails
	root    string // its mountpoint

	mu    sync.Mutex
	props map[string]map[string]string // filesystem -> local jailkeeper:* props
	snaps map[string][]zfs.SnapshotInfo
}

func newFakeZFS(r *commandtest.Replay, dataset, root string) *fakeZFS {
	z := &fakeZFS{r: r, dataset: dataset, root: root, props: map[string]map[string]string{}, snaps: map[string][]zfs.SnapshotInfo{}}
	for _, c := range []string{"", "/media", "/templates", "/containers"} {
		z.props[dataset+c] = map[string]string{}
	}
	return z
}

func (z *fakeZFS) mountpoint(ds string) string {
	return filepath.Join(z.root, strings.TrimPrefix(ds, z.dataset))
}

// run records argv and turns a failing response into the error the zfs
// package would return: an error matching the sentinel its stderr names.
func (z *fakeZFS) run(ctx context.Context, argv ...string) error {
	_, err := z.r.Run(ctx, argv, nil)
	if err == nil {
		return nil
	}
	stderr := command.Stderr(err)
	for text, kind := range map[string]error{
		"dataset does not exist": zfs.ErrNotFound,
		"already exists":         zfs.ErrExists,
		"is busy":                zfs.ErrBusy,
		"dependent clones":       zfs.ErrDependents,
	} {
		if strings.Contains(stderr, text) {
			return fmt.Errorf("%w: %w", kind, err)
		}
	}
	return err
}

func sortedProps(props map[string]string) []string {
	var kv []string
	for k, v := range props {
		kv = append(kv, k+"="+v)
	}
	slices.Sort(kv)
	return kv
}

func (z *fakeZFS) Clone(ctx context.Context, snapshot, name string, props map[string]string) (zfs.Dataset, error) {
	argv := []string{"zfs", "clone"}
	for _, kv := range sortedProps(props) {
		argv = append(argv, "-o", kv)
	}
	if err := z.run(ctx, append(argv, snapshot, name)...); err != nil {
		return zfs.Dataset{}, err
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	if _, ok := z.props[name]; ok {
		return zfs.Dataset{}, fmt.Errorf("%w: cannot create '%s'", zfs.ErrExists, name)
	}
	src, _, _ := strings.Cut(snapshot, "@")
	if err := os.CopyFS(z.mountpoint(name), os.DirFS(z.mountpoint(src))); err != nil {
		return zfs.Dataset{}, err
	}
	z.props[name] = map[string]string{}
	for k, v := range props {
		z.props[name][k] = v
	}
	// zfs.Clone reads the clone back with a second command, which can fail
	// after the clone exists.
	z.mu.Unlock()
	err := z.run(ctx, "zfs", "list", "-H", "-o", "mountpoint,origin", name)
	z.mu.Lock()
	if err != nil {
		return zfs.Dataset{}, fmt.Errorf("zfs clone %s %s: cloned, but reading it back: %w", snapshot, name, err)
	}
	return zfs.Dataset{Name: name, Mountpoint: z.mountpoint(name), Origin: snapshot, Props: props}, nil
}

func (z *fakeZFS) SetProps(ctx context.Context, name string, props map[string]string) error {
	if err := z.run(ctx, append(append([]string{"zfs", "set"}, sortedProps(props)...), name)...); err != nil {
		return err
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	p, ok := z.props[name]
	if !ok {
		return fmt.Errorf("%w: cannot open '%s'", zfs.ErrNotFound, name)
	}
	for k, v := range props {
		p[k] = v
	}
	return nil
}

// Destroy retries while busy, as zfs.Destroy does (without its waits).
func (z *fakeZFS) Destroy(ctx context.Context, name string, retries int) error {
	var err error
	for range retries + 1 {
		if err = z.run(ctx, "zfs", "destroy", "-r", name); !errors.Is(err, zfs.ErrBusy) {
			break
		}
	}
	if err != nil {
		return err
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	if _, ok := z.props[name]; !ok {
		return fmt.Errorf("%w: cannot open '%s'", zfs.ErrNotFound, name)
	}
	delete(z.props, name)
	return os.RemoveAll(z.mountpoint(name))
}

func (z *fakeZFS) Inventory(ctx context.Context, root string) ([]zfs.Dataset, error) {
	if err := z.run(ctx, "zfs", "get", "-Hp", "-r", "-t", "filesystem", "-o", "name,property,value,source", "all", root); err != nil {
		return nil, err
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	var out []zfs.Dataset
	for name, p := range z.props {
		if name == root || strings.HasPrefix(name, root+"/") {
			cp := map[string]string{}
			for k, v := range p {
				cp[k] = v
			}
			out = append(out, zfs.Dataset{Name: name, Mountpoint: z.mountpoint(name), Props: cp})
		}
	}
	slices.SortFunc(out, func(a, b zfs.Dataset) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (z *fakeZFS) Snapshots(ctx context.Context, dataset string) ([]zfs.SnapshotInfo, error) {
	if err := z.run(ctx, "zfs", "list", "-Hp", "-t", "snapshot", "-d", "1", "-s", "createtxg", "-o", "name,createtxg,creation", dataset); err != nil {
		return nil, err
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	s, ok := z.snaps[dataset]
	if !ok {
		return nil, fmt.Errorf("%w: cannot open '%s'", zfs.ErrNotFound, dataset)
	}
	return slices.Clone(s), nil
}

// addTemplate makes the template dataset with the given snapshots (oldest
// first) and its directory with the files a release needs from the base
// system: /etc/passwd (FreeBSD's own lines for root and www) and an
// /etc/rc.d script.
func (z *fakeZFS) addTemplate(name string, snaps ...string) error {
	ds := z.dataset + "/templates/" + name
	dir := z.mountpoint(ds)
	for _, d := range []string{"etc/rc.d", "var/run", "var/log"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	passwd := "root:*:0:0:Charlie &:/root:/bin/sh\nwww:*:80:80:World Wide Web Owner:/nonexistent:/usr/sbin/nologin\n"
	if err := os.WriteFile(filepath.Join(dir, "etc/passwd"), []byte(passwd), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "etc/rc.d/cron"), []byte("#!/bin/sh\n"), 0o555); err != nil {
		return err
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	z.props[ds] = map[string]string{}
	for i, s := range snaps {
		z.snaps[ds] = append(z.snaps[ds], zfs.SnapshotInfo{Name: ds + "@" + s, CreateTxg: uint64(100 + i)})
	}
	return nil
}

// has reports whether the dataset exists.
func (z *fakeZFS) has(name string) bool {
	z.mu.Lock()
	defer z.mu.Unlock()
	_, ok := z.props[name]
	return ok
}

func (z *fakeZFS) prop(name, key string) string {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.props[name][key]
}

// Create makes the filesystem and its directory (persistent data).
func (z *fakeZFS) Create(ctx context.Context, name string, props map[string]string) error {
	argv := []string{"zfs", "create"}
	for _, kv := range sortedProps(props) {
		if !strings.HasSuffix(kv, "=") {
			argv = append(argv, "-o", kv)
		}
	}
	if err := z.run(ctx, append(argv, name)...); err != nil {
		return err
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	if _, ok := z.props[name]; ok {
		return fmt.Errorf("%w: cannot create '%s': dataset already exists", zfs.ErrExists, name)
	}
	z.props[name] = map[string]string{}
	return os.MkdirAll(z.mountpoint(name), 0o755)
}

func (z *fakeZFS) Exists(ctx context.Context, name string) (bool, error) {
	if err := z.run(ctx, "zfs", "list", "-H", "-o", "name", name); err != nil {
		return false, err
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	ds, snap, isSnap := strings.Cut(name, "@")
	if !isSnap {
		_, ok := z.props[name]
		return ok, nil
	}
	return slices.ContainsFunc(z.snaps[ds], func(s zfs.SnapshotInfo) bool { return s.Name == ds+"@"+snap }), nil
}

func (z *fakeZFS) Snapshot(ctx context.Context, name string) error {
	if err := z.run(ctx, "zfs", "snapshot", name); err != nil {
		return err
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	ds, _, _ := strings.Cut(name, "@")
	z.snaps[ds] = append(z.snaps[ds], zfs.SnapshotInfo{Name: name, CreateTxg: uint64(200 + len(z.snaps[ds]))})
	return nil
}

var _ jails.Datasets = (*fakeZFS)(nil)
