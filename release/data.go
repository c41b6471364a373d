package release

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Data is one persistent data set of a service (manifest key data), as a
// runtime needs it: a directory or ZFS dataset per service and name that
// outlives every release, mounted (jails) or passed (process runtime) to
// each release of the service.
type Data struct {
	// Name is the data set's name (ValidDataName).
	Name string
	// Path is where a release sees it: the mount point inside a jail.
	Path string
	// Quota is the ZFS quota in bytes; 0 for none.
	Quota int64
}

// DataSet names one data set on the host: the service it belongs to and
// its name. A runtime lists them (ListData) whether or not any manifest
// still asks for them.
type DataSet struct {
	Service string `json:"service"`
	Name    string `json:"name"`
	// Where is the dataset or directory that holds it on the host.
	Where string `json:"where"`
}

// dataNameRE is the manifest's rule for data names (and service names):
// they become a ZFS dataset name component and, upper-cased, a variable.
var dataNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)

// ValidDataName checks a data set name: a lowercase letter followed by up
// to 31 lowercase letters, digits or '_'.
func ValidDataName(name string) error {
	if !dataNameRE.MatchString(name) {
		return fmt.Errorf("%q is not a data set name (%s)", name, dataNameRE)
	}
	return nil
}

// DataEnv is the variable that carries the path of data set name to the
// app: DATA_<NAME>, the name upper-cased (manifest.DataEnv is the same
// rule, and the manifest refuses an env key that collides with it).
func DataEnv(name string) string { return "DATA_" + strings.ToUpper(name) }

// DataSnapshotTime is the layout of the time in a data snapshot's name:
// UTC, to the second, without characters ZFS refuses in a snapshot name.
const DataSnapshotTime = "20060102T150405Z"

// DataSnapshot is the name (the part after '@') of the snapshot of a data
// set taken before release becomes live: <release>-<UTC time>.
func DataSnapshot(release string, t time.Time) string {
	return release + "-" + t.UTC().Format(DataSnapshotTime)
}

// IsDataSnapshot reports whether snap (the part after '@') is a snapshot
// jailkeeper took of a data set of service before a switch: a release
// name of service (ValidName), '-', a time in DataSnapshotTime. Only these
// are ever destroyed when the oldest are pruned: an operator's own
// snapshots of a data set never match.
func IsDataSnapshot(service, snap string) bool {
	rel, at, ok := strings.Cut(snap, "-")
	if !ok || ValidName(rel) != nil || ServiceOf(rel) != service {
		return false
	}
	_, err := time.Parse(DataSnapshotTime, at)
	return err == nil
}
