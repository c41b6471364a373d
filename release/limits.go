package release

import (
	"fmt"
	"strconv"
	"strings"
)

// Limits are the resource limits of a release, from the manifest's limits
// key (or the agent's defaults.limits). A zero field is not limited. The
// jail runtime turns Memory, PCPU, MaxProc and OpenFiles into rctl(8) rules
// of the release's jail and Disk into the ZFS quota of its clone; the
// process runtime into setrlimit(2) limits where one exists. It has the
// fields of manifest.Limits, so one converts to the other.
type Limits struct {
	// Memory is the resident memory in bytes (rctl memoryuse).
	Memory int64 `json:"memory,omitempty"`
	// PCPU is the CPU in percent of one core (rctl pcpu).
	PCPU int `json:"pcpu,omitempty"`
	// MaxProc is the number of processes (rctl maxproc).
	MaxProc int `json:"maxproc,omitempty"`
	// OpenFiles is the number of open file descriptors (rctl openfiles).
	OpenFiles int `json:"openfiles,omitempty"`
	// Disk is the ZFS quota of the release's clone in bytes.
	Disk int64 `json:"disk,omitempty"`
}

// IsZero reports whether no limit is set.
func (l Limits) IsZero() bool { return l == Limits{} }

// limitFields are the keys of the stored form, in its order.
var limitFields = []string{"memory", "pcpu", "maxproc", "openfiles", "disk"}

// String is the stored form of the limits (the jailkeeper:limits property):
// the set ones as key=value, comma-separated, in the order memory, pcpu,
// maxproc, openfiles, disk, sizes in bytes ("memory=536870912,pcpu=50").
// The zero Limits is "".
func (l Limits) String() string {
	vals := []int64{l.Memory, int64(l.PCPU), int64(l.MaxProc), int64(l.OpenFiles), l.Disk}
	var parts []string
	for i, v := range vals {
		if v != 0 {
			parts = append(parts, limitFields[i]+"="+strconv.FormatInt(v, 10))
		}
	}
	return strings.Join(parts, ",")
}

// ParseLimits reads the stored form that String writes. Unknown keys,
// repeated keys and values that are not positive whole numbers are errors.
func ParseLimits(s string) (Limits, error) {
	var l Limits
	if s == "" {
		return l, nil
	}
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(part, "=")
		n, err := strconv.ParseInt(v, 10, 64)
		switch {
		case !ok:
			return Limits{}, fmt.Errorf("limits %q: %q is not key=value", s, part)
		case seen[k]:
			return Limits{}, fmt.Errorf("limits %q: %s twice", s, k)
		case err != nil || n <= 0:
			return Limits{}, fmt.Errorf("limits %q: %s=%s is not a positive whole number", s, k, v)
		}
		seen[k] = true
		switch k {
		case "memory":
			l.Memory = n
		case "disk":
			l.Disk = n
		case "pcpu", "maxproc", "openfiles":
			if n > 1<<31-1 {
				return Limits{}, fmt.Errorf("limits %q: %s=%s is too large", s, k, v)
			}
			*map[string]*int{"pcpu": &l.PCPU, "maxproc": &l.MaxProc, "openfiles": &l.OpenFiles}[k] = int(n)
		default:
			return Limits{}, fmt.Errorf("limits %q: unknown key %q", s, k)
		}
	}
	return l, nil
}
