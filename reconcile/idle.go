package reconcile

// changesNothing reports whether carrying st out writes nothing to the
// host or to Caddy: a converged service whose route is as wanted, or one
// that waits (backoff, stalled, a step of an earlier pass in flight), with
// nothing to restore, stop or destroy.
func (st Step) changesNothing() bool {
	switch st.Kind {
	case KindNone, KindBackoff, KindStalled, KindBusy:
	default:
		return false
	}
	return st.Route == nil && !st.Unroute && st.Restore == "" && len(st.Stop) == 0 && len(st.Destroy) == 0
}

// idle reports whether a pass of steps changes nothing, so that what it
// observed before its steps is what it leaves (issue 11: an idle pass
// reads the releases and Caddy's routes once, not twice). A step of an
// earlier pass that runs meanwhile kicks a pass of its own when it ends.
func idle(steps []Step) bool {
	for _, st := range steps {
		if !st.changesNothing() {
			return false
		}
	}
	return true
}

// settled records that a converged service's step, which has nothing to
// do (changesNothing), ended well: it clears the service's last error, as
// its job would have, unless a step of an earlier pass still runs for it.
func (e *Executor) settled(service string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.jobs[service] == nil {
		delete(e.lastErr, service)
	}
}
