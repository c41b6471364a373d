package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jailkeeper/jailkeeper/jails"
	"github.com/jailkeeper/jailkeeper/manifest"
	"github.com/jailkeeper/jailkeeper/process"
	"github.com/jailkeeper/jailkeeper/reconcile"
	"github.com/jailkeeper/jailkeeper/release"
)

// dataRuntime is a runtime that keeps persistent data (manifest key data)
// outside its releases: both runtimes are.
type dataRuntime interface {
	// ListData returns every data set on the host, sorted.
	ListData(ctx context.Context) ([]release.DataSet, error)
	// DestroyData destroys one data set and its snapshots; it refuses
	// while the service has releases, and a missing one is
	// release.ErrNotFound.
	DestroyData(ctx context.Context, service, name string) error
}

var (
	_ dataRuntime               = (*jails.FreeBSD)(nil)
	_ dataRuntime               = (*process.Runtime)(nil)
	_ reconcile.DataSnapshotter = (*jails.FreeBSD)(nil)
	_ reconcile.DataSnapshotter = (*process.Runtime)(nil)
)

// ErrDataInUse: `data destroy` of a service that still has releases.
var ErrDataInUse = errors.New("the service still has releases on this host")

// newDataRuntime builds the runtime from cfg, as the daemon does, for the
// data commands.
func newDataRuntime(cfg *Config) (dataRuntime, error) {
	rt, err := newRuntime(cfg)
	if err != nil {
		return nil, err
	}
	drt, ok := rt.(dataRuntime)
	if !ok {
		return nil, fmt.Errorf("%w: %s: runtime %q keeps no data", ErrConfig, cfg.File, cfg.Runtime)
	}
	return drt, nil
}

// DataDestroy destroys the data set name of service, and all its
// snapshots, for good: `jailkeeper data destroy SERVICE NAME --yes`. It
// runs on the host against the runtime, never through the agent. Nothing
// else destroys data, not even the pruning of a service; it is refused
// (ErrDataInUse) while the service has any release on the host, so the
// way to drop a service with its data is to remove its manifest, let the
// agent prune it, then destroy its data. A data set that does not exist is
// release.ErrNotFound.
func DataDestroy(ctx context.Context, cfg *Config, service, name string) error {
	if err := release.ValidService(service); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if err := release.ValidDataName(name); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	rt, err := newDataRuntime(cfg)
	if err != nil {
		return err
	}
	err = rt.DestroyData(ctx, service, name)
	if errors.Is(err, jails.ErrDataInUse) || errors.Is(err, process.ErrDataInUse) {
		return fmt.Errorf("%w: %w", ErrDataInUse, err)
	}
	return err
}

// DataList returns every data set on the host, the runtime's view, with
// or without a manifest.
func DataList(ctx context.Context, cfg *Config) ([]release.DataSet, error) {
	rt, err := newDataRuntime(cfg)
	if err != nil {
		return nil, err
	}
	return rt.ListData(ctx)
}

// orphanedData lists the data sets of services that d does not name: a
// pruned service leaves its data, which only `data destroy` removes.
// /status shows them. A runtime that keeps no data has none.
func orphanedData(ctx context.Context, rt reconcile.Runtime, d reconcile.Desired) ([]release.DataSet, error) {
	drt, ok := rt.(dataRuntime)
	if !ok {
		return nil, nil
	}
	sets, err := drt.ListData(ctx)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(sets, func(s release.DataSet) bool {
		return slices.ContainsFunc(d.Services, func(m manifest.Service) bool { return m.Service == s.Service })
	}), nil
}
