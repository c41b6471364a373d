package reconcile

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jailkeeper/jailkeeper/manifest"
)

// The kinds of Step a Hold makes.
const (
	// KindSuspended: an operator suspended the service (`jailkeeper
	// suspend`). Its live release stays as it is: nothing is deployed,
	// rolled back, rebased, pruned or cleaned up. A live release that a
	// reboot stopped is started and routed again (Restore), and a route
	// Caddy lost is written again, so a suspended service keeps serving.
	KindSuspended Kind = "suspended"
	// KindWait: a sync window keeps a change waiting (a deploy, a prune);
	// the live release keeps serving and is cleaned up as usual.
	KindWait Kind = "wait"
)

// Change is a kind of change a Hold is asked about.
type Change string

// The changes a Hold may stop.
const (
	ChangeDeploy   Change = "deploy"      // a new release made live
	ChangeRollback Change = "rollback"    // a retained release made live again
	ChangeRebase   Change = "rebase"      // a release rolled to a newer template snapshot
	ChangeCanary   Change = "canary step" // a canary moved to its next step, or promoted
	ChangePrune    Change = "prune"       // a service whose manifest is gone removed
)

// Hold is why a service must not change now. The zero Hold holds nothing.
// The agent computes it (Options.Hold) from its suspensions and sync
// windows; Plan applies it, and steps that are not part of Plan (a rebase,
// a canary's steps) ask Executor.Gate before each change.
type Hold struct {
	// Suspended is set while an operator has suspended the service: every
	// Change waits.
	Suspended *Suspension `json:"suspended,omitempty"`
	// Window is set while the service is outside its sync windows:
	// every Change but a rollback waits.
	Window *WindowWait `json:"window,omitempty"`
}

// Suspension is an operator's suspend of one service.
type Suspension struct {
	Reason string    `json:"reason,omitempty"`
	Since  time.Time `json:"since"`
}

// WindowWait is a sync window that keeps changes waiting.
type WindowWait struct {
	// Until is when the service's windows next let a change through; zero
	// when no opening was found (a deny window that never ends).
	Until time.Time `json:"until,omitzero"`
	// Window says which window holds, as the config writes it.
	Window string `json:"window"`
}

// IsZero reports whether h holds nothing.
func (h Hold) IsZero() bool { return h.Suspended == nil && h.Window == nil }

// Blocks reports whether h stops change c, and why, in the words status
// and plan print. A suspend stops every change; a sync window every
// change but a rollback to a retained release, so that a bad release can
// always be undone.
func (h Hold) Blocks(c Change) (string, bool) {
	switch {
	case h.Suspended != nil:
		return h.Suspended.String(), true
	case h.Window != nil && c != ChangeRollback:
		return h.Window.String(), true
	}
	return "", false
}

func (s Suspension) String() string {
	msg := "suspended since " + s.Since.UTC().Format(time.RFC3339)
	if s.Reason != "" {
		msg += ": " + s.Reason
	}
	return msg
}

func (w WindowWait) String() string {
	if w.Until.IsZero() {
		return "waiting for window (none opens soon): " + w.Window
	}
	return "waiting for window until " + w.Until.UTC().Format(time.RFC3339) + ": " + w.Window
}

// HoldFunc says what holds service at now. It must be quick and safe for
// concurrent use: it is asked for every service in every pass.
type HoldFunc func(service string, now time.Time) Hold

// Holds asks fn about every service that d wants or that runs, and
// returns those that hold something; nil fn holds nothing.
func Holds(fn HoldFunc, d Desired, o Observed, now time.Time) map[string]Hold {
	if fn == nil {
		return nil
	}
	names := map[string]bool{}
	for _, s := range d.Services {
		names[s.Service] = true
	}
	for _, r := range o.Releases {
		names[r.Service] = true
	}
	for svc := range o.Routes {
		names[svc] = true
	}
	out := map[string]Hold{}
	for svc := range names {
		if h := fn(svc, now); !h.IsZero() {
			out[svc] = h
		}
	}
	return out
}

// Gate says whether service must wait before change c now, and why: the
// hook that steps outside Plan (a rebase roll, a canary's next step or
// its promotion) call before each change. A held step keeps what it has
// (a canary stays at its weight) and asks again in a later pass.
// Safe for concurrent use.
func (e *Executor) Gate(service string, c Change) (string, bool) {
	if e.holds.fn == nil {
		return "", false
	}
	return e.holds.fn(service, e.now()).Blocks(c)
}

// holdStep applies h to st, the step planService made for s from v. A
// suspend freezes the service: only a Restore of its known-good release
// and a route Caddy lost go on. A window stops a deploy (not a rollback);
// the rest goes on: a converged service's route fix and cleanup, a
// backoff, and a deploy whose target is the known-good release (bringing
// back what served, after a reboot). A watch already past its switch
// finishes whatever holds.
func holdStep(st Step, s *manifest.Service, v view, h Hold) Step {
	if h.IsZero() || st.Kind == KindWatch || st.Kind == KindBusy {
		return st
	}
	good, _, hasGood := KnownGood(v.rels, v.route, v.routed, s.SpecHash())
	change := ChangeDeploy
	switch {
	case st.Kind == KindDeploy && hasGood && good.Name == st.Target:
		return st // bringing back what served
	case st.Kind == KindRollback:
		change = ChangeRollback
	case h.Suspended != nil:
	case st.Kind != KindDeploy:
		return st
	}
	why, blocked := h.Blocks(change)
	if !blocked {
		return st
	}
	held := Step{Service: st.Service, Spec: st.Spec, Restore: st.Restore, Reason: why}
	if h.Suspended != nil {
		held.Kind = KindSuspended
		if hasGood {
			held.Target = good.Name
			if st.Kind == KindNone {
				held.Route = st.Route
			}
		}
		if st.Target != "" && st.Target != held.Target {
			held.Reason += "; " + st.Target + " waits"
		}
		return held
	}
	held.Kind = KindWait
	held.Target, held.Previous = st.Target, st.Previous
	live := ""
	if hasGood {
		live = good.Name
	}
	stop, destroy := Cleanup(v.rels, live, st.Target, s.Retain)
	held.Stop = stop
	held.Destroy = append(slices.Clone(st.Destroy), destroy...)
	slices.Sort(held.Destroy)
	held.Destroy = slices.Compact(held.Destroy)
	return held
}

// holdPrune applies h to the prune of a service whose manifest is gone.
func holdPrune(st Step, h Hold) Step {
	why, blocked := h.Blocks(ChangePrune)
	if !blocked {
		return st
	}
	kind := KindWait
	if h.Suspended != nil {
		kind = KindSuspended
	}
	return Step{Service: st.Service, Kind: kind, Reason: "manifest removed; prune waits: " + why}
}

// heldStatus makes the statuses of held services say so: State
// "suspended" or "waiting", the reason as Message, the Hold itself. A
// held prune adds a row for its service, whose manifest is gone.
func heldStatus(out []ServiceStatus, steps []Step, holds map[string]Hold) []ServiceStatus {
	added := false
	for svc, h := range holds {
		i := slices.IndexFunc(out, func(s ServiceStatus) bool { return s.Service == svc })
		j := slices.IndexFunc(steps, func(s Step) bool { return s.Service == svc })
		held := j >= 0 && (steps[j].Kind == KindSuspended || steps[j].Kind == KindWait)
		if h.Suspended == nil && !held {
			continue // a window that holds no change of this service
		}
		if i < 0 {
			if !held {
				continue
			}
			out = append(out, ServiceStatus{Service: svc})
			i = len(out) - 1
			added = true
		}
		st := &out[i]
		st.Hold = &h
		switch {
		case h.Suspended != nil:
			st.State = "suspended"
		default:
			st.State = "waiting"
		}
		if held {
			st.Message = steps[j].Reason
		} else {
			st.Message = h.Suspended.String()
		}
	}
	if added {
		slices.SortFunc(out, func(a, b ServiceStatus) int { return strings.Compare(a.Service, b.Service) })
	}
	return out
}

// wakeAtWindow asks for a pass when the earliest window that holds a
// deploy of this pass opens, so the deploy need not wait for the next
// poll. One wake-up per opening time.
func (e *Executor) wakeAtWindow(steps []Step, holds map[string]Hold) {
	if e.kick == nil {
		return
	}
	var first time.Time
	for _, st := range steps {
		h, ok := holds[st.Service]
		if st.Kind != KindWait || !ok || h.Window == nil || h.Window.Until.IsZero() {
			continue
		}
		if first.IsZero() || h.Window.Until.Before(first) {
			first = h.Window.Until
		}
	}
	if first.IsZero() {
		return
	}
	e.holds.mu.Lock()
	if e.holds.wakes == nil {
		e.holds.wakes = map[time.Time]bool{}
	}
	now := e.now()
	for t := range e.holds.wakes {
		if t.Before(now) {
			delete(e.holds.wakes, t)
		}
	}
	seen := e.holds.wakes[first]
	e.holds.wakes[first] = true
	e.holds.mu.Unlock()
	if !seen {
		e.afterFunc(first.Sub(now), e.kick)
	}
}

// errSuspended cancels a deploy of a service that was suspended while it
// ran, before its switch. It is an ErrPreempted, so the deploy is
// abandoned as a preempted one is: its target never gets traffic.
var errSuspended = fmt.Errorf("%w: service suspended", ErrPreempted)

// preemptedBy is the error of an abandoned deploy: ErrPreempted, or
// errSuspended when a suspend cancelled it.
func preemptedBy(j *job) error {
	if errors.Is(context.Cause(j.ctx), errSuspended) {
		return errSuspended
	}
	return ErrPreempted
}

// Suspended tells the Executor that an operator suspended service: a
// deploy of it still before its switch is abandoned (one past its switch
// finishes its watch), except one in its canary, which stays at its step
// (Gate holds the next one). Safe for concurrent use; the next pass plans
// the service as suspended.
func (e *Executor) Suspended(service string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if j := e.jobs[service]; j != nil && j.preemptible && j.canary == nil {
		j.cancel(errSuspended)
	}
}

// holdState is the Executor's part for holds.
type holdState struct {
	fn    HoldFunc
	mu    sync.Mutex
	wakes map[time.Time]bool // window openings a wake-up is set for
}
