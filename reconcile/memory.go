package reconcile

import (
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/jailkeeper/jailkeeper/artifact"
)

// Memory is what the Executor knows that the host does not show: the steps
// still in flight, and fetches or creates that failed without leaving a
// release behind to carry the failure. A restart loses it, which costs at
// most a retry. Plan reads it as part of Observed, so a plan made with it is
// what the Executor does; the agent publishes it in /status, so that
// `jailkeeper plan`, a process of its own, plans with the daemon's memory.
type Memory struct {
	InFlight       []InFlight      `json:"in_flight,omitempty"`
	CreateFailures []CreateFailure `json:"create_failures,omitempty"`
}

// InFlight is a service whose step (a deploy, mostly) still runs, possibly
// started by an earlier pass. A pass leaves the service alone meanwhile.
type InFlight struct {
	Service string `json:"service"`
	Release string `json:"release,omitempty"`
	Step    Kind   `json:"step"`
	// Canary is the deploy's canary, once it began.
	Canary *CanaryStatus `json:"canary,omitempty"`
}

// CreateFailure records consecutive failed fetches or creates of one spec.
type CreateFailure struct {
	Service  string    `json:"service"`
	Release  string    `json:"release"`
	Spec     string    `json:"spec"`
	Failures int       `json:"failures"`
	FailedAt time.Time `json:"failed_at"`
	// RetryAt is when the spec is tried again (zero when stalled);
	// TransientBackoff's schedule when Transient, Backoff's otherwise.
	RetryAt   time.Time `json:"retry_at,omitzero"`
	Transient bool      `json:"transient,omitempty"`
	Reason    string    `json:"reason"`
	// Stalled is set when retrying cannot help (a checksum mismatch, an
	// unsafe tarball): the spec waits for a new commit.
	Stalled bool `json:"stalled,omitempty"`
}

// createFailure is a CreateFailure with the error that caused it, which a
// pass returns again while the spec is stalled.
type createFailure struct {
	CreateFailure
	err error
}

// Memory returns a snapshot of what the Executor remembers, sorted. Safe
// for concurrent use.
func (e *Executor) Memory() Memory {
	e.mu.Lock()
	defer e.mu.Unlock()
	var m Memory
	for _, j := range e.jobs {
		m.InFlight = append(m.InFlight, InFlight{Service: j.service, Release: j.release, Step: j.kind, Canary: j.canary})
	}
	for _, f := range e.fails {
		m.CreateFailures = append(m.CreateFailures, f.CreateFailure)
	}
	slices.SortFunc(m.InFlight, func(a, b InFlight) int { return strings.Compare(a.Service, b.Service) })
	slices.SortFunc(m.CreateFailures, func(a, b CreateFailure) int { return strings.Compare(a.Spec, b.Spec) })
	return m
}

// recordCreateFailure counts a failed fetch or create of dp's target and
// sets when it is tried again: a transient fetch failure (the store down,
// the artifact not yet published) or a full disk on TransientBackoff's
// schedule, shortened by up to TransientJitter so that agents do not retry
// in step; any other on Backoff's; a stalled spec never. The Executor asks to be woken then
// (Options.Kick). It returns the error to report (a *StalledError when
// retrying cannot help) and whether its text differs from the last
// failure's, so that a lasting failure is reported once.
func (e *Executor) recordCreateFailure(dp *deployment, err error) (error, bool) {
	stalled := errors.Is(err, artifact.ErrChecksum) || errors.Is(err, artifact.ErrUnsafe)
	transient := !stalled && (errors.Is(err, artifact.ErrTransient) || diskFull(err))
	reason := err.Error()
	if stalled {
		err = &StalledError{Err: err}
	}
	spec := dp.spec.SpecHash()
	now := e.now()
	e.mu.Lock()
	last := e.fails[spec]
	n := 1
	if last != nil {
		n = last.Failures + 1
	}
	f := &createFailure{err: err, CreateFailure: CreateFailure{
		Service: dp.spec.Service, Release: dp.st.Target, Spec: spec,
		Failures: n, FailedAt: now, Reason: reason, Stalled: stalled, Transient: transient,
	}}
	var wait time.Duration
	if !stalled {
		wait = Backoff(n)
		if transient {
			d := TransientBackoff(n)
			wait = d - time.Duration(float64(d)*TransientJitter*e.jitter())
		}
		f.RetryAt = now.Add(wait)
	}
	e.fails[spec] = f
	e.mu.Unlock()
	if !stalled && e.kick != nil {
		e.afterFunc(wait, e.kick)
	}
	return err, last == nil || last.Reason != reason
}

// forgetCreateFailures drops the failure record of a spec that was created.
func (e *Executor) forgetCreateFailures(spec string) {
	e.mu.Lock()
	delete(e.fails, spec)
	e.mu.Unlock()
}

// stalledErr is the error a pass returns for a stalled spec: the one that
// stalled it, while the Executor remembers it.
func (e *Executor) stalledErr(st Step) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if f := e.fails[st.Spec.SpecHash()]; f != nil && f.Stalled {
		return f.err
	}
	return &StalledError{Err: errors.New(st.Reason)}
}
