package reconcile

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jailkeeper/jailkeeper/manifest"
	"github.com/jailkeeper/jailkeeper/release"
)

// Templates is implemented by a Runtime whose releases are cloned from
// template snapshots (jails.FreeBSD, process.Runtime). A Runtime without it
// has no snapshots to rebase on: its services are never rebased.
type Templates interface {
	// TemplateSnapshots returns the snapshots of template ("" for the
	// runtime's default), oldest first, as the names after '@'. A
	// template without one is release.ErrNoTemplate.
	TemplateSnapshots(ctx context.Context, template string) ([]string, error)
	// DefaultTemplate names the template of a spec that names none.
	DefaultTemplate() string
}

// RebaseOptions bound a rebase (agent config rebase).
type RebaseOptions struct {
	// MaxParallel is how many services roll to a newer snapshot at once;
	// less than 1 counts as 1.
	MaxParallel int
	// PauseOnFailure stops the rebase of a template at its first failing
	// service: the services not yet rolled stay on their snapshot, and
	// the failed one keeps its old release live, until a new snapshot, a
	// commit to the failed service, or a resume (ResumedAt).
	PauseOnFailure bool
}

// TemplateView is what ObserveTemplates saw of the templates the desired
// services use, by template name (the default template under its name).
type TemplateView struct {
	Default   string
	Snapshots map[string][]string
	Errors    map[string]error
}

// ObserveTemplates lists the snapshots of every template d's services use.
// A runtime that does not implement Templates gives an empty view. A
// template that cannot be listed is in Errors; its services are not
// rebased.
func ObserveTemplates(ctx context.Context, rt Runtime, d Desired) TemplateView {
	tv := TemplateView{Snapshots: map[string][]string{}, Errors: map[string]error{}}
	t, ok := rt.(Templates)
	if !ok {
		return tv
	}
	tv.Default = t.DefaultTemplate()
	for i := range d.Services {
		name := tv.name(&d.Services[i])
		if _, seen := tv.Snapshots[name]; seen || tv.Errors[name] != nil {
			continue
		}
		snaps, err := t.TemplateSnapshots(ctx, name)
		if err != nil {
			tv.Errors[name] = err
			continue
		}
		tv.Snapshots[name] = snaps
	}
	return tv
}

func (tv TemplateView) name(s *manifest.Service) string {
	if s.Template == "" {
		return tv.Default
	}
	return s.Template
}

// RebaseInput is what PlanRebase needs besides the desired and observed
// state.
type RebaseInput struct {
	Options RebaseOptions
	// ResumedAt is when an operator last resumed paused rebases
	// (`jailkeeper rebase resume`): failures before it pause nothing.
	ResumedAt time.Time
	// Gate says whether a service's rebase must wait (a suspend, a sync
	// window: Executor.Gate with ChangeRebase); nil holds nothing.
	Gate func(service string) (string, bool)
}

// The states of a service's rebase (ServiceRebase.State).
const (
	RebaseRolling = "rolling" // its new release is being made live
	RebasePending = "pending" // waits for a slot (max_parallel)
	RebasePaused  = "paused"  // the rebase of its template is paused
	RebaseFailed  = "failed"  // its release on the new snapshot failed
	RebaseHeld    = "held"    // a suspend or a sync window holds it
)

// ServiceRebase is one service's part of a rebase: it runs on From and
// its template's newest snapshot is To.
type ServiceRebase struct {
	Template string `json:"template"`
	From     string `json:"from"`
	To       string `json:"to"`
	State    string `json:"state"`
	Reason   string `json:"reason,omitempty"`
}

// RebaseStatus is the rebase of one template: its newest snapshot, how
// many services run on it and how many are still to roll. A template
// whose services all run on its newest snapshot has nothing to roll.
type RebaseStatus struct {
	Template string `json:"template"`
	Snapshot string `json:"snapshot"`
	Current  int    `json:"current"` // services live on Snapshot
	Rolling  int    `json:"rolling"`
	Pending  int    `json:"pending"`
	Held     int    `json:"held"`
	Failed   int    `json:"failed"`
	// Paused is set when a failure stopped the rebase (pause_on_failure);
	// Reason says which service failed and how, and how to resume.
	Paused bool   `json:"paused,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Error is set when the template's snapshots could not be listed.
	Error string `json:"error,omitempty"`
}

// ResumeHint says how an operator resumes a paused rebase.
const ResumeHint = "resume with a newer template snapshot, a commit to the failed service (a fix, or a template: NAME@SNAPSHOT pin that keeps it behind), or `jailkeeper rebase resume` to try again"

// RebasePlan is what PlanRebase decided.
type RebasePlan struct {
	// Desired is the desired state with each service's template snapshot
	// filled in: its pin, its template's newest snapshot, or, while its
	// rebase waits, the snapshot its live release runs on.
	Desired Desired
	// Services are the services that are not on their template's newest
	// snapshot, and those whose pin is bad.
	Services map[string]ServiceRebase
	// BadPins are the services whose pinned snapshot does not exist; their
	// step is stalled and their live release keeps running.
	BadPins map[string]string
	// Templates are the templates the desired services use, sorted by
	// name: each one's newest snapshot and where its rebase is.
	Templates []RebaseStatus
}

// More reports whether a later pass has more of a rebase to roll: a
// service that waits for a slot, and a slot that frees when this pass's
// rolls end.
func (p RebasePlan) More() bool {
	for _, t := range p.Templates {
		if t.Pending > 0 && !t.Paused {
			return true
		}
	}
	return false
}

// candidate is a service whose live release runs on an older snapshot
// than its template's newest.
type candidate struct {
	s      *manifest.Service
	tmpl   string
	from   string
	to     string
	state  string
	reason string
}

// PlanRebase fills in the template snapshot of each desired service and
// decides which services roll to their template's newest snapshot in this
// pass (DESIGN: a newer snapshot rolls every service on that template,
// bounded by rebase). It does no I/O and reads no clock.
//
// A service with a pin gets its pin (a pin tv does not list is a bad pin:
// its live release keeps running). One without gets the newest snapshot,
// unless its live release runs on an older one with the spec otherwise
// unchanged: that is a rebase, and it gets the newest only when it is
// admitted. Releases in flight to the newest snapshot stay admitted; then
// services in name order fill up to MaxParallel, unless the rebase of
// their template is paused or a Gate holds them. A new commit to a
// service is a deploy, not a rebase: it goes on the newest snapshot at
// once.
func PlanRebase(d Desired, o Observed, tv TemplateView, in RebaseInput) RebasePlan {
	p := RebasePlan{Services: map[string]ServiceRebase{}, BadPins: map[string]string{}}
	byService := map[string][]release.Release{}
	for _, r := range o.Releases {
		byService[r.Service] = append(byService[r.Service], r)
	}
	flying := map[string]string{}
	for _, f := range o.Memory.InFlight {
		flying[f.Service] = f.Release
	}
	createFailed := map[string]CreateFailure{}
	for _, f := range o.Memory.CreateFailures {
		createFailed[f.Spec] = f
	}
	p.Desired = d
	p.Desired.Services = slices.Clone(d.Services)
	stats := map[string]*RebaseStatus{}
	stat := func(tmpl string) *RebaseStatus {
		if stats[tmpl] == nil {
			stats[tmpl] = &RebaseStatus{Template: tmpl}
			if snaps := tv.Snapshots[tmpl]; len(snaps) > 0 {
				stats[tmpl].Snapshot = snaps[len(snaps)-1]
			}
		}
		return stats[tmpl]
	}
	var cands []*candidate
	moves := map[string]int{} // template -> services moving to its newest outside cands
	for i := range p.Desired.Services {
		s := &p.Desired.Services[i]
		tmpl := tv.name(s)
		rels := byService[s.Service]
		route, routed := o.Routes[s.Service]
		live, _, hasLive := KnownGood(rels, route, routed, "")
		liveSnap := ""
		if hasLive {
			liveSnap = release.TemplateSnapshotOf(live)
		}
		snaps, listed := tv.Snapshots[tmpl]
		if err := tv.Errors[tmpl]; err != nil {
			stat(tmpl).Error = err.Error()
		} else if listed {
			stat(tmpl)
		}
		switch {
		case s.TemplateSnapshot != "":
			if listed && !slices.Contains(snaps, s.TemplateSnapshot) {
				p.BadPins[s.Service] = badPin(s, tmpl, snaps)
				if hasLive {
					s.TemplateSnapshot = liveSnap // keep what runs
				}
			}
			continue
		case !listed || len(snaps) == 0:
			// Unknown: keep what runs, and let a first create clone the
			// newest as it always did.
			if hasLive {
				s.TemplateSnapshot = liveSnap
			}
			continue
		}
		newest := snaps[len(snaps)-1]
		s.TemplateSnapshot = newest
		switch {
		case !hasLive:
			continue
		case liveSnap == newest && moving(rels, live, newest):
			// Switched to the newest and still in its watch: the slot
			// is its until it is live.
			moves[tmpl]++
			stat(tmpl).Rolling++
			continue
		case liveSnap == newest:
			stat(tmpl).Current++
			continue
		}
		behind := *s
		behind.TemplateSnapshot = liveSnap
		if behind.SpecHash() != live.Spec {
			// A new commit: deployed on the newest at once, and it takes
			// a slot while it moves the service there, unless it failed.
			if st, _ := rollState(*s, rels, flying, createFailed, in.ResumedAt); st != RebaseFailed {
				moves[tmpl]++
				stat(tmpl).Rolling++
				p.Services[s.Service] = ServiceRebase{Template: tmpl, From: liveSnap, To: newest, State: RebaseRolling,
					Reason: "a new commit, deployed on the newest snapshot"}
			}
			continue
		}
		s.TemplateSnapshot = liveSnap // until admitted
		c := &candidate{s: s, tmpl: tmpl, from: liveSnap, to: newest}
		onNewest := *s
		onNewest.TemplateSnapshot = newest
		c.state, c.reason = rollState(onNewest, rels, flying, createFailed, in.ResumedAt)
		cands = append(cands, c)
	}
	admit(cands, moves, in, stat)
	for _, c := range cands {
		if c.state == RebaseRolling || (c.state == RebaseFailed && !in.Options.PauseOnFailure) {
			c.s.TemplateSnapshot = c.to
		}
		p.Services[c.s.Service] = ServiceRebase{Template: c.tmpl, From: c.from, To: c.to, State: c.state, Reason: c.reason}
	}
	for svc, why := range p.BadPins {
		p.Services[svc] = ServiceRebase{State: "bad pin", Reason: why}
	}
	for _, st := range stats {
		p.Templates = append(p.Templates, *st)
	}
	slices.SortFunc(p.Templates, func(a, b RebaseStatus) int { return strings.Compare(a.Template, b.Template) })
	return p
}

// rollState is where the roll of a service to t (its spec on the newest
// snapshot) is: rolling when a release of t is in flight or on disk and
// not failed, failed when it failed after resumedAt, else pending.
func rollState(t manifest.Service, rels []release.Release, flying map[string]string, createFailed map[string]CreateFailure, resumedAt time.Time) (string, string) {
	name := t.ReleaseName()
	if flying[t.Service] == name {
		return RebaseRolling, ""
	}
	if f, ok := createFailed[t.SpecHash()]; ok && f.FailedAt.After(resumedAt) {
		return RebaseFailed, f.Reason
	}
	r, ok := find(rels, name)
	switch {
	case !ok:
		return RebasePending, ""
	case r.State == release.StateFailed && r.FailedAt.After(resumedAt):
		return RebaseFailed, r.Reason
	case r.State == release.StateFailed:
		return RebasePending, "" // failed before a resume: tried again
	}
	return RebaseRolling, ""
}

// admit decides which pending candidates roll now: per template, none
// while it is paused, else up to MaxParallel services moving to its
// newest snapshot at once (those in flight count, and moves counts other
// services on their way there: a commit deploying onto it, a roll in its
// watch), in service order. A held service waits and takes no slot.
func admit(cands []*candidate, moves map[string]int, in RebaseInput, stat func(string) *RebaseStatus) {
	slices.SortFunc(cands, func(a, b *candidate) int { return strings.Compare(a.s.Service, b.s.Service) })
	maxPar := max(in.Options.MaxParallel, 1)
	rolling := maps.Clone(moves)
	if rolling == nil {
		rolling = map[string]int{}
	}
	var failed []*candidate
	for _, c := range cands {
		switch c.state {
		case RebaseRolling:
			rolling[c.tmpl]++
		case RebaseFailed:
			failed = append(failed, c)
		}
	}
	paused := map[string]string{}
	if in.Options.PauseOnFailure {
		for _, c := range failed {
			if _, ok := paused[c.tmpl]; !ok {
				paused[c.tmpl] = fmt.Sprintf("%s failed on %s@%s: %s; %s", c.s.Service, c.tmpl, c.to, c.reason, ResumeHint)
			}
		}
	}
	for _, c := range cands {
		if c.state != RebasePending {
			continue
		}
		if in.Gate != nil {
			if why, held := in.Gate(c.s.Service); held {
				c.state, c.reason = RebaseHeld, why
				continue
			}
		}
		if why, ok := paused[c.tmpl]; ok {
			c.state, c.reason = RebasePaused, why
			continue
		}
		if rolling[c.tmpl] < maxPar {
			c.state = RebaseRolling
			rolling[c.tmpl]++
			continue
		}
		c.reason = fmt.Sprintf("waits for a slot: max_parallel %d", maxPar)
	}
	for _, c := range cands {
		st := stat(c.tmpl)
		switch c.state {
		case RebaseRolling:
			st.Rolling++
		case RebasePending:
			st.Pending++
		case RebasePaused:
			st.Pending++
		case RebaseHeld:
			st.Held++
		case RebaseFailed:
			st.Failed++
		}
		if why, ok := paused[c.tmpl]; ok {
			st.Paused, st.Reason = true, why
		}
	}
}

// badPin is the message for a pin of a snapshot that tmpl does not have.
func badPin(s *manifest.Service, tmpl string, snaps []string) string {
	file := s.File
	if file == "" {
		file = s.Service + ".yaml"
	}
	return fmt.Sprintf("%s: template: snapshot %q of template %s does not exist (it has %s); the live release keeps running",
		file, s.TemplateSnapshot, tmpl, strings.Join(snaps, ", "))
}

// String is the rebase of a service as plan and status print it.
func (r ServiceRebase) String() string {
	if r.State == "bad pin" {
		return r.Reason
	}
	msg := fmt.Sprintf("rebase %s@%s -> @%s %s", r.Template, r.From, r.To, r.State)
	if r.Reason != "" {
		msg += ": " + r.Reason
	}
	return msg
}

// Rebasing reports whether the template has services still to roll.
func (r RebaseStatus) Rebasing() bool { return r.Rolling+r.Pending+r.Held+r.Failed > 0 }

// moving reports whether live, on snapshot newest, is a release switched
// to but not yet through its watch (not yet stored as live) that replaces
// a live release on an older snapshot: a roll that has not ended.
func moving(rels []release.Release, live release.Release, newest string) bool {
	if live.State == release.StateLive {
		return false
	}
	prev, ok := previousLive(rels, live.Name, "")
	return ok && release.TemplateSnapshotOf(prev) != newest
}
