package reconcile

import (
	"context"
	"slices"
	"sync"
	"time"
)

// rebaseState is the Executor's part for rebases.
type rebaseState struct {
	opts      RebaseOptions
	resumedAt func() time.Time

	mu   sync.Mutex
	last map[string]resolved // service -> what the last pass resolved
}

// resolved is the template snapshot a pass gave a service, and the pin
// its manifest had then.
type resolved struct{ pin, snapshot string }

// planRebase lists the templates d uses and fills in each service's
// snapshot (PlanRebase), asking Gate about every rebase.
func (e *Executor) planRebase(ctx context.Context, d Desired, obs Observed) RebasePlan {
	tv := ObserveTemplates(ctx, e.rt, d)
	in := RebaseInput{
		Options: e.rebase.opts,
		Gate:    func(svc string) (string, bool) { return e.Gate(svc, ChangeRebase) },
	}
	if e.rebase.resumedAt != nil {
		in.ResumedAt = e.rebase.resumedAt()
	}
	return PlanRebase(d, obs, tv, in)
}

// withResolved returns d with the snapshots the last pass resolved, for
// services whose pin is unchanged: what install compares deploys in
// flight against before this pass has resolved anything.
func (e *Executor) withResolved(d Desired) Desired {
	e.rebase.mu.Lock()
	defer e.rebase.mu.Unlock()
	if len(e.rebase.last) == 0 {
		return d
	}
	d.Services = slices.Clone(d.Services)
	for i := range d.Services {
		s := &d.Services[i]
		if r, ok := e.rebase.last[s.Service]; ok && r.pin == s.TemplateSnapshot {
			s.TemplateSnapshot = r.snapshot
		}
	}
	return d
}

// resolvedDesired makes rp's desired state the one deploys are compared
// against (see install), unless a newer desired state came meanwhile, and
// remembers the snapshots for withResolved. pinned is d as loaded.
func (e *Executor) resolvedDesired(pinned Desired, rp RebasePlan) {
	last := map[string]resolved{}
	for i, s := range rp.Desired.Services {
		last[s.Service] = resolved{pin: pinned.Services[i].TemplateSnapshot, snapshot: s.TemplateSnapshot}
	}
	e.rebase.mu.Lock()
	e.rebase.last = last
	e.rebase.mu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if rp.Desired.Seq != 0 && rp.Desired.Seq != e.seq {
		return
	}
	want := map[string]string{}
	for i := range rp.Desired.Services {
		want[rp.Desired.Services[i].Service] = rp.Desired.Services[i].SpecHash()
	}
	e.latest = want
}

// Annotate adds the rebase to the plan's steps: a service whose rebase
// waits, rolls or is paused says so, and one with a bad pin is stalled
// (its live release keeps running; nothing else is done for it).
func (p RebasePlan) Annotate(steps []Step) []Step {
	for i := range steps {
		st := &steps[i]
		if why, bad := p.BadPins[st.Service]; bad {
			switch st.Kind {
			case KindNone, KindBackoff, KindStalled:
				st.Kind = KindStalled
			default:
				*st = Step{Service: st.Service, Kind: KindStalled, Spec: st.Spec, Target: st.Previous}
			}
			st.Reason = why
			continue
		}
		if r, ok := p.Services[st.Service]; ok {
			st.Rebase = r.String()
		}
	}
	return steps
}

// annotateStatus adds each service's rebase to its status row.
func (p RebasePlan) annotateStatus(out []ServiceStatus) []ServiceStatus {
	for i := range out {
		r, ok := p.Services[out[i].Service]
		if !ok {
			continue
		}
		out[i].Rebase = &r
		switch r.State {
		case "bad pin":
			out[i].Converged = false
			out[i].State = string(KindStalled)
			out[i].Message = r.Reason
		case RebasePaused, RebaseFailed, RebaseHeld:
			if out[i].Message == "" {
				out[i].Message = r.String()
			}
		}
	}
	return out
}

// rolls reports whether steps roll a service of p (a deploy on its
// template's newest snapshot).
func (p RebasePlan) rolls(steps []Step) bool {
	for _, st := range steps {
		if r, ok := p.Services[st.Service]; ok && r.State == RebaseRolling && st.Kind == KindDeploy {
			return true
		}
	}
	return false
}
