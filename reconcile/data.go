package reconcile

import (
	"context"
	"fmt"

	"github.com/jailkeeper/jailkeeper/manifest"
	"github.com/jailkeeper/jailkeeper/release"
)

// DataSnapshotter is implemented by a Runtime that keeps a service's
// persistent data (manifest key data) on ZFS: jails.FreeBSD always, the
// process runtime in ZFS mode. Before each switch the Executor asks it to
// snapshot every data set of the service, so that a rollback can roll the
// data back too, by hand (`zfs rollback`). A Runtime without it (the
// process runtime in copy mode) switches without snapshots. Safe for
// concurrent use by different services.
type DataSnapshotter interface {
	// SnapshotData snapshots each of the service's data sets named in
	// names as <dataset>@<target>-<UTC time> (release.DataSnapshot), then
	// destroys the oldest snapshots jailkeeper took of that data set
	// (release.IsDataSnapshot) beyond the newest keep. A data set that
	// does not exist is an error: the target's create made it. It never
	// destroys a data set, nor a snapshot an operator took.
	SnapshotData(ctx context.Context, service, target string, names []string, keep int) error
}

// dataSpecs turns the manifest's data list into the runtime's.
func dataSpecs(s *manifest.Service) []release.Data {
	if len(s.Data) == 0 {
		return nil
	}
	out := make([]release.Data, len(s.Data))
	for i, d := range s.Data {
		out[i] = release.Data{Name: d.Name, Path: d.Path, Quota: d.Quota}
	}
	return out
}

// snapshotData is the deploy step before the switch: the service's data
// is snapshotted as it is just before the target gets traffic. It keeps
// retain snapshots per data set (at least the one just taken). A failure
// is the host's, never the target's: the target stops, unrouted, and the
// next pass tries again.
func snapshotData(ctx context.Context, dp *deployment) error {
	ds, ok := dp.e.rt.(DataSnapshotter)
	if !ok || len(dp.spec.Data) == 0 || dp.snapped {
		return nil
	}
	names := make([]string, len(dp.spec.Data))
	for i, d := range dp.spec.Data {
		names[i] = d.Name
	}
	if err := ds.SnapshotData(ctx, dp.spec.Service, dp.target.Name, names, max(dp.spec.Retain, 1)); err != nil {
		return fmt.Errorf("snapshot data: %w", err)
	}
	dp.snapped = true
	return nil
}

// snapshotFailed stops the target: a snapshot that could not be taken is
// the host's fault (a full pool, zfs refusing), not the release's.
func snapshotFailed(ctx context.Context, dp *deployment, err error) error {
	return dp.e.hostFailed(ctx, dp, err)
}
