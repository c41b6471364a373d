package jailstest

import (
	"cmp"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// dataset is a ZFS filesystem or snapshot ("fs@snap").
type dataset struct {
	name    string
	props   map[string]string // local properties: user ones and mountpoint
	origin  string            // a clone's snapshot
	txg     uint64
	created time.Time
	store   string // a snapshot's copy of its filesystem's files
	busy    int    // destroys that still fail busy; < 0: until SetBusy(name, 0)
}

func (d *dataset) snap() bool { return strings.Contains(d.name, "@") }

// The error texts of zfs(8), all exit status 1 (FACTS.md §3, errors.md):
//
//	cannot open 'P/D': dataset does not exist          REAL (FreeBSD, mkjail #23)
//	cannot create 'P/D': dataset already exists        REAL (clone, create)
//	cannot create snapshot 'P/D@s': dataset already exists   REAL (FreeBSD 14.0)
//	cannot unmount '/m': pool or dataset is busy       REAL (FreeBSD jail host)
//	cannot destroy 'P/D@s': snapshot has dependent clones
//	use '-R' to destroy the following datasets:        REAL (FreeBSD 14.1)
//	cannot destroy 'P/D': filesystem has children
//	use '-r' to destroy the following datasets:        REAL (OpenZFS, "volume" there)
//	cannot destroy 'P/D': filesystem has dependent clones    errors.md (test fixtures)
//	cannot create 'P/D': no such parent 'P'            DERIVED (libzfs zfs_create,
//	                                                   zfs_clone: "no such parent '%s'")
func notExist(name string) result {
	return fail("cannot open '" + name + "': dataset does not exist\n")
}

func listLines(names []string) string {
	var b strings.Builder
	for _, n := range names {
		b.WriteString(n + "\n")
	}
	return b.String()
}

// SetBusy makes destroying the dataset fail busy for the next attempts
// `zfs destroy` calls that reach it; attempts < 0 keeps it busy until
// SetBusy(name, 0). A dataset is also busy while a jail's path is at or
// below its mountpoint or something is mounted below it.
func (h *Host) SetBusy(name string, attempts int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if d := h.ds[name]; d != nil {
		d.busy = attempts
	}
}

// DatasetInfo is a dataset as the host sees it.
type DatasetInfo struct {
	Name       string
	Origin     string
	Mountpoint string
	Props      map[string]string // local properties
}

// Dataset returns the dataset or snapshot called name.
func (h *Host) Dataset(name string) (DatasetInfo, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	d := h.ds[name]
	if d == nil {
		return DatasetInfo{}, false
	}
	mp, _ := h.mountpoint(d)
	return DatasetInfo{Name: d.name, Origin: d.origin, Mountpoint: mp, Props: maps.Clone(d.props)}, true
}

// AddPool creates the pool name (its root dataset) with mountpoint=none:
// the fake mounts nothing outside its directory.
func (h *Host) AddPool(name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.txg++
	h.ds[name] = &dataset{name: name, props: map[string]string{"mountpoint": "none"}, txg: h.txg, created: h.now()}
}

// depthKey orders datasets as zfs -r lists them: parents before children,
// a filesystem's snapshots right after it, by name.
func depthKey(a, b *dataset) int {
	af, as, _ := strings.Cut(a.name, "@")
	bf, bs, _ := strings.Cut(b.name, "@")
	if c := slices.Compare(strings.Split(af, "/"), strings.Split(bf, "/")); c != 0 {
		return c
	}
	if as == "" || bs == "" {
		return cmp.Compare(len(as), len(bs))
	}
	return cmp.Compare(a.txg, b.txg)
}

func (h *Host) sortedDatasets() []*dataset {
	out := slices.Collect(maps.Values(h.ds))
	slices.SortFunc(out, depthKey)
	return out
}

func parentOf(name string) string {
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		return name[:i]
	}
	return ""
}

// mountpoint returns a filesystem's mountpoint property and its source
// (zfsprops(7): inherited values append the child's path).
func (h *Host) mountpoint(d *dataset) (value, source string) {
	if d.snap() {
		return "-", "-"
	}
	for a := d.name; a != ""; a = parentOf(a) {
		ad := h.ds[a]
		if ad == nil {
			break
		}
		v, ok := ad.props["mountpoint"]
		if !ok {
			continue
		}
		src := "local"
		if a != d.name {
			src = "inherited from " + a
			if strings.HasPrefix(v, "/") {
				v = filepath.Join(v, strings.TrimPrefix(d.name, a))
			}
		}
		return v, src
	}
	return "/" + d.name, "default"
}

// mounted returns where a filesystem is mounted: its mountpoint, when it
// is a path below the host's directory.
func (h *Host) mounted(d *dataset) (string, bool) {
	mp, _ := h.mountpoint(d)
	if d.snap() || !strings.HasPrefix(mp, "/") || !h.inside(mp) {
		return "", false
	}
	return mp, true
}

// userProp returns a user property's value and source as zfs get shows
// them: local, inherited from an ancestor, or "-" and "-" (FACTS.md §4).
func (h *Host) userProp(d *dataset, prop string) (string, string) {
	if v, ok := d.props[prop]; ok {
		return v, "local"
	}
	fs := strings.Split(d.name, "@")[0]
	for a := fs; a != ""; a = parentOf(a) {
		ad := h.ds[a]
		if ad == nil || ad == d {
			continue
		}
		if v, ok := ad.props[prop]; ok {
			return v, "inherited from " + a
		}
	}
	return "-", "-"
}

// getopt splits args into options and operands like getopt(3): flags may
// be combined (-Hp), an option in withArg takes the next word or the rest
// of its word.
func getopt(args []string, noArg, withArg string) (map[byte][]string, []string, error) {
	opts := map[byte][]string{}
	i := 0
	for ; i < len(args) && len(args[i]) > 1 && args[i][0] == '-'; i++ {
		a := args[i]
		if a == "--" {
			i++
			break
		}
		for k := 1; k < len(a); k++ {
			c := a[k]
			switch {
			case strings.IndexByte(noArg, c) >= 0:
				opts[c] = append(opts[c], "")
			case strings.IndexByte(withArg, c) >= 0:
				v := a[k+1:]
				if v == "" {
					if i+1 >= len(args) {
						return nil, nil, fmt.Errorf("-%c needs an argument", c)
					}
					i++
					v = args[i]
				}
				opts[c] = append(opts[c], v)
				k = len(a)
			default:
				return nil, nil, fmt.Errorf("option -%c", c)
			}
		}
	}
	return opts, args[i:], nil
}

func (h *Host) zfs(argv, args []string) result {
	if len(args) == 0 {
		return unsupported(argv, "no subcommand")
	}
	sub, args := args[0], args[1:]
	var (
		opts map[byte][]string
		rest []string
		err  error
	)
	switch sub {
	case "list":
		opts, rest, err = getopt(args, "Hpr", "dtosS")
	case "get":
		opts, rest, err = getopt(args, "Hpr", "dtos")
	case "create", "clone":
		opts, rest, err = getopt(args, "p", "o")
	case "snapshot", "set":
		opts, rest, err = getopt(args, "", "")
	case "inherit", "rollback":
		opts, rest, err = getopt(args, "r", "")
	case "destroy":
		opts, rest, err = getopt(args, "rfn", "")
	default:
		return unsupported(argv, "subcommand "+sub)
	}
	if err != nil {
		return unsupported(argv, err.Error())
	}
	switch sub {
	case "list":
		return h.zfsList(argv, opts, rest)
	case "get":
		return h.zfsGet(argv, opts, rest)
	case "create":
		return h.zfsCreate(argv, opts, rest, "")
	case "clone":
		if len(rest) != 2 {
			return unsupported(argv, "want SNAPSHOT NAME")
		}
		return h.zfsCreate(argv, opts, rest[1:], rest[0])
	case "snapshot":
		return h.zfsSnapshot(argv, rest)
	case "set":
		return h.zfsSet(argv, rest)
	case "inherit":
		if len(rest) != 2 || opts['r'] != nil {
			return unsupported(argv, "want PROPERTY NAME")
		}
		d := h.ds[rest[1]]
		if d == nil {
			return notExist(rest[1])
		}
		delete(d.props, rest[0])
		return ok("")
	case "rollback":
		return h.zfsRollback(argv, opts, rest)
	case "destroy":
		return h.zfsDestroy(argv, opts, rest)
	}
	return unsupported(argv, "subcommand "+sub)
}

// props parses -o k=v options. The fake models user properties
// (module:name, zfsprops(7)) and mountpoint; quota is kept as a local
// property (Dataset shows it) and not enforced.
func parseProps(argv []string, kvs []string) (map[string]string, *result) {
	props := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || (k != "mountpoint" && k != "quota" && !strings.Contains(k, ":")) {
			r := unsupported(argv, "property "+strconv.Quote(kv))
			return nil, &r
		}
		props[k] = v
	}
	return props, nil
}

// zfsCreate is `zfs create [-p] [-o k=v]... NAME` and, with origin set,
// `zfs clone [-p] [-o k=v]... SNAPSHOT NAME`.
func (h *Host) zfsCreate(argv []string, opts map[byte][]string, rest []string, origin string) result {
	if len(rest) != 1 || strings.Contains(rest[0], "@") {
		return unsupported(argv, "want one filesystem name")
	}
	name := rest[0]
	props, bad := parseProps(argv, opts['o'])
	if bad != nil {
		return *bad
	}
	var src *dataset
	if origin != "" {
		if src = h.ds[origin]; src == nil || !src.snap() {
			return notExist(origin)
		}
	}
	if h.ds[name] != nil {
		return fail("cannot create '" + name + "': dataset already exists\n")
	}
	parent := parentOf(name)
	if h.ds[parent] == nil {
		if opts['p'] == nil || parent == "" || h.ds[strings.Split(name, "/")[0]] == nil {
			return fail("cannot create '" + name + "': no such parent '" + parent + "'\n")
		}
		if r := h.zfsCreate(argv, map[byte][]string{'p': {""}}, []string{parent}, ""); r.exit != 0 {
			return r
		}
	}
	h.txg++
	d := &dataset{name: name, props: props, txg: h.txg, created: h.now().Truncate(time.Second)}
	if src != nil {
		d.origin = src.name
	}
	h.ds[name] = d
	if mp, ok := h.mounted(d); ok {
		err := os.MkdirAll(mp, 0o755)
		if err == nil && src != nil && src.store != "" {
			err = os.CopyFS(mp, os.DirFS(src.store))
		}
		if err != nil {
			delete(h.ds, name)
			return unsupported(argv, "mount "+mp+": "+err.Error())
		}
	}
	return ok("")
}

// zfsSnapshot is `zfs snapshot FS@SNAP`: the snapshot keeps a copy of the
// filesystem's files.
func (h *Host) zfsSnapshot(argv, rest []string) result {
	if len(rest) != 1 {
		return unsupported(argv, "want one snapshot name")
	}
	fs, snap, ok2 := strings.Cut(rest[0], "@")
	if !ok2 || snap == "" {
		return unsupported(argv, "not a snapshot name")
	}
	d := h.ds[fs]
	if d == nil {
		return notExist(fs)
	}
	if h.ds[rest[0]] != nil {
		return fail("cannot create snapshot '" + rest[0] + "': dataset already exists\n")
	}
	h.txg++
	s := &dataset{name: rest[0], props: map[string]string{}, txg: h.txg, created: h.now().Truncate(time.Second)}
	s.store = filepath.Join(h.dir, ".zfs-snapshots", strconv.FormatUint(s.txg, 10))
	if err := os.MkdirAll(s.store, 0o755); err != nil {
		return unsupported(argv, err.Error())
	}
	if mp, ok := h.mounted(d); ok {
		if err := os.CopyFS(s.store, os.DirFS(mp)); err != nil {
			return unsupported(argv, "copy "+mp+": "+err.Error())
		}
	}
	h.ds[s.name] = s
	return ok("")
}

// zfsSet is `zfs set k=v... NAME`.
func (h *Host) zfsSet(argv, rest []string) result {
	if len(rest) < 2 {
		return unsupported(argv, "want PROP=VALUE... NAME")
	}
	name := rest[len(rest)-1]
	props, bad := parseProps(argv, rest[:len(rest)-1])
	if bad != nil {
		return *bad
	}
	if _, ok := props["mountpoint"]; ok {
		return unsupported(argv, "changing a mountpoint")
	}
	d := h.ds[name]
	if d == nil {
		return notExist(name)
	}
	maps.Copy(d.props, props)
	return ok("")
}

// below returns name's snapshots and descendants with their snapshots.
func (h *Host) below(name string) []*dataset {
	var out []*dataset
	for n, d := range h.ds {
		if strings.HasPrefix(n, name+"/") || strings.HasPrefix(n, name+"@") {
			out = append(out, d)
		}
	}
	slices.SortFunc(out, depthKey)
	return out
}

// busy reports whether destroying filesystem d must fail busy, and uses
// up one of its SetBusy attempts.
func (h *Host) busy(d *dataset) bool {
	if d.busy != 0 {
		if d.busy > 0 {
			d.busy--
		}
		return true
	}
	mp, ok := h.mounted(d)
	if !ok {
		return false
	}
	for _, j := range h.jails {
		if j.path == mp || strings.HasPrefix(j.path, mp+"/") {
			return true
		}
	}
	for _, m := range h.allMounts() {
		if strings.HasPrefix(m.Path, mp+"/") && m.FSType != "zfs" {
			return true
		}
	}
	return false
}

// zfsDestroy is `zfs destroy [-n] [-r] [-f] NAME` for a filesystem or a
// snapshot. Errors in the order libzfs meets them: missing, dependents,
// busy (the unmount comes last).
func (h *Host) zfsDestroy(argv []string, opts map[byte][]string, rest []string) result {
	if len(rest) != 1 {
		return unsupported(argv, "want one name")
	}
	name := rest[0]
	d := h.ds[name]
	if d == nil {
		return notExist(name)
	}
	set := []*dataset{d}
	below := h.below(name)
	if opts['r'] != nil {
		set = append(set, below...)
	} else if len(below) > 0 && !d.snap() {
		var names []string
		for _, b := range below {
			names = append(names, b.name)
		}
		return fail("cannot destroy '" + name + "': filesystem has children\nuse '-r' to destroy the following datasets:\n" + listLines(names))
	}
	in := map[string]bool{}
	for _, s := range set {
		in[s.name] = true
	}
	var clones []string
	for _, c := range h.sortedDatasets() {
		if c.origin != "" && in[c.origin] && !in[c.name] {
			clones = append(clones, c.name)
		}
	}
	if len(clones) > 0 {
		kind := "filesystem"
		if d.snap() {
			kind = "snapshot"
		}
		return fail("cannot destroy '" + name + "': " + kind + " has dependent clones\nuse '-R' to destroy the following datasets:\n" + listLines(clones))
	}
	if opts['n'] != nil {
		// zfs-destroy(8) -n: a dry run, which unmounts nothing, so being
		// busy is not found out.
		return ok("")
	}
	// Deepest first, as zfs destroy -r unmounts and destroys children first.
	slices.SortFunc(set, func(a, b *dataset) int { return depthKey(b, a) })
	for _, s := range set {
		if !s.snap() && h.busy(s) {
			mp, _ := h.mountpoint(s)
			return fail("cannot unmount '" + mp + "': pool or dataset is busy\n")
		}
	}
	for _, s := range set {
		if mp, ok := h.mounted(s); ok {
			if err := os.RemoveAll(mp); err != nil {
				return unsupported(argv, err.Error())
			}
		}
		if s.store != "" {
			os.RemoveAll(s.store)
		}
		delete(h.ds, s.name)
	}
	return ok("")
}

// zfsRollback is `zfs rollback [-r] FS@SNAP`: the filesystem's files
// become the snapshot's; with -r newer snapshots are destroyed first.
// Without -r a snapshot that is not the newest is refused with a
// jailstest: message (libzfs's text for it was not captured).
func (h *Host) zfsRollback(argv []string, opts map[byte][]string, rest []string) result {
	if len(rest) != 1 || !strings.Contains(rest[0], "@") {
		return unsupported(argv, "want one snapshot name")
	}
	s := h.ds[rest[0]]
	if s == nil {
		return notExist(rest[0])
	}
	fs := h.ds[strings.Split(s.name, "@")[0]]
	var newer []*dataset
	for _, o := range h.below(fs.name) {
		if o.snap() && strings.HasPrefix(o.name, fs.name+"@") && o.txg > s.txg {
			newer = append(newer, o)
		}
	}
	if len(newer) > 0 && opts['r'] == nil {
		return unsupported(argv, "newer snapshots exist: the fake models rollback -r only")
	}
	for _, o := range newer {
		if r := h.zfsDestroy(argv, nil, []string{o.name}); r.exit != 0 {
			return r
		}
	}
	if mp, ok := h.mounted(fs); ok {
		entries, _ := os.ReadDir(mp)
		for _, e := range entries {
			if err := os.RemoveAll(filepath.Join(mp, e.Name())); err != nil {
				return unsupported(argv, err.Error())
			}
		}
		if err := os.CopyFS(mp, os.DirFS(s.store)); err != nil {
			return unsupported(argv, err.Error())
		}
	}
	return ok("")
}
