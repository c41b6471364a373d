package zfs

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// Prefix is the namespace of jailkeeper's user properties
// (zfsprops(7): a user property name contains a colon).
const Prefix = "jailkeeper:"

// Dataset is a ZFS filesystem as the system reports it.
type Dataset struct {
	Name       string
	Mountpoint string // the mountpoint property: a path, "none" or "legacy"
	Origin     string // the snapshot a clone was made from; "" if not a clone
	// Props holds the jailkeeper:* user properties whose source is local,
	// keyed by full name ("jailkeeper:state"). Inherited ones are left out.
	// Never nil.
	Props map[string]string
}

// maxLine bounds one line of `zfs get` output: a user property value is at
// most 8192 bytes (zfsprops(7)), names are at most 256.
const maxLine = 64 << 10

// ParseGet parses the output of
//
//	zfs get -Hp -o name,property,value,source all|PROPS DATASET...
//
// into one Dataset per name, in the order the names first appear. A row's
// name and property are its first two TAB-separated fields and its source
// follows the last TAB; the value is everything in between, so it may
// contain TABs (zfs get prints user property values verbatim).
// Mountpoint and Origin are taken whatever their source; a jailkeeper:*
// property counts only with source "local". A line without four fields is
// an error naming its line number.
func ParseGet(r io.Reader) ([]Dataset, error) {
	return parseGet(r, Prefix)
}

// parseGet is ParseGet for the user properties starting with prefix.
func parseGet(r io.Reader, prefix string) ([]Dataset, error) {
	var out []Dataset
	index := map[string]int{}
	err := scanGet(r, func(row getRow) {
		k, seen := index[row.name]
		if !seen {
			k = len(out)
			index[row.name] = k
			out = append(out, Dataset{Name: row.name, Props: map[string]string{}})
		}
		d := &out[k]
		switch {
		case row.prop == "mountpoint":
			d.Mountpoint = row.value
		case row.prop == "origin":
			if row.value != "-" {
				d.Origin = row.value
			}
		case strings.HasPrefix(row.prop, prefix) && row.source == "local":
			d.Props[row.prop] = row.value
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// getRow is one row of `zfs get -H -o name,property,value,source`.
type getRow struct{ name, prop, value, source string }

// scanGet calls fn for each row of r, the output of
// `zfs get -H[p] -o name,property,value,source`. A row's name and property
// are its first two TAB-separated fields and its source follows the last
// TAB; the value is everything in between, so it may contain TABs (zfs get
// prints user property values verbatim). A line without four fields is an
// error naming its line number.
func scanGet(r io.Reader, fn func(getRow)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		name, rest, ok1 := strings.Cut(line, "\t")
		prop, rest, ok2 := strings.Cut(rest, "\t")
		i := strings.LastIndexByte(rest, '\t')
		if !ok1 || !ok2 || i < 0 || name == "" || prop == "" {
			return fmt.Errorf("zfs get output line %d: want name, property, value and source separated by TABs, got %q", n, line)
		}
		fn(getRow{name: name, prop: prop, value: rest[:i], source: rest[i+1:]})
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("zfs get output: %w", err)
	}
	return nil
}
