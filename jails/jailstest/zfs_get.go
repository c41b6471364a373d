package jailstest

import (
	"cmp"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// selectDatasets returns the datasets `zfs list`/`zfs get` show for names
// (all when none), with -r or -d depth, of the types in -t (default:
// filesystems, plus snapshots named explicitly).
func (h *Host) selectDatasets(opts map[byte][]string, names []string, defTypes string) ([]*dataset, *result) {
	types := defTypes
	if t := opts['t']; t != nil {
		types = t[len(t)-1]
	}
	want := map[string]bool{}
	for _, t := range strings.Split(types, ",") {
		want[t] = true
	}
	depth := 0
	if opts['r'] != nil {
		depth = 1 << 30
	}
	if d := opts['d']; d != nil {
		n, err := strconv.Atoi(d[len(d)-1])
		if err != nil {
			r := fail("invalid depth\n")
			return nil, &r
		}
		depth = n
	}
	typeOK := func(d *dataset, explicit bool) bool {
		if want["all"] {
			return true
		}
		if d.snap() {
			return want["snapshot"] || (explicit && opts['t'] == nil)
		}
		return want["filesystem"]
	}
	var out []*dataset
	seen := map[string]bool{}
	add := func(d *dataset) {
		if !seen[d.name] {
			seen[d.name] = true
			out = append(out, d)
		}
	}
	if len(names) == 0 {
		for _, d := range h.sortedDatasets() {
			if typeOK(d, false) {
				add(d)
			}
		}
		return out, nil
	}
	for _, n := range names {
		d := h.ds[n]
		if d == nil {
			r := notExist(n)
			return nil, &r
		}
		if typeOK(d, true) {
			add(d)
		}
		base := strings.Count(n, "/")
		for _, b := range h.below(n) {
			lvl := strings.Count(strings.Split(b.name, "@")[0], "/") - base
			if b.snap() {
				lvl++
			}
			if lvl <= depth && typeOK(b, false) {
				add(b)
			}
		}
	}
	return out, nil
}

// column returns the value of a native or user property of d as zfs
// list and zfs get print it, parsable (-p) or not.
func (h *Host) column(d *dataset, prop string, parsable bool) (value, source string, known bool) {
	switch prop {
	case "name":
		return d.name, "-", true
	case "type":
		if d.snap() {
			return "snapshot", "-", true
		}
		return "filesystem", "-", true
	case "creation":
		if parsable {
			return strconv.FormatInt(d.created.Unix(), 10), "-", true
		}
		// libzfs: strftime "%a %b %e %H:%M %Y".
		return d.created.Format("Mon Jan _2 15:04 2006"), "-", true
	case "createtxg":
		return strconv.FormatUint(d.txg, 10), "-", true
	case "origin":
		if d.origin == "" {
			return "-", "-", true
		}
		return d.origin, "-", true
	case "mountpoint":
		v, src := h.mountpoint(d)
		return v, src, true
	case "mounted":
		if d.snap() {
			return "-", "-", true
		}
		if _, ok := h.mounted(d); ok {
			return "yes", "-", true
		}
		return "no", "-", true
	}
	if strings.Contains(prop, ":") {
		v, src := h.userProp(d, prop)
		return v, src, true
	}
	return "", "", false
}

// zfsList is `zfs list -H [-p] [-r|-d N] [-t TYPES] -o COLS [-s|-S COL] [NAME...]`:
// one line per dataset, columns joined by a TAB (FACTS.md §4: -H prints no
// header and one TAB between fields).
func (h *Host) zfsList(argv []string, opts map[byte][]string, names []string) result {
	if opts['H'] == nil || opts['o'] == nil {
		return unsupported(argv, "the fake prints -H -o COLS only")
	}
	cols := strings.Split(opts['o'][len(opts['o'])-1], ",")
	parsable := opts['p'] != nil
	list, bad := h.selectDatasets(opts, names, "filesystem")
	if bad != nil {
		return *bad
	}
	sortBy := func(col string, desc bool) *result {
		var r *result
		slices.SortStableFunc(list, func(a, b *dataset) int {
			av, _, known := h.column(a, col, true)
			bv, _, _ := h.column(b, col, true)
			if !known {
				x := unsupported(argv, "column "+col)
				r = &x
			}
			an, err1 := strconv.ParseInt(av, 10, 64)
			bn, err2 := strconv.ParseInt(bv, 10, 64)
			c := strings.Compare(av, bv)
			if err1 == nil && err2 == nil {
				c = cmp.Compare(an, bn)
			}
			if desc {
				return -c
			}
			return c
		})
		return r
	}
	for _, c := range opts['s'] {
		if r := sortBy(c, false); r != nil {
			return *r
		}
	}
	for _, c := range opts['S'] {
		if r := sortBy(c, true); r != nil {
			return *r
		}
	}
	var b strings.Builder
	for _, d := range list {
		for i, c := range cols {
			v, _, known := h.column(d, c, parsable)
			if !known {
				return unsupported(argv, "column "+c)
			}
			if i > 0 {
				b.WriteByte('\t')
			}
			b.WriteString(v)
		}
		b.WriteByte('\n')
	}
	return ok(b.String())
}

// allProps are the native properties `zfs get all` prints here, in the
// order zfs prints them, before the user properties (sorted).
var allProps = []string{"type", "creation", "mounted", "origin", "mountpoint", "createtxg"}

// zfsGet is `zfs get -H [-p] [-r|-d N] [-t TYPES] [-o FIELDS] [-s SOURCES]
// all|PROPS NAME...` in the format of FACTS.md §4 (DERIVED from openzfs
// zfs_main.c get_callback): fields joined by one TAB, no trailing TAB,
// datasets in zfs -r order, properties in argument order; an unset user
// property is "-" with source "-".
func (h *Host) zfsGet(argv []string, opts map[byte][]string, rest []string) result {
	if opts['H'] == nil || len(rest) < 2 {
		return unsupported(argv, "the fake prints -H PROPS NAME... only")
	}
	fields := []string{"name", "property", "value", "source"}
	if o := opts['o']; o != nil {
		fields = strings.Split(o[len(o)-1], ",")
	}
	sources := map[string]bool{}
	for _, s := range opts['s'] {
		for _, x := range strings.Split(s, ",") {
			sources[x] = true
		}
	}
	parsable := opts['p'] != nil
	list, bad := h.selectDatasets(opts, rest[1:], "all")
	if bad != nil {
		return *bad
	}
	var b strings.Builder
	for _, d := range list {
		props := strings.Split(rest[0], ",")
		if rest[0] == "all" {
			props = nil
			for _, p := range allProps {
				if !d.snap() || (p != "mounted" && p != "origin" && p != "mountpoint") {
					props = append(props, p)
				}
			}
			user := map[string]bool{}
			for a := strings.Split(d.name, "@")[0]; a != ""; a = parentOf(a) {
				if ad := h.ds[a]; ad != nil {
					for k := range ad.props {
						user[k] = strings.Contains(k, ":")
					}
				}
			}
			for k := range d.props {
				user[k] = strings.Contains(k, ":")
			}
			for _, k := range slices.Sorted(maps.Keys(user)) {
				if user[k] {
					props = append(props, k)
				}
			}
		}
		for _, p := range props {
			v, src, known := h.column(d, p, parsable)
			if !known || p == "name" {
				return unsupported(argv, "property "+p)
			}
			key := strings.Fields(src)[0] // "inherited from X": inherited
			if key == "-" {
				key = "none"
			}
			if len(sources) > 0 && !sources[key] {
				continue
			}
			row := map[string]string{"name": d.name, "property": p, "value": v, "source": src}
			for i, f := range fields {
				val, ok := row[f]
				if !ok {
					return unsupported(argv, "field "+f)
				}
				if i > 0 {
					b.WriteByte('\t')
				}
				b.WriteString(val)
			}
			b.WriteByte('\n')
		}
	}
	return ok(b.String())
}
