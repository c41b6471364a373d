package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/jailkeeper/jailkeeper/release"
)

// apply carries out one service's step of a pass.
func (e *Executor) apply(ctx context.Context, dp *deployment) error {
	st := dp.st
	dp.log = e.log.With("service", st.Service)
	if st.Kind == KindPrune {
		return e.prune(ctx, dp)
	}
	var restoreErr error
	if st.Restore != "" {
		// Traffic goes back to the last known-good first; a deploy that
		// follows can still fix a restore that failed.
		restoreErr = e.restore(ctx, dp)
		if restoreErr != nil && ctx.Err() != nil {
			return restoreErr
		}
	}
	var err error
	switch st.Kind {
	case KindNone, KindBackoff, KindStalled, KindWait, KindSuspended:
		err = e.settle(ctx, dp)
	default:
		err = e.deploy(ctx, dp)
	}
	return errors.Join(restoreErr, err)
}

// prune removes the route and every release of a service whose manifest
// is gone.
func (e *Executor) prune(ctx context.Context, dp *deployment) error {
	st := dp.st
	if err := e.proxy.Remove(ctx, st.Service); err != nil {
		return fmt.Errorf("remove route: %w", err)
	}
	cpPruneUnrouted.Hit()
	for _, n := range st.Destroy {
		if err := e.rt.Destroy(ctx, n); err != nil {
			return fmt.Errorf("destroy %s: %w", n, err)
		}
	}
	e.emit(Event{Kind: EventPruned, Service: st.Service, Revision: dp.d.Revision, Reason: st.Reason})
	return nil
}

// settle fixes the route of a converged service and cleans up; for a
// service in backoff or stalled it reports why it waits.
func (e *Executor) settle(ctx context.Context, dp *deployment) error {
	st := dp.st
	if st.Route != nil {
		if err := e.proxy.Set(ctx, *st.Route); err != nil {
			return fmt.Errorf("set route: %w", err)
		}
		if st.Reason != "" {
			e.emit(Event{Kind: EventRouteRestored, Service: st.Service, Release: st.Target, Revision: dp.d.Revision, Reason: st.Reason})
		}
	}
	if st.Unroute {
		if err := e.proxy.Remove(ctx, st.Service); err != nil {
			return fmt.Errorf("remove route: %w", err)
		}
	}
	if err := e.cleanup(ctx, dp.log, dp.obs.Releases, st.Stop, st.Destroy); err != nil {
		return err
	}
	if sb := st.Standby; sb != nil {
		e.standby.kickAt(e, sb.Name, sb.Until)
	}
	switch st.Kind {
	case KindBackoff:
		return fmt.Errorf("%s backing off until %s: %s", st.Target, st.RetryAt.UTC().Format(time.RFC3339), st.Reason)
	case KindStalled:
		return e.stalledErr(st)
	}
	return nil
}

// restore starts the last known-good release if it stopped, gates it, and
// routes the service to it.
func (e *Executor) restore(ctx context.Context, dp *deployment) error {
	s, obs := dp.st.Spec, dp.obs
	r, ok := find(obs.Releases, dp.st.Restore)
	if !ok {
		return fmt.Errorf("restore %s: release vanished", dp.st.Restore)
	}
	if !r.Running {
		if err := e.withSlot(ctx, func() error { return e.rt.Start(ctx, r.Name) }); err != nil {
			return fmt.Errorf("restore %s: start: %w", r.Name, err)
		}
	}
	// Gated whenever it is not serving now: it may have been started by a
	// pass that died before its gate.
	if route, ok := obs.Routes[s.Service]; !r.Running || !ok || route.Upstream != r.Addr() {
		if err := e.health(ctx, r, s.Health, s.Health.Deadline, true); err != nil {
			return fmt.Errorf("restore %s: health gate: %w", r.Name, err)
		}
	}
	cpRestoreGated.Hit()
	if err := e.proxy.Set(ctx, DesiredRoute(s, r)); err != nil {
		return fmt.Errorf("restore %s: set route: %w", r.Name, err)
	}
	cpRestoreRouted.Hit()
	dp.log.Debug("restored last known-good", "release", r.Name, "step", "restore")
	e.emit(Event{Kind: EventRouteRestored, Service: s.Service, Release: r.Name, SHA: r.SHA, Revision: dp.d.Revision,
		Reason: "last known-good routed again"})
	return nil
}

func find(rels []release.Release, name string) (release.Release, bool) {
	i := slices.IndexFunc(rels, func(r release.Release) bool { return r.Name == name })
	if i < 0 {
		return release.Release{}, false
	}
	return rels[i], true
}

// setState stores a new state and keeps the failure record.
func (e *Executor) setState(ctx context.Context, r release.Release, s release.State) error {
	st := release.Status{State: s, Failures: r.Failures, FailedAt: r.FailedAt}
	if err := e.rt.SetStatus(ctx, r.Name, st); err != nil {
		return fmt.Errorf("set %s %s: %w", r.Name, s, err)
	}
	return nil
}

// markFailed records a failure on the release, with its count and time, so
// the backoff survives a restart.
func (e *Executor) markFailed(ctx context.Context, target release.Release, cause error) error {
	failures := 1
	if target.State == release.StateFailed || target.Failures > 0 {
		failures = target.Failures + 1
	}
	st := release.Status{State: release.StateFailed, Reason: cause.Error(), Failures: failures, FailedAt: e.now()}
	if err := e.rt.SetStatus(ctx, target.Name, st); err != nil {
		return fmt.Errorf("mark %s failed: %w", target.Name, err)
	}
	return nil
}

// cleanup stops releases (marking live and ready ones retired; failed ones
// stay failed) and destroys others.
func (e *Executor) cleanup(ctx context.Context, log *slog.Logger, rels []release.Release, stop, destroy []string) error {
	for _, n := range stop {
		if err := e.rt.Stop(ctx, n); err != nil {
			return fmt.Errorf("stop %s: %w", n, err)
		}
		if r, ok := find(rels, n); ok && r.State != release.StateFailed && r.State != release.StateRetired {
			if err := e.setState(ctx, r, release.StateRetired); err != nil {
				return err
			}
		}
		log.Debug("release stopped", "release", n, "step", "cleanup")
	}
	for _, n := range destroy {
		if err := e.rt.Destroy(ctx, n); err != nil {
			return fmt.Errorf("destroy %s: %w", n, err)
		}
		log.Debug("release destroyed", "release", n, "step", "cleanup")
	}
	return nil
}
