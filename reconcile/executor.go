package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/jailkeeper/jailkeeper/artifact"
	"github.com/jailkeeper/jailkeeper/manifest"
	"github.com/jailkeeper/jailkeeper/release"
)

// ErrPreempted ends a health gate that a newer commit made pointless.
var ErrPreempted = errors.New("preempted by a newer commit")

// StalledError is a failure that retrying cannot fix: the deploy repo needs a
// new commit (a checksum mismatch, an unsafe tarball). The Executor does not
// try the same spec again while it runs.
type StalledError struct{ Err error }

func (e *StalledError) Error() string { return e.Err.Error() + " (needs a new commit)" }
func (e *StalledError) Unwrap() error { return e.Err }

// Executor carries out plans. Configure the exported fields, then call Pass;
// one Pass runs at a time (the agent single-flights them), while Preempt may
// be called concurrently with it.
type Executor struct {
	Runtime Runtime
	Proxy   Proxy
	Prober  Prober
	Fetcher Fetcher
	Log     *slog.Logger
	// Now is the clock for stored timestamps and backoff.
	Now func() time.Time
	// Parallel is how many services converge at once.
	Parallel int
	// SecretsDir is where manifests' env_file names are resolved.
	SecretsDir string
	// Events receives every state change; it must not block for long.
	Events func(Event)

	// Memory that only saves work; losing it on a restart costs a retry.
	mu       sync.Mutex
	gates    map[string]inflight    // service -> in-flight deploy
	latest   map[string]string      // service -> newest desired spec seen
	seq      uint64                 // Seq of the desired state in latest
	stalled  map[string]error       // spec hash -> why it cannot succeed
	createOK map[string]createFails // spec hash -> failed fetches/creates
	lastErr  map[string]string      // service -> message of the last pass
}

// createFails counts consecutive failed fetches or creates of one spec, which
// leave no release behind to carry a failure count.
type createFails struct {
	n    int
	at   time.Time
	last string
}

type inflight struct {
	spec   string
	cancel context.CancelFunc
}

// ServiceStatus is one service's row of /status and `jailkeeper status`.
type ServiceStatus struct {
	Service     string `json:"service"`
	DesiredSHA  string `json:"desired_sha"`
	LiveSHA     string `json:"live_sha"`
	LiveRelease string `json:"live_release"`
	Converged   bool   `json:"converged"`
	State       string `json:"state"`
	Message     string `json:"message"`
}

// Result is what a pass did and what it left.
type Result struct {
	Revision string
	Steps    []Step
	Services []ServiceStatus
	// Releases is the runtime's view after the pass.
	Releases []release.Release
}

func (e *Executor) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

func (e *Executor) log() *slog.Logger {
	if e.Log != nil {
		return e.Log
	}
	return slog.New(slog.DiscardHandler)
}

func (e *Executor) emit(ev Event) {
	ev.Time = e.now()
	if e.Events != nil {
		e.Events(ev)
	}
}

// Observe reads the releases from the runtime and the routes from the proxy.
func (e *Executor) Observe(ctx context.Context) (Observed, error) {
	rels, err := e.Runtime.List(ctx)
	if err != nil {
		return Observed{}, fmt.Errorf("list releases: %w", err)
	}
	routes, err := e.Proxy.Routes(ctx)
	if err != nil {
		return Observed{}, fmt.Errorf("read routes: %w", err)
	}
	return Observed{Releases: rels, Routes: routes}, nil
}

// PlanPass observes and plans without changing anything.
func (e *Executor) PlanPass(ctx context.Context, d Desired) ([]Step, error) {
	obs, err := e.Observe(ctx)
	if err != nil {
		return nil, err
	}
	return Plan(d, obs, e.now())
}

// Preempt tells the executor about a newer desired state while a pass runs:
// in-flight deploys (fetch, create, gate) of services whose desired spec
// differs in d, or that d no longer has, are cancelled, and deploys of those
// services not yet started in this pass do not start. Safe to call during Pass.
func (e *Executor) Preempt(d Desired) {
	want := map[string]string{}
	for i := range d.Services {
		want[d.Services[i].Service] = d.Services[i].SpecHash()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.install(d.Seq, want) {
		return
	}
	for svc, g := range e.gates {
		if want[svc] != g.spec {
			g.cancel()
		}
	}
}

// install makes want the newest desired specs unless a newer state (by
// Seq) is already installed. Callers hold e.mu.
func (e *Executor) install(seq uint64, want map[string]string) bool {
	if seq != 0 && seq < e.seq {
		return false
	}
	e.seq, e.latest = seq, want
	return true
}

// superseded reports whether a newer desired state wants another spec.
func (e *Executor) superseded(service, spec string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.supersededLocked(service, spec)
}

func (e *Executor) supersededLocked(service, spec string) bool {
	return e.latest != nil && e.latest[service] != spec
}

// Pass observes, plans and converges every service, Parallel at a time, each
// serialised. It returns the statuses after the pass; the error joins the
// services' errors (and is ErrPruneAll when the plan was refused).
func (e *Executor) Pass(ctx context.Context, d Desired) (Result, error) {
	res := Result{Revision: d.Revision}
	want := map[string]string{}
	for i := range d.Services {
		want[d.Services[i].Service] = d.Services[i].SpecHash()
	}
	e.mu.Lock()
	e.install(d.Seq, want) // before any I/O, so a Preempt during it counts
	e.mu.Unlock()
	obs, err := e.Observe(ctx)
	if err != nil {
		return res, err
	}
	steps, planErr := Plan(d, obs, e.now())
	res.Steps = steps
	errs := make([]error, len(steps))
	sem := make(chan struct{}, max(e.Parallel, 1))
	var wg sync.WaitGroup
	for i, st := range steps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			err := e.apply(ctx, d, obs, st)
			e.mu.Lock()
			if e.lastErr == nil {
				e.lastErr = map[string]string{}
			}
			if err != nil {
				e.lastErr[st.Service] = err.Error()
				errs[i] = fmt.Errorf("%s: %w", st.Service, err)
			} else {
				delete(e.lastErr, st.Service)
			}
			e.mu.Unlock()
		}()
	}
	wg.Wait()
	after, err := e.Observe(ctx)
	if err != nil {
		return res, errors.Join(append(errs, planErr, err)...)
	}
	res.Releases = after.Releases
	res.Services = e.statuses(d, after, planErr)
	return res, errors.Join(append(errs, planErr)...)
}

func (e *Executor) apply(ctx context.Context, d Desired, obs Observed, st Step) error {
	log := e.log().With("service", st.Service)
	if st.Kind == KindPrune {
		if err := e.Proxy.Remove(ctx, st.Service); err != nil {
			return fmt.Errorf("remove route: %w", err)
		}
		for _, n := range st.Destroy {
			if err := e.Runtime.Destroy(ctx, n); err != nil {
				return fmt.Errorf("destroy %s: %w", n, err)
			}
		}
		e.emit(Event{Kind: EventPruned, Service: st.Service, Revision: d.Revision, Reason: st.Reason})
		return nil
	}
	var restoreErr error
	if st.Restore != "" {
		// Traffic goes back to the last known-good first; a deploy that
		// follows can still fix a restore that failed.
		restoreErr = e.restore(ctx, log, d, obs, st)
		if restoreErr != nil && ctx.Err() != nil {
			return restoreErr
		}
	}
	var err error
	switch st.Kind {
	case KindNone, KindBackoff:
		err = e.settle(ctx, log, d, obs, st)
	case KindWatch:
		err = e.resumeWatch(ctx, log, d, obs, st)
	default:
		err = e.deploy(ctx, log, d, obs, st)
	}
	return errors.Join(restoreErr, err)
}

// settle fixes the route of a converged service and cleans up; for a
// service in backoff it reports the backoff.
func (e *Executor) settle(ctx context.Context, log *slog.Logger, d Desired, obs Observed, st Step) error {
	if st.Route != nil {
		if err := e.Proxy.Set(ctx, *st.Route); err != nil {
			return fmt.Errorf("set route: %w", err)
		}
		if st.Reason != "" {
			e.emit(Event{Kind: EventRouteRestored, Service: st.Service, Release: st.Target, Revision: d.Revision, Reason: st.Reason})
		}
	}
	if st.Unroute {
		if err := e.Proxy.Remove(ctx, st.Service); err != nil {
			return fmt.Errorf("remove route: %w", err)
		}
	}
	if err := e.cleanup(ctx, log, obs.Releases, st.Stop, st.Destroy); err != nil {
		return err
	}
	if st.Kind == KindBackoff {
		return fmt.Errorf("%s backing off until %s: %s", st.Target, st.RetryAt.UTC().Format(time.RFC3339), st.Reason)
	}
	return nil
}

// restore starts the last known-good release if it stopped, gates it, and
// routes the service to it.
func (e *Executor) restore(ctx context.Context, log *slog.Logger, d Desired, obs Observed, st Step) error {
	s := st.Spec
	r, ok := find(obs.Releases, st.Restore)
	if !ok {
		return fmt.Errorf("restore %s: release vanished", st.Restore)
	}
	if !r.Running {
		if err := e.Runtime.Start(ctx, r.Name); err != nil {
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
	if err := e.Proxy.Set(ctx, DesiredRoute(s, r)); err != nil {
		return fmt.Errorf("restore %s: set route: %w", r.Name, err)
	}
	log.Debug("restored last known-good", "release", r.Name, "step", "restore")
	e.emit(Event{Kind: EventRouteRestored, Service: s.Service, Release: r.Name, SHA: r.SHA, Revision: d.Revision,
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
	if err := e.Runtime.SetStatus(ctx, r.Name, st); err != nil {
		return fmt.Errorf("set %s %s: %w", r.Name, s, err)
	}
	return nil
}

// cleanup stops releases (marking live and ready ones retired; failed ones
// stay failed) and destroys others.
func (e *Executor) cleanup(ctx context.Context, log *slog.Logger, rels []release.Release, stop, destroy []string) error {
	for _, n := range stop {
		if err := e.Runtime.Stop(ctx, n); err != nil {
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
		if err := e.Runtime.Destroy(ctx, n); err != nil {
			return fmt.Errorf("destroy %s: %w", n, err)
		}
		log.Debug("release destroyed", "release", n, "step", "cleanup")
	}
	return nil
}

// deploy makes st.Target live: fetch and create it unless it exists, start
// it, gate it, switch the route, then finish (watch, drain, retire).
func (e *Executor) deploy(ctx context.Context, log *slog.Logger, d Desired, obs Observed, st Step) error {
	s := st.Spec
	spec := s.SpecHash()
	e.mu.Lock()
	stalled := e.stalled[spec]
	cf := e.createOK[spec]
	e.mu.Unlock()
	if stalled != nil {
		return stalled
	}
	if !st.Existing && cf.n > 0 {
		if retry := cf.at.Add(Backoff(cf.n)); e.now().Before(retry) {
			return fmt.Errorf("%s backing off until %s: %s", st.Target, retry.UTC().Format(time.RFC3339), cf.last)
		}
	}

	// Everything up to the switch can be preempted by a newer commit. The
	// check and the registration share the lock, so no Preempt falls between.
	gctx, cancel := context.WithCancelCause(ctx)
	e.mu.Lock()
	if e.supersededLocked(s.Service, spec) {
		e.mu.Unlock()
		cancel(nil)
		return ErrPreempted
	}
	if e.gates == nil {
		e.gates = map[string]inflight{}
	}
	e.gates[s.Service] = inflight{spec: spec, cancel: func() { cancel(ErrPreempted) }}
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.gates, s.Service)
		e.mu.Unlock()
		cancel(nil)
	}()
	preempted := func() bool { return errors.Is(context.Cause(gctx), ErrPreempted) && ctx.Err() == nil }

	start := e.now()
	log = log.With("release", st.Target, "sha", s.SHA)
	e.emit(Event{Kind: EventDeployStarted, Service: s.Service, Release: st.Target, Previous: st.Previous, SHA: s.SHA, Revision: d.Revision, Rollback: st.Kind == KindRollback})
	for _, n := range st.Destroy {
		if err := e.Runtime.Destroy(ctx, n); err != nil {
			return fmt.Errorf("destroy %s: %w", n, err)
		}
	}

	var target release.Release
	if st.Existing {
		var ok bool
		if target, ok = find(obs.Releases, st.Target); !ok {
			return fmt.Errorf("release %s vanished", st.Target)
		}
	} else {
		var err error
		target, err = e.create(gctx, s, st.Target)
		if err != nil {
			if preempted() {
				return ErrPreempted
			}
			if ctx.Err() != nil {
				return ctx.Err() // shutting down: no verdict on the spec
			}
			return e.createFailed(d, s, st.Target, start, err)
		}
		e.mu.Lock()
		delete(e.createOK, spec)
		e.mu.Unlock()
	}

	if err := e.Runtime.Start(gctx, target.Name); err != nil {
		if preempted() {
			return ErrPreempted
		}
		if target.State == release.StateRetired || target.State == release.StateLive {
			// It has served before: a start error (an address still
			// held, a dying jail) is no verdict on the release.
			return fmt.Errorf("start %s: %w", target.Name, err)
		}
		return e.fail(ctx, log, d, target, start, fmt.Errorf("start: %w", err), false, false)
	}
	log.Debug("health gate", "step", "gate", "addr", target.Addr())
	if err := e.health(gctx, target, s.Health, s.Health.Deadline, true); err != nil {
		if preempted() || e.superseded(s.Service, spec) {
			log.Info("deploy preempted by a newer commit", "step", "gate")
			if err := e.Runtime.Stop(ctx, target.Name); err != nil {
				return fmt.Errorf("stop preempted %s: %w", target.Name, err)
			}
			return ErrPreempted
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return e.fail(ctx, log, d, target, start, fmt.Errorf("health gate: %w", err), false, true)
	}
	if e.superseded(s.Service, spec) {
		if err := e.Runtime.Stop(ctx, target.Name); err != nil {
			return fmt.Errorf("stop preempted %s: %w", target.Name, err)
		}
		return ErrPreempted
	}

	// The target keeps its state (ready, retired, failed) until its watch
	// has passed: a routed release not stored as live tells the next pass
	// that a watch was interrupted.
	if err := e.Proxy.Set(ctx, DesiredRoute(s, target)); err != nil {
		return fmt.Errorf("switch route: %w", err)
	}
	log.Debug("switched", "step", "switch", "previous", st.Previous)
	prev, hasPrev := find(obs.Releases, st.Previous)
	hasPrev = hasPrev && st.Previous != target.Name
	return e.finish(ctx, log, d, st, target, prev, hasPrev, e.now(), start)
}

// resumeWatch finishes a deploy whose watch an agent stop interrupted: the
// whole watch runs again, since its start was not recorded.
func (e *Executor) resumeWatch(ctx context.Context, log *slog.Logger, d Desired, obs Observed, st Step) error {
	target, ok := find(obs.Releases, st.Target)
	if !ok {
		return fmt.Errorf("release %s vanished", st.Target)
	}
	prev, hasPrev := find(obs.Releases, st.Previous)
	log = log.With("release", target.Name, "sha", target.SHA)
	log.Info("resuming an interrupted watch", "step", "watch", "previous", st.Previous)
	now := e.now()
	return e.finish(ctx, log, d, st, target, prev, hasPrev, now, now)
}

// finish watches the target after the switch; on failure it switches back to
// prev, otherwise it marks the target live, drains and retires prev, and
// cleans up.
func (e *Executor) finish(ctx context.Context, log *slog.Logger, d Desired, st Step, target, prev release.Release, hasPrev bool, switched, start time.Time) error {
	s := st.Spec
	if s.Health.Watch > 0 {
		if err := e.health(ctx, target, s.Health, s.Health.Watch, false); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return e.switchBack(ctx, log, d, target, prev, hasPrev, start, fmt.Errorf("watch: %w", err))
		}
	}
	// Live: the failure record of the spec starts again from zero.
	if err := e.Runtime.SetStatus(ctx, target.Name, release.Status{State: release.StateLive}); err != nil {
		return fmt.Errorf("set %s live: %w", target.Name, err)
	}
	if hasPrev {
		left := max(switched.Add(s.Drain).Sub(e.now()), 0)
		log.Debug("draining", "step", "drain", "previous", prev.Name, "max", left)
		if err := e.Proxy.Drain(ctx, prev.Addr(), left); err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
		if err := e.Runtime.Stop(ctx, prev.Name); err != nil {
			return fmt.Errorf("stop previous %s: %w", prev.Name, err)
		}
		if err := e.setState(ctx, prev, release.StateRetired); err != nil {
			return err
		}
	}
	kind := EventLive
	if st.Kind == KindRollback {
		kind = EventRolledBack
	}
	e.emit(Event{Kind: kind, Service: s.Service, Release: target.Name, Previous: prev.Name, SHA: s.SHA, Revision: d.Revision,
		Duration: e.now().Sub(start), CommitTime: d.CommitTime, Rollback: st.Kind == KindRollback})

	rels, err := e.Runtime.List(ctx)
	if err != nil {
		return fmt.Errorf("list releases: %w", err)
	}
	var mine []release.Release
	for _, r := range rels {
		if r.Service == s.Service {
			mine = append(mine, r)
		}
	}
	stop, destroy := Cleanup(mine, target.Name, "", s.Retain)
	return e.cleanup(ctx, log, mine, stop, destroy)
}

// switchBack handles a failed watch: the target is marked failed first (so a
// crash here never leaves it looking good), traffic goes back to prev (started
// and gated again if it stopped), and the target stops.
func (e *Executor) switchBack(ctx context.Context, log *slog.Logger, d Desired, target, prev release.Release, hasPrev bool, start time.Time, cause error) error {
	s := target
	if err := e.markFailed(ctx, target, cause); err != nil {
		return errors.Join(cause, err)
	}
	var back error
	if hasPrev {
		spec := specOf(d, s.Service)
		running, err := e.Runtime.Running(ctx, prev.Name)
		switch {
		case err != nil:
			back = err
		case !running:
			// It stopped meanwhile: start it and gate it before it gets
			// traffic again.
			back = e.Runtime.Start(ctx, prev.Name)
			if back == nil {
				back = e.health(ctx, prev, spec.Health, spec.Health.Deadline, true)
			}
		}
		if back == nil {
			back = e.Proxy.Set(ctx, DesiredRoute(spec, prev))
		}
	} else {
		back = e.Proxy.Remove(ctx, s.Service)
	}
	if back != nil {
		return errors.Join(cause, fmt.Errorf("switch back: %w", back))
	}
	if err := e.Runtime.Stop(ctx, target.Name); err != nil {
		return errors.Join(cause, fmt.Errorf("stop %s: %w", target.Name, err))
	}
	log.Debug("watch failed; switched back", "step", "watch", "previous", prev.Name, "reason", cause.Error())
	e.emit(Event{Kind: EventReverted, Service: target.Service, Release: target.Name, Previous: prev.Name, SHA: target.SHA, Revision: d.Revision,
		Reason: cause.Error(), Duration: e.now().Sub(start), HealthFailure: true})
	return cause
}

// specOf returns the desired manifest of a service in d.
func specOf(d Desired, service string) *manifest.Service {
	for i := range d.Services {
		if d.Services[i].Service == service {
			return &d.Services[i]
		}
	}
	return &manifest.Service{Service: service}
}

// createFailed records a failed fetch or create of a spec: nothing is on
// disk to carry it, so it lives in memory, backs off like a failed gate, and
// reports a change of reason once.
func (e *Executor) createFailed(d Desired, s *manifest.Service, name string, start time.Time, err error) error {
	spec := s.SpecHash()
	e.mu.Lock()
	if errors.Is(err, artifact.ErrChecksum) || errors.Is(err, artifact.ErrUnsafe) {
		err = &StalledError{Err: err}
		if e.stalled == nil {
			e.stalled = map[string]error{}
		}
		e.stalled[spec] = err
	}
	if e.createOK == nil {
		e.createOK = map[string]createFails{}
	}
	cf := e.createOK[spec]
	changed := cf.last != err.Error()
	e.createOK[spec] = createFails{n: cf.n + 1, at: e.now(), last: err.Error()}
	e.mu.Unlock()
	if changed {
		e.emit(Event{Kind: EventFailed, Service: s.Service, Release: name, SHA: s.SHA, Revision: d.Revision, Reason: err.Error(), Duration: e.now().Sub(start)})
	}
	return err
}

// create fetches the artifact and creates the release.
func (e *Executor) create(ctx context.Context, s *manifest.Service, name string) (release.Release, error) {
	path, err := e.Fetcher.Fetch(ctx, s.Artifact.URL, s.Artifact.SHA256)
	if err != nil {
		return release.Release{}, fmt.Errorf("fetch artifact: %w", err)
	}
	spec := release.Spec{
		Name:     name,
		Service:  s.Service,
		SHA:      s.SHA,
		Spec:     s.SpecHash(),
		Port:     s.Port,
		Command:  s.Command,
		Env:      s.Env,
		User:     s.User,
		Template: s.Template,
		Allow:    s.Allow,
		Artifact: path,
		Created:  e.now(),
	}
	if s.EnvFile != "" {
		spec.EnvFile = filepath.Join(e.SecretsDir, s.EnvFile)
	}
	return e.Runtime.Create(ctx, spec) // the runtime's errors name the release
}

// markFailed records a failure on the release, with its count and time, so
// the backoff survives a restart.
func (e *Executor) markFailed(ctx context.Context, target release.Release, cause error) error {
	failures := 1
	if target.State == release.StateFailed || target.Failures > 0 {
		failures = target.Failures + 1
	}
	st := release.Status{State: release.StateFailed, Reason: cause.Error(), Failures: failures, FailedAt: e.now()}
	if err := e.Runtime.SetStatus(ctx, target.Name, st); err != nil {
		return fmt.Errorf("mark %s failed: %w", target.Name, err)
	}
	return nil
}

// fail records the failure first, then stops the target, and reports it.
// Traffic never moved to it.
func (e *Executor) fail(ctx context.Context, log *slog.Logger, d Desired, target release.Release, start time.Time, cause error, reverted, health bool) error {
	if err := e.markFailed(ctx, target, cause); err != nil {
		return errors.Join(cause, err)
	}
	if err := e.Runtime.Stop(ctx, target.Name); err != nil {
		return errors.Join(cause, fmt.Errorf("stop failed %s: %w", target.Name, err))
	}
	kind := EventFailed
	if reverted {
		kind = EventReverted
	}
	log.Debug("deploy failed", "step", string(kind), "reason", cause.Error())
	e.emit(Event{Kind: kind, Service: target.Service, Release: target.Name, SHA: target.SHA, Revision: d.Revision,
		Reason: cause.Error(), Duration: e.now().Sub(start), HealthFailure: health})
	return cause
}

// health probes r every interval for up to window. As a gate (gate=true) it
// succeeds at threshold consecutive 2xx answers and fails at the deadline; as
// a watch it succeeds when the window ends and fails at threshold consecutive
// failed probes. Either way a release whose process has exited fails at once.
func (e *Executor) health(ctx context.Context, r release.Release, h manifest.Health, window time.Duration, gate bool) error {
	url := "http://" + r.Addr() + h.Path
	end := time.NewTimer(window)
	defer end.Stop()
	tick := time.NewTicker(h.Interval)
	defer tick.Stop()
	ok, bad := 0, 0
	var last error
	for {
		running, err := e.Runtime.Running(ctx, r.Name)
		if err != nil {
			return fmt.Errorf("check %s: %w", r.Name, err)
		}
		if !running {
			return fmt.Errorf("%s is not running", r.Name)
		}
		if err := e.Prober.Probe(ctx, url, h.Timeout); err != nil {
			ok, last = 0, err
			bad++
			if !gate && bad >= h.Threshold {
				return fmt.Errorf("%d consecutive failed checks: %w", bad, err)
			}
		} else {
			bad = 0
			ok++
			if gate && ok >= h.Threshold {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-end.C:
			if !gate {
				return nil
			}
			if last == nil {
				last = errors.New("not enough answers")
			}
			return fmt.Errorf("no %d consecutive healthy answers within %s: %w", h.Threshold, window, last)
		case <-tick.C:
		}
	}
}

// statuses summarises each desired service after a pass.
func (e *Executor) statuses(d Desired, o Observed, planErr error) []ServiceStatus {
	byService := map[string][]release.Release{}
	for _, r := range o.Releases {
		byService[r.Service] = append(byService[r.Service], r)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []ServiceStatus
	for i := range d.Services {
		s := &d.Services[i]
		rels := byService[s.Service]
		route, hasRoute := o.Routes[s.Service]
		live, routed, hasLive := KnownGood(rels, route, hasRoute, s.SpecHash())
		st := ServiceStatus{Service: s.Service, DesiredSHA: s.SHA, State: "pending"}
		if hasLive && routed {
			st.LiveSHA, st.LiveRelease = live.SHA, live.Name
			st.Converged = live.Spec == s.SpecHash() && live.Running && live.State == release.StateLive
		}
		if t, ok := find(rels, s.ReleaseName()); ok {
			st.State = string(t.State)
			if t.State == release.StateFailed {
				st.Message = t.Reason
			}
		}
		if msg, ok := e.lastErr[s.Service]; ok {
			st.Message = msg
		}
		if planErr != nil {
			st.Message = planErr.Error()
		}
		out = append(out, st)
	}
	return out
}
