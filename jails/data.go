package jails

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/jailkeeper/jailkeeper/release"
	"github.com/jailkeeper/jailkeeper/zfs"
)

// Persistent data (manifest key data). Each data set of a service is one
// dataset, <Dataset>/data/<service>/<name>, mounted on the host where it
// inherits its mountpoint, <Root>/data/<service>/<name>. It belongs to no
// release: every release of the service nullfs-mounts it at the manifest's
// path through a `mount` line of its jail.conf, which jail(8) mounts before
// the jail is created and unmounts after it is removed. A release's
// `zfs destroy -r` never reaches it (it is not below containers/), and only
// DestroyData destroys it.

// ErrDataInUse: a data set was to be destroyed while the service still has
// releases on the host, which mount it when they run.
var ErrDataInUse = errors.New("the service still has releases on this host")

// dataPathRE is the manifest's rule for data paths (manifest.DataPathProblem
// checks the rest): no blank, since the path is a field of the fstab(5)
// line jail(8) splits on blanks (command.c, IP_MOUNT: strtok on
// " \t\f\v\r\n").
var dataPathRE = regexp.MustCompile(`^/[A-Za-z0-9._/-]+$`)

// dataParent is <Dataset>/data, the parent of every service's data.
func (f *FreeBSD) dataParent() string { return f.cfg.Dataset + "/data" }

func (f *FreeBSD) dataDataset(service, name string) string {
	return f.dataParent() + "/" + service + "/" + name
}

// dataDir is where the data set is mounted on the host.
func (f *FreeBSD) dataDir(service, name string) string {
	return filepath.Join(f.cfg.Root, "data", service, name)
}

// checkData refuses data sets that could not be mounted safely.
func checkData(data []release.Data) error {
	seen := map[string]bool{}
	for _, d := range data {
		if err := release.ValidDataName(d.Name); err != nil {
			return fmt.Errorf("data: %w", err)
		}
		if !dataPathRE.MatchString(d.Path) || path.Clean(d.Path) != d.Path || d.Path == "/" {
			return fmt.Errorf("data %s: path %q is not a clean absolute path of letters, digits, . _ - and /", d.Name, d.Path)
		}
		if seen[d.Name] {
			return fmt.Errorf("data %s: listed twice", d.Name)
		}
		seen[d.Name] = true
	}
	return nil
}

// nullfsMount is one `mount` line of a release's jail.conf: the data set's
// directory on the host mounted at its path inside the jail's root.
type nullfsMount struct {
	Source string // on the host: <Root>/data/<service>/<name>
	Target string // on the host too: <jail root><path>
}

// fstab is the fstab(5) line jail(8) reads from the mount parameter:
// "device mountpoint type options dump pass". jail(8) runs
// `mount -t nullfs -o rw SOURCE TARGET` before it creates the jail and
// `umount -t nullfs TARGET` after it removes it (command.c, IP_MOUNT).
func (m nullfsMount) fstab() string { return m.Source + " " + m.Target + " nullfs rw 0 0" }

// prepareData makes what the release's data sets need before its jail.conf
// is written: each dataset, made where missing (ensureData) and owned by
// the app user's uid and gid from the release's own /etc/passwd (as the
// env file's group is), and each mount point inside the clone, an empty
// directory that the mount hides. It returns the mount lines.
func (f *FreeBSD) prepareData(ctx context.Context, spec release.Spec, r release.Release) ([]nullfsMount, error) {
	if len(spec.Data) == 0 {
		return nil, nil
	}
	root := f.root(r.Name)
	jr, err := os.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	defer jr.Close()
	uid, gid, err := jailLookupUser(jr, spec.User)
	if err != nil {
		return nil, err
	}
	var mounts []nullfsMount
	for _, d := range spec.Data {
		if err := f.ensureData(ctx, spec.Service, d, uid, gid); err != nil {
			return nil, fmt.Errorf("data %s: %w", d.Name, err)
		}
		// jail(8) refuses a mount point below path with a symbolic link
		// on the way (check_path); jailMkdirs refuses one first, and
		// makes the directories root's, mode 0755.
		if err := jailMkdirs(jr, strings.TrimPrefix(d.Path, "/")); err != nil {
			return nil, fmt.Errorf("data %s: mount point %s: %w", d.Name, d.Path, err)
		}
		mounts = append(mounts, nullfsMount{Source: f.dataDir(spec.Service, d.Name), Target: root + d.Path})
	}
	return mounts, nil
}

// ensureData makes the data set's dataset unless it exists:
// `zfs create [-o quota=N] <Dataset>/data/<service>/<name>`, its parents
// <Dataset>/data and <Dataset>/data/<service> first, all inheriting their
// mountpoint from Dataset. A new dataset's root directory is root's; it is
// given to uid:gid while it is still empty and root's, so a crash between
// the create and the chown is mended by the next create, and an owner the
// operator chose later is kept. The quota of an existing dataset is set to
// the manifest's again (none when it names none: `zfs inherit quota`).
func (f *FreeBSD) ensureData(ctx context.Context, service string, d release.Data, uid, gid int) error {
	ds := f.dataDataset(service, d.Name)
	quota := ""
	if d.Quota > 0 {
		quota = strconv.FormatInt(d.Quota, 10)
	}
	ok, err := f.cfg.Datasets.Exists(ctx, ds)
	if err != nil {
		return err
	}
	if ok {
		if err := f.cfg.Datasets.SetProps(ctx, ds, map[string]string{"quota": quota}); err != nil {
			return err
		}
	} else {
		for _, p := range []string{f.dataParent(), f.dataParent() + "/" + service} {
			if err := f.createDataset(ctx, p, nil); err != nil {
				return err
			}
		}
		err := f.cfg.Datasets.Create(ctx, ds, map[string]string{"quota": quota})
		if err != nil && !errors.Is(err, zfs.ErrExists) {
			return err
		}
	}
	dss, err := f.cfg.Datasets.Inventory(ctx, ds)
	if err != nil {
		return err
	}
	dir := f.dataDir(service, d.Name)
	if len(dss) == 0 || filepath.Clean(dss[0].Mountpoint) != dir {
		return fmt.Errorf("%s is not mounted at %s: check the mountpoint of %s (jailkeeper host init)", ds, dir, f.cfg.Dataset)
	}
	return chownIfNew(dir, uid, gid)
}

// createDataset creates ds with props unless it exists.
func (f *FreeBSD) createDataset(ctx context.Context, ds string, props map[string]string) error {
	ok, err := f.cfg.Datasets.Exists(ctx, ds)
	if err != nil || ok {
		return err
	}
	if err := f.cfg.Datasets.Create(ctx, ds, props); err != nil && !errors.Is(err, zfs.ErrExists) {
		return err
	}
	return nil
}

// chownIfNew gives dir to uid:gid when it is still as zfs create left it:
// empty and root's.
func chownIfNew(dir string, uid, gid int) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if st.Uid != 0 || st.Gid != 0 || (uid == 0 && gid == 0) {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return nil
	}
	return os.Lchown(dir, uid, gid)
}

// SnapshotData implements reconcile.DataSnapshotter: `zfs snapshot
// <Dataset>/data/<service>/<name>@<target>-<UTC time>` for each data set,
// then `zfs destroy` of the oldest snapshots jailkeeper took of it beyond
// the newest keep (at least 1). Snapshots an operator took are neither
// counted nor destroyed. To roll a data set back, by hand, after a
// rollback: stop the service's jails that mount it, then `zfs rollback -r
// <dataset>@<snapshot>` (-r destroys the newer snapshots).
func (f *FreeBSD) SnapshotData(ctx context.Context, service, target string, names []string, keep int) error {
	if err := release.ValidService(service); err != nil {
		return err
	}
	if err := release.ValidName(target); err != nil {
		return err
	}
	snap := release.DataSnapshot(target, f.cfg.Now())
	for _, n := range names {
		if err := release.ValidDataName(n); err != nil {
			return err
		}
		ds := f.dataDataset(service, n)
		if err := f.cfg.Datasets.Snapshot(ctx, ds+"@"+snap); err != nil && !errors.Is(err, zfs.ErrExists) {
			return err
		}
		snaps, err := f.cfg.Datasets.Snapshots(ctx, ds)
		if err != nil {
			return err
		}
		var ours []string // oldest first
		for _, s := range snaps {
			if _, at, _ := strings.Cut(s.Name, "@"); release.IsDataSnapshot(service, at) {
				ours = append(ours, s.Name)
			}
		}
		for len(ours) > max(keep, 1) {
			if err := f.cfg.Datasets.Destroy(ctx, ours[0], f.cfg.DestroyRetries); err != nil && !errors.Is(err, zfs.ErrNotFound) {
				return err
			}
			ours = ours[1:]
		}
	}
	return nil
}

// ListData returns every data set on the host, sorted by service and name,
// whether or not a manifest still asks for it: the datasets
// <Dataset>/data/<service>/<name>. None made yet is no error.
func (f *FreeBSD) ListData(ctx context.Context) ([]release.DataSet, error) {
	dss, err := f.cfg.Datasets.Inventory(ctx, f.dataParent())
	if errors.Is(err, zfs.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list data: %w", err)
	}
	var out []release.DataSet
	for _, d := range dss {
		rest, ok := strings.CutPrefix(d.Name, f.dataParent()+"/")
		service, name, ok2 := strings.Cut(rest, "/")
		if ok && ok2 && release.ValidService(service) == nil && release.ValidDataName(name) == nil {
			out = append(out, release.DataSet{Service: service, Name: name, Where: d.Name})
		}
	}
	slices.SortFunc(out, func(a, b release.DataSet) int {
		return strings.Compare(a.Service+"/"+a.Name, b.Service+"/"+b.Name)
	})
	return out, nil
}

// DestroyData destroys the data set name of service with `zfs destroy -r`,
// its snapshots included. It is refused (ErrDataInUse) while the service
// has any release on the host: a retained release would mount it again
// when a rollback starts it. Remove the service's manifest, let the agent
// prune it, then destroy its data. A data set that does not exist is
// release.ErrNotFound. Nothing else ever destroys data: not Destroy, not
// the pruning of a service.
func (f *FreeBSD) DestroyData(ctx context.Context, service, name string) error {
	if err := release.ValidService(service); err != nil {
		return err
	}
	if err := release.ValidDataName(name); err != nil {
		return err
	}
	rels, _, err := f.releases(ctx)
	if err != nil {
		return err
	}
	var mine []string
	for n, r := range rels {
		if r.Service == service {
			mine = append(mine, n)
		}
	}
	if len(mine) > 0 {
		slices.Sort(mine)
		return fmt.Errorf("destroy data %s/%s: %w: %s (remove its manifest and let the agent prune it first)",
			service, name, ErrDataInUse, strings.Join(mine, ", "))
	}
	err = f.cfg.Datasets.Destroy(ctx, f.dataDataset(service, name), f.cfg.DestroyRetries)
	if errors.Is(err, zfs.ErrNotFound) {
		return fmt.Errorf("destroy data %s/%s: %w", service, name, release.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("destroy data %s/%s: %w", service, name, err)
	}
	return nil
}

// clearDataMounts unmounts, before a stopped release with data starts
// again, what an earlier `jail -r` could not unmount below its root (a
// busy data mount): jail -c would mount the data again on top of it, and
// every restart would leave one more. A release without `mount` lines in
// its conf has none and costs nothing.
func (f *FreeBSD) clearDataMounts(ctx context.Context, name, conf string) error {
	b, err := os.ReadFile(conf)
	if err != nil {
		return fmt.Errorf("jail conf: %w", err)
	}
	if !strings.Contains(string(b), "\tmount += ") {
		return nil
	}
	return f.unmountBelow(ctx, f.root(name))
}
