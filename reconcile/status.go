package reconcile

import (
	"fmt"
	"time"

	"github.com/jailkeeper/jailkeeper/release"
)

// ServiceStatus is one service's row of /status and `jailkeeper status`.
type ServiceStatus struct {
	Service     string `json:"service"`
	DesiredSHA  string `json:"desired_sha"`
	LiveSHA     string `json:"live_sha"`
	LiveRelease string `json:"live_release"`
	Converged   bool   `json:"converged"`
	State       string `json:"state"`
	Message     string `json:"message"`
	// LastDeploy is where the time of the service's last deploy went;
	// nil before its first deploy since the agent started.
	LastDeploy *LastDeploy `json:"last_deploy,omitempty"`
	// Failures counts the failed tries of the desired spec in a row, and
	// RetryAt is when it is tried next (zero: not backing off).
	Failures int       `json:"failures,omitempty"`
	RetryAt  time.Time `json:"retry_at,omitzero"`
	// Hold is what keeps the service from changing (a suspend, a sync
	// window), when something does; State is then suspended or waiting.
	Hold *Hold `json:"hold,omitempty"`
	// Standby is the release kept running for an instant rollback, and
	// StandbyUntil when it is stopped; empty and zero when there is none.
	Standby      string    `json:"standby,omitempty"`
	StandbyUntil time.Time `json:"standby_until,omitzero"`
	// Rebase is set while the service is not on its template's newest
	// snapshot (a rebase rolls, waits or is paused), or its pin is bad.
	Rebase *ServiceRebase `json:"rebase,omitempty"`
}

// Result is what a pass did and what it left.
type Result struct {
	Revision string
	Steps    []Step
	Services []ServiceStatus
	// Releases is the runtime's view after the pass.
	Releases []release.Release
	// Rebase is each template whose rebase rolls, waits or is paused.
	Rebase []RebaseStatus
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
	if len(d.Services) > 0 {
		out = make([]ServiceStatus, 0, len(d.Services))
	}
	for i := range d.Services {
		s := &d.Services[i]
		rels := byService[s.Service]
		route, hasRoute := o.Routes[s.Service]
		spec, name := s.SpecAndName() // hashed once
		live, routed, hasLive := KnownGood(rels, route, hasRoute, spec)
		st := ServiceStatus{Service: s.Service, DesiredSHA: s.SHA, State: "pending"}
		if hasLive && routed {
			st.LiveSHA, st.LiveRelease = live.SHA, live.Name
			st.Converged = live.Spec == spec && live.Running && live.State == release.StateLive
		}
		if t, ok := find(rels, name); ok {
			st.State = string(t.State)
			if t.State == release.StateFailed {
				st.Message = t.Reason
			}
		}
		if msg, ok := e.lastErr[s.Service]; ok {
			st.Message = msg
		}
		e.backoffStatus(&st, spec, name, rels)
		standbyStatus(&st, rels, s.StandbyOr(d.DefaultStandby), e.now())
		if planErr != nil {
			st.Message = planErr.Error()
		}
		st.LastDeploy = e.lastDeployLocked(s.Service)
		out = append(out, st)
	}
	return out
}

// backoffStatus adds to st the failed tries of the desired spec (its hash
// and release name) in a row and when it is tried next, from the Executor's record of failed fetches
// and creates or from the failed release. The message then says so in the
// words of a pass that waits (see settle), whether the last pass tried or
// waited. Called with e.mu held.
func (e *Executor) backoffStatus(st *ServiceStatus, spec, name string, rels []release.Release) {
	if f := e.fails[spec]; f != nil {
		if f.Stalled {
			return
		}
		st.Failures, st.RetryAt = f.Failures, f.RetryAt
		st.Message = fmt.Sprintf("%s backing off until %s: failed %d time(s): %s",
			f.Release, f.RetryAt.UTC().Format(time.RFC3339), f.Failures, f.Reason)
		return
	}
	if t, ok := find(rels, name); ok && t.State == release.StateFailed && t.Failures > 0 {
		st.Failures, st.RetryAt = t.Failures, t.FailedAt.Add(Backoff(t.Failures))
	}
}
