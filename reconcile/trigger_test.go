package reconcile

import (
	"context"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/manifest"
)

// The last deploy's breakdown says what asked for its pass and how long
// the deploy waited for it (from the trigger's arrival to its start), and
// how long from the commit seen to traffic on the release: a webhook's
// deploy shows as such.
func TestLastDeployTrigger(t *testing.T) {
	h := newHarness()
	o := h.options()
	// A clock that moves one second per reading.
	o.Now = func() time.Time { h.advance(time.Second); h.mu.Lock(); defer h.mu.Unlock(); return h.now }
	h.exec = NewExecutor(o)
	s := svc("hello", sha1)
	h.mu.Lock()
	triggered := h.now
	h.mu.Unlock()
	seen := triggered.Add(2 * time.Second)
	h.advance(3 * time.Second)
	res, err := h.exec.Pass(context.Background(), Desired{Revision: "r", Services: []manifest.Service{s},
		Trigger: "webhook", Triggered: triggered, Seen: seen})
	if err != nil {
		t.Fatal(err)
	}
	ld := res.Services[0].LastDeploy
	if ld == nil {
		t.Fatal("status has no last_deploy")
	}
	if ld.Trigger != "webhook" {
		t.Errorf("last_deploy.trigger = %q, want webhook", ld.Trigger)
	}
	// The deploy started after the trigger and the commit was seen before
	// the switch, which came before the end of the deploy.
	if ld.Wait < 3 || ld.Live <= 0 || ld.Live > ld.Total+ld.Wait {
		t.Errorf("last_deploy = %+v: want wait >= 3s, 0 < live <= wait+total", ld)
	}
	if ld.Live >= ld.Wait+ld.Total-1 {
		t.Errorf("last_deploy.live = %v: want it to end at the switch, before the watch and the end", ld.Live)
	}
}
