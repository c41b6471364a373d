package jailstest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jailkeeper/jailkeeper/internal/command"
	"github.com/jailkeeper/jailkeeper/zfs"
)

// Datasets implements jails.Datasets by running, through Runner (a Host),
// the zfs commands the zfs package runs today, and parsing their output
// as it does: the FreeBSD runtime's ZFS calls then reach the fake host's
// state. It is a bridge until the zfs client runs every command through a
// command.Runner itself (issue "Structure", "One way to run ZFS"); then
// the runtime gets that client over the Host and Datasets goes.
//
// Errors match the zfs package's sentinels (zfs.ErrNotFound, ErrExists,
// ErrBusy, ErrDependents) by the same stderr texts (zfs/errors.go).
type Datasets struct {
	Runner command.Runner
}

func (z Datasets) run(ctx context.Context, argv ...string) ([]byte, error) {
	out, err := z.Runner.Run(ctx, argv, nil)
	if err == nil {
		return out, nil
	}
	stderr := command.Stderr(err)
	for _, p := range []struct {
		kind  error
		texts []string
	}{
		{zfs.ErrNotFound, []string{"dataset does not exist"}},
		{zfs.ErrExists, []string{"dataset already exists"}},
		{zfs.ErrDependents, []string{"has dependent clones", "has children"}},
		{zfs.ErrBusy, []string{"dataset is busy"}},
	} {
		for _, t := range p.texts {
			if strings.Contains(stderr, t) {
				return nil, fmt.Errorf("%w: %w", p.kind, err)
			}
		}
	}
	return nil, err
}

func sortedKV(props map[string]string) (set, clear []string) {
	for k, v := range props {
		if v == "" {
			clear = append(clear, k)
		} else {
			set = append(set, k+"="+v)
		}
	}
	slices.Sort(set)
	slices.Sort(clear)
	return set, clear
}

// Clone is zfs.Clone: `zfs clone -o k=v... SNAP NAME`, then
// `zfs list -H -o mountpoint,origin NAME`.
func (z Datasets) Clone(ctx context.Context, snapshot, name string, props map[string]string) (zfs.Dataset, error) {
	set, _ := sortedKV(props)
	argv := []string{"zfs", "clone"}
	for _, kv := range set {
		argv = append(argv, "-o", kv)
	}
	if _, err := z.run(ctx, append(argv, snapshot, name)...); err != nil {
		return zfs.Dataset{}, fmt.Errorf("zfs clone %s %s: %w", snapshot, name, err)
	}
	out, err := z.run(ctx, "zfs", "list", "-H", "-o", "mountpoint,origin", name)
	if err != nil {
		return zfs.Dataset{}, fmt.Errorf("zfs clone %s %s: cloned, but reading it back: %w", snapshot, name, err)
	}
	mp, origin, _ := strings.Cut(strings.TrimSuffix(string(out), "\n"), "\t")
	own := map[string]string{}
	for k, v := range props {
		if strings.HasPrefix(k, zfs.Prefix) && v != "" {
			own[k] = v
		}
	}
	return zfs.Dataset{Name: name, Mountpoint: mp, Origin: origin, Props: own}, nil
}

// SetProps is zfs.SetProps: one `zfs set k=v... NAME`, then `zfs inherit`
// for each empty value.
func (z Datasets) SetProps(ctx context.Context, name string, props map[string]string) error {
	set, clear := sortedKV(props)
	if len(set) > 0 {
		if _, err := z.run(ctx, append(append([]string{"zfs", "set"}, set...), name)...); err != nil {
			return fmt.Errorf("zfs set %s: %w", name, err)
		}
	}
	for _, k := range clear {
		if _, err := z.run(ctx, "zfs", "inherit", k, name); err != nil {
			return fmt.Errorf("zfs inherit %s %s: %w", k, name, err)
		}
	}
	return nil
}

// Destroy is zfs.Destroy: `zfs destroy -r NAME`, tried again up to
// retries more times while busy, without zfs.Destroy's waits.
func (z Datasets) Destroy(ctx context.Context, name string, retries int) error {
	for attempt := 0; ; attempt++ {
		_, err := z.run(ctx, "zfs", "destroy", "-r", name)
		if err == nil {
			return nil
		}
		if !errors.Is(err, zfs.ErrBusy) {
			return fmt.Errorf("zfs destroy %s: %w", name, err)
		}
		if attempt >= retries {
			return fmt.Errorf("zfs destroy %s: still busy after %d attempts: %w", name, attempt+1, err)
		}
	}
}

// Inventory is zfs.Inventory:
// `zfs get -Hp -r -t filesystem -o name,property,value,source all ROOT`
// parsed by zfs.ParseGet.
func (z Datasets) Inventory(ctx context.Context, root string) ([]zfs.Dataset, error) {
	out, err := z.run(ctx, "zfs", "get", "-Hp", "-r", "-t", "filesystem", "-o", "name,property,value,source", "all", root)
	if err != nil {
		return nil, fmt.Errorf("zfs inventory %s: %w", root, err)
	}
	return zfs.ParseGet(bytes.NewReader(out))
}

// Snapshots is zfs.Snapshots:
// `zfs list -Hp -t snapshot -d 1 -s createtxg -o name,createtxg,creation DATASET`.
func (z Datasets) Snapshots(ctx context.Context, dataset string) ([]zfs.SnapshotInfo, error) {
	out, err := z.run(ctx, "zfs", "list", "-Hp", "-t", "snapshot", "-d", "1", "-s", "createtxg",
		"-o", "name,createtxg,creation", dataset)
	if err != nil {
		return nil, fmt.Errorf("zfs list snapshots of %s: %w", dataset, err)
	}
	var snaps []zfs.SnapshotInfo
	for line := range strings.Lines(string(out)) {
		f := strings.Split(strings.TrimSuffix(line, "\n"), "\t")
		if len(f) != 3 {
			return nil, fmt.Errorf("zfs list snapshots of %s: line %q", dataset, line)
		}
		txg, err1 := strconv.ParseUint(f[1], 10, 64)
		sec, err2 := strconv.ParseInt(f[2], 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("zfs list snapshots of %s: %w", dataset, err)
		}
		snaps = append(snaps, zfs.SnapshotInfo{Name: f[0], CreateTxg: txg, Created: time.Unix(sec, 0)})
	}
	return snaps, nil
}
