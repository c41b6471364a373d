package zfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	gozfs "github.com/mistifyio/go-zfs/v3"
)

// Names reach argv, so they are checked first. A component is what
// zfs(8) allows (alphanumerics, '_', '-', ':', '.') minus the space, and
// starts with an alphanumeric so that no name can be read as an option.
var (
	fsRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]*(/[A-Za-z0-9_.:-]+)*$`)
	snapRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]*(/[A-Za-z0-9_.:-]+)*@[A-Za-z0-9_.:-]+$`)
	// Property names: native ones are lowercase words, user ones contain a
	// colon and use lowercase letters, digits and ':', '+', '.', '_', '-'
	// (zfsprops(7), "User Properties").
	propRE = regexp.MustCompile(`^[a-z][a-z0-9:+._-]*$`)
)

// Limits from zfsprops(7), "User Properties": names up to 256 characters,
// values up to 8192 bytes.
const (
	maxPropName  = 256
	maxPropValue = 8192
)

func checkFS(name string) error {
	if !fsRE.MatchString(name) {
		return fmt.Errorf("%w: dataset name %q", ErrInvalid, name)
	}
	return nil
}

func checkSnap(name string) error {
	if !snapRE.MatchString(name) {
		return fmt.Errorf("%w: snapshot name %q (want DATASET@SNAP)", ErrInvalid, name)
	}
	return nil
}

// checkProps refuses property names zfs would refuse and values that would
// break the one-row-per-property output of `zfs get -H` (a newline) or
// argv (a NUL).
func checkProps(props map[string]string) error {
	for k, v := range props {
		if len(k) > maxPropName || !propRE.MatchString(k) {
			return fmt.Errorf("%w: property name %q", ErrInvalid, k)
		}
		if len(v) > maxPropValue || strings.ContainsAny(v, "\n\r\x00") {
			return fmt.Errorf("%w: value of property %s: newline, NUL or longer than %d bytes", ErrInvalid, k, maxPropValue)
		}
	}
	return nil
}

// own returns the jailkeeper:* entries of props, never nil.
func own(props map[string]string) map[string]string {
	m := map[string]string{}
	for k, v := range props {
		if strings.HasPrefix(k, Prefix) {
			m[k] = v
		}
	}
	return m
}

func fromGo(d *gozfs.Dataset, props map[string]string) Dataset {
	return Dataset{Name: d.Name, Mountpoint: d.Mountpoint, Origin: d.Origin, Props: own(props)}
}

// nonEmpty returns props without the entries whose value is empty.
//
// An empty value means "unset" throughout this package: zfs-fuse's
// `zfs set` refuses one ("missing value in property=value argument") and a
// reader of Props cannot tell it from an unset property anyway, so Create
// and Clone leave such properties unset and SetProps removes them.
func nonEmpty(props map[string]string) map[string]string {
	m := make(map[string]string, len(props))
	for k, v := range props {
		if v != "" {
			m[k] = v
		}
	}
	return m
}

// readBack returns a note for an error of go-zfs's `zfs list` that follows
// a successful create or snapshot, or "" for an error of the command itself.
func readBack(err error) string {
	var ge *gozfs.Error
	if errors.As(err, &ge) {
		if f := strings.Fields(ge.Debug); len(f) > 1 && f[1] == "list" {
			return "done, but reading it back: "
		}
	}
	return ""
}

// run runs `zfs args...` from PATH and returns its stdout. On failure it
// returns an *Error and never the partial stdout.
func run(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "zfs", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = errors.Join(ctx.Err(), err)
		}
		return nil, newError(append([]string{"zfs"}, args...), stderr.String(), err)
	}
	return stdout.Bytes(), nil
}

// Create creates the filesystem name with props set at creation
// (`zfs create -o k=v ... name`, through go-zfs). The parent must exist.
// Properties with an empty value are left unset. It fails with ErrExists
// if name exists. The returned Dataset carries the non-empty jailkeeper:*
// entries of props. go-zfs reads the new dataset back with `zfs list`; if
// only that fails, the dataset exists and the error says so.
func Create(ctx context.Context, name string, props map[string]string) (Dataset, error) {
	if err := checkFS(name); err != nil {
		return Dataset{}, fmt.Errorf("zfs create: %w", err)
	}
	if err := checkProps(props); err != nil {
		return Dataset{}, fmt.Errorf("zfs create %s: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		return Dataset{}, fmt.Errorf("zfs create %s: %w", name, err)
	}
	props = nonEmpty(props)
	d, err := gozfs.CreateFilesystem(name, props)
	if err != nil {
		return Dataset{}, fmt.Errorf("zfs create %s: %s%w", name, readBack(err), fromGoZFS(err))
	}
	return fromGo(d, props), nil
}

// Snapshot creates the snapshot name ("pool/ds@snap"), not recursively
// (`zfs snapshot`, through go-zfs). It fails with ErrExists if the snapshot
// exists and ErrNotFound if the dataset does not.
func Snapshot(ctx context.Context, name string) error {
	if err := checkSnap(name); err != nil {
		return fmt.Errorf("zfs snapshot: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("zfs snapshot %s: %w", name, err)
	}
	ds, snap, _ := strings.Cut(name, "@")
	if _, err := (&gozfs.Dataset{Name: ds}).Snapshot(snap, false); err != nil {
		return fmt.Errorf("zfs snapshot %s: %s%w", name, readBack(err), fromGoZFS(err))
	}
	return nil
}

// Clone clones snapshot into name with props set by the clone itself,
// `zfs clone -o k=v ... SNAP NAME` (keys sorted), so no separate `zfs set`
// is needed. In OpenZFS the clone ioctl (zfs_ioc_clone in
// module/zfs/zfs_ioctl.c) sets those properties right after creating the
// clone and destroys the clone if that fails, so a clone never outlives a
// failure to set its properties. (Not one transaction: a crash between the
// two steps could leave a clone without them; Inventory then shows it
// without jailkeeper:managed.) Properties with an empty value are left
// unset. The parent of name must exist.
//
// Clone runs zfs itself rather than through go-zfs: go-zfs's Clone always
// passes -p, and with -p "if the target filesystem or volume already
// exists, the operation completes successfully" (zfs-clone(8)) without
// cloning or setting anything, so a leftover dataset would pass for a fresh
// clone. Without -p, an existing name fails with ErrExists; a missing
// snapshot fails with ErrNotFound. The clone is then read back with
// `zfs list -H -o mountpoint,origin NAME`; if only that fails, the clone
// exists and the error says so.
func Clone(ctx context.Context, snapshot, name string, props map[string]string) (Dataset, error) {
	if err := checkSnap(snapshot); err != nil {
		return Dataset{}, fmt.Errorf("zfs clone: %w", err)
	}
	if err := checkFS(name); err != nil {
		return Dataset{}, fmt.Errorf("zfs clone %s: %w", snapshot, err)
	}
	if err := checkProps(props); err != nil {
		return Dataset{}, fmt.Errorf("zfs clone %s %s: %w", snapshot, name, err)
	}
	props = nonEmpty(props)
	keys := make([]string, 0, len(props))
	for k := range props {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	args := []string{"clone"}
	for _, k := range keys {
		args = append(args, "-o", k+"="+props[k])
	}
	args = append(args, snapshot, name)
	if _, err := run(ctx, args...); err != nil {
		return Dataset{}, fmt.Errorf("zfs clone %s %s: %w", snapshot, name, err)
	}
	out, err := run(ctx, "list", "-H", "-o", "mountpoint,origin", name)
	if err != nil {
		return Dataset{}, fmt.Errorf("zfs clone %s %s: cloned, but reading it back: %w", snapshot, name, err)
	}
	mountpoint, origin, ok := strings.Cut(strings.TrimSuffix(string(out), "\n"), "\t")
	if !ok {
		return Dataset{}, fmt.Errorf("zfs clone %s %s: cloned, but zfs list printed %q", snapshot, name, out)
	}
	return Dataset{Name: name, Mountpoint: mountpoint, Origin: origin, Props: own(props)}, nil
}

// SetProps sets the non-empty props on name as local values with one
// `zfs set k1=v1 k2=v2 ... name` (keys sorted). OpenZFS applies all the
// properties of one zfs set in one ioctl (illumos 5745, FreeBSD r289497), so
// a crash never leaves half of a state change; this is why SetProps runs
// zfs itself: go-zfs's SetProperty sets one property per command.
//
// A property given with an empty value is removed instead, with
// `zfs inherit KEY name` (one command per key, after the set, not atomic
// with it): afterwards it is inherited or unset and Inventory leaves it out
// of Props. An empty props does nothing.
func SetProps(ctx context.Context, name string, props map[string]string) error {
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
		if _, err := run(ctx, append(append([]string{"set"}, set...), name)...); err != nil {
			return fmt.Errorf("zfs set %s: %w", name, err)
		}
	}
	for _, k := range clear {
		if _, err := run(ctx, "inherit", k, name); err != nil {
			return fmt.Errorf("zfs inherit %s %s: %w", k, name, err)
		}
	}
	return nil
}

// Backoff between Destroy attempts: doubling from destroyDelay, capped.
var (
	destroyDelay    = 250 * time.Millisecond
	destroyMaxDelay = 4 * time.Second
)

// Destroy destroys the filesystem name and everything below it, snapshots
// included, or, for name "pool/ds@snap", that snapshot (and the snapshots
// of the same name below ds) (`zfs destroy -r`, through go-zfs). While zfs says the dataset is busy
// it tries again, up to retries more times, waiting 250ms, 500ms, ... (at
// most 4s) in between; after that it returns an error matching ErrBusy.
// A dataset whose snapshots have clones elsewhere is not destroyed
// (ErrDependents): -R is never used, the clones must go first. A missing
// dataset is ErrNotFound; callers that want idempotence ignore it.
func Destroy(ctx context.Context, name string, retries int) error {
	if checkFS(name) != nil && checkSnap(name) != nil {
		return fmt.Errorf("zfs destroy: %w: name %q", ErrInvalid, name)
	}
	d := &gozfs.Dataset{Name: name}
	delay := destroyDelay
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("zfs destroy %s: %w", name, err)
		}
		err := fromGoZFS(d.Destroy(gozfs.DestroyRecursive))
		if err == nil {
			return nil
		}
		if !errors.Is(err, ErrBusy) {
			return fmt.Errorf("zfs destroy %s: %w", name, err)
		}
		if attempt >= retries {
			return fmt.Errorf("zfs destroy %s: still busy after %d attempts: %w", name, attempt+1, err)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("zfs destroy %s: %w (last attempt: %w)", name, ctx.Err(), err)
		case <-t.C:
		}
		delay = min(2*delay, destroyMaxDelay)
	}
}

// Exists reports whether the dataset or snapshot name exists
// (`zfs list -H -o name NAME`).
func Exists(ctx context.Context, name string) (bool, error) {
	if checkFS(name) != nil && checkSnap(name) != nil {
		return false, fmt.Errorf("zfs list: %w: name %q", ErrInvalid, name)
	}
	_, err := run(ctx, "list", "-H", "-o", "name", name)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, ErrNotFound):
		return false, nil
	default:
		return false, fmt.Errorf("zfs list %s: %w", name, err)
	}
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
func Snapshots(ctx context.Context, dataset string) ([]SnapshotInfo, error) {
	if err := checkFS(dataset); err != nil {
		return nil, fmt.Errorf("zfs list snapshots: %w", err)
	}
	out, err := run(ctx, "list", "-Hp", "-t", "snapshot", "-d", "1", "-s", "createtxg",
		"-o", "name,createtxg,creation", dataset)
	if err != nil {
		return nil, fmt.Errorf("zfs list snapshots of %s: %w", dataset, err)
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
// `zfs list -H -o name SNAP`, then `zfs list -H -r -t filesystem,volume -o
// name,origin POOL` (clones live in the snapshot's pool). The `clones`
// property would answer in one, but zfs-fuse, which the tests use, lacks it.
func Clones(ctx context.Context, snapshot string) ([]string, error) {
	if err := checkSnap(snapshot); err != nil {
		return nil, fmt.Errorf("zfs clones: %w", err)
	}
	if _, err := run(ctx, "list", "-H", "-o", "name", snapshot); err != nil {
		return nil, fmt.Errorf("zfs clones of %s: %w", snapshot, err)
	}
	pool, _, _ := strings.Cut(snapshot, "/")
	pool, _, _ = strings.Cut(pool, "@")
	out, err := run(ctx, "list", "-H", "-r", "-t", "filesystem,volume", "-o", "name,origin", pool)
	if err != nil {
		return nil, fmt.Errorf("zfs clones of %s: %w", snapshot, err)
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
func HasClones(ctx context.Context, snapshot string) (bool, error) {
	c, err := Clones(ctx, snapshot)
	return len(c) > 0, err
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
func Inventory(ctx context.Context, root string) ([]Dataset, error) {
	if err := checkFS(root); err != nil {
		return nil, fmt.Errorf("zfs inventory: %w", err)
	}
	out, err := run(ctx, "get", "-Hp", "-r", "-t", "filesystem", "-o", "name,property,value,source", "all", root)
	if err != nil {
		return nil, fmt.Errorf("zfs inventory %s: %w", root, err)
	}
	ds, err := ParseGet(bytes.NewReader(out))
	if err != nil {
		return nil, fmt.Errorf("zfs inventory %s: %w", root, err)
	}
	return ds, nil
}
