package reconcile

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jailkeeper/jailkeeper/manifest"
	"github.com/jailkeeper/jailkeeper/release"
)

// snapRuntime is a fakeRuntime that keeps data on ZFS: it records each
// SnapshotData call with the upstream the service's route had then.
type snapRuntime struct {
	*fakeRuntime
	proxy *fakeProxy
	mu    sync.Mutex
	snaps []string
	err   error
}

func (s *snapRuntime) SnapshotData(_ context.Context, service, target string, names []string, keep int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.snaps = append(s.snaps, fmt.Sprintf("%s %s %v keep %d routed-to %q", service, target, names, keep, s.proxy.upstream(service)))
	return s.err
}

func withData(s manifest.Service) manifest.Service {
	s.Data = []manifest.Data{{Name: "uploads", Path: "/var/db/hello"}, {Name: "db", Path: "/var/db/sqlite", Quota: 1 << 30}}
	return s
}

func newSnapHarness() (*harness, *snapRuntime) {
	h := newHarness()
	sr := &snapRuntime{fakeRuntime: h.rt, proxy: h.proxy}
	opts := h.options()
	opts.Runtime = sr
	h.exec = NewExecutor(opts)
	return h, sr
}

// Every switch, a rollback's included, is preceded by one snapshot of
// each data set, taken while traffic still goes to the previous release.
func TestDataSnapshotBeforeEachSwitch(t *testing.T) {
	h, sr := newSnapHarness()
	v1, v2 := withData(svc("hello", sha1)), withData(svc("hello", sha2))
	v2.Retain = 3
	var addrs []string
	for _, v := range []manifest.Service{v1, v2, v1} {
		if _, err := h.pass(t, v); err != nil {
			t.Fatal(err)
		}
		r, _ := h.rt.get(v.ReleaseName())
		addrs = append(addrs, r.Addr())
		h.advance(time.Minute)
	}
	mustState(t, h, v1.ReleaseName(), release.StateLive, true)
	want := []string{
		fmt.Sprintf(`hello %s [uploads db] keep 1 routed-to ""`, v1.ReleaseName()),
		fmt.Sprintf(`hello %s [uploads db] keep 3 routed-to %q`, v2.ReleaseName(), addrs[0]),
		fmt.Sprintf(`hello %s [uploads db] keep 1 routed-to %q`, v1.ReleaseName(), addrs[1]),
	}
	if diff := cmp.Diff(want, sr.snaps); diff != "" {
		t.Errorf("snapshots (-want +got):\n%s", diff)
	}
}

// A service without data, or a runtime without snapshots, switches
// without any.
func TestNoDataNoSnapshot(t *testing.T) {
	h, sr := newSnapHarness()
	bare := svc("hello", sha1)
	if _, err := h.pass(t, bare); err != nil {
		t.Fatal(err)
	}
	mustState(t, h, bare.ReleaseName(), release.StateLive, true)
	if len(sr.snaps) != 0 {
		t.Errorf("snapshots of a service without data: %v", sr.snaps)
	}
	plain := newHarness() // fakeRuntime has no SnapshotData
	with := withData(svc("hello", sha1))
	if _, err := plain.pass(t, with); err != nil {
		t.Fatal(err)
	}
	mustState(t, plain, with.ReleaseName(), release.StateLive, true)
}

// A snapshot that fails is the host's fault: no traffic moves, the target
// stops without a verdict, the live release keeps serving.
func TestDataSnapshotFailureKeepsTraffic(t *testing.T) {
	h, sr := newSnapHarness()
	v1, v2 := withData(svc("hello", sha1)), withData(svc("hello", sha2))
	if _, err := h.pass(t, v1); err != nil {
		t.Fatal(err)
	}
	r1 := mustState(t, h, v1.ReleaseName(), release.StateLive, true)
	h.advance(time.Minute)
	sr.err = errors.New("cannot create snapshot: out of space")
	_, err := h.pass(t, v2)
	var he *HostError
	if !errors.As(err, &he) {
		t.Fatalf("pass: %v, want a HostError", err)
	}
	if got := h.proxy.upstream("hello"); got != r1.Addr() {
		t.Errorf("route -> %q, want the live %q", got, r1.Addr())
	}
	r2 := mustState(t, h, v2.ReleaseName(), release.StateReady, false)
	if r2.Failures != 0 || r2.Reason != "" {
		t.Errorf("target got a verdict: %+v", r2)
	}
	if !slices.Contains(h.kinds(), "deploy_started hello") || slices.Contains(h.kinds(), "failed hello") {
		t.Errorf("events = %v", h.kinds())
	}
}

// migratingSnapRuntime runs migrations and keeps data on ZFS; a snapshot
// is recorded in the call history beside the migrations.
type migratingSnapRuntime struct {
	*migratingRuntime
}

func (m migratingSnapRuntime) SnapshotData(_ context.Context, service, target string, names []string, keep int) error {
	m.fakeRuntime.mu.Lock()
	defer m.fakeRuntime.mu.Unlock()
	m.record("snapshot %s %v", target, names)
	return nil
}

// A migration changes the data, so the deploy's one snapshot is taken
// before it runs: the data a rollback by hand goes back to.
func TestDataSnapshotBeforeMigration(t *testing.T) {
	h := newHarness()
	m := migratingSnapRuntime{newMigratingRuntime()}
	h.rt = m.fakeRuntime
	o := h.options()
	o.Runtime = m
	h.exec = NewExecutor(o)
	v1 := migrating(withData(svc("hello", sha1)))
	if _, err := h.pass(t, v1); err != nil {
		t.Fatal(err)
	}
	mustState(t, h, v1.ReleaseName(), release.StateLive, true)
	var got []string
	for _, c := range h.rt.history() {
		if strings.HasPrefix(c, "snapshot ") || strings.HasPrefix(c, "migrate") {
			got = append(got, c)
		}
	}
	want := []string{
		"snapshot " + v1.ReleaseName() + " [uploads db]",
		"migrate " + v1.ReleaseName(),
		"migrated " + v1.ReleaseName(),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("snapshots and migrations (-want +got):\n%s", diff)
	}
}
