package manifest

import (
	"errors"
	"fmt"
	"math/bits"
	"regexp"
	"strconv"
	"strings"
)

// sizeRE is a size as manifests write it: a whole number and an optional
// binary prefix, optionally followed by B or iB ("10G", "10GB", "10GiB",
// "512m", "4096"). It is the part that zfs(8) (zfsprops(7): "numeric
// properties can be specified using human-readable suffixes", libzfs
// str2shift: K, M, G, ... case-insensitive, with an optional B or iB) and
// rctl(8) (expand_number(3) prefixes) both accept, less zfs's fractions.
var sizeRE = regexp.MustCompile(`^([0-9]+)(?:([KkMmGgTtPpEe])(?:[Ii]?[Bb])?|[Bb])?$`)

// sizeShift is the power of two of each prefix.
var sizeShift = map[byte]uint{'K': 10, 'M': 20, 'G': 30, 'T': 40, 'P': 50, 'E': 60}

// errSize says what a size looks like, for messages.
var errSize = errors.New("not a size: want a whole number of bytes, optionally with a K, M, G, T, P or E suffix (powers of 1024), such as 512M or 10G")

// ParseSize parses a size in bytes as manifests write it: "4096", "512K",
// "512M", "10G", "1T" (powers of 1024, case-insensitive, optionally
// followed by B or iB, as zfs(8) accepts them). Fractions ("1.5G") and
// spaces are refused, and so is a size that does not fit in an int64.
func ParseSize(s string) (int64, error) {
	m := sizeRE.FindStringSubmatch(s)
	if m == nil {
		return 0, errSize
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s is too large for 64 bits", s)
	}
	if m[2] == "" {
		return n, nil
	}
	shift := sizeShift[strings.ToUpper(m[2])[0]]
	if n > 0 && bits.Len64(uint64(n))+int(shift) > 63 {
		return 0, fmt.Errorf("%s is too large for 64 bits", s)
	}
	return n << shift, nil
}

// FormatSize writes n bytes with the largest prefix that divides it
// exactly: 10737418240 is "10G", 3072 is "3K" and 1536 stays "1536".
// ParseSize(FormatSize(n)) == n for every n >= 0.
func FormatSize(n int64) string {
	if n <= 0 {
		return strconv.FormatInt(n, 10)
	}
	for _, p := range []byte("EPTGMK") {
		shift := sizeShift[p]
		if n&(1<<shift-1) == 0 {
			return strconv.FormatInt(n>>shift, 10) + string(p)
		}
	}
	return strconv.FormatInt(n, 10)
}
