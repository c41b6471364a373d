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
	"github.com/jailkeeper/jailkeeper/jails"
	"github.com/jailkeeper/jailkeeper/manifest"
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

	mu      sync.Mutex
	gates   map[string]inflight // service -> in-flight gate
	stalled map[string]error    // spec hash -> why it cannot succeed
	lastErr map[string]string   // service -> message of the last pass
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
	Releases []jails.Release
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

// Preempt cancels in-flight health gates of services whose desired spec
// differs in d (or that d no longer has). Safe to call during Pass.
func (e *Executor) Preempt(d Desired) {
	want := map[string]string{}
	for i := range d.Services {
		want[d.Services[i].Service] = d.Services[i].SpecHash()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for svc, g := range e.gates {
		if want[svc] != g.spec {
			g.cancel()
		}
	}
}

// Pass observes, plans and converges every service, Parallel at a time, each
// serialised. It returns the statuses after the pass; the error joins the
// services' errors (and is ErrPruneAll when the plan was refused).
func (e *Executor) Pass(ctx context.Context, d Desired) (Result, error) {
	res := Result{Revision: d.Revision}
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
	switch st.Kind {
	case KindPrune:
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
	case KindNone, KindBackoff:
		if st.Route != nil {
			if err := e.Proxy.Set(ctx, *st.Route); err != nil {
				return fmt.Errorf("set route: %w", err)
			}
			if st.Reason != "" {
				e.emit(Event{Kind: EventRouteRestored, Service: st.Service, Release: st.Target, Revision: d.Revision, Reason: st.Reason})
			}
		}
		if st.Kind == KindNone {
			if r, ok := find(obs.Releases, st.Target); ok && r.State != jails.StateLive {
				if err := e.setState(ctx, r, jails.StateLive, ""); err != nil {
					return err
				}
			}
		}
		if err := e.cleanup(ctx, log, st.Stop, st.Destroy); err != nil {
			return err
		}
		if st.Kind == KindBackoff {
			return fmt.Errorf("%s backing off until %s: %s", st.Target, st.RetryAt.UTC().Format(time.RFC3339), st.Reason)
		}
		return nil
	default:
		return e.deploy(ctx, log, d, obs, st)
	}
}

func find(rels []jails.Release, name string) (jails.Release, bool) {
	i := slices.IndexFunc(rels, func(r jails.Release) bool { return r.Name == name })
	if i < 0 {
		return jails.Release{}, false
	}
	return rels[i], true
}

func (e *Executor) setState(ctx context.Context, r jails.Release, s jails.State, reason string) error {
	st := jails.Status{State: s, Reason: reason}
	if err := e.Runtime.SetStatus(ctx, r.Name, st); err != nil {
		return fmt.Errorf("set %s %s: %w", r.Name, s, err)
	}
	return nil
}

func (e *Executor) cleanup(ctx context.Context, log *slog.Logger, stop, destroy []string) error {
	for _, n := range stop {
		if err := e.Runtime.Stop(ctx, n); err != nil {
			return fmt.Errorf("stop %s: %w", n, err)
		}
		if err := e.Runtime.SetStatus(ctx, n, jails.Status{State: jails.StateRetired}); err != nil {
			return fmt.Errorf("retire %s: %w", n, err)
		}
		log.Info("release retired", "release", n, "step", "cleanup")
	}
	for _, n := range destroy {
		if err := e.Runtime.Destroy(ctx, n); err != nil {
			return fmt.Errorf("destroy %s: %w", n, err)
		}
		log.Info("release destroyed", "release", n, "step", "cleanup")
	}
	return nil
}

func (e *Executor) deploy(ctx context.Context, log *slog.Logger, d Desired, obs Observed, st Step) error {
	s := st.Spec
	spec := s.SpecHash()
	e.mu.Lock()
	stalled := e.stalled[spec]
	e.mu.Unlock()
	if stalled != nil {
		return stalled
	}
	start := e.now()
	log = log.With("release", st.Target, "sha", s.SHA)
	e.emit(Event{Kind: EventDeployStarted, Service: s.Service, Release: st.Target, Previous: st.Previous, SHA: s.SHA, Revision: d.Revision, Rollback: st.Kind == KindRollback})
	for _, n := range st.Destroy {
		if err := e.Runtime.Destroy(ctx, n); err != nil {
			return fmt.Errorf("destroy %s: %w", n, err)
		}
	}

	var target jails.Release
	if st.Existing {
		var ok bool
		if target, ok = find(obs.Releases, st.Target); !ok {
			return fmt.Errorf("release %s vanished", st.Target)
		}
	} else {
		var err error
		if target, err = e.create(ctx, s, st.Target); err != nil {
			if errors.Is(err, artifact.ErrChecksum) || errors.Is(err, artifact.ErrUnsafe) {
				err = &StalledError{Err: err}
				e.mu.Lock()
				if e.stalled == nil {
					e.stalled = map[string]error{}
				}
				e.stalled[spec] = err
				e.mu.Unlock()
			}
			e.emit(Event{Kind: EventFailed, Service: s.Service, Release: st.Target, SHA: s.SHA, Revision: d.Revision, Reason: err.Error(), Duration: e.now().Sub(start)})
			return err
		}
	}

	gateCtx, cancel := context.WithCancelCause(ctx)
	e.mu.Lock()
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

	if err := e.Runtime.Start(ctx, target.Name); err != nil {
		return e.fail(ctx, log, d, target, start, fmt.Errorf("start: %w", err), false)
	}
	log.Info("health gate", "step", "gate", "addr", target.Addr())
	if err := e.health(gateCtx, target, s.Health, s.Health.Deadline, true); err != nil {
		if errors.Is(context.Cause(gateCtx), ErrPreempted) && ctx.Err() == nil {
			log.Info("health gate preempted", "step", "gate")
			if err := e.Runtime.Stop(ctx, target.Name); err != nil {
				return fmt.Errorf("stop preempted %s: %w", target.Name, err)
			}
			return ErrPreempted
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return e.fail(ctx, log, d, target, start, fmt.Errorf("health gate: %w", err), false)
	}

	prev, hasPrev := find(obs.Releases, st.Previous)
	hasPrev = hasPrev && st.Previous != target.Name
	if err := e.Proxy.Set(ctx, DesiredRoute(s, target)); err != nil {
		return fmt.Errorf("switch route: %w", err)
	}
	switched := e.now()
	if err := e.setState(ctx, target, jails.StateLive, ""); err != nil {
		return err
	}
	log.Info("switched", "step", "switch", "previous", st.Previous)

	if s.Health.Watch > 0 {
		if err := e.health(ctx, target, s.Health, s.Health.Watch, false); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var back error
			if hasPrev {
				back = e.Proxy.Set(ctx, DesiredRoute(s, prev))
				if back == nil {
					back = e.setState(ctx, prev, jails.StateLive, "")
				}
			} else {
				back = e.Proxy.Remove(ctx, s.Service)
			}
			if back != nil {
				return fmt.Errorf("switch back after failed watch (%v): %w", err, back)
			}
			return e.fail(ctx, log, d, target, start, fmt.Errorf("watch: %w", err), true)
		}
	}

	if hasPrev {
		left := max(switched.Add(s.Drain).Sub(e.now()), 0)
		log.Info("draining", "step", "drain", "previous", prev.Name, "max", left)
		if err := e.Proxy.Drain(ctx, prev.Addr(), left); err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
		if err := e.Runtime.Stop(ctx, prev.Name); err != nil {
			return fmt.Errorf("stop previous %s: %w", prev.Name, err)
		}
		if err := e.setState(ctx, prev, jails.StateRetired, ""); err != nil {
			return err
		}
	}
	kind := EventLive
	if st.Kind == KindRollback {
		kind = EventRolledBack
	}
	e.emit(Event{Kind: kind, Service: s.Service, Release: target.Name, Previous: st.Previous, SHA: s.SHA, Revision: d.Revision,
		Duration: e.now().Sub(start), CommitTime: d.CommitTime, Rollback: st.Kind == KindRollback})
	log.Info("live", "step", "done", "duration", e.now().Sub(start))

	rels, err := e.Runtime.List(ctx)
	if err != nil {
		return fmt.Errorf("list releases: %w", err)
	}
	var mine []jails.Release
	for _, r := range rels {
		if r.Service == s.Service {
			mine = append(mine, r)
		}
	}
	stop, destroy := Cleanup(mine, target.Name, "", s.Retain)
	return e.cleanup(ctx, log, stop, destroy)
}

// create fetches the artifact and creates the release.
func (e *Executor) create(ctx context.Context, s *manifest.Service, name string) (jails.Release, error) {
	path, err := e.Fetcher.Fetch(ctx, s.Artifact.URL, s.Artifact.SHA256)
	if err != nil {
		return jails.Release{}, fmt.Errorf("fetch artifact: %w", err)
	}
	spec := jails.Spec{
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
	r, err := e.Runtime.Create(ctx, spec)
	if err != nil {
		return jails.Release{}, err // the runtime names the release
	}
	return r, nil
}

// fail stops the target, records the failure (so the backoff survives a
// restart) and reports it.
func (e *Executor) fail(ctx context.Context, log *slog.Logger, d Desired, target jails.Release, start time.Time, cause error, reverted bool) error {
	failures := 1
	if target.State == jails.StateFailed {
		failures = target.Failures + 1
	}
	if err := e.Runtime.Stop(ctx, target.Name); err != nil {
		return errors.Join(cause, fmt.Errorf("stop failed %s: %w", target.Name, err))
	}
	st := jails.Status{State: jails.StateFailed, Reason: cause.Error(), Failures: failures, FailedAt: e.now()}
	if err := e.Runtime.SetStatus(ctx, target.Name, st); err != nil {
		return errors.Join(cause, fmt.Errorf("mark %s failed: %w", target.Name, err))
	}
	kind := EventFailed
	if reverted {
		kind = EventReverted
	}
	log.Warn("deploy failed", "step", string(kind), "reason", cause.Error(), "failures", failures)
	e.emit(Event{Kind: kind, Service: target.Service, Release: target.Name, SHA: target.SHA, Revision: d.Revision,
		Reason: cause.Error(), Duration: e.now().Sub(start), HealthFailure: true})
	return cause
}

// health probes r every interval for up to window. As a gate (gate=true) it
// succeeds at threshold consecutive 2xx answers and fails at the deadline; as
// a watch it succeeds when the window ends and fails at threshold consecutive
// failed probes. Either way a release whose process has exited fails at once.
func (e *Executor) health(ctx context.Context, r jails.Release, h manifest.Health, window time.Duration, gate bool) error {
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
	byService := map[string][]jails.Release{}
	for _, r := range o.Releases {
		byService[r.Service] = append(byService[r.Service], r)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []ServiceStatus
	for i := range d.Services {
		s := &d.Services[i]
		rels := byService[s.Service]
		route, routed := o.Routes[s.Service]
		live, hasLive := LiveRelease(rels, route, routed)
		st := ServiceStatus{Service: s.Service, DesiredSHA: s.SHA, State: "pending"}
		if hasLive {
			st.LiveSHA, st.LiveRelease = live.SHA, live.Name
			st.Converged = routed && live.Spec == s.SpecHash() && live.Running
		}
		if t, ok := find(rels, s.ReleaseName()); ok {
			st.State = string(t.State)
			if t.State == jails.StateFailed {
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
