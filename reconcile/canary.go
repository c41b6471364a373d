package reconcile

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jailkeeper/jailkeeper/caddy"
	"github.com/jailkeeper/jailkeeper/manifest"
)

// A canary (manifest key canary) runs as the deploy step "canary", after
// the gate and before the switch: the route splits the requests between
// the live release and the target, Steps[0] % for Interval, then the next
// step, and so on; then all of them go to the target, and the switch step
// writes the plain route. Caddy counts the target's failed requests (its
// passive health checks, enabled on the canary route only) and the agent
// probes the target itself; more than max_failures failed requests and
// probes together, threshold failed probes in a row, or a target that
// stops aborts the canary: every request goes back to the live release,
// the target is marked failed and stopped. A newer commit preempts it the
// same way, without a verdict. Sync windows and a suspend hold it at its
// step (Executor.Gate) before each next step and before the promotion,
// while failures still abort it. The canary's progress is kept in memory
// only: after an agent restart the deploy runs again, and so does its
// canary, from its first step. See caddy.Canary for how the steps avoid
// config reloads.

// PhaseCanary is the time a deploy spends in its canary, from the first
// split to all traffic on the target.
const PhaseCanary Phase = "canary"

// The events of a canary.
const (
	EventCanaryStep      EventKind = "canary_step"      // a step is in force (Step, Percent)
	EventCanaryHeld      EventKind = "canary_held"      // a window or suspend holds the next step (Reason)
	EventCanaryPromoted  EventKind = "canary_promoted"  // every request goes to the target
	EventCanaryAborted   EventKind = "canary_aborted"   // failures: back to the live release, target failed
	EventCanaryPreempted EventKind = "canary_preempted" // a newer commit or a stop: back to the live release
)

// CanaryCounter is implemented by a Proxy that can tell how many requests
// of a canary route's new release failed (caddy.Client does). Without it
// a manifest's canary is skipped and the deploy switches at once.
type CanaryCounter interface {
	// CanaryFails returns the failed requests of r's new release that
	// the proxy counts now.
	CanaryFails(ctx context.Context, r caddy.Route) (int, error)
}

// CanaryStatus is a canary in flight, for /status (Memory) and metrics.
type CanaryStatus struct {
	Release string `json:"release"`
	// Step is the step in force, from 1 to len(Steps); 0 before the
	// first and after the promotion.
	Step    int   `json:"step"`
	Steps   []int `json:"steps"`
	Percent int   `json:"percent"` // requests on Release, in percent
	// Failures are the failed requests (Caddy's count) and probes of
	// Release so far; MaxFailures more abort the canary.
	Failures    int       `json:"failures"`
	MaxFailures int       `json:"max_failures"`
	Since       time.Time `json:"since"` // when Step came into force
	// Held says why the next step waits (a sync window, a suspend).
	Held string `json:"held,omitempty"`
}

// canaryRun is one deploy's canary.
type canaryRun struct {
	dp      *deployment
	counter CanaryCounter
	c       *manifest.Canary
	st      CanaryStatus
	routed  bool // the route has been set to a canary route
	fails   int  // Caddy's count, the highest seen
	probes  int  // failed probes
	bad     int  // failed probes in a row
	heldWhy string
}

// canaryTarget runs the canary of dp, when its manifest asks for one and
// there is a live release to split with. It ends with every request on
// the target; the switch step then writes the plain route.
func canaryTarget(ctx context.Context, dp *deployment) error {
	if !dp.canaries() {
		return nil
	}
	c := dp.spec.Canary
	cr := &canaryRun{dp: dp, counter: dp.e.proxy.(CanaryCounter), c: c}
	cr.st = CanaryStatus{Release: dp.target.Name, Steps: slices.Clone(c.Steps), MaxFailures: c.MaxFailures}
	dp.canary = cr
	err := cr.run(ctx)
	if err != nil && ctx.Err() != nil && !errors.Is(context.Cause(ctx), ErrPreempted) {
		// The agent stops: leave the live release with every request.
		// A preempted canary is put back by abandon, a failed one by
		// canaryAborted.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), canaryRestoreTimeout)
		defer cancel()
		if rerr := cr.restore(rctx); rerr != nil {
			return errors.Join(err, rerr)
		}
	}
	return err
}

// canaries reports whether dp runs a canary: its manifest asks for one,
// the proxy can count failed requests, and a live release that gets the
// traffic now is there to split it with. A rollback (to a retained
// release, or one on standby) never runs a canary: it is the way back.
func (dp *deployment) canaries() bool {
	c := dp.spec.Canary
	_, counts := dp.e.proxy.(CanaryCounter)
	if c == nil || len(c.Steps) == 0 || !counts || !dp.hasPrev || dp.st.Kind != KindDeploy || dp.st.Hot {
		return false
	}
	r, routed := dp.obs.Routes[dp.spec.Service]
	return routed && r.Upstream == dp.prev.Addr()
}

// canaryRestoreTimeout bounds putting the route back when the agent stops
// during a canary.
const canaryRestoreTimeout = 10 * time.Second

func (cr *canaryRun) run(ctx context.Context) error {
	dp, c := cr.dp, cr.c
	for step := 1; step <= len(c.Steps); step++ {
		if step > 1 {
			if err := cr.hold(ctx); err != nil {
				return err
			}
		}
		if err := cr.set(ctx, step, false); err != nil {
			return err
		}
		dp.log.Info("canary step", "step", "canary", "canary_step", step, "percent", c.Steps[step-1])
		dp.e.emit(Event{Kind: EventCanaryStep, Service: dp.spec.Service, Release: dp.target.Name, Previous: dp.prev.Name,
			SHA: dp.spec.SHA, Revision: dp.d.Revision, CanaryStep: step, Percent: c.Steps[step-1]})
		if err := cr.watch(ctx, c.Interval); err != nil {
			return err
		}
	}
	if err := cr.hold(ctx); err != nil {
		return err
	}
	if err := cr.set(ctx, len(c.Steps), true); err != nil {
		return err
	}
	dp.log.Info("canary promoted", "step", "canary")
	dp.e.emit(Event{Kind: EventCanaryPromoted, Service: dp.spec.Service, Release: dp.target.Name, Previous: dp.prev.Name,
		SHA: dp.spec.SHA, Revision: dp.d.Revision, CanaryStep: len(c.Steps), Percent: 100, Duration: dp.e.now().Sub(dp.start)})
	dp.switched = dp.e.now()
	cr.publish(func(st *CanaryStatus) { st.Step, st.Percent = 0, 100 })
	return nil
}

// route is the canary route at step; promoted sends every request to the
// target (the service's own upstream file points at it too).
func (cr *canaryRun) route(step int, promoted bool) caddy.Route {
	dp := cr.dp
	r := DesiredRoute(dp.spec, dp.prev)
	if promoted {
		r.Upstream = dp.target.Addr()
	}
	r.Canary = &caddy.Canary{
		Upstream: dp.target.Addr(),
		Steps:    slices.Clone(cr.c.Steps),
		Step:     step,
		// A slot that alone passes max_failures gets no more requests
		// from Caddy, before the agent's next look aborts the canary.
		MaxFails: cr.c.MaxFailures + 1,
		// Failures are remembered for the whole canary (and a step's
		// worth more), so Caddy's count is the canary's so far.
		FailDuration: cr.c.Interval * time.Duration(len(cr.c.Steps)+1),
	}
	return r
}

// set puts the route at step. The first call is a config reload (the
// route gains its slots and passive health checks); the next ones write
// slot files only.
func (cr *canaryRun) set(ctx context.Context, step int, promoted bool) error {
	cr.routed = true
	if err := cr.dp.e.proxy.Set(ctx, cr.route(step, promoted)); err != nil {
		// Caddy's fault, not the release's: no verdict (canaryAborted).
		return &HostError{Err: fmt.Errorf("canary step %d: %w", step, err)}
	}
	pct := cr.c.Steps[step-1]
	cr.publish(func(st *CanaryStatus) { st.Step, st.Percent, st.Since = step, pct, cr.dp.e.now() })
	return nil
}

// restore sends every request back to the live release: the slots first
// (a file write), then the plain route (a reload that ends the canary).
// Idempotent.
func (cr *canaryRun) restore(ctx context.Context) error {
	if !cr.routed {
		return nil
	}
	dp := cr.dp
	if err := dp.e.proxy.Set(ctx, cr.route(0, false)); err != nil {
		return fmt.Errorf("canary: back to %s: %w", dp.prev.Name, err)
	}
	if err := dp.e.proxy.Set(ctx, DesiredRoute(dp.spec, dp.prev)); err != nil {
		return fmt.Errorf("canary: back to %s: %w", dp.prev.Name, err)
	}
	cr.routed = false
	cr.publish(func(st *CanaryStatus) { st.Step, st.Percent = 0, 0 })
	return nil
}

// poll is how often the canary is checked: the manifest's health interval.
func (cr *canaryRun) poll() time.Duration {
	return max(cr.dp.spec.Health.Interval, 10*time.Millisecond)
}

// watch checks the canary every poll for d.
func (cr *canaryRun) watch(ctx context.Context, d time.Duration) error {
	end := time.NewTimer(d)
	defer end.Stop()
	tick := time.NewTicker(cr.poll())
	defer tick.Stop()
	for {
		if err := cr.check(ctx); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-end.C:
			return nil
		case <-tick.C:
		}
	}
}

// check probes the target and reads Caddy's count of its failed
// requests. It returns the abort's cause: the target stopped, threshold
// failed probes in a row, or more than max_failures failures in all. A
// proxy that cannot answer is no verdict: the last count stands.
func (cr *canaryRun) check(ctx context.Context) error {
	dp := cr.dp
	e, t, h := dp.e, dp.target, dp.spec.Health
	running, err := e.rt.Running(ctx, t.Name)
	if err != nil {
		return &HostError{Err: fmt.Errorf("check %s: %w", t.Name, err)}
	}
	if !running {
		return e.notRunning(ctx, t.Name)
	}
	if err := e.prober.Probe(ctx, "http://"+t.Addr()+h.Path, h.Timeout); err != nil {
		cr.probes++
		cr.bad++
		if cr.bad >= h.Threshold {
			return fmt.Errorf("%d consecutive failed checks: %w", cr.bad, err)
		}
	} else {
		cr.bad = 0
	}
	if n, err := cr.counter.CanaryFails(ctx, cr.route(cr.st.Step, false)); err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		dp.log.Debug("canary: reading failed requests", "step", "canary", "reason", err.Error())
	} else {
		cr.fails = max(cr.fails, n)
	}
	total := cr.fails + cr.probes
	cr.publish(func(st *CanaryStatus) { st.Failures = total })
	if total > cr.c.MaxFailures {
		return fmt.Errorf("%d failed requests and %d failed probes, more than max_failures %d", cr.fails, cr.probes, cr.c.MaxFailures)
	}
	return nil
}

// hold waits, checking the canary, while a sync window or a suspend holds
// its next step.
func (cr *canaryRun) hold(ctx context.Context) error {
	dp := cr.dp
	for {
		why, held := dp.e.Gate(dp.spec.Service, ChangeCanary)
		if !held {
			if cr.heldWhy != "" {
				cr.heldWhy = ""
				cr.publish(func(st *CanaryStatus) { st.Held = "" })
			}
			return nil
		}
		if why != cr.heldWhy {
			cr.heldWhy = why
			cr.publish(func(st *CanaryStatus) { st.Held = why })
			dp.log.Info("canary held", "step", "canary", "canary_step", cr.st.Step, "reason", why)
			dp.e.emit(Event{Kind: EventCanaryHeld, Service: dp.spec.Service, Release: dp.target.Name, SHA: dp.spec.SHA,
				Revision: dp.d.Revision, CanaryStep: cr.st.Step, Percent: cr.st.Percent, Reason: why})
		}
		if err := cr.watch(ctx, cr.poll()); err != nil {
			return err
		}
	}
}

// publish changes the canary's status as the Executor shows it.
func (cr *canaryRun) publish(fn func(*CanaryStatus)) {
	e, j := cr.dp.e, cr.dp.job
	e.mu.Lock()
	defer e.mu.Unlock()
	fn(&cr.st)
	st := cr.st
	st.Steps = slices.Clone(st.Steps)
	j.canary = &st
}

// canaryAborted ends a canary that failed: every request back to the live
// release, the target marked failed and stopped. A canary that the host
// failed (Caddy refusing a step, the runtime unable to tell whether the
// target runs: a HostError) goes back the same way with no verdict on the
// target, which a later pass deploys again.
func canaryAborted(ctx context.Context, dp *deployment, err error) error {
	e, cr, target := dp.e, dp.canary, dp.target
	if he := (*HostError)(nil); errors.As(err, &he) {
		var rerr error
		if cr != nil {
			rerr = cr.restore(ctx)
		}
		if serr := e.rt.Stop(ctx, target.Name); serr != nil {
			rerr = errors.Join(rerr, fmt.Errorf("stop %s: %w", target.Name, serr))
		}
		dp.log.Info("canary ended by a host fault; release not marked failed", "step", "canary", "reason", err.Error())
		return errors.Join(err, rerr)
	}
	cause := fmt.Errorf("canary: %w", err)
	var step, pct int
	if cr != nil {
		step, pct = cr.st.Step, cr.st.Percent
		cause = fmt.Errorf("canary at step %d (%d%%): %w", step, pct, err)
	}
	if err := e.markFailed(ctx, target, cause); err != nil {
		return errors.Join(cause, err)
	}
	if cr != nil {
		if err := cr.restore(ctx); err != nil {
			return errors.Join(cause, err)
		}
	}
	if err := e.rt.Stop(ctx, target.Name); err != nil {
		return errors.Join(cause, fmt.Errorf("stop %s: %w", target.Name, err))
	}
	dp.log.Info("canary aborted", "step", "canary", "previous", dp.prev.Name, "reason", cause.Error())
	e.emit(Event{Kind: EventCanaryAborted, Service: target.Service, Release: target.Name, Previous: dp.prev.Name, SHA: target.SHA,
		Revision: dp.d.Revision, Reason: cause.Error(), Duration: e.now().Sub(dp.start), HealthFailure: true,
		CanaryStep: step, Percent: pct})
	return cause
}

// abandonCanary puts back the route of a canary that a newer commit (or a
// suspend before it began) preempted.
func (e *Executor) abandonCanary(ctx context.Context, dp *deployment) error {
	cr := dp.canary
	if cr == nil || !cr.routed {
		return nil
	}
	step, pct := cr.st.Step, cr.st.Percent
	if err := cr.restore(ctx); err != nil {
		return err
	}
	dp.log.Info("canary preempted", "step", "canary", "canary_step", step)
	e.emit(Event{Kind: EventCanaryPreempted, Service: dp.spec.Service, Release: dp.target.Name, Previous: dp.prev.Name,
		SHA: dp.spec.SHA, Revision: dp.d.Revision, CanaryStep: step, Percent: pct})
	return nil
}

// canaryString adds the canary a deploy step will run to its plan line:
// "; canary 10%, 50% for 2m0s each". A first deploy, a rollback and a
// step that deploys nothing run none.
func (s Step) canaryString(b *strings.Builder) {
	if s.Kind != KindDeploy || s.Hot || s.Spec == nil || s.Spec.Canary == nil || s.Previous == "" || s.Previous == s.Target {
		return
	}
	c := s.Spec.Canary
	pcts := make([]string, len(c.Steps))
	for i, p := range c.Steps {
		pcts[i] = strconv.Itoa(p) + "%"
	}
	fmt.Fprintf(b, "; canary %s for %s each", strings.Join(pcts, ", "), c.Interval)
}
