package reconcile

import "github.com/jailkeeper/jailkeeper/release"

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
}

// Result is what a pass did and what it left.
type Result struct {
	Revision string
	Steps    []Step
	Services []ServiceStatus
	// Releases is the runtime's view after the pass.
	Releases []release.Release
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
		st.LastDeploy = e.lastDeployLocked(s.Service)
		out = append(out, st)
	}
	return out
}
