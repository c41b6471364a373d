package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/jailkeeper/jailkeeper/manifest"
	"github.com/jailkeeper/jailkeeper/release"
)

// deployment is one service's step of a pass as the Executor carries it out:
// the plan, what the pass observed, and, for a deploy, what its steps have
// done so far.
type deployment struct {
	e   *Executor
	job *job
	d   Desired
	obs Observed
	st  Step
	log *slog.Logger

	spec     *manifest.Service // st.Spec
	start    time.Time         // when the deploy began, for durations
	target   release.Release   // found on disk, or made by the create step
	prev     release.Release   // the release live before, when hasPrev
	hasPrev  bool
	started  bool        // the start step ran
	snapped  bool        // the data snapshot of this deploy is taken
	switched time.Time   // when traffic moved to the target
	clock    *phaseClock // the phases timed so far; nil before the first
	canary   *canaryRun  // the canary step's, once it began (canary.go)
}

// deployStep is one step of a deploy. run does its work and returns nil to
// go on with the next step.
type deployStep struct {
	name string
	run  func(ctx context.Context, dp *deployment) error
	// preemptible steps come before the switch. A newer commit that wants
	// another spec cancels their ctx, and the deploy is then abandoned,
	// whatever the step returned. The first step that is not preemptible
	// commits the deploy: from there on it runs to its end.
	preemptible bool
	// slot steps hold one of the Executor's Parallel slots while they run.
	slot bool
	// fail turns the step's own error into a verdict on the release (a
	// failure record, a switch back) and returns what the deploy reports.
	// It is not called when the deploy was preempted or ctx has ended.
	fail func(ctx context.Context, dp *deployment, err error) error
}

// deploySteps is a deploy, in order. A resumed watch starts at "watch".
var deploySteps = []deployStep{
	{name: "prepare", run: prepare, preemptible: true},
	{name: "create", run: createTarget, preemptible: true, slot: true, fail: createFailed},
	{name: "start", run: startTarget, preemptible: true, slot: true, fail: startFailed},
	{name: "migrate", run: migrateTarget, preemptible: true, fail: migrateFailed}, // migrate.go
	{name: "gate", run: gateTarget, preemptible: true, fail: gateFailed},
	{name: "snapshot", run: snapshotData, preemptible: true, fail: snapshotFailed},
	{name: "canary", run: canaryTarget, preemptible: true, fail: canaryAborted}, // canary.go
	{name: "switch", run: switchRoute},
	{name: "watch", run: watchTarget, fail: switchBack},
	{name: "promote", run: promoteTarget},
	{name: "retire", run: retirePrevious},
	{name: "report", run: reportLive},
	{name: "collect", run: collect},
}

// stepsFrom returns deploySteps from the step called name on.
func stepsFrom(name string) []deployStep {
	for i, s := range deploySteps {
		if s.name == name {
			return deploySteps[i:]
		}
	}
	panic("reconcile: no deploy step " + name)
}

// deploy makes st.Target live through deploySteps; a watch that an agent
// stop interrupted (KindWatch) runs again from the watch on, since its
// start was not recorded.
func (e *Executor) deploy(ctx context.Context, dp *deployment) error {
	st := dp.st
	dp.spec = st.Spec
	dp.start = e.now()
	dp.switched = dp.start
	dp.log = dp.log.With("release", st.Target, "sha", dp.spec.SHA)
	if st.Existing || st.Kind == KindWatch {
		var ok bool
		if dp.target, ok = find(dp.obs.Releases, st.Target); !ok {
			return fmt.Errorf("release %s vanished", st.Target)
		}
	}
	defer e.deployDone(dp)
	dp.prev, dp.hasPrev = find(dp.obs.Releases, st.Previous)
	dp.hasPrev = dp.hasPrev && st.Previous != st.Target
	steps := deploySteps
	if st.Kind == KindWatch {
		dp.log.Info("resuming an interrupted watch", "step", "watch", "previous", st.Previous)
		steps = stepsFrom("watch")
	}
	for try := 1; ; try++ {
		err := e.runSteps(ctx, dp, steps)
		var he *HostError
		if !errors.As(err, &he) || !he.readdress {
			return err
		}
		if try >= AddressTries {
			// Backs off like a failed create: the target is gone, and
			// nothing is marked failed.
			err, _ = e.recordCreateFailure(dp, err)
			dp.log.Info("address in use; backing off", "step", "start", "tries", try, "reason", err.Error())
			return err
		}
		dp.log.Info("address in use; trying another address", "step", "start", "try", try, "reason", err.Error())
		dp.st.Existing, dp.started, dp.target = false, false, release.Release{}
		steps = stepsFrom("create")
	}
}

// runSteps runs steps in order. Preemption is decided here, for every step
// alike: before a preemptible step, and when one fails, a preempted deploy
// is abandoned; the first step that is not preemptible commits it.
func (e *Executor) runSteps(ctx context.Context, dp *deployment, steps []deployStep) error {
	for _, s := range steps {
		sctx := ctx
		if s.preemptible {
			sctx = dp.job.ctx
			if e.preempted(dp.job) {
				return e.abandon(ctx, dp)
			}
		} else if !e.commit(dp.job) {
			return e.abandon(ctx, dp)
		}
		dp.log.Debug("deploy step", "step", s.name)
		var err error
		run := func(ctx context.Context) error { return s.run(ctx, dp) }
		if s.slot && !dp.st.Hot { // a hot rollback starts nothing
			err = e.withSlot(sctx, func() error { return e.timeStep(sctx, dp, s, run) })
		} else {
			err = e.timeStep(sctx, dp, s, run)
		}
		switch {
		case err == nil:
			stepDone[s.name].Hit()
			continue
		case s.preemptible && e.preempted(dp.job):
			return e.abandon(ctx, dp)
		case ctx.Err() != nil:
			return ctx.Err() // shutting down: no verdict on the release
		case s.fail != nil:
			return s.fail(ctx, dp, err)
		}
		return err
	}
	return nil
}

// abandon ends a deploy that a newer commit made pointless. A target it
// started is stopped (it never got traffic); one it created stays, for a
// later pass to use or collect.
func (e *Executor) abandon(ctx context.Context, dp *deployment) error {
	if err := e.abandonCanary(ctx, dp); err != nil {
		return err
	}
	if dp.started {
		dp.log.Info("deploy preempted by a newer commit")
		if err := e.rt.Stop(ctx, dp.target.Name); err != nil {
			return fmt.Errorf("stop preempted %s: %w", dp.target.Name, err)
		}
	}
	return preemptedBy(dp.job)
}

// prepare announces the deploy and removes what an interrupted create left.
func prepare(ctx context.Context, dp *deployment) error {
	st := dp.st
	dp.e.emit(Event{Kind: EventDeployStarted, Service: st.Service, Release: st.Target, Previous: st.Previous,
		SHA: dp.spec.SHA, Revision: dp.d.Revision, Rollback: st.Kind == KindRollback})
	for _, n := range st.Destroy {
		if err := dp.e.rt.Destroy(ctx, n); err != nil {
			return fmt.Errorf("destroy %s: %w", n, err)
		}
	}
	return nil
}

// createTarget fetches the artifact and creates the target, unless it is
// on disk. The create has a deadline of its own.
func createTarget(ctx context.Context, dp *deployment) error {
	e, s := dp.e, dp.spec
	if dp.st.Existing {
		return nil
	}
	path, err := e.fetcher.Fetch(ctx, s.Artifact.URL, s.Artifact.SHA256)
	if err != nil {
		return fmt.Errorf("fetch artifact: %w", err)
	}
	spec := release.Spec{
		Name:     dp.st.Target,
		Service:  s.Service,
		SHA:      s.SHA,
		Spec:     s.SpecHash(),
		Port:     s.Port,
		Command:  s.Command,
		Env:      s.Env,
		User:     s.User,
		Template: s.Template,
		Allow:    s.Allow,

		TemplateSnapshot: s.TemplateSnapshot,
		Limits:           release.Limits(s.Limits),
		Artifact:         path,
		Data:             dataSpecs(s),
		Created:          e.now(),
	}
	if s.EnvFile != "" {
		spec.EnvFile = filepath.Join(e.secretsDir, s.EnvFile)
	}
	cctx, cancel := context.WithTimeout(ctx, e.createTimeout)
	defer cancel()
	r, err := e.rt.Create(cctx, spec) // the runtime's errors name the release
	if err != nil {
		if ctx.Err() == nil && errors.Is(cctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("create %s: not done within %s: %w", spec.Name, e.createTimeout, err)
		}
		return err
	}
	e.forgetCreateFailures(spec.Spec)
	dp.target = r
	return nil
}

// createFailed records a failed fetch or create: nothing is on disk to
// carry it, so the Executor remembers it, Plan backs it off like a failed
// gate (or stalls it), and a change of reason is reported once. A fault of
// the host (a full disk) is remembered and retried the same way, but is no
// verdict: nothing is reported failed.
func createFailed(_ context.Context, dp *deployment, err error) error {
	err, changed := dp.e.recordCreateFailure(dp, err)
	if hostFault(err) {
		if changed {
			dp.log.Info("host fault; release not marked failed", "step", "create", "reason", err.Error())
		}
		return &HostError{Err: err}
	}
	if changed {
		dp.e.emit(Event{Kind: EventFailed, Service: dp.spec.Service, Release: dp.st.Target, SHA: dp.spec.SHA,
			Revision: dp.d.Revision, Reason: err.Error(), Duration: dp.e.now().Sub(dp.start)})
	}
	return err
}

func startTarget(ctx context.Context, dp *deployment) error {
	if dp.st.Hot {
		return nil // running on standby; hotGate restarts it if need be
	}
	dp.started = true
	if err := dp.e.rt.Start(ctx, dp.target.Name); err != nil {
		return err
	}
	if dp.st.Kind == KindRollback {
		cpRollbackStarted.Hit()
	}
	return nil
}

// startFailed: a release that has served before is not failed by a start
// error (an address still held, a dying jail), nor any release by a fault
// of the host (hostFailed); any other is.
func startFailed(ctx context.Context, dp *deployment, err error) error {
	if hostFault(err) {
		return dp.e.hostFailed(ctx, dp, fmt.Errorf("start: %w", err))
	}
	if s := dp.target.State; s == release.StateRetired || s == release.StateLive {
		return fmt.Errorf("start %s: %w", dp.target.Name, err)
	}
	return dp.e.fail(ctx, dp, fmt.Errorf("start: %w", err), false)
}

func gateTarget(ctx context.Context, dp *deployment) error {
	dp.log.Debug("health gate", "step", "gate", "addr", dp.target.Addr())
	if dp.st.Hot {
		return dp.e.hotGate(ctx, dp)
	}
	h := dp.spec.Health
	return dp.e.health(ctx, dp.target, h, h.Deadline, true)
}

// gateFailed marks the target failed, unless its app died of a fault of the
// host (hostFailed).
func gateFailed(ctx context.Context, dp *deployment, err error) error {
	if hostFault(err) {
		return dp.e.hostFailed(ctx, dp, fmt.Errorf("health gate: %w", err))
	}
	return dp.e.fail(ctx, dp, fmt.Errorf("health gate: %w", err), true)
}

// switchRoute moves traffic to the target. The target keeps its state
// (ready, retired, failed) until its watch has passed: a routed release not
// stored as live tells the next pass that a watch was interrupted.
func switchRoute(ctx context.Context, dp *deployment) error {
	if err := dp.e.proxy.Set(ctx, DesiredRoute(dp.spec, dp.target)); err != nil {
		return fmt.Errorf("switch route: %w", err)
	}
	dp.switched = dp.e.now()
	dp.log.Debug("switched", "step", "switch", "previous", dp.st.Previous)
	return nil
}

func watchTarget(ctx context.Context, dp *deployment) error {
	h := dp.spec.Health
	if h.Watch <= 0 {
		return nil
	}
	return dp.e.health(ctx, dp.target, h, h.Watch, false)
}

// switchBack handles a failed watch: the target is marked failed first (so a
// crash here never leaves it looking good), traffic goes back to the
// previous release (started and gated again if it stopped), and the target
// stops.
func switchBack(ctx context.Context, dp *deployment, err error) error {
	e, target, prev, s := dp.e, dp.target, dp.prev, dp.spec
	cause := fmt.Errorf("watch: %w", err)
	if err := e.markFailed(ctx, target, cause); err != nil {
		return errors.Join(cause, err)
	}
	cpSwitchBackMarked.Hit()
	var back error
	if dp.hasPrev {
		running, err := e.rt.Running(ctx, prev.Name)
		switch {
		case err != nil:
			back = err
		case !running:
			// It stopped meanwhile: start it and gate it before it gets
			// traffic again.
			back = e.rt.Start(ctx, prev.Name)
			if back == nil {
				back = e.health(ctx, prev, s.Health, s.Health.Deadline, true)
			}
		}
		if back == nil {
			back = e.proxy.Set(ctx, DesiredRoute(s, prev))
		}
	} else {
		back = e.proxy.Remove(ctx, s.Service)
	}
	if back != nil {
		return errors.Join(cause, fmt.Errorf("switch back: %w", back))
	}
	cpSwitchBackRouted.Hit()
	if err := e.rt.Stop(ctx, target.Name); err != nil {
		return errors.Join(cause, fmt.Errorf("stop %s: %w", target.Name, err))
	}
	dp.log.Debug("watch failed; switched back", "step", "watch", "previous", prev.Name, "reason", cause.Error())
	e.emit(Event{Kind: EventReverted, Service: target.Service, Release: target.Name, Previous: prev.Name, SHA: target.SHA,
		Revision: dp.d.Revision, Reason: cause.Error(), Duration: e.now().Sub(dp.start), HealthFailure: true})
	return cause
}

// promoteTarget stores the target as live: the failure record of its spec
// starts again from zero.
func promoteTarget(ctx context.Context, dp *deployment) error {
	if err := dp.e.rt.SetStatus(ctx, dp.target.Name, release.Status{State: release.StateLive}); err != nil {
		return fmt.Errorf("set %s live: %w", dp.target.Name, err)
	}
	return nil
}

// retirePrevious drains the previous release for what is left of the
// drain since the switch, then stops it and marks it retired.
func retirePrevious(ctx context.Context, dp *deployment) error {
	if !dp.hasPrev {
		return nil
	}
	e, prev := dp.e, dp.prev
	left := max(dp.switched.Add(dp.spec.Drain).Sub(e.now()), 0)
	dp.log.Debug("draining", "step", "drain", "previous", prev.Name, "max", left)
	if err := e.proxy.Drain(ctx, prev.Addr(), left); err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	if d := dp.standbyOf(); d > 0 {
		return e.putOnStandby(ctx, dp, d)
	}
	if err := e.rt.Stop(ctx, prev.Name); err != nil {
		return fmt.Errorf("stop previous %s: %w", prev.Name, err)
	}
	return e.setState(ctx, prev, release.StateRetired)
}

// reportLive reports the deploy (or rollback) done.
func reportLive(_ context.Context, dp *deployment) error {
	kind := EventLive
	if dp.st.Kind == KindRollback {
		kind = EventRolledBack
	}
	dp.e.emit(Event{Kind: kind, Service: dp.spec.Service, Release: dp.target.Name, Previous: dp.prev.Name, SHA: dp.spec.SHA,
		Revision: dp.d.Revision, Duration: dp.e.now().Sub(dp.start), CommitTime: dp.d.CommitTime, Rollback: dp.st.Kind == KindRollback,
		Standby: dp.standbyFor()})
	return nil
}

// collect stops and destroys what the plan decided (Step.AfterStop and
// AfterDestroy), skipping releases that are gone meanwhile. With nothing
// to collect it lists nothing: a List per deploy cost a change of N
// services N Lists of 2N releases (issue 11).
func collect(ctx context.Context, dp *deployment) error {
	if len(dp.st.AfterStop) == 0 && len(dp.st.AfterDestroy) == 0 {
		return nil
	}
	rels, err := dp.e.rt.List(ctx)
	if err != nil {
		return fmt.Errorf("list releases: %w", err)
	}
	present := func(names []string) []string {
		var out []string
		for _, n := range names {
			if _, ok := find(rels, n); ok {
				out = append(out, n)
			}
		}
		return out
	}
	return dp.e.cleanup(ctx, dp.log, rels, present(dp.st.AfterStop), present(dp.st.AfterDestroy))
}

// hostFailed ends a deploy whose target failed by a fault of the host, with
// no verdict on the release: the target stops, and when its address was in
// use it is destroyed too, so that the deploy's next create gets another
// address (the runtime skips one that is held). Traffic never moved to it.
func (e *Executor) hostFailed(ctx context.Context, dp *deployment, cause error) error {
	target := dp.target
	if err := e.rt.Stop(ctx, target.Name); err != nil {
		return errors.Join(cause, fmt.Errorf("stop %s: %w", target.Name, err))
	}
	he := &HostError{Err: cause}
	if errors.Is(cause, release.ErrAddressInUse) {
		if err := e.rt.Destroy(ctx, target.Name); err != nil {
			return errors.Join(he, fmt.Errorf("destroy %s: %w", target.Name, err))
		}
		he.readdress = true
	}
	dp.log.Debug("host fault; release not marked failed", "reason", cause.Error())
	return he
}

// fail records the failure first, then stops the target, and reports it.
// Traffic never moved to it.
func (e *Executor) fail(ctx context.Context, dp *deployment, cause error, health bool) error {
	target := dp.target
	if err := e.markFailed(ctx, target, cause); err != nil {
		return errors.Join(cause, err)
	}
	cpFailMarked.Hit()
	if err := e.rt.Stop(ctx, target.Name); err != nil {
		return errors.Join(cause, fmt.Errorf("stop failed %s: %w", target.Name, err))
	}
	dp.log.Debug("deploy failed", "step", string(EventFailed), "reason", cause.Error())
	e.emit(Event{Kind: EventFailed, Service: target.Service, Release: target.Name, SHA: target.SHA, Revision: dp.d.Revision,
		Reason: cause.Error(), Duration: e.now().Sub(dp.start), HealthFailure: health})
	return cause
}
