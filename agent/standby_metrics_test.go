package agent

import (
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/reconcile"
	"github.com/jailkeeper/jailkeeper/release"
)

// A deploy that leaves its previous release on standby moves it to
// releases{state="standby"} at once, not at the end of the pass; one
// without standby moves it to retired.
func TestMetricsCountStandby(t *testing.T) {
	const prev, next, third = "hello_111111111111_9f86d0", "hello_222222222222_9f86d0", "hello_333333333333_9f86d0"
	m := NewMetrics()
	m.passDone(reconcile.Result{
		Services: []reconcile.ServiceStatus{{Service: "hello", LiveRelease: prev, Converged: true, State: "live"}},
		Releases: []release.Release{{Name: prev, Service: "hello", State: release.StateLive}},
	}, nil, time.Second)
	count := func(state string) float64 {
		t.Helper()
		v, ok := value(t, m, "jailkeeper_releases", map[string]string{"service": "hello", "state": state})
		if !ok {
			t.Fatalf("no releases{state=%q} series", state)
		}
		return v
	}
	if n := count("standby"); n != 0 {
		t.Fatalf("standby = %v before any deploy, want 0", n)
	}
	m.event(reconcile.Event{Kind: reconcile.EventLive, Service: "hello", Release: next, Previous: prev, Standby: 15 * time.Minute})
	if s, l, r := count("standby"), count("live"), count("retired"); s != 1 || l != 1 || r != 0 {
		t.Errorf("after a deploy with standby: standby %v live %v retired %v, want 1 1 0", s, l, r)
	}
	m.event(reconcile.Event{Kind: reconcile.EventLive, Service: "hello", Release: third, Previous: next})
	if r := count("retired"); r != 1 {
		t.Errorf("after a deploy without standby: retired %v, want 1", r)
	}
}
