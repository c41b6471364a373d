package process

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/jailkeeper/jailkeeper/release"
	"github.com/jailkeeper/jailkeeper/zfs"
)

// dataDirName is the directory below Root that holds the data sets:
// <Root>/data/<service>/<name>. It is no release name (ValidName), so List
// never takes it for a release.
const dataDirName = "data"

// dataMount is one data set of a release, as process.json records it: the
// app receives Dir as DATA_<NAME>, and Start makes it again when it is
// gone (a `data destroy` while a retained release was kept).
type dataMount struct {
	Name  string `json:"name"`
	Dir   string `json:"dir"`
	Quota int64  `json:"quota,omitempty"`
}

// dataDir is where the data set name of service lives on the host.
func (p *Runtime) dataDir(service, name string) string {
	return filepath.Join(p.cfg.Root, dataDirName, service, name)
}

// dataDataset is the dataset of the data set in ZFS mode:
// <Dataset>/data/<service>/<name>, mounted at dataDir.
func (p *Runtime) dataDataset(service, name string) string {
	return p.cfg.Dataset + "/" + dataDirName + "/" + service + "/" + name
}

func (p *Runtime) dataMounts(service string, data []release.Data) []dataMount {
	out := make([]dataMount, len(data))
	for i, d := range data {
		out[i] = dataMount{Name: d.Name, Dir: p.dataDir(service, d.Name), Quota: d.Quota}
	}
	return out
}

// checkData refuses data names that are not data set names, and two data
// sets that would share a variable.
func checkData(data []release.Data) error {
	seen := map[string]bool{}
	for _, d := range data {
		if err := release.ValidDataName(d.Name); err != nil {
			return fmt.Errorf("data: %w", err)
		}
		if seen[d.Name] {
			return fmt.Errorf("data: %s listed twice", d.Name)
		}
		seen[d.Name] = true
	}
	return nil
}

// ensureData makes each data set of service that is missing, and leaves
// the ones that exist, with everything in them, alone. Copy mode: a
// directory (mode 0750). ZFS mode: the dataset, with its quota, mounted at
// the directory: `zfs create -o mountpoint=DIR [-o quota=N]
// <Dataset>/data/<service>/<name>`, its parents <Dataset>/data and
// <Dataset>/data/<service> created first with mountpoint=none. The quota
// of an existing dataset is set again to the manifest's (none when it
// names none). The app runs as the agent's user, who owns what is made.
func (p *Runtime) ensureData(ctx context.Context, service string, data []dataMount) error {
	if len(data) == 0 {
		return nil
	}
	if p.cfg.Dataset == "" {
		for _, d := range data {
			if err := os.MkdirAll(d.Dir, 0o750); err != nil {
				return fmt.Errorf("data %s: %w", d.Name, err)
			}
		}
		return nil
	}
	for _, parent := range []string{p.cfg.Dataset + "/" + dataDirName, p.cfg.Dataset + "/" + dataDirName + "/" + service} {
		if err := p.ensureDataset(ctx, parent, map[string]string{"mountpoint": "none"}); err != nil {
			return err
		}
	}
	for _, d := range data {
		ds := p.dataDataset(service, d.Name)
		quota := ""
		if d.Quota > 0 {
			quota = strconv.FormatInt(d.Quota, 10)
		}
		ok, err := p.zfs.Exists(ctx, ds)
		switch {
		case err != nil:
			return fmt.Errorf("data %s: %w", d.Name, err)
		case ok:
			if err := p.zfs.SetProps(ctx, ds, map[string]string{"quota": quota}); err != nil {
				return fmt.Errorf("data %s: %w", d.Name, err)
			}
			continue
		}
		if err := p.ensureDataset(ctx, ds, map[string]string{"mountpoint": d.Dir, "quota": quota}); err != nil {
			return fmt.Errorf("data %s: %w", d.Name, err)
		}
		switch mounted, err := isMountPoint(d.Dir); {
		case err != nil:
			return fmt.Errorf("data %s: %w", d.Name, err)
		case !mounted:
			return fmt.Errorf("data %s: %s is not mounted at %s", d.Name, ds, d.Dir)
		}
	}
	return nil
}

// ensureDataset creates ds with props unless it exists.
func (p *Runtime) ensureDataset(ctx context.Context, ds string, props map[string]string) error {
	ok, err := p.zfs.Exists(ctx, ds)
	if err != nil || ok {
		return err
	}
	if err := p.zfs.Create(ctx, ds, props); err != nil && !errors.Is(err, zfs.ErrExists) {
		return err
	}
	return nil
}

// SnapshotData implements reconcile.DataSnapshotter in ZFS mode (see
// there): `zfs snapshot <Dataset>/data/<service>/<name>@<target>-<UTC>` per
// data set, then the oldest snapshots jailkeeper took of it beyond keep are
// destroyed. In copy mode there is nothing to snapshot and it does
// nothing.
func (p *Runtime) SnapshotData(ctx context.Context, service, target string, names []string, keep int) error {
	if p.cfg.Dataset == "" {
		return nil
	}
	if err := release.ValidService(service); err != nil {
		return err
	}
	if err := release.ValidName(target); err != nil {
		return err
	}
	snap := release.DataSnapshot(target, p.cfg.Now())
	for _, n := range names {
		if err := release.ValidDataName(n); err != nil {
			return err
		}
		ds := p.dataDataset(service, n)
		if err := p.zfs.Snapshot(ctx, ds+"@"+snap); err != nil && !errors.Is(err, zfs.ErrExists) {
			return err
		}
		if err := pruneDataSnapshots(ctx, p.zfs, ds, service, keep, 0); err != nil {
			return err
		}
	}
	return nil
}

// snapshotter is what pruning data snapshots needs of ZFS.
type snapshotter interface {
	Snapshots(ctx context.Context, dataset string) ([]zfs.SnapshotInfo, error)
	Destroy(ctx context.Context, name string, retries int) error
}

// pruneDataSnapshots destroys the oldest of the snapshots of ds that
// jailkeeper took (release.IsDataSnapshot) beyond the newest keep. Other
// snapshots are neither counted nor touched.
func pruneDataSnapshots(ctx context.Context, z snapshotter, ds, service string, keep, retries int) error {
	snaps, err := z.Snapshots(ctx, ds)
	if err != nil {
		return err
	}
	var ours []string // oldest first
	for _, s := range snaps {
		_, at, _ := strings.Cut(s.Name, "@")
		if release.IsDataSnapshot(service, at) {
			ours = append(ours, s.Name)
		}
	}
	for len(ours) > max(keep, 1) {
		if err := z.Destroy(ctx, ours[0], retries); err != nil && !errors.Is(err, zfs.ErrNotFound) {
			return err
		}
		ours = ours[1:]
	}
	return nil
}

// ListData returns every data set on the host, whether or not a manifest
// still asks for it, sorted by service and name: the directories
// <Root>/data/<service>/<name>, or in ZFS mode the datasets
// <Dataset>/data/<service>/<name>.
func (p *Runtime) ListData(ctx context.Context) ([]release.DataSet, error) {
	var out []release.DataSet
	if p.cfg.Dataset != "" {
		root := p.cfg.Dataset + "/" + dataDirName
		dss, err := p.zfs.Inventory(ctx, root)
		if errors.Is(err, zfs.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list data: %w", err)
		}
		for _, d := range dss {
			if svc, name, ok := dataPath(root, d.Name); ok {
				out = append(out, release.DataSet{Service: svc, Name: name, Where: d.Name})
			}
		}
		return out, nil
	}
	root := filepath.Join(p.cfg.Root, dataDirName)
	svcs, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list data: %w", err)
	}
	for _, s := range svcs {
		if !s.IsDir() || release.ValidService(s.Name()) != nil {
			continue
		}
		names, err := os.ReadDir(filepath.Join(root, s.Name()))
		if err != nil {
			return nil, fmt.Errorf("list data: %w", err)
		}
		for _, n := range names {
			if n.IsDir() && release.ValidDataName(n.Name()) == nil {
				out = append(out, release.DataSet{Service: s.Name(), Name: n.Name(), Where: p.dataDir(s.Name(), n.Name())})
			}
		}
	}
	return out, nil
}

// dataPath splits <root>/<service>/<name> into service and name.
func dataPath(root, ds string) (service, name string, ok bool) {
	rest, ok := strings.CutPrefix(ds, root+"/")
	if !ok {
		return "", "", false
	}
	service, name, ok = strings.Cut(rest, "/")
	if !ok || release.ValidService(service) != nil || release.ValidDataName(name) != nil {
		return "", "", false
	}
	return service, name, true
}

// ErrDataInUse: a data set was to be destroyed while the service still
// has releases on the host.
var ErrDataInUse = errors.New("the service still has releases on this host")

// DestroyData destroys the data set name of service, snapshots and all:
// the directory (copy mode) or `zfs destroy -r` of its dataset. It is
// refused (ErrDataInUse) while the service has any release here, running
// or not: a retained one would get the data back empty on a rollback.
// Remove the service's manifest, let the agent prune it, then destroy its
// data. A data set that does not exist is release.ErrNotFound. Nothing
// else ever destroys data: not Destroy, not pruning a service.
func (p *Runtime) DestroyData(ctx context.Context, service, name string) error {
	if err := release.ValidService(service); err != nil {
		return err
	}
	if err := release.ValidDataName(name); err != nil {
		return err
	}
	rels, err := p.List(ctx)
	if err != nil {
		return err
	}
	var mine []string
	for _, r := range rels {
		if r.Service == service {
			mine = append(mine, r.Name)
		}
	}
	if len(mine) > 0 {
		return fmt.Errorf("destroy data %s/%s: %w: %s (remove its manifest and let the agent prune it first)",
			service, name, ErrDataInUse, strings.Join(mine, ", "))
	}
	dir := p.dataDir(service, name)
	if p.cfg.Dataset != "" {
		err := p.zfs.Destroy(ctx, p.dataDataset(service, name), p.cfg.DestroyRetries)
		if errors.Is(err, zfs.ErrNotFound) {
			return fmt.Errorf("destroy data %s/%s: %w", service, name, release.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("destroy data %s/%s: %w", service, name, err)
		}
		_ = os.Remove(dir) // the empty mount point, if zfs left it
		return nil
	}
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("destroy data %s/%s: %w", service, name, release.ErrNotFound)
	}
	if mounted, err := isMountPoint(dir); err != nil || mounted {
		return fmt.Errorf("destroy data %s/%s: %s is a mount point (%v): not removing it", service, name, dir, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("destroy data %s/%s: %w", service, name, err)
	}
	return nil
}
