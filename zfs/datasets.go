package zfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Create creates the filesystem name with the non-empty props set at
// creation: `zfs create [-o k=v ...] NAME` (keys sorted). The parent must
// exist (no -p). It fails with ErrExists if name exists, ErrNotFound if the
// parent does not. It reads nothing back: use Get or Inventory for that.
func (c *Client) Create(ctx context.Context, name string, props map[string]string) error {
	if err := checkFS(name); err != nil {
		return fmt.Errorf("zfs create: %w", err)
	}
	if err := checkProps(props); err != nil {
		return fmt.Errorf("zfs create %s: %w", name, err)
	}
	args := append(append([]string{"create"}, optionArgs(props)...), name)
	_, err := c.run(ctx, args...)
	return err
}

// Snapshot creates the snapshot name ("pool/ds@snap"), not recursively:
// `zfs snapshot NAME`. It fails with ErrExists if the snapshot exists and
// ErrNotFound if the dataset does not.
func (c *Client) Snapshot(ctx context.Context, name string) error {
	if err := checkSnap(name); err != nil {
		return fmt.Errorf("zfs snapshot: %w", err)
	}
	_, err := c.run(ctx, "snapshot", name)
	return err
}

// Rollback rolls the filesystem of snapshot back to it:
// `zfs rollback SNAP`. Without -r, zfs refuses when snapshot is not the
// newest one ("more recent snapshots or bookmarks exist", zfs-rollback(8));
// Rollback never destroys snapshots. A missing snapshot is ErrNotFound.
func (c *Client) Rollback(ctx context.Context, snapshot string) error {
	if err := checkSnap(snapshot); err != nil {
		return fmt.Errorf("zfs rollback: %w", err)
	}
	_, err := c.run(ctx, "rollback", snapshot)
	return err
}

// Clone clones snapshot into name with the non-empty props set by the clone
// itself, `zfs clone [-o k=v ...] SNAP NAME` (keys sorted), so no separate
// `zfs set` is needed. In OpenZFS the clone ioctl (zfs_ioc_clone in
// module/zfs/zfs_ioctl.c) sets those properties right after creating the
// clone and destroys the clone if that fails, so a clone never outlives a
// failure to set its properties. (Not one transaction: a crash between the
// two steps could leave a clone without them; Inventory then shows it
// without jailkeeper:managed.) The parent of name must exist (no -p).
//
// An existing name fails with ErrExists, a missing snapshot with
// ErrNotFound. The clone is then read back with
// `zfs list -H -o mountpoint,origin NAME`; if only that fails, the clone
// exists and the error says so. The returned Dataset carries the
// jailkeeper:* entries of props that were set.
func (c *Client) Clone(ctx context.Context, snapshot, name string, props map[string]string) (Dataset, error) {
	if err := checkSnap(snapshot); err != nil {
		return Dataset{}, fmt.Errorf("zfs clone: %w", err)
	}
	if err := checkFS(name); err != nil {
		return Dataset{}, fmt.Errorf("zfs clone %s: %w", snapshot, err)
	}
	if err := checkProps(props); err != nil {
		return Dataset{}, fmt.Errorf("zfs clone %s %s: %w", snapshot, name, err)
	}
	args := append(append([]string{"clone"}, optionArgs(props)...), snapshot, name)
	if _, err := c.run(ctx, args...); err != nil {
		return Dataset{}, err
	}
	d, err := c.mountpointOrigin(ctx, name)
	if err != nil {
		return Dataset{}, fmt.Errorf("zfs clone %s %s: cloned, but reading it back: %w", snapshot, name, err)
	}
	set := own(props)
	for k, v := range set {
		if v == "" {
			delete(set, k)
		}
	}
	d.Props = set
	return d, nil
}

// mountpointOrigin runs `zfs list -H -o mountpoint,origin NAME`. Origin is
// "" when zfs prints "-" (not a clone). Props is empty, not nil.
func (c *Client) mountpointOrigin(ctx context.Context, name string) (Dataset, error) {
	out, err := c.run(ctx, "list", "-H", "-o", "mountpoint,origin", name)
	if err != nil {
		return Dataset{}, err
	}
	mountpoint, origin, ok := strings.Cut(strings.TrimSuffix(string(out), "\n"), "\t")
	if !ok || strings.Contains(origin, "\n") {
		return Dataset{}, fmt.Errorf("zfs list -H -o mountpoint,origin %s printed %q, want one line MOUNTPOINT<TAB>ORIGIN", name, out)
	}
	if origin == "-" {
		origin = ""
	}
	return Dataset{Name: name, Mountpoint: mountpoint, Origin: origin, Props: map[string]string{}}, nil
}

// SetProps sets the non-empty props on name as local values with one
// `zfs set k1=v1 k2=v2 ... NAME` (keys sorted). OpenZFS applies all the
// properties of one zfs set in one ioctl (illumos 5745, FreeBSD r289497),
// so a crash never leaves half of a state change.
//
// A property given with an empty value is removed instead, with
// `zfs inherit KEY NAME` (one command per key, sorted, after the set, not
// atomic with it): afterwards it is inherited or unset and Inventory leaves
// it out of Props. An empty props runs nothing.
func (c *Client) SetProps(ctx context.Context, name string, props map[string]string) error {
	if err := checkFS(name); err != nil {
		return fmt.Errorf("zfs set: %w", err)
	}
	if err := checkProps(props); err != nil {
		return fmt.Errorf("zfs set %s: %w", name, err)
	}
	var set, clear []string
	for k, v := range props {
		if v == "" {
			clear = append(clear, k)
		} else {
			set = append(set, k+"="+v)
		}
	}
	sort.Strings(set)
	sort.Strings(clear)
	if len(set) > 0 {
		if _, err := c.run(ctx, append(append([]string{"set"}, set...), name)...); err != nil {
			return err
		}
	}
	for _, k := range clear {
		if _, err := c.run(ctx, "inherit", k, name); err != nil {
			return err
		}
	}
	return nil
}

// Destroy destroys the filesystem name and everything below it, snapshots
// included, or, for name "pool/ds@snap", that snapshot (and the snapshots
// of the same name below ds): `zfs destroy -r NAME`. While zfs says the
// dataset is busy it runs it again, up to retries more times, waiting with
// the client's backoff in between; after that it returns an error matching
// ErrBusy that counts the attempts. A dataset whose snapshots have clones
// elsewhere is not destroyed (ErrDependents): -R is never used, the clones
// must go first. A missing dataset is ErrNotFound; callers that want
// idempotence ignore it. When ctx ends during a wait, the error matches
// ctx.Err() and the last attempt's error.
func (c *Client) Destroy(ctx context.Context, name string, retries int) error {
	if err := checkAny(name); err != nil {
		return fmt.Errorf("zfs destroy: %w", err)
	}
	delay := c.delay
	for attempt := 0; ; attempt++ {
		_, err := c.run(ctx, "destroy", "-r", name)
		if err == nil {
			return nil
		}
		if !errors.Is(err, ErrBusy) {
			return err
		}
		if attempt >= retries {
			return fmt.Errorf("still busy after %d attempts: %w", attempt+1, err)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("zfs destroy -r %s: %w (last attempt: %w)", name, ctx.Err(), err)
		case <-t.C:
		}
		delay = min(2*delay, c.maxDelay)
	}
}

// CheckDestroy asks zfs whether Destroy would be refused, without
// destroying anything: `zfs destroy -n -r NAME` (zfs-destroy(8), -n: a
// dry run). It returns nil when zfs would destroy name, ErrDependents when
// clones depend on it, ErrNotFound when it is missing. Being busy is not
// checked: a dry run unmounts nothing.
func (c *Client) CheckDestroy(ctx context.Context, name string) error {
	if err := checkAny(name); err != nil {
		return fmt.Errorf("zfs destroy -n: %w", err)
	}
	_, err := c.run(ctx, "destroy", "-n", "-r", name)
	return err
}

// Exists reports whether the dataset or snapshot name exists:
// `zfs list -H -o name NAME`, true on exit 0, false on an error matching
// ErrNotFound, the error otherwise.
func (c *Client) Exists(ctx context.Context, name string) (bool, error) {
	if err := checkAny(name); err != nil {
		return false, fmt.Errorf("zfs list: %w", err)
	}
	_, err := c.run(ctx, "list", "-H", "-o", "name", name)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, ErrNotFound):
		return false, nil
	default:
		return false, err
	}
}

// Property is one property of a dataset as `zfs get -Hp` prints it: Value
// exact (bytes and seconds as plain numbers, -p), Source "local",
// "default", "inherited from P/D", "received", "temporary" or "-" (a user
// property that is not set, whose Value is then "-" too).
type Property struct {
	Value  string
	Source string
}

// Get returns the properties props of the dataset or snapshot name:
// `zfs get -Hp -o name,property,value,source P1[,P2...] NAME`, in one
// command. Every name asked for is in the map (zfs prints a row for each,
// "-" for an unset user property). A missing dataset is ErrNotFound; an
// unknown native property is an error of zfs (no sentinel).
func (c *Client) Get(ctx context.Context, name string, props ...string) (map[string]Property, error) {
	if err := checkAny(name); err != nil {
		return nil, fmt.Errorf("zfs get: %w", err)
	}
	if len(props) == 0 {
		return nil, fmt.Errorf("zfs get %s: %w: no property asked for", name, ErrInvalid)
	}
	for _, p := range props {
		if err := checkPropName(p); err != nil {
			return nil, fmt.Errorf("zfs get %s: %w", name, err)
		}
	}
	out, err := c.run(ctx, "get", "-Hp", "-o", "name,property,value,source", strings.Join(props, ","), name)
	if err != nil {
		return nil, err
	}
	m := map[string]Property{}
	err = scanGet(bytes.NewReader(out), func(row getRow) {
		if row.name == name {
			m[row.prop] = Property{Value: row.value, Source: row.source}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("zfs get %s: %w", name, err)
	}
	return m, nil
}

// SnapshotInfo is one snapshot of a dataset.
type SnapshotInfo struct {
	Name      string    // "pool/ds@snap"
	CreateTxg uint64    // the transaction group that created it; strictly increasing
	Created   time.Time // the creation property, whole seconds
}

// Snapshots lists the snapshots of dataset itself (not of its children),
// oldest first: sorted by createtxg, which, unlike creation, has no ties
// within one second. The last one is the newest. One command:
// `zfs list -Hp -t snapshot -d 1 -s createtxg -o name,createtxg,creation DATASET`.
// A missing dataset is ErrNotFound; one without snapshots gives none.
func (c *Client) Snapshots(ctx context.Context, dataset string) ([]SnapshotInfo, error) {
	if err := checkFS(dataset); err != nil {
		return nil, fmt.Errorf("zfs list snapshots: %w", err)
	}
	out, err := c.run(ctx, "list", "-Hp", "-t", "snapshot", "-d", "1", "-s", "createtxg",
		"-o", "name,createtxg,creation", dataset)
	if err != nil {
		return nil, err
	}
	var snaps []SnapshotInfo
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		if line == "" {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 3 {
			return nil, fmt.Errorf("zfs list snapshots of %s: unexpected line %q", dataset, line)
		}
		if !strings.HasPrefix(f[0], dataset+"@") {
			continue
		}
		txg, err1 := strconv.ParseUint(f[1], 10, 64)
		sec, err2 := strconv.ParseInt(f[2], 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("zfs list snapshots of %s: line %q: %w", dataset, line, err)
		}
		snaps = append(snaps, SnapshotInfo{Name: f[0], CreateTxg: txg, Created: time.Unix(sec, 0)})
	}
	sort.SliceStable(snaps, func(i, j int) bool { return snaps[i].CreateTxg < snaps[j].CreateTxg })
	return snaps, nil
}

// Clones returns the datasets cloned from snapshot, sorted by name. It
// fails with ErrNotFound if the snapshot does not exist. Two commands:
// `zfs list -H -o name SNAP`, then
// `zfs list -H -r -t filesystem,volume -o name,origin POOL` (clones live in
// the snapshot's pool). The `clones` property would answer in one, but
// zfs-fuse, which the tests use, lacks it.
func (c *Client) Clones(ctx context.Context, snapshot string) ([]string, error) {
	if err := checkSnap(snapshot); err != nil {
		return nil, fmt.Errorf("zfs clones: %w", err)
	}
	if _, err := c.run(ctx, "list", "-H", "-o", "name", snapshot); err != nil {
		return nil, err
	}
	pool, _, _ := strings.Cut(snapshot, "/")
	pool, _, _ = strings.Cut(pool, "@")
	out, err := c.run(ctx, "list", "-H", "-r", "-t", "filesystem,volume", "-o", "name,origin", pool)
	if err != nil {
		return nil, err
	}
	var clones []string
	for _, line := range strings.Split(string(out), "\n") {
		name, origin, ok := strings.Cut(line, "\t")
		if ok && origin == snapshot {
			clones = append(clones, name)
		}
	}
	sort.Strings(clones)
	return clones, nil
}

// HasClones reports whether any dataset was cloned from snapshot. A
// template whose snapshot has clones must not be replaced. See Clones.
func (c *Client) HasClones(ctx context.Context, snapshot string) (bool, error) {
	cl, err := c.Clones(ctx, snapshot)
	return len(cl) > 0, err
}

// Inventory returns root and every filesystem below it with its
// mountpoint, origin and local jailkeeper:* properties, in zfs's order
// (sorted by name, parents first). It is one command,
//
//	zfs get -Hp -r -t filesystem -o name,property,value,source all ROOT
//
// parsed by ParseGet. "all" because user properties cannot be selected by
// prefix, and no -s filter because mountpoint and origin are not local.
// A missing root is ErrNotFound.
func (c *Client) Inventory(ctx context.Context, root string) ([]Dataset, error) {
	if err := checkFS(root); err != nil {
		return nil, fmt.Errorf("zfs inventory: %w", err)
	}
	out, err := c.run(ctx, "get", "-Hp", "-r", "-t", "filesystem", "-o", "name,property,value,source", "all", root)
	if err != nil {
		return nil, err
	}
	ds, err := ParseGet(bytes.NewReader(out))
	if err != nil {
		return nil, fmt.Errorf("zfs inventory %s: %w", root, err)
	}
	return ds, nil
}
