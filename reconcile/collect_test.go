package reconcile

import (
	"testing"
	"time"
)

// A deploy with nothing to collect lists no releases (issue 11): a pass
// that deploys lists them twice, to observe and to report, however many
// services it deploys; one that leaves releases to collect lists them
// once more per deploy.
func TestCollectListsOnlyWhenThereIsSomething(t *testing.T) {
	h := newHarness()
	lists := func() int { h.rt.mu.Lock(); defer h.rt.mu.Unlock(); n := h.rt.lists; h.rt.lists = 0; return n }
	a1, b1 := svc("a", sha1), svc("b", sha1)
	if _, err := h.pass(t, a1, b1); err != nil {
		t.Fatal(err)
	}
	if n := lists(); n != 2 {
		t.Errorf("a first deploy of 2 services listed the releases %d times, want 2", n)
	}
	h.advance(time.Minute)
	a2, b2 := svc("a", sha2), svc("b", sha2)
	if _, err := h.pass(t, a2, b2); err != nil {
		t.Fatal(err)
	}
	if n := lists(); n != 2 {
		t.Errorf("an upgrade of 2 services (retain keeps the old releases) listed the releases %d times, want 2", n)
	}
	// Retain 0: each upgrade destroys the retired release, and lists.
	h.advance(time.Minute)
	a3, b3 := svc("a", sha3), svc("b", sha3)
	a3.Retain, b3.Retain = 0, 0
	if _, err := h.pass(t, a3, b3); err != nil {
		t.Fatal(err)
	}
	if n := lists(); n != 4 {
		t.Errorf("an upgrade of 2 services with releases to collect listed the releases %d times, want 4", n)
	}
}
