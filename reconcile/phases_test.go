package reconcile

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/release"
)

// Each phase of a deploy is reported as it ends, fetch apart from create;
// the status carries the last deploy's breakdown.
func TestDeployPhases(t *testing.T) {
	h := newHarness()
	var (
		mu  sync.Mutex
		got []PhaseTiming
	)
	o := h.options()
	// A clock that moves one second per reading, so every phase takes time.
	o.Now = func() time.Time { h.advance(time.Second); h.mu.Lock(); defer h.mu.Unlock(); return h.now }
	o.Phases = func(p PhaseTiming) { mu.Lock(); got = append(got, p); mu.Unlock() }
	h.exec = NewExecutor(o)
	v1, v2 := svc("hello", sha1), svc("hello", sha2)

	for _, tc := range []struct {
		name string
		want []Phase
	}{
		{"first deploy", []Phase{PhaseFetch, PhaseCreate, PhaseStart, PhaseGate, PhaseSwitch, PhaseWatch}},
		{"upgrade", []Phase{PhaseFetch, PhaseCreate, PhaseStart, PhaseGate, PhaseSwitch, PhaseWatch, PhaseDrain}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			got = nil
			mu.Unlock()
			s := v1
			if tc.name == "upgrade" {
				s = v2
			}
			res, err := h.pass(t, s)
			if err != nil {
				t.Fatal(err)
			}
			mustState(t, h, s.ReleaseName(), release.StateLive, true)
			mu.Lock()
			defer mu.Unlock()
			var phases []Phase
			var sum float64
			for _, p := range got {
				phases = append(phases, p.Phase)
				if p.Service != "hello" || p.Release != s.ReleaseName() || p.Duration <= 0 {
					t.Errorf("timing %+v: want hello's %s and a positive duration", p, s.ReleaseName())
				}
				sum += p.Duration.Seconds()
			}
			if !slices.Equal(phases, tc.want) {
				t.Errorf("phases = %v, want %v", phases, tc.want)
			}
			ld := res.Services[0].LastDeploy
			if ld == nil {
				t.Fatal("status has no last_deploy")
			}
			if ld.Release != s.ReleaseName() || len(ld.Phases) != len(tc.want) || ld.Total < sum {
				t.Errorf("last_deploy = %+v, want %s, %d phases, total >= %v", ld, s.ReleaseName(), len(tc.want), sum)
			}
		})
	}
}
