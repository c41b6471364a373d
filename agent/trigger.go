package agent

import (
	"time"

	"github.com/jailkeeper/jailkeeper/reconcile"
)

// What asked for a pass: the values of last_deploy's trigger in /status.
const (
	triggerStart   = "start"   // the agent's first pass
	triggerPoll    = "poll"    // repo.poll's schedule
	triggerSync    = "sync"    // POST /sync, `jailkeeper sync`
	triggerWebhook = "webhook" // an authenticated POST /hooks/git
	triggerRetry   = "retry"   // a deploy that outlived its pass ended, or a backoff ended
)

// ask is the first trigger not yet served by a poll.
type ask struct {
	kind string
	at   time.Time
}

// Trigger asks for a pass as soon as possible; triggers that arrive while
// one is pending coalesce. Safe for concurrent use.
func (a *Agent) Trigger() { a.triggerBy(triggerPoll) }

// triggerBy is Trigger for a named cause. Of the triggers that coalesce
// into one poll, the first names it: the deploy's wait counts from there.
func (a *Agent) triggerBy(kind string) {
	now := time.Now
	if a.now != nil {
		now = a.now
	}
	a.mu.Lock()
	if a.asked.kind == "" {
		a.asked = ask{kind: kind, at: now()}
	}
	a.mu.Unlock()
	select {
	case a.trigger <- struct{}{}:
	default:
	}
}

// takeAsked returns the trigger a poll about to start serves, and
// forgets it.
func (a *Agent) takeAsked() ask {
	a.mu.Lock()
	defer a.mu.Unlock()
	t := a.asked
	a.asked = ask{}
	return t
}

// stamped returns a copy of d that says what asked for it and when its
// poll returned, for the deploys' LastDeploy.
func stamped(d *reconcile.Desired, t ask, seen time.Time) *reconcile.Desired {
	if d == nil {
		return nil
	}
	c := *d
	c.Trigger, c.Triggered, c.Seen = t.kind, t.at, seen
	return &c
}
