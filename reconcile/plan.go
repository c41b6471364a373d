package reconcile

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jailkeeper/jailkeeper/caddy"
	"github.com/jailkeeper/jailkeeper/manifest"
	"github.com/jailkeeper/jailkeeper/release"
)

// ErrPruneAll refuses a pass that would prune every service that runs: an
// emptied or misconfigured deploy repo (a wrong path, a hosts: typo) must not
// take the host down. Renaming the only service of a host takes two commits.
var ErrPruneAll = errors.New("refusing to prune every service: the deploy repo wants none of the services this host runs; remove services one at a time, or stop the agent to decommission the host")

// DefaultStreamCloseDelay keeps WebSockets open across Caddy reloads.
const DefaultStreamCloseDelay = 10 * time.Minute

// Desired is the state the deploy repo asks for, already filtered for this host.
type Desired struct {
	Revision   string
	CommitTime time.Time
	Services   []manifest.Service
	// Seq orders desired states: a Pass or Preempt with a lower Seq than
	// one already seen does not override it. Zero means unordered.
	Seq uint64
	// Trigger names what asked for the poll that loaded this state
	// (webhook, sync, poll, start, retry) and Triggered is when it
	// arrived; Seen is when the poll returned it: the commit seen. They
	// only feed LastDeploy; zero values mean unknown.
	Trigger   string
	Triggered time.Time
	Seen      time.Time
	// DefaultStandby is the agent's defaults.standby, for manifests that
	// set no standby; zero turns standby off for them.
	DefaultStandby time.Duration
}

// Observed is what runs: releases from the runtime, routes from Caddy, and
// the Executor's Memory of what the host does not show.
type Observed struct {
	Releases []release.Release
	Routes   map[string]caddy.Route
	Memory   Memory
	// Holds are the services that must not change now (see Hold).
	Holds map[string]Hold
}

// Kind is what a Step does.
type Kind string

// The kinds of Step.
const (
	KindNone     Kind = "none"     // converged: at most fix the route and clean up
	KindDeploy   Kind = "deploy"   // make Target live; create it unless Existing
	KindRollback Kind = "rollback" // make the retained Target live again
	KindBackoff  Kind = "backoff"  // Target failed; wait until RetryAt
	KindWatch    Kind = "watch"    // Target was switched to; finish its watch
	KindPrune    Kind = "prune"    // manifest gone: remove route and releases
	KindStalled  Kind = "stalled"  // Target cannot be created until a new commit
	KindBusy     Kind = "busy"     // a step of an earlier pass still runs; leave it
)

// Step is the plan for one service.
type Step struct {
	Service  string
	Kind     Kind
	Target   string // release to be live after the step ("" for prune)
	Existing bool   // Target is on disk: no download, no clone
	Previous string // release live before the step, if any
	// Restore is the last known-good release when it is not running or not
	// routed: it is started, gated and routed before anything else.
	Restore string
	// Unroute removes a route that points at no good release (a failed one
	// after a crash) when there is nothing to route to instead.
	Unroute bool
	// Route is the route the step wants; set on KindNone when Caddy's differs.
	Route *caddy.Route
	// Stop lists releases to stop and mark retired (running but not live).
	Stop []string
	// Destroy lists releases to remove: beyond retain, older failures,
	// leftovers of interrupted creates; for prune, all of them.
	Destroy []string
	// AfterStop and AfterDestroy are what a deploy, rollback or watch
	// stops and destroys once Target is live and Previous retired: the
	// Cleanup rule applied to the releases as the step leaves them.
	AfterStop    []string
	AfterDestroy []string
	Reason       string
	RetryAt      time.Time
	// Spec is the desired manifest (nil for prune).
	Spec *manifest.Service `json:"-"`
	// Hot is set on a rollback to a running standby release: one probe
	// and one route switch, no start and no full gate (see standby.go).
	Hot bool
	// StandbyFor is how long Previous keeps running once the step's
	// watch has passed (0: it is stopped and retired then).
	StandbyFor time.Duration
	// Standby is the release kept running for an instant rollback, if
	// any, and when it is stopped and retired.
	Standby *StandbyRelease
	// Rebase says where the service's rebase is (see RebasePlan), "" when
	// it is on its template's newest snapshot.
	Rebase string
}

// String renders the step on one line, as `jailkeeper plan` prints it.
func (s Step) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", s.Service, s.Kind)
	if s.Target != "" {
		fmt.Fprintf(&b, " %s", s.Target)
	}
	if s.Existing && s.Kind == KindDeploy {
		b.WriteString(" (on disk)")
	}
	if s.Hot {
		b.WriteString(" (standby: one probe, one route switch)")
	}
	if s.Previous != "" && s.Previous != s.Target && s.Kind != KindBackoff && s.Kind != KindStalled && s.Kind != KindBusy {
		fmt.Fprintf(&b, " replacing %s", s.Previous)
	}
	s.canaryString(&b) // canary.go
	if s.Restore != "" {
		fmt.Fprintf(&b, "; first restore %s", s.Restore)
	}
	if s.Unroute {
		b.WriteString("; remove route")
	}
	if s.Route != nil {
		fmt.Fprintf(&b, "; route %s -> %s", strings.Join(s.Route.Hostnames, ","), s.Route.Upstream)
	}
	if len(s.Stop) > 0 {
		fmt.Fprintf(&b, "; stop %s", strings.Join(s.Stop, ","))
	}
	if len(s.Destroy) > 0 {
		fmt.Fprintf(&b, "; destroy %s", strings.Join(s.Destroy, ","))
	}
	s.standbyString(&b)
	if len(s.AfterStop) > 0 {
		fmt.Fprintf(&b, "; then stop %s", strings.Join(s.AfterStop, ","))
	}
	if len(s.AfterDestroy) > 0 {
		fmt.Fprintf(&b, "; then destroy %s", strings.Join(s.AfterDestroy, ","))
	}
	if !s.RetryAt.IsZero() {
		fmt.Fprintf(&b, "; retry after %s", s.RetryAt.UTC().Format(time.RFC3339))
	}
	if s.Reason != "" {
		fmt.Fprintf(&b, " (%s)", s.Reason)
	}
	if s.Rebase != "" {
		fmt.Fprintf(&b, " [%s]", s.Rebase)
	}
	return b.String()
}

// Backoff is how long a failed spec waits before its next try: 1m doubling
// with each consecutive failure, at most 1h.
func Backoff(failures int) time.Duration {
	d := time.Minute
	for i := 1; i < failures && d < time.Hour; i++ {
		d *= 2
	}
	return min(d, time.Hour)
}

// TransientBackoff is how long a spec whose artifact fetch failed for now
// (artifact.ErrTransient: the store down, slow or overloaded, a 404 before
// CI has published) waits before its next try: 5s doubling with each
// consecutive failure, at most 5m. The Executor shortens it by up to
// TransientJitter, never lengthens it, so a store back after an outage of
// 10s is fetched from within 15s of the first failure.
func TransientBackoff(failures int) time.Duration {
	d := 5 * time.Second
	for i := 1; i < failures && d < 5*time.Minute; i++ {
		d *= 2
	}
	return min(d, 5*time.Minute)
}

// TransientJitter is the largest fraction of a TransientBackoff that
// jitter takes off.
const TransientJitter = 0.2

// DesiredRoute is the route a service wants to its release.
func DesiredRoute(s *manifest.Service, r release.Release) caddy.Route {
	hosts := slices.Clone(s.Hostnames)
	slices.Sort(hosts)
	return caddy.Route{
		Service:          s.Service,
		Hostnames:        hosts,
		Upstream:         r.Addr(),
		StreamCloseDelay: max(DefaultStreamCloseDelay, s.Drain),
	}
}

func routeEqual(a, b caddy.Route) bool {
	ha, hb := slices.Clone(a.Hostnames), slices.Clone(b.Hostnames)
	slices.Sort(ha)
	slices.Sort(hb)
	return !a.Drifted && !b.Drifted && a.Service == b.Service && a.Upstream == b.Upstream &&
		a.StreamCloseDelay == b.StreamCloseDelay && slices.Equal(ha, hb)
}

// Plan decides one Step per service, sorted by service. It does no I/O and
// reads no clock: now is an argument. It returns ErrPruneAll, and no steps,
// when none of the services that run is still desired. What the Executor
// remembers (o.Memory) counts as observed: a service with a step in flight
// is busy, and a spec whose fetch or create failed backs off or stalls as
// the Executor would.
func Plan(d Desired, o Observed, now time.Time) ([]Step, error) {
	byService := map[string][]release.Release{}
	for _, r := range o.Releases {
		byService[r.Service] = append(byService[r.Service], r)
	}
	running := map[string]bool{}
	for svc := range byService {
		running[svc] = true
	}
	for svc := range o.Routes {
		running[svc] = true
	}
	if len(running) > 0 && !slices.ContainsFunc(d.Services, func(s manifest.Service) bool { return running[s.Service] }) {
		return nil, ErrPruneAll
	}
	busy := map[string]InFlight{}
	for _, f := range o.Memory.InFlight {
		busy[f.Service] = f
	}
	failures := map[string]CreateFailure{}
	for _, f := range o.Memory.CreateFailures {
		failures[f.Spec] = f
	}
	var steps []Step
	wanted := map[string]bool{}
	for i := range d.Services {
		s := &d.Services[i]
		wanted[s.Service] = true
		if f, ok := busy[s.Service]; ok {
			steps = append(steps, busyStep(f, s))
			continue
		}
		v := view{rels: byService[s.Service], standby: s.StandbyOr(d.DefaultStandby)}
		v.route, v.routed = o.Routes[s.Service]
		if f, ok := failures[s.SpecHash()]; ok {
			v.failure = &f
		}
		steps = append(steps, holdStep(planService(s, v, now), s, v, o.Holds[s.Service]))
	}
	for svc := range running {
		if wanted[svc] {
			continue
		}
		if f, ok := busy[svc]; ok {
			steps = append(steps, busyStep(f, nil))
			continue
		}
		st := Step{Service: svc, Kind: KindPrune, Reason: "manifest removed"}
		for _, r := range byService[svc] {
			st.Destroy = append(st.Destroy, r.Name)
		}
		slices.Sort(st.Destroy)
		steps = append(steps, holdPrune(st, o.Holds[svc]))
	}
	slices.SortFunc(steps, func(a, b Step) int { return strings.Compare(a.Service, b.Service) })
	return steps, nil
}

// KnownGood finds the release that serves the service, or should: the one
// Caddy routes to unless it failed (Caddy's config is the source of truth),
// else the one whose stored state is live (Caddy lost its config, or a switch
// back was interrupted). Among several of those the desired spec wins, then
// the newest, so the answer does not depend on the order of rels. routed
// reports whether Caddy routes to it.
func KnownGood(rels []release.Release, route caddy.Route, hasRoute bool, want string) (good release.Release, routed, ok bool) {
	var best *release.Release
	for i := range rels {
		r := &rels[i]
		if r.State == release.StateLive && (best == nil || preferred(r, best, want)) {
			best = r
		}
	}
	if hasRoute {
		for _, r := range rels {
			if !r.IP.IsValid() || r.Addr() != route.Upstream || r.State == release.StateFailed {
				continue
			}
			// A release switched to but not yet through its watch that has
			// stopped (a reboot) is no known-good while a live one exists.
			if r.State != release.StateLive && !r.Running && best != nil && best.Name != r.Name {
				break
			}
			return r, true, true
		}
	}
	if best == nil {
		return release.Release{}, false, false
	}
	return *best, hasRoute && best.IP.IsValid() && best.Addr() == route.Upstream, true
}

// preferred orders candidates for KnownGood: desired spec, newest, name.
func preferred(a, b *release.Release, want string) bool {
	if (a.Spec == want) != (b.Spec == want) {
		return a.Spec == want
	}
	if c := a.Created.Compare(b.Created); c != 0 {
		return c > 0
	}
	return a.Name > b.Name
}

// busyStep leaves a service alone while a step of an earlier pass runs (s
// is nil when its manifest is gone). A pass after that step's end takes
// the service on.
func busyStep(f InFlight, s *manifest.Service) Step {
	st := Step{Service: f.Service, Kind: KindBusy, Target: f.Release, Spec: s, Reason: string(f.Step) + " in progress"}
	switch {
	case s == nil:
		st.Reason += "; manifest removed"
	case s.ReleaseName() != f.Release:
		st.Reason += "; " + s.ReleaseName() + " waits for it"
	}
	return st
}

// view is what planService sees of one service.
type view struct {
	rels    []release.Release
	route   caddy.Route
	routed  bool
	failure *CreateFailure // of the desired spec, if its fetch or create failed
	standby time.Duration  // the service's standby
}

func planService(s *manifest.Service, v view, now time.Time) Step {
	rels, route, hasRoute := v.rels, v.route, v.routed
	want, name := s.SpecAndName()
	st := Step{Service: s.Service, Spec: s}
	good, routed, hasGood := KnownGood(rels, route, hasRoute, want)
	var target *release.Release
	for i := range rels {
		if rels[i].Spec == want && rels[i].Name == name {
			target = &rels[i]
		}
	}
	current := hasGood && good.Spec == want
	switch {
	case current && good.Running && routed && good.State != release.StateLive:
		// Switched to, but its watch never finished (the agent stopped).
		st.Kind = KindWatch
		st.Target = good.Name
		if prev, ok := previousLive(rels, good.Name, want); ok {
			st.Previous = prev.Name
		}
	case current && good.State == release.StateLive:
		st.Kind = KindNone
		st.Target = good.Name
		if !good.Running {
			// Stopped (a crash, a reboot): start, gate and route it again;
			// no new deploy.
			st.Restore = good.Name
			st.Reason = "not running"
		} else if dr := DesiredRoute(s, good); !routed || !routeEqual(dr, route) {
			st.Route = &dr
			if !routed {
				st.Reason = "route missing in Caddy"
			}
		}
	case current:
		// Switched to, its watch interrupted, and then it stopped too: no
		// live release to fall back on, so deploy it again.
		st.Kind = KindDeploy
		st.Target = good.Name
		st.Existing = true
		st.Reason = "not running"
	case target == nil || target.State == release.StateCreating:
		st.Kind = KindDeploy
		st.Target = name
		if target != nil {
			st.Destroy = append(st.Destroy, target.Name)
			st.Reason = "previous create was interrupted"
		}
		if f := v.failure; f != nil {
			createVerdict(&st, f, now)
		}
	case target.State == release.StateFailed:
		retry := target.FailedAt.Add(Backoff(target.Failures))
		st.Target = target.Name
		st.Existing = true
		if now.Before(retry) {
			st.Kind = KindBackoff
			st.RetryAt = retry
			st.Reason = fmt.Sprintf("failed %d time(s): %s", target.Failures, target.Reason)
			if target.Running {
				st.Stop = []string{target.Name} // a crash between marking and stopping
			}
		} else {
			st.Kind = KindDeploy
			st.Reason = fmt.Sprintf("retry after %d failure(s)", target.Failures)
		}
	case target.State == release.StateRetired || target.State == release.StateStandby:
		st.Kind = KindRollback
		st.Target = target.Name
		st.Existing = true
		st.Hot = v.hot(*target, now)
	default: // ready, or marked live but not the known-good
		st.Kind = KindDeploy
		st.Target = target.Name
		st.Existing = true
	}
	if hasGood && good.Name != st.Target {
		st.Previous = good.Name
		// The last known-good serves again before anything else happens.
		if !routed || !good.Running {
			st.Restore = good.Name
		}
	}
	waiting := st.Kind == KindBackoff || st.Kind == KindStalled
	if waiting && !hasGood && hasRoute {
		st.Unroute = true
	}
	switch st.Kind {
	case KindNone, KindBackoff, KindStalled:
		var kept []release.Release
		kept, st.Standby = v.keepStandby(st.Target, now)
		stop, destroy := Cleanup(kept, good.Name, st.Target, s.Retain)
		st.Stop = append(st.Stop, stop...)
		slices.Sort(st.Stop)
		st.Destroy = append(st.Destroy, destroy...)
	case KindDeploy, KindRollback, KindWatch:
		if st.Previous != "" && st.Previous != st.Target {
			st.StandbyFor = v.standby
		}
		st.AfterStop, st.AfterDestroy = collectAfter(rels, st, s.Retain)
	}
	slices.Sort(st.Destroy)
	return st
}

// createVerdict applies a failed fetch or create of the desired spec, which
// left no release to carry it: a stalled spec waits for a new commit, any
// other failure backs off as a failed gate does.
func createVerdict(st *Step, f *CreateFailure, now time.Time) {
	retry := f.RetryAt
	if retry.IsZero() { // a record from an agent that did not store it
		retry = f.FailedAt.Add(Backoff(f.Failures))
	}
	switch {
	case f.Stalled:
		st.Kind = KindStalled
		st.Reason = "needs a new commit: " + f.Reason
	case now.Before(retry):
		st.Kind = KindBackoff
		st.RetryAt = retry
		st.Reason = fmt.Sprintf("failed %d time(s): %s", f.Failures, f.Reason)
	default:
		st.Reason = fmt.Sprintf("retry after %d failure(s)", f.Failures)
	}
}

// collectAfter is what Cleanup decides once the step's Target is live and
// its Previous is stopped and retired, the leftovers in st.Destroy gone. The
// Executor's collect step carries out this decision, so the plan shows it.
func collectAfter(rels []release.Release, st Step, retain int) (stop, destroy []string) {
	var after []release.Release
	for _, r := range rels {
		if slices.Contains(st.Destroy, r.Name) {
			continue
		}
		if r.Name == st.Previous && r.Name != st.Target {
			if st.StandbyFor > 0 {
				continue // on standby: kept running, and kept
			}
			r.State, r.Running = release.StateRetired, false
		}
		after = append(after, r)
	}
	return Cleanup(after, st.Target, "", retain)
}

// previousLive is the release a watch would switch back to: one other than
// target whose stored state is still live.
func previousLive(rels []release.Release, target, want string) (release.Release, bool) {
	var best *release.Release
	for i := range rels {
		r := &rels[i]
		if r.Name != target && r.State == release.StateLive && (best == nil || preferred(r, best, want)) {
			best = r
		}
	}
	if best == nil {
		return release.Release{}, false
	}
	return *best, true
}

// Cleanup decides which of a service's releases to stop and which to destroy,
// given the live release and the target of an in-progress step (both kept).
// It keeps retain retired releases, newest first, and always the newest
// retired one when nothing is live (the last known-good); the newest failed
// release (for its logs); and destroys older failures, releases that never
// finished creating, and ready releases that never served. Running releases
// that are not live are stopped.
func Cleanup(rels []release.Release, live, target string, retain int) (stop, destroy []string) {
	sorted := slices.Clone(rels)
	slices.SortFunc(sorted, func(a, b release.Release) int {
		if c := b.Created.Compare(a.Created); c != 0 {
			return c
		}
		return strings.Compare(b.Name, a.Name)
	})
	keepRetired := retain
	if live == "" {
		keepRetired = max(retain, 1)
	}
	keptFailed := false
	for _, r := range sorted {
		if r.Name == live || r.Name == target {
			continue
		}
		keep := false
		switch r.State {
		case release.StateRetired, release.StateLive, release.StateStandby:
			// A release marked live that Caddy does not route was replaced
			// by a pass that stopped before retiring it. A standby one here
			// is past its standby (the caller keeps the one in its window
			// out of rels) and is retired like it.
			if keepRetired > 0 {
				keepRetired--
				keep = true
			}
		case release.StateFailed:
			keep = !keptFailed
			keptFailed = true
		}
		if !keep {
			destroy = append(destroy, r.Name)
			continue
		}
		if r.Running || r.State == release.StateLive || r.State == release.StateStandby {
			stop = append(stop, r.Name)
		}
	}
	slices.Sort(stop)
	slices.Sort(destroy)
	return stop, destroy
}
