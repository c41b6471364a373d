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
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		name, rest, ok1 := strings.Cut(line, "\t")
		prop, rest, ok2 := strings.Cut(rest, "\t")
		i := strings.LastIndexByte(rest, '\t')
		if !ok1 || !ok2 || i < 0 || name == "" || prop == "" {
			return nil, fmt.Errorf("zfs get output line %d: want name, property, value and source separated by TABs, got %q", n, line)
		}
		value, source := rest[:i], rest[i+1:]
		k, seen := index[name]
		if !seen {
			k = len(out)
			index[name] = k
			out = append(out, Dataset{Name: name, Props: map[string]string{}})
		}
		d := &out[k]
		switch {
		case prop == "mountpoint":
			d.Mountpoint = value
		case prop == "origin":
			if value != "-" {
				d.Origin = value
			}
		case strings.HasPrefix(prop, prefix) && source == "local":
			d.Props[prop] = value
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("zfs get output: %w", err)
	}
	return out, nil
}
