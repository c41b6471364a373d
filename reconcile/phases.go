package reconcile

import (
	"context"
	"maps"
	"sync"
	"time"
)

// Phase names where a deploy's time goes: the phase label of
// jailkeeper_deploy_phase_seconds and the keys of a LastDeploy.
// PhaseMigrate is in migrate.go, with its step.
type Phase string

// The phases of a deploy, in order.
const (
	PhaseFetch  Phase = "fetch"  // artifact download or cache hit, within the create step
	PhaseCreate Phase = "create" // the create step without its fetch
	PhaseStart  Phase = "start"
	PhaseGate   Phase = "gate"
	PhaseSwitch Phase = "switch"
	PhaseWatch  Phase = "watch"
	PhaseDrain  Phase = "drain" // drain and stop of the previous release
)

// Phases lists every Phase, in deploy order.
var Phases = []Phase{PhaseFetch, PhaseCreate, PhaseStart, PhaseMigrate, PhaseGate, PhaseCanary, PhaseSwitch, PhaseWatch, PhaseDrain}

// stepPhase maps a deploy step to the phase it times; steps not listed
// (prepare, promote, report, collect) are bookkeeping and time no phase.
var stepPhase = map[string]Phase{
	"create":  PhaseCreate,
	"start":   PhaseStart,
	"migrate": PhaseMigrate,
	"gate":    PhaseGate,
	"canary":  PhaseCanary,
	"switch":  PhaseSwitch,
	"watch":   PhaseWatch,
	"retire":  PhaseDrain,
}

// PhaseTiming is one phase of one deploy, as it ends (whether its step
// succeeded or not). It carries no SHA and no error text: it feeds a
// histogram whose only label is the phase.
type PhaseTiming struct {
	Service  string
	Release  string
	Phase    Phase
	Duration time.Duration
}

// LastDeploy is where the time of a service's last deploy went, for
// /status. Phases holds seconds per phase that ran; Total is from the
// deploy's start to its end, waits for a Parallel slot included, so it can
// exceed the sum of the phases.
type LastDeploy struct {
	Release string            `json:"release"`
	Phases  map[Phase]float64 `json:"phases"`
	Total   float64           `json:"total"`
	// Trigger is what asked for the pass that started the deploy
	// (Desired.Trigger: webhook, sync, poll, start, retry) and Wait the
	// seconds from its arrival to the deploy's start: the poll of the
	// deploy repo and the wait for the pass. A push webhook shows as
	// trigger "webhook" with a wait of a poll, not of a poll interval.
	Trigger string  `json:"trigger,omitempty"`
	Wait    float64 `json:"wait,omitempty"`
	// Live is the seconds from the commit seen (Desired.Seen) to traffic
	// on the release; 0 when traffic did not move to it.
	Live float64 `json:"live,omitempty"`
}

// phaseClock collects one deploy's phase timings as its steps run.
type phaseClock struct {
	mu     sync.Mutex
	phases map[Phase]time.Duration
	fetch  time.Duration // fetches of the step running now
}

type phaseClockKey struct{}

// timedFetcher times each Fetch made under a deploy step into that
// deploy's phaseClock, so that the create step's fetch and create are
// timed apart without the create step knowing.
type timedFetcher struct {
	f   Fetcher
	now func() time.Time
}

func (t timedFetcher) Fetch(ctx context.Context, url, sum string) (string, error) {
	start := t.now()
	path, err := t.f.Fetch(ctx, url, sum)
	if c, ok := ctx.Value(phaseClockKey{}).(*phaseClock); ok {
		c.mu.Lock()
		c.fetch += t.now().Sub(start)
		c.mu.Unlock()
	}
	return path, err
}

// timeStep runs step s of dp and reports the phase it times.
func (e *Executor) timeStep(ctx context.Context, dp *deployment, s deployStep, run func(context.Context) error) error {
	p, timed := stepPhase[s.name]
	if !timed || (p == PhaseCreate && dp.st.Existing) || (p == PhaseDrain && !dp.hasPrev) ||
		(p == PhaseMigrate && !dp.migrates()) || (p == PhaseCanary && !dp.canaries()) {
		return run(ctx)
	}
	if dp.clock == nil {
		dp.clock = &phaseClock{phases: map[Phase]time.Duration{}}
	}
	c := dp.clock
	c.mu.Lock()
	c.fetch = 0
	c.mu.Unlock()
	start := e.now()
	err := run(context.WithValue(ctx, phaseClockKey{}, c))
	took := e.now().Sub(start)
	c.mu.Lock()
	fetch := c.fetch
	c.mu.Unlock()
	if fetch > 0 {
		e.phaseDone(dp, PhaseFetch, fetch)
		took = max(took-fetch, 0)
	}
	e.phaseDone(dp, p, took)
	return err
}

func (e *Executor) phaseDone(dp *deployment, p Phase, d time.Duration) {
	dp.clock.mu.Lock()
	dp.clock.phases[p] += d
	dp.clock.mu.Unlock()
	e.phases(PhaseTiming{Service: dp.st.Service, Release: dp.st.Target, Phase: p, Duration: d})
}

// deployDone records dp's breakdown as its service's LastDeploy. A deploy
// that timed no phase (abandoned before its create) leaves the last one.
func (e *Executor) deployDone(dp *deployment) {
	if dp.clock == nil {
		return
	}
	dp.clock.mu.Lock()
	ld := LastDeploy{Release: dp.st.Target, Phases: map[Phase]float64{}, Total: e.now().Sub(dp.start).Seconds()}
	ld.Trigger = dp.d.Trigger
	if !dp.d.Triggered.IsZero() {
		ld.Wait = max(dp.start.Sub(dp.d.Triggered), 0).Seconds()
	}
	if !dp.d.Seen.IsZero() && dp.switched.After(dp.start) {
		ld.Live = max(dp.switched.Sub(dp.d.Seen), 0).Seconds()
	}
	for p, d := range dp.clock.phases {
		ld.Phases[p] = d.Seconds()
	}
	dp.clock.mu.Unlock()
	e.mu.Lock()
	e.lastDeploy[dp.st.Service] = ld
	e.mu.Unlock()
}

// lastDeployLocked returns a copy of service's LastDeploy; e.mu must be held.
func (e *Executor) lastDeployLocked(service string) *LastDeploy {
	ld, ok := e.lastDeploy[service]
	if !ok {
		return nil
	}
	ld.Phases = maps.Clone(ld.Phases)
	return &ld
}
