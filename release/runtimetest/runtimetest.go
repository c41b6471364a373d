package runtimetest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jailkeeper/jailkeeper/release"
)

// Runtime is what the suite tests: the methods of reconcile.Runtime.
type Runtime interface {
	List(ctx context.Context) ([]release.Release, error)
	Create(ctx context.Context, spec release.Spec) (release.Release, error)
	Start(ctx context.Context, name string) error
	Stop(ctx context.Context, name string) error
	Running(ctx context.Context, name string) (bool, error)
	SetStatus(ctx context.Context, name string, st release.Status) error
	Destroy(ctx context.Context, name string) error
}

// Harness is one runtime under test and the hooks the suite needs to
// observe and disturb its host. Run builds a fresh one for each subtest.
type Harness struct {
	// Runtime is the runtime under test. Required.
	Runtime Runtime
	// Restart returns a new runtime value over the same host state, as an
	// agent that was killed and started again builds it. Required.
	Restart func(t *testing.T) Runtime
	// Spec returns a spec the runtime can create, with a name no earlier
	// call returned. Required. The suite changes Artifact and EnvFile to
	// make creates fail.
	Spec func(t *testing.T) release.Spec
	// Up reports, from the host and not through the runtime, whether the
	// release's workload runs: its process answers on r.Addr(), its jail
	// exists with its address. Required.
	Up func(t *testing.T, r release.Release) bool
	// Residue lists everything of releases that exists on the host
	// (directories, datasets, conf files, addresses, jails, mounts), one
	// line per item, sorted. Required. A failed Create must leave it as
	// it was, a Destroy as it was before the Create.
	Residue func(t *testing.T) []string
	// Busy makes the release's storage busy, so that destroying it fails
	// whatever the retries, until the returned func is called. Nil when
	// nothing of the runtime can be busy (a plain directory).
	Busy func(t *testing.T, name string) (unbusy func())
	// Hold makes something that is not the runtime's hold addr with port
	// until the test ends, as a process or jail of an earlier run or a
	// stranger would: a listener (processes), a jail with that address
	// (FreeBSD). Nil skips the clause.
	Hold func(t *testing.T, addr netip.Addr, port int)
	// Faults are runtime-specific ways to make one Create fail half-way
	// (a command of the host failing after the clone exists, say), on top
	// of the suite's own (an unsafe artifact, a missing artifact, a
	// missing env file).
	Faults []Fault
}

// Fault makes the next Create fail: Inject arms it and returns the func
// that disarms it (called after the Create). cancel cancels the context
// of that Create, for a fault that is a shutdown half-way through.
type Fault struct {
	Name   string
	Inject func(t *testing.T, cancel context.CancelFunc) (disarm func())
}

// Run runs the suite, one subtest per clause of the contract, each with a
// Harness from newHarness.
func Run(t *testing.T, newHarness func(t *testing.T) *Harness) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, *Harness)
	}{
		{"Create", testCreate},
		{"CreateExisting", testCreateExisting},
		{"CreateFailureLeavesNothing", testCreateFailure},
		{"StartStopIdempotent", testStartStop},
		{"SetStatus", testSetStatus},
		{"ListAfterCrash", testCrash},
		{"Destroy", testDestroy},
		{"DestroyBusy", testDestroyBusy},
		{"NotFound", testNotFound},
		{"HeldAddressSkipped", testHeldAddress},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			if h.Runtime == nil || h.Restart == nil || h.Spec == nil || h.Up == nil || h.Residue == nil {
				t.Fatal("runtimetest: Harness lacks a required field")
			}
			tc.fn(t, h)
		})
	}
}

// equateAddr lets cmp compare releases (netip.Addr has unexported fields).
var equateAddr = cmpopts.EquateComparable(netip.Addr{})

var ctx = context.Background()

func list(t *testing.T, rt Runtime) []release.Release {
	t.Helper()
	rels, err := rt.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return rels
}

func find(rels []release.Release, name string) (release.Release, bool) {
	i := slices.IndexFunc(rels, func(r release.Release) bool { return r.Name == name })
	if i < 0 {
		return release.Release{}, false
	}
	return rels[i], true
}

func create(t *testing.T, h *Harness, spec release.Spec) release.Release {
	t.Helper()
	r, err := h.Runtime.Create(ctx, spec)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return r
}

func start(t *testing.T, h *Harness, rt Runtime, r release.Release) {
	t.Helper()
	if err := rt.Start(ctx, r.Name); err != nil {
		t.Fatalf("Start: %v", err)
	}
	waitUp(t, h, r, true)
}

// waitUp waits until h.Up says up: a process needs a moment to listen.
// The deadline only keeps a broken runtime from hanging the suite.
func waitUp(t *testing.T, h *Harness, r release.Release, up bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for h.Up(t, r) != up {
		if time.Now().After(deadline) {
			t.Fatalf("%s: Up never became %v", r.Name, up)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func running(t *testing.T, rt Runtime, name string) bool {
	t.Helper()
	ok, err := rt.Running(ctx, name)
	if err != nil {
		t.Fatalf("Running: %v", err)
	}
	return ok
}

// testCreate: a created release is ready, not running, and listed with
// the fields Create returned.
func testCreate(t *testing.T, h *Harness) {
	spec := h.Spec(t)
	r := create(t, h, spec)
	if r.Name != spec.Name || r.Service != spec.Service || r.SHA != spec.SHA || r.Spec != spec.Spec ||
		r.Port != spec.Port || r.State != release.StateReady || r.Running || !r.IP.IsValid() {
		t.Errorf("Create returned %+v for spec %s", r, spec.Name)
	}
	got, ok := find(list(t, h.Runtime), spec.Name)
	if !ok {
		t.Fatalf("List lacks %s", spec.Name)
	}
	if diff := cmp.Diff(r, got, equateAddr); diff != "" {
		t.Errorf("List after Create (-create +list):\n%s", diff)
	}
	if running(t, h.Runtime, spec.Name) || h.Up(t, r) {
		t.Error("a created release runs")
	}
}

// testCreateExisting: creating a name that exists fails with ErrExists
// and leaves the release as it was.
func testCreateExisting(t *testing.T, h *Harness) {
	spec := h.Spec(t)
	r := create(t, h, spec)
	start(t, h, h.Runtime, r)
	before := list(t, h.Runtime)
	if _, err := h.Runtime.Create(ctx, spec); !errors.Is(err, release.ErrExists) {
		t.Errorf("Create of an existing release = %v, want release.ErrExists", err)
	}
	if diff := cmp.Diff(before, list(t, h.Runtime), equateAddr); diff != "" {
		t.Errorf("a refused Create changed List (-before +after):\n%s", diff)
	}
	if !h.Up(t, r) {
		t.Error("a refused Create stopped the release")
	}
}

// evilTarball is a tarball with a link out of the release root, which
// artifact.Install refuses.
func evilTarball(t *testing.T) string {
	t.Helper()
	var tgz bytes.Buffer
	zw := gzip.NewWriter(&tgz)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "escape", Linkname: "/etc"})
	tw.Close()
	zw.Close()
	p := filepath.Join(t.TempDir(), "evil.tar.gz")
	if err := os.WriteFile(p, tgz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// testCreateFailure: a Create that fails at any point leaves the host as
// it was, and the name can be created afterwards.
func testCreateFailure(t *testing.T, h *Harness) {
	evil := evilTarball(t)
	faults := []Fault{
		{"unsafe artifact", nil},
		{"missing artifact", nil},
		{"missing env file", nil},
		{"cancelled context", nil},
	}
	faults = append(faults, h.Faults...)
	for _, f := range faults {
		t.Run(f.Name, func(t *testing.T) {
			spec := h.Spec(t)
			bad := spec
			switch f.Name {
			case "unsafe artifact":
				bad.Artifact = evil
			case "missing artifact":
				bad.Artifact = filepath.Join(t.TempDir(), "missing")
			case "missing env file":
				bad.EnvFile = filepath.Join(t.TempDir(), "missing.env")
			}
			before := h.Residue(t)
			cctx, cancel := context.WithCancel(ctx)
			defer cancel()
			disarm := func() {}
			if f.Inject != nil {
				disarm = f.Inject(t, cancel)
			}
			if f.Name == "cancelled context" {
				cancel()
			}
			_, err := h.Runtime.Create(cctx, bad)
			disarm()
			if err == nil {
				t.Fatal("Create succeeded")
			}
			if diff := cmp.Diff(before, h.Residue(t)); diff != "" {
				t.Errorf("a failed Create (%v) left (-before +after):\n%s", err, diff)
			}
			if _, ok := find(list(t, h.Runtime), spec.Name); ok {
				t.Errorf("List shows the release of a failed Create")
			}
			r := create(t, h, spec)
			if err := h.Runtime.Destroy(ctx, r.Name); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// testStartStop: Start and Stop are idempotent; a stopped release starts
// again.
func testStartStop(t *testing.T, h *Harness) {
	r := create(t, h, h.Spec(t))
	for i := range 2 {
		start(t, h, h.Runtime, r)
		if err := h.Runtime.Start(ctx, r.Name); err != nil {
			t.Fatalf("Start of a running release (round %d): %v", i, err)
		}
		if !running(t, h.Runtime, r.Name) || !h.Up(t, r) {
			t.Fatalf("not running after a second Start (round %d)", i)
		}
		for range 2 {
			if err := h.Runtime.Stop(ctx, r.Name); err != nil {
				t.Fatalf("Stop (round %d): %v", i, err)
			}
			if running(t, h.Runtime, r.Name) || h.Up(t, r) {
				t.Fatalf("running after Stop (round %d)", i)
			}
		}
		got, _ := find(list(t, h.Runtime), r.Name)
		if got.State != release.StateReady || got.Running {
			t.Errorf("List after Stop: %+v", got)
		}
	}
}

// testSetStatus: SetStatus is stored and read back by List.
func testSetStatus(t *testing.T, h *Harness) {
	r := create(t, h, h.Spec(t))
	failedAt := time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)
	for _, st := range []release.Status{
		{State: release.StateFailed, Reason: "health gate: 3 consecutive failed checks", Failures: 2, FailedAt: failedAt},
		{State: release.StateLive},
		// A standby keeps its time, across a restart too; the next state
		// drops it.
		{State: release.StateStandby, Failures: 2, FailedAt: failedAt, StandbySince: failedAt.Add(time.Hour)},
		{State: release.StateRetired},
	} {
		if err := h.Runtime.SetStatus(ctx, r.Name, st); err != nil {
			t.Fatal(err)
		}
		r.State, r.Reason, r.Failures, r.FailedAt, r.StandbySince = st.State, st.Reason, st.Failures, st.FailedAt, st.StandbySince
		got, _ := find(list(t, h.Runtime), r.Name)
		if diff := cmp.Diff(r, got, equateAddr); diff != "" {
			t.Errorf("List after SetStatus %s (-want +got):\n%s", st.State, diff)
		}
		got, _ = find(list(t, h.Restart(t)), r.Name)
		if diff := cmp.Diff(r, got, equateAddr); diff != "" {
			t.Errorf("List of a new runtime value after SetStatus %s (-want +got):\n%s", st.State, diff)
		}
	}
	if err := h.Runtime.SetStatus(ctx, r.Name, release.Status{State: "bogus"}); err == nil {
		t.Error("SetStatus took an invalid state")
	}
}

// testCrash: a new runtime value over the same host sees what the old one
// left, and drives it.
func testCrash(t *testing.T, h *Harness) {
	a := create(t, h, h.Spec(t))
	b := create(t, h, h.Spec(t))
	start(t, h, h.Runtime, a)
	if err := h.Runtime.SetStatus(ctx, a.Name, release.Status{State: release.StateLive}); err != nil {
		t.Fatal(err)
	}
	failedAt := time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)
	if err := h.Runtime.SetStatus(ctx, b.Name, release.Status{State: release.StateFailed, Reason: "why", Failures: 1, FailedAt: failedAt}); err != nil {
		t.Fatal(err)
	}
	before := list(t, h.Runtime)

	rt := h.Restart(t)
	after := list(t, rt)
	if diff := cmp.Diff(before, after, equateAddr); diff != "" {
		t.Errorf("List after a restart (-before +after):\n%s", diff)
	}
	if got, _ := find(after, a.Name); !got.Running || got.State != release.StateLive {
		t.Errorf("after a restart %s is %+v, want live and running", a.Name, got)
	}
	if !running(t, rt, a.Name) || running(t, rt, b.Name) {
		t.Error("Running after a restart disagrees with the host")
	}
	if err := rt.Start(ctx, a.Name); err != nil {
		t.Errorf("Start of a release started before the restart: %v", err)
	}
	if err := rt.Stop(ctx, a.Name); err != nil {
		t.Fatal(err)
	}
	if h.Up(t, a) {
		t.Error("Stop after a restart left the release up")
	}
	start(t, h, rt, b)
	for _, n := range []string{a.Name, b.Name} {
		if err := rt.Destroy(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	if rels := list(t, h.Runtime); len(rels) != 0 {
		t.Errorf("the old runtime value still lists %v", rels)
	}
}

// testDestroy: Destroy stops the release and leaves nothing; again is a
// no-op.
func testDestroy(t *testing.T, h *Harness) {
	before := h.Residue(t)
	r := create(t, h, h.Spec(t))
	start(t, h, h.Runtime, r)
	if err := h.Runtime.Destroy(ctx, r.Name); err != nil {
		t.Fatal(err)
	}
	if h.Up(t, r) {
		t.Error("up after Destroy")
	}
	if _, ok := find(list(t, h.Runtime), r.Name); ok {
		t.Error("listed after Destroy")
	}
	if diff := cmp.Diff(before, h.Residue(t)); diff != "" {
		t.Errorf("Destroy left (-before create +after destroy):\n%s", diff)
	}
	if err := h.Runtime.Destroy(ctx, r.Name); err != nil {
		t.Errorf("second Destroy: %v", err)
	}
}

// testDestroyBusy: a busy release resists Destroy for a bounded time, and
// stays listed, stopped, until a later Destroy removes it.
func testDestroyBusy(t *testing.T, h *Harness) {
	if h.Busy == nil {
		t.Log("nothing of this runtime can be busy: Destroy cannot be refused")
		return
	}
	before := h.Residue(t)
	r := create(t, h, h.Spec(t))
	// What a stopped release has on the host, once it has run: a refused
	// Destroy must leave exactly that.
	start(t, h, h.Runtime, r)
	if err := h.Runtime.Stop(ctx, r.Name); err != nil {
		t.Fatal(err)
	}
	stopped := h.Residue(t)
	start(t, h, h.Runtime, r)
	unbusy := h.Busy(t, r.Name)
	err := h.Runtime.Destroy(ctx, r.Name)
	if err == nil {
		unbusy()
		t.Fatal("Destroy of a busy release succeeded")
	}
	for _, rt := range []Runtime{h.Runtime, h.Restart(t)} {
		got, ok := find(list(t, rt), r.Name)
		if !ok {
			t.Fatalf("a refused Destroy (%v) left the release unlisted", err)
		}
		if got.Running || h.Up(t, r) {
			t.Errorf("after a refused Destroy the release runs: %+v", got)
		}
	}
	if diff := cmp.Diff(stopped, h.Residue(t)); diff != "" {
		t.Errorf("a refused Destroy half-removed the release (-stopped +after):\n%s", diff)
	}
	unbusy()
	if err := h.Runtime.Destroy(ctx, r.Name); err != nil {
		t.Fatalf("Destroy once no longer busy: %v", err)
	}
	if _, ok := find(list(t, h.Runtime), r.Name); ok {
		t.Error("listed after Destroy")
	}
	if diff := cmp.Diff(before, h.Residue(t)); diff != "" {
		t.Errorf("Destroy left (-before create +after destroy):\n%s", diff)
	}
}

// testNotFound: which error means "not found".
func testNotFound(t *testing.T, h *Harness) {
	name := h.Spec(t).Name // never created
	for op, err := range map[string]error{
		"Start":     h.Runtime.Start(ctx, name),
		"SetStatus": h.Runtime.SetStatus(ctx, name, release.Status{State: release.StateRetired}),
		"Running":   second(h.Runtime.Running(ctx, name)),
	} {
		if !errors.Is(err, release.ErrNotFound) {
			t.Errorf("%s of a missing release = %v, want release.ErrNotFound", op, err)
		}
	}
	for op, err := range map[string]error{
		"Stop":    h.Runtime.Stop(ctx, name),
		"Destroy": h.Runtime.Destroy(ctx, name),
	} {
		if err != nil {
			t.Errorf("%s of a missing release = %v, want nil (idempotent)", op, err)
		}
	}
	if _, ok := find(list(t, h.Runtime), name); ok {
		t.Error("a missing release is listed")
	}
}

func second(_ bool, err error) error { return err }

// testHeldAddress: an address something else holds (with the release's
// port, for a runtime that shares an address among ports) is never handed
// out, even when no release records it: the release gets another one, and
// runs.
func testHeldAddress(t *testing.T, h *Harness) {
	if h.Hold == nil {
		t.Skip("the harness cannot hold an address")
	}
	spec := h.Spec(t)
	freed := create(t, h, spec)
	if err := h.Runtime.Destroy(ctx, freed.Name); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	next := h.Spec(t)
	h.Hold(t, freed.IP, next.Port)
	r := create(t, h, next)
	if r.IP == freed.IP {
		t.Fatalf("Create handed out %s, which something else holds", r.IP)
	}
	start(t, h, h.Runtime, r)
}
