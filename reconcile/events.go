package reconcile

import "time"

// EventKind names a state change of a service.
type EventKind string

// The events a pass reports, once per change.
const (
	EventDeployStarted EventKind = "deploy_started"
	EventLive          EventKind = "live"        // target passed its gate and watch
	EventFailed        EventKind = "failed"      // target failed its gate; traffic stayed
	EventReverted      EventKind = "reverted"    // target failed during watch; switched back
	EventRolledBack    EventKind = "rolled_back" // a retained release is live again
	EventPruned        EventKind = "pruned"
	EventRouteRestored EventKind = "route_restored"
)

// Event is one state change, for logs, metrics and the outgoing webhook.
type Event struct {
	Time     time.Time     `json:"time"`
	Kind     EventKind     `json:"event"`
	Service  string        `json:"service"`
	Release  string        `json:"release,omitempty"`
	Previous string        `json:"previous,omitempty"`
	SHA      string        `json:"sha,omitempty"`
	Revision string        `json:"revision,omitempty"`
	Reason   string        `json:"reason,omitempty"`
	Duration time.Duration `json:"duration_ns,omitempty"` // deploy start to this event
	// CommitTime is the deploy-repo commit's time, for commit-to-live.
	CommitTime time.Time `json:"commit_time,omitzero"`
	// Rollback is set when the target was a retained release.
	Rollback bool `json:"rollback,omitempty"`
	// Standby, on live and rolled_back, is how long Previous stays
	// running on standby (0: it was stopped and retired).
	Standby time.Duration `json:"standby_ns,omitempty"`
	// HealthFailure is set when the event is a failed health gate or watch.
	HealthFailure bool `json:"-"`
	// CanaryStep and Percent, on canary events, are the step in force
	// (from 1) and the requests the new release gets, in percent.
	CanaryStep int `json:"canary_step,omitempty"`
	Percent    int `json:"percent,omitempty"`
}
