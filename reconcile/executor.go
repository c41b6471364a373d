package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"syscall"
	"time"

	"github.com/jailkeeper/jailkeeper/release"
)

// ErrPreempted ends a deploy that a newer commit made pointless.
var ErrPreempted = errors.New("preempted by a newer commit")

// StalledError is a failure that retrying cannot fix: the deploy repo needs a
// new commit (a checksum mismatch, an unsafe tarball). The Executor does not
// try the same spec again while it runs.
type StalledError struct{ Err error }

func (e *StalledError) Error() string { return e.Err.Error() + " (needs a new commit)" }
func (e *StalledError) Unwrap() error { return e.Err }

// HostError is a failure of the host, not of the release: its address
// held by another process (release.ErrAddressInUse), an executable busy
// (release.ErrHostBusy), a full disk (ENOSPC, EDQUOT). The release is not
// marked failed. A deploy whose address was in use is retried at once on
// another address, AddressTries times in all, then backs off like a failed
// create; one that met a busy host is tried again by the next pass; a
// create that met a full disk is retried on TransientBackoff's schedule.
type HostError struct {
	Err error
	// readdress: the target was destroyed so that a new create picks
	// another address.
	readdress bool
}

func (e *HostError) Error() string { return e.Err.Error() + " (host fault: release not marked failed)" }
func (e *HostError) Unwrap() error { return e.Err }

// AddressTries is how many addresses one deploy tries when each turns
// out to be held by another process.
const AddressTries = 3

// hostFault reports whether err is the host's fault, not the release's.
func hostFault(err error) bool {
	return errors.Is(err, release.ErrAddressInUse) || errors.Is(err, release.ErrHostBusy) || diskFull(err)
}

// diskFull reports whether err is a full disk or an exceeded quota
// (ENOSPC, EDQUOT: the artifact cache, a release's files): the host's
// fault, which passes once an operator makes room, so it is retried on
// TransientBackoff's schedule and never blamed on the release.
func diskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// DefaultCreateTimeout bounds one Runtime.Create. It is no agent config
// key (DESIGN's agent config has none): a create that installs a large
// tarball into a fresh clone takes seconds to a few minutes, and one that
// takes longer is stuck or hostile (a tarball built to be slow to extract),
// so it fails and backs off like any failed create instead of holding a
// parallel slot.
const DefaultCreateTimeout = 10 * time.Minute

// Options configure an Executor. Runtime and Proxy are required; Prober and
// Fetcher are needed by passes that deploy, not by PlanPass.
type Options struct {
	Runtime Runtime
	Proxy   Proxy
	Prober  Prober
	Fetcher Fetcher
	// Log receives debug and info lines; nil discards them.
	Log *slog.Logger
	// Now is the clock for stored timestamps and backoff; nil is time.Now.
	Now func() time.Time
	// Parallel is how many creates and starts run at once (at least 1).
	// Gates and watches never hold a slot.
	Parallel int
	// SecretsDir is where manifests' env_file names are resolved.
	SecretsDir string
	// Events receives every state change; it must not block for long.
	Events func(Event)
	// CreateTimeout bounds one Runtime.Create; 0 is DefaultCreateTimeout.
	CreateTimeout time.Duration
	// Phases receives the timing of each deploy phase as it ends; it
	// must not block for long.
	Phases func(PhaseTiming)
	// Kick is called, when set, after a step that outlived its pass (see
	// Pass) has ended, so that the caller runs a pass that reports it. It
	// must not block. It is also called when a failed fetch or create's
	// backoff ends, so that the retry need not wait for the next poll.
	Kick func()
	// AfterFunc runs f after d, for those retry wake-ups; nil is
	// time.AfterFunc. Tests record instead.
	AfterFunc func(d time.Duration, f func())
	// Jitter returns a number in [0, 1) that shortens a transient
	// failure's backoff by up to TransientJitter of it; nil is
	// math/rand/v2's Float64.
	Jitter func() float64
	// Hold says what keeps a service from changing now (a suspend, a
	// sync window); nil holds nothing. See Hold and Gate.
	Hold HoldFunc
	// Rebase bounds the roll of services to a newer template snapshot
	// (see PlanRebase); RebaseResumedAt, when set, says when an operator
	// last resumed a paused rebase.
	Rebase          RebaseOptions
	RebaseResumedAt func() time.Time
}

// Executor carries out plans. Build it with NewExecutor. Passes must not
// overlap (the agent single-flights them); Preempt, Memory and Wait may be
// called concurrently with a pass.
type Executor struct {
	rt            Runtime
	proxy         Proxy
	prober        Prober
	fetcher       Fetcher
	log           *slog.Logger
	now           func() time.Time
	secretsDir    string
	events        func(Event)
	phases        func(PhaseTiming)
	createTimeout time.Duration
	kick          func()
	afterFunc     func(time.Duration, func())
	jitter        func() float64
	slots         chan struct{} // one token per create or start in progress
	running       sync.WaitGroup
	standby       standbyTimers // passes asked for at standby expiries

	// Memory that only saves work; losing it on a restart costs a retry.
	mu      sync.Mutex
	jobs    map[string]*job           // service -> step in flight
	latest  map[string]string         // service -> newest desired spec seen
	seq     uint64                    // Seq of the desired state in latest
	newer   chan struct{}             // closed when a newer desired state is installed
	fails   map[string]*createFailure // spec hash -> failed fetches/creates
	lastErr map[string]string         // service -> message of its last step
	// service -> its last deploy's phases
	lastDeploy map[string]LastDeploy

	holds  holdState
	rebase rebaseState
}

// NewExecutor returns an Executor that uses o's parts.
func NewExecutor(o Options) *Executor {
	e := &Executor{
		rt: o.Runtime, proxy: o.Proxy, prober: o.Prober, fetcher: o.Fetcher,
		log: o.Log, now: o.Now, secretsDir: o.SecretsDir, events: o.Events,
		createTimeout: o.CreateTimeout, kick: o.Kick, afterFunc: o.AfterFunc, jitter: o.Jitter,
		slots:   make(chan struct{}, max(o.Parallel, 1)),
		jobs:    map[string]*job{},
		newer:   make(chan struct{}),
		fails:   map[string]*createFailure{},
		lastErr: map[string]string{},
		phases:  o.Phases,

		lastDeploy: map[string]LastDeploy{},
		holds:      holdState{fn: o.Hold},
		rebase:     rebaseState{opts: o.Rebase, resumedAt: o.RebaseResumedAt},
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.events == nil {
		e.events = func(Event) {}
	}
	if e.afterFunc == nil {
		e.afterFunc = func(d time.Duration, f func()) { time.AfterFunc(d, f) }
	}
	if e.jitter == nil {
		e.jitter = rand.Float64
	}
	if e.phases == nil {
		e.phases = func(PhaseTiming) {}
	}
	if e.fetcher != nil {
		e.fetcher = timedFetcher{f: e.fetcher, now: e.now}
	}
	if e.createTimeout <= 0 {
		e.createTimeout = DefaultCreateTimeout
	}
	return e
}

func (e *Executor) emit(ev Event) {
	ev.Time = e.now()
	e.events(ev)
}

// Observe reads the releases from the runtime and the routes from the
// proxy, and adds the Executor's Memory. The memory is read first: a step
// that ends meanwhile is then seen either in flight or in what it left.
func (e *Executor) Observe(ctx context.Context) (Observed, error) {
	mem := e.Memory()
	rels, err := e.rt.List(ctx)
	if err != nil {
		return Observed{}, fmt.Errorf("list releases: %w", err)
	}
	routes, err := e.proxy.Routes(ctx)
	if err != nil {
		return Observed{}, fmt.Errorf("read routes: %w", err)
	}
	return Observed{Releases: rels, Routes: routes, Memory: mem}, nil
}

// PlanPass observes and plans without changing anything.
func (e *Executor) PlanPass(ctx context.Context, d Desired) ([]Step, error) {
	obs, err := e.Observe(ctx)
	if err != nil {
		return nil, err
	}
	now := e.now()
	rp := e.planRebase(ctx, d, obs)
	d = rp.Desired
	obs.Holds = Holds(e.holds.fn, d, obs, now)
	steps, err := Plan(d, obs, now)
	return rp.Annotate(steps), err
}

// Preempt tells the executor about a newer desired state while a pass runs:
// deploys of services whose desired spec differs in d, or that d no longer
// has, are cancelled unless they have switched traffic already, and the
// running pass stops waiting for the steps d still wants (see Pass). Safe
// to call during Pass.
func (e *Executor) Preempt(d Desired) {
	e.install(d)
}

// install makes d the newest desired state unless a newer one (by Seq) is
// installed already, and cancels the deploys it supersedes. It returns a
// channel that is closed once a desired state newer than d is installed.
func (e *Executor) install(d Desired) <-chan struct{} {
	d = e.withResolved(d)
	want := map[string]string{}
	for i := range d.Services {
		want[d.Services[i].Service] = d.Services[i].SpecHash()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if d.Seq != 0 && d.Seq < e.seq {
		return closed
	}
	e.seq, e.latest = d.Seq, want
	for svc, j := range e.jobs {
		if want[svc] != j.spec && j.preemptible {
			j.cancel(ErrPreempted)
		}
	}
	close(e.newer)
	e.newer = make(chan struct{})
	return e.newer
}

var closed = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// supersededLocked reports whether a newer desired state wants another spec.
func (e *Executor) supersededLocked(service, spec string) bool {
	return e.latest != nil && e.latest[service] != spec
}

// Pass observes, plans and converges every service: each service's step
// runs on its own, and a service whose step from an earlier pass still runs
// is left alone (KindBusy). Pass returns once its steps have ended, or, as
// soon as a newer desired state is installed (Preempt), once the steps that
// state cancelled have ended: steps it still wants (a slow create, a watch)
// go on under ctx, so that the next pass can start and deploy other
// services meanwhile; Wait waits for them. The error joins the errors of
// the steps waited for (and is ErrPruneAll when the plan was refused); the
// statuses are those after the pass.
func (e *Executor) Pass(ctx context.Context, d Desired) (Result, error) {
	res := Result{Revision: d.Revision}
	newer := e.install(d) // before any I/O, so a Preempt during it counts
	obs, err := e.Observe(ctx)
	if err != nil {
		return res, err
	}
	now := e.now()
	pinned := d
	rp := e.planRebase(ctx, d, obs)
	d = rp.Desired
	e.resolvedDesired(pinned, rp)
	obs.Holds = Holds(e.holds.fn, d, obs, now)
	steps, planErr := Plan(d, obs, now)
	steps = rp.Annotate(steps)
	res.Steps = steps
	res.Rebase = rp.Templates
	var jobs []*job
	for _, st := range steps {
		if st.Kind == KindNone && st.changesNothing() {
			e.settled(st.Service) // what its step would do, without a goroutine
			continue
		}
		if j := e.launch(ctx, &deployment{d: d, obs: obs, st: st}); j != nil {
			jobs = append(jobs, j)
		}
	}
	errs := e.await(jobs, newer)
	after := obs
	if !idle(steps) {
		if after, err = e.Observe(ctx); err != nil {
			return res, errors.Join(append(errs, planErr, err)...)
		}
	}
	res.Releases = after.Releases
	res.Services = rp.annotateStatus(heldStatus(e.statuses(d, after, planErr), steps, obs.Holds))
	e.wakeAtWindow(steps, obs.Holds)
	if rp.More() && rp.rolls(steps) && e.kick != nil {
		e.kick() // the next service of the rebase need not wait for a poll
	}
	return res, errors.Join(append(errs, planErr)...)
}

// Wait blocks until every step in flight has ended, those that outlived
// their pass included.
func (e *Executor) Wait() { e.running.Wait() }

// job is one service's step in flight.
type job struct {
	service, spec, release string
	kind                   Kind
	ctx                    context.Context // cancelled with ErrPreempted by a newer commit
	cancel                 context.CancelCauseFunc
	done                   chan struct{} // closed when it has ended; err is set then
	err                    error

	// Under Executor.mu:
	preemptible bool // a newer commit may still cancel it (until its switch)
	detached    bool // its pass stopped waiting for it
	// canary is the deploy's canary once it began, for Memory.
	canary *CanaryStatus
}

// launch starts dp's step in its own goroutine and returns its job, or nil
// for a busy service, which is left alone.
func (e *Executor) launch(ctx context.Context, dp *deployment) *job {
	st := dp.st
	if st.Kind == KindBusy {
		return nil
	}
	j := &job{service: st.Service, release: st.Target, kind: st.Kind, done: make(chan struct{})}
	if st.Spec != nil {
		j.spec = st.Spec.SpecHash()
	}
	j.ctx, j.cancel = context.WithCancelCause(ctx)
	dp.job, dp.e = j, e
	e.mu.Lock()
	if e.jobs[st.Service] != nil {
		e.mu.Unlock()
		j.cancel(nil)
		return nil // Observe raced with an earlier pass's step: next pass
	}
	e.jobs[st.Service] = j
	j.preemptible = st.Kind == KindDeploy || st.Kind == KindRollback
	if j.preemptible && e.supersededLocked(st.Service, j.spec) {
		j.cancel(ErrPreempted) // a newer commit came first: the deploy never starts
	}
	e.mu.Unlock()
	e.running.Add(1)
	go func() {
		defer e.running.Done()
		err := e.apply(ctx, dp)
		j.cancel(nil)
		e.mu.Lock()
		if e.jobs[j.service] == j {
			delete(e.jobs, j.service)
		}
		if err != nil {
			e.lastErr[j.service] = err.Error()
			j.err = fmt.Errorf("%s: %w", j.service, err)
		} else {
			delete(e.lastErr, j.service)
		}
		kick := j.detached && e.kick != nil
		e.mu.Unlock()
		close(j.done)
		if kick {
			e.kick()
		}
	}()
	return j
}

// await waits for jobs until each has ended or, once a newer desired state
// is installed, has been left to run on (see Pass). It returns the errors
// of those that ended.
func (e *Executor) await(jobs []*job, newer <-chan struct{}) []error {
	var errs []error
	for _, j := range jobs {
		select {
		case <-j.done:
		case <-newer:
			if e.detach(j) {
				continue
			}
			<-j.done
		}
		errs = append(errs, j.err)
	}
	return errs
}

// detach lets j run on past its pass unless it has ended or a newer commit
// cancelled it (then it ends soon, and the pass waits for it).
func (e *Executor) detach(j *job) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	select {
	case <-j.done:
		return false
	default:
	}
	if errors.Is(context.Cause(j.ctx), ErrPreempted) {
		return false
	}
	j.detached = true
	return true
}

// commit ends j's preemptible part: from here on a newer commit no longer
// cancels it. It reports false when the deploy was preempted (cancelled, or
// a newer desired state wants another spec) and must be abandoned.
func (e *Executor) commit(j *job) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !j.preemptible {
		return true
	}
	if errors.Is(context.Cause(j.ctx), ErrPreempted) || e.supersededLocked(j.service, j.spec) {
		return false
	}
	j.preemptible = false
	return true
}

// preempted reports whether a newer commit cancelled j, or wants another
// spec for its service while j can still be abandoned.
func (e *Executor) preempted(j *job) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !j.preemptible {
		return false
	}
	return errors.Is(context.Cause(j.ctx), ErrPreempted) || e.supersededLocked(j.service, j.spec)
}

// withSlot runs fn holding one of the Parallel slots, waiting for one until
// ctx ends.
func (e *Executor) withSlot(ctx context.Context, fn func() error) error {
	select {
	case e.slots <- struct{}{}:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	defer func() { <-e.slots }()
	return fn()
}
