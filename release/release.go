package release

import (
	"net/netip"
	"time"
)

// State is where a release is in its life. It is stored on the system (a ZFS
// user property or release.json), never only in memory.
type State string

// The states of a release, in the order a healthy one passes through them.
const (
	StateCreating State = "creating" // being cloned and installed
	StateReady    State = "ready"    // installed; may be running, not routed
	StateLive     State = "live"     // Caddy routes the service to it
	StateRetired  State = "retired"  // stopped; kept for rollback
	StateFailed   State = "failed"   // did not pass its health gate
	// StateStandby is a previous live release kept running, not routed,
	// after a deploy's watch, so that a rollback to it is one probe and
	// one route switch. Its StandbySince says since when; once the
	// manifest's standby has passed it is stopped and retired.
	StateStandby State = "standby"
)

// Valid reports whether s is one of the known states.
func (s State) Valid() bool {
	switch s {
	case StateCreating, StateReady, StateLive, StateRetired, StateFailed, StateStandby:
		return true
	}
	return false
}

// Release is one build of a service on this host as the runtime observed it.
type Release struct {
	Name     string     `json:"name"`
	Service  string     `json:"service"`
	SHA      string     `json:"sha"`
	Spec     string     `json:"spec"` // full hex hash of the canonical spec
	IP       netip.Addr `json:"ip"`
	Port     int        `json:"port"`
	State    State      `json:"state"`
	Created  time.Time  `json:"created"`
	Reason   string     `json:"reason,omitempty"`
	Failures int        `json:"failures,omitempty"` // consecutive failed gates of this spec
	FailedAt time.Time  `json:"failed_at,omitzero"`
	// Migrated is when the release's migration (the manifest's migrate)
	// finished; zero when it has none or it has not finished. Stored
	// apart from Status (SetMigrated), so no state change clears it.
	Migrated time.Time `json:"migrated_at,omitzero"`
	// Limits are the release's resource limits, stored at create.
	Limits Limits `json:"limits,omitzero"`
	// StandbySince is when the release went on standby; meaningful only
	// in StateStandby (zero otherwise, and in records written before
	// standby existed).
	StandbySince time.Time `json:"standby_since,omitzero"`
	// TemplateSnapshot is the template snapshot the release was cloned
	// from (the part after '@'; in the process runtime's copy mode the
	// content name of the template directory, see process.Runtime).
	// Empty in records made before it was stored; TemplateSnapshotOf
	// reads that as "base".
	TemplateSnapshot string `json:"template_snapshot,omitempty"`
	// Running is observed (jls, or the pidfile's process), never stored.
	Running bool `json:"-"`
}

// Addr is the host:port Caddy proxies to.
func (r Release) Addr() string {
	return netip.AddrPortFrom(r.IP, uint16(r.Port)).String()
}

// Status is the stored part of a release that changes after creation.
type Status struct {
	State    State
	Reason   string
	Failures int
	FailedAt time.Time
	// StandbySince is stored with StateStandby and dropped with any other
	// state.
	StandbySince time.Time
}

// Spec is what a runtime needs to create a release.
type Spec struct {
	Name     string            // release name, see ValidName
	Service  string            // service name
	SHA      string            // app commit
	Spec     string            // full hex hash of the canonical spec
	Port     int               // where the app listens
	Command  []string          // command[0] is relative to the release root
	Env      map[string]string // the manifest's env; the runtime adds PORT, HOST, ADDR
	EnvFile  string            // host path of the secrets file, "" for none
	User     string            // run as
	Template string            // template name (jail runtime)
	Allow    []string          // jail allow.* parameters, without the "allow." prefix
	Artifact string            // local path of the verified artifact
	Data     []Data            // persistent data sets, shared by every release of the service
	Limits   Limits            // resource limits; zero: none
	// TemplateSnapshot is the snapshot of Template to clone (the part
	// after '@'); "" clones the newest. A snapshot that does not exist is
	// release.ErrNoTemplate. The release records the one it cloned.
	TemplateSnapshot string
	Created          time.Time
}

// NewRelease is the record a runtime stores when it starts creating the
// release: state creating, created at spec.Created (or now when unset).
func (s Spec) NewRelease(now time.Time) Release {
	created := s.Created
	if created.IsZero() {
		created = now
	}
	return Release{
		Name:    s.Name,
		Service: s.Service,
		SHA:     s.SHA,
		Spec:    s.Spec,
		Port:    s.Port,
		State:   StateCreating,
		Created: created.UTC(),
		Limits:  s.Limits,

		TemplateSnapshot: s.TemplateSnapshot,
	}
}

// BaseSnapshot is the snapshot `template create` takes, which every
// release made before releases recorded their snapshot was cloned from.
const BaseSnapshot = "base"

// TemplateSnapshotOf is the snapshot r was cloned from: its record, or
// BaseSnapshot for a release made before releases recorded one.
func TemplateSnapshotOf(r Release) string {
	if r.TemplateSnapshot == "" {
		return BaseSnapshot
	}
	return r.TemplateSnapshot
}
