package reconcile

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jailkeeper/jailkeeper/release"
)

// Hot standby (DESIGN.md "One pass", steps 6 and 9). Once a deploy's watch
// and drain have passed, the release it replaced is not stopped: it is
// stored in state standby with the time (release.Status.StandbySince) and
// keeps running for the manifest's standby (the agent's defaults.standby
// when the manifest sets none). A rollback to it within that window is one
// probe and one route switch. Once the window has passed, a pass stops it
// and marks it retired; a standby release that is not running (a reboot)
// is retired at once. Everything is read from the stored state, so an
// agent restart keeps the window, and a service has at most one standby
// release: a deploy that puts its previous release on standby retires an
// older one.

// StandbyRelease is a release kept running for an instant rollback, and
// when its standby ends.
type StandbyRelease struct {
	Name  string    `json:"name"`
	Until time.Time `json:"until"`
}

// standbyUntil is when r's standby ends for a service whose standby is d.
func standbyUntil(r release.Release, d time.Duration) time.Time {
	return r.StandbySince.Add(d)
}

// inStandby reports whether r is a running standby release within its
// window at now.
func (v view) inStandby(r release.Release, now time.Time) bool {
	return r.State == release.StateStandby && r.Running && v.standby > 0 &&
		!r.StandbySince.IsZero() && now.Before(standbyUntil(r, v.standby))
}

// hot reports whether a rollback to target can skip its start and gate.
func (v view) hot(target release.Release, now time.Time) bool {
	return v.inStandby(target, now)
}

// keepStandby returns the service's releases without the standby release
// that is within its window (the newest, if a crash left several), which
// Cleanup must neither stop nor destroy, and that release. skip (the
// target of a step) is never taken for the standby one.
func (v view) keepStandby(skip string, now time.Time) ([]release.Release, *StandbyRelease) {
	var best *release.Release
	for i := range v.rels {
		r := &v.rels[i]
		if r.Name != skip && v.inStandby(*r, now) && (best == nil || r.StandbySince.After(best.StandbySince)) {
			best = r
		}
	}
	if best == nil {
		return v.rels, nil
	}
	out := make([]release.Release, 0, len(v.rels)-1)
	for _, r := range v.rels {
		if r.Name != best.Name {
			out = append(out, r)
		}
	}
	return out, &StandbyRelease{Name: best.Name, Until: standbyUntil(*best, v.standby)}
}

// standbyString adds the step's standby parts to its line.
func (s Step) standbyString(b *strings.Builder) {
	if s.StandbyFor > 0 && s.Previous != "" {
		fmt.Fprintf(b, "; keep %s on standby for %s", s.Previous, s.StandbyFor)
	}
	if s.Standby != nil {
		fmt.Fprintf(b, "; %s on standby until %s", s.Standby.Name, s.Standby.Until.UTC().Format(time.RFC3339))
	}
}

// standbyOf is how long dp's previous release stays on standby.
func (dp *deployment) standbyOf() time.Duration {
	return dp.spec.StandbyOr(dp.d.DefaultStandby)
}

// hotGate replaces the start and the gate of a rollback to a running
// standby release: the release must still run and answer one probe. One
// that does not falls back to the normal path: it is stopped, started
// again (holding a Parallel slot) and gated in full.
func (e *Executor) hotGate(ctx context.Context, dp *deployment) error {
	r, h := dp.target, dp.spec.Health
	err := e.probeOnce(ctx, r, h.Path, h.Timeout)
	if err == nil {
		dp.log.Debug("standby answered its probe", "step", "gate")
		return nil
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	dp.log.Info("standby release failed its probe; restarting it", "step", "gate", "reason", err.Error())
	dp.started = true
	err = e.withSlot(ctx, func() error {
		if err := e.rt.Stop(ctx, r.Name); err != nil {
			return fmt.Errorf("stop %s: %w", r.Name, err)
		}
		return e.rt.Start(ctx, r.Name)
	})
	if err != nil {
		return fmt.Errorf("restart standby %s: %w", r.Name, err)
	}
	return e.health(ctx, r, h, h.Deadline, true)
}

// probeOnce checks that r runs and answers one probe.
func (e *Executor) probeOnce(ctx context.Context, r release.Release, path string, timeout time.Duration) error {
	running, err := e.rt.Running(ctx, r.Name)
	if err != nil {
		return fmt.Errorf("check %s: %w", r.Name, err)
	}
	if !running {
		return e.notRunning(ctx, r.Name)
	}
	return e.prober.Probe(ctx, "http://"+r.Addr()+path, timeout)
}

// putOnStandby stores the drained previous release as standby, running,
// and asks for a pass when its window ends.
func (e *Executor) putOnStandby(ctx context.Context, dp *deployment, d time.Duration) error {
	prev := dp.prev
	since := e.now()
	st := release.Status{State: release.StateStandby, Failures: prev.Failures, FailedAt: prev.FailedAt, StandbySince: since}
	if err := e.rt.SetStatus(ctx, prev.Name, st); err != nil {
		return fmt.Errorf("set %s standby: %w", prev.Name, err)
	}
	dp.log.Debug("previous release on standby", "step", "drain", "previous", prev.Name, "until", since.Add(d))
	e.standby.kickAt(e, prev.Name, since.Add(d))
	return nil
}

// standbyTimers remembers which standby expiries have a pass scheduled,
// so that a pass every second does not add a timer each. Losing it on a
// restart only means the next pass schedules again.
type standbyTimers struct {
	mu  sync.Mutex
	due map[string]time.Time // release -> expiry with a kick scheduled
}

// kickAt asks for a pass (Options.Kick) just after until, once per
// release and expiry.
func (t *standbyTimers) kickAt(e *Executor, name string, until time.Time) {
	if e.kick == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.due == nil {
		t.due = map[string]time.Time{}
	}
	if t.due[name].Equal(until) {
		return
	}
	t.due[name] = until
	// A little after the end, so that the pass sees it passed.
	e.afterFunc(max(until.Sub(e.now()), 0)+10*time.Millisecond, func() {
		t.mu.Lock()
		if t.due[name].Equal(until) {
			delete(t.due, name)
		}
		t.mu.Unlock()
		e.kick()
	})
}

// standbyStatus adds the service's standby release, if any, to st.
func standbyStatus(st *ServiceStatus, rels []release.Release, standby time.Duration, now time.Time) {
	v := view{rels: rels, standby: standby}
	if _, sb := v.keepStandby("", now); sb != nil {
		st.Standby, st.StandbyUntil = sb.Name, sb.Until
	}
}

// standbyFor is how long the deploy left its previous release on standby.
func (dp *deployment) standbyFor() time.Duration {
	if !dp.hasPrev {
		return 0
	}
	return dp.standbyOf()
}
