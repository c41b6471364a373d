package agent_test

import (
	"os"
	"strconv"
	"testing"
	"time"
)

// fleetE2ESize is how many services TestE2EFleetChangeUnderLoad changes
// at once: modest, for `make test` on a small machine;
// JAILKEEPER_FLEET_E2E_N sets another.
const fleetE2ESize = 50

// A change to every service in one commit (a config change: every
// service gets a new release) runs under client load through Caddy, and
// no request fails: not one while releases are created, gated, switched
// and the old ones drained and stopped.
func TestE2EFleetChangeUnderLoad(t *testing.T) {
	n := fleetE2ESize
	if v := os.Getenv("JAILKEEPER_FLEET_E2E_N"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 || n > 120 {
			t.Fatalf("JAILKEEPER_FLEET_E2E_N=%q: want 1..120 (the env's /24 holds two releases per service)", v)
		}
	}
	f := newFleet(t, n, "@every 1h", "{path: /up, interval: 100ms, timeout: 1s, threshold: 2, deadline: 30s, watch: 1s}", "")
	rev := f.commitAll("fleet v1", "v1", "")
	start := time.Now()
	f.runAgent()
	f.waitConverged(rev, start, 10*time.Minute)
	before := map[string]string{}
	for _, s := range f.status().Services {
		before[s.Service] = s.LiveRelease
	}

	stop := f.load(4)
	rev = f.commitAll("fleet: GEN=b everywhere", "v1", "b")
	start = time.Now()
	f.sync()
	took := f.waitConverged(rev, start, 10*time.Minute)
	ok, failed, last := stop()
	t.Logf("%d services changed in %s under load: %d requests ok, %d failed; %d dropped by Caddy at a reload before any answer and sent again",
		n, took.Round(time.Millisecond), ok, failed, f.retried.Load())
	if failed > 0 || ok == 0 {
		t.Errorf("under load: %d ok, %d failed (last: %s); want none failed", ok, failed, last)
	}
	for _, s := range f.status().Services {
		if s.LiveRelease == "" || s.LiveRelease == before[s.Service] {
			t.Errorf("%s: live %q, was %q: want a new release", s.Service, s.LiveRelease, before[s.Service])
		}
	}
}
