package reconcile

import (
	"errors"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jailkeeper/jailkeeper/caddy"
	"github.com/jailkeeper/jailkeeper/internal/golden"
	"github.com/jailkeeper/jailkeeper/manifest"
	"github.com/jailkeeper/jailkeeper/release"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func svc(name, sha string) manifest.Service {
	return manifest.Service{
		Service:   name,
		SHA:       sha,
		Artifact:  manifest.Artifact{URL: "file:///artifacts/" + name, SHA256: strings.Repeat("a", 64)},
		Hostnames: []string{name + ".example.com"},
		Port:      8080,
		Command:   []string{"/usr/local/bin/" + name},
		User:      "www",
		Health:    manifest.Health{Path: "/up", Interval: 5 * time.Millisecond, Timeout: time.Second, Threshold: 2, Deadline: 300 * time.Millisecond, Watch: 30 * time.Millisecond},
		Drain:     0,
		Retain:    1,
	}
}

// rel is the release a service would create, in the given state.
func rel(s manifest.Service, ip byte, state release.State, created time.Time, running bool) release.Release {
	return release.Release{Name: s.ReleaseName(), Service: s.Service, SHA: s.SHA, Spec: s.SpecHash(),
		IP: netip.AddrFrom4([4]byte{127, 77, 0, ip}), Port: s.Port, State: state, Created: created, Running: running}
}

func routeTo(s manifest.Service, r release.Release) caddy.Route { return DesiredRoute(&s, r) }

func stopped(r release.Release) release.Release { r.Running = false; return r }

const (
	sha1 = "1111111111111111111111111111111111111111"
	sha2 = "2222222222222222222222222222222222222222"
	sha3 = "3333333333333333333333333333333333333333"
)

func TestPlanGolden(t *testing.T) {
	v1, v2, v3 := svc("hello", sha1), svc("hello", sha2), svc("hello", sha3)
	r1 := rel(v1, 11, release.StateRetired, t0.Add(-3*time.Hour), false)
	r2 := rel(v2, 12, release.StateLive, t0.Add(-2*time.Hour), true)
	failed := rel(v3, 13, release.StateFailed, t0.Add(-time.Hour), false)
	failed.Failures, failed.FailedAt, failed.Reason = 2, t0.Add(-90*time.Second), "health gate: 503"
	other := svc("other", sha1)
	ro := rel(other, 20, release.StateLive, t0.Add(-time.Hour), true)

	tests := []struct {
		name string
		d    []manifest.Service
		o    Observed
	}{
		{"first-deploy", []manifest.Service{v1}, Observed{}},
		{"converged", []manifest.Service{v2}, Observed{Releases: []release.Release{r1, r2}, Routes: map[string]caddy.Route{"hello": routeTo(v2, r2)}}},
		{"route-lost", []manifest.Service{v2}, Observed{Releases: []release.Release{r1, r2}}},
		{"hostname-change", func() []manifest.Service {
			v := v2
			v.Hostnames = []string{"hello.example.com", "www.hello.example.com"}
			return []manifest.Service{v}
		}(), Observed{Releases: []release.Release{r2}, Routes: map[string]caddy.Route{"hello": routeTo(v2, r2)}}},
		{"upgrade", []manifest.Service{v3}, Observed{Releases: []release.Release{r1, r2}, Routes: map[string]caddy.Route{"hello": routeTo(v2, r2)}}},
		{"rollback", []manifest.Service{v1}, Observed{Releases: []release.Release{r1, r2}, Routes: map[string]caddy.Route{"hello": routeTo(v2, r2)}}},
		{"backoff", []manifest.Service{v3}, Observed{Releases: []release.Release{r1, r2, failed}, Routes: map[string]caddy.Route{"hello": routeTo(v2, r2)}}},
		{"retry-after-backoff", []manifest.Service{v3}, Observed{Releases: []release.Release{r2, func() release.Release {
			f := failed
			f.FailedAt = t0.Add(-3 * time.Minute)
			return f
		}()}, Routes: map[string]caddy.Route{"hello": routeTo(v2, r2)}}},
		{"interrupted-create", []manifest.Service{v3}, Observed{Releases: []release.Release{r2, rel(v3, 14, release.StateCreating, t0, false)}, Routes: map[string]caddy.Route{"hello": routeTo(v2, r2)}}},
		{"live-crashed", []manifest.Service{v2}, Observed{Releases: []release.Release{rel(v2, 12, release.StateLive, t0, false)}, Routes: map[string]caddy.Route{"hello": routeTo(v2, r2)}}},
		{"backoff-after-reboot", []manifest.Service{v3}, Observed{Releases: []release.Release{r1, stopped(r2), failed}}},
		{"deploy-while-route-lost", []manifest.Service{v3}, Observed{Releases: []release.Release{r1, r2}}},
		{"watch-interrupted", []manifest.Service{v3}, Observed{Releases: []release.Release{r2, rel(v3, 13, release.StateReady, t0, true)},
			Routes: map[string]caddy.Route{"hello": routeTo(v3, rel(v3, 13, release.StateReady, t0, true))}}},
		{"switch-back-interrupted", []manifest.Service{v3}, Observed{Releases: []release.Release{r2, func() release.Release {
			f := failed
			f.Running = true
			return f
		}()}, Routes: map[string]caddy.Route{"hello": routeTo(v3, failed)}}},
		{"reboot-during-watch", []manifest.Service{v3}, Observed{Releases: []release.Release{stopped(r2), rel(v3, 13, release.StateReady, t0, false)},
			Routes: map[string]caddy.Route{"hello": routeTo(v3, rel(v3, 13, release.StateReady, t0, false))}}},
		{"failed-first-deploy-still-routed", []manifest.Service{v3}, Observed{Releases: []release.Release{failed},
			Routes: map[string]caddy.Route{"hello": routeTo(v3, failed)}}},
		// The executor's memory is observed too: a failed fetch or create
		// left no release, and a step of an earlier pass may still run.
		{"create-backoff", []manifest.Service{v3}, Observed{Releases: []release.Release{r1, r2}, Routes: map[string]caddy.Route{"hello": routeTo(v2, r2)},
			Memory: Memory{CreateFailures: []CreateFailure{failedCreate(v3, 2, t0.Add(-90*time.Second), false)}}}},
		{"create-retry", []manifest.Service{v3}, Observed{Releases: []release.Release{r1, r2}, Routes: map[string]caddy.Route{"hello": routeTo(v2, r2)},
			Memory: Memory{CreateFailures: []CreateFailure{failedCreate(v3, 2, t0.Add(-3*time.Minute), false)}}}},
		{"create-stalled", []manifest.Service{v3}, Observed{Releases: []release.Release{r1, r2}, Routes: map[string]caddy.Route{"hello": routeTo(v2, r2)},
			Memory: Memory{CreateFailures: []CreateFailure{failedCreate(v3, 1, t0.Add(-time.Hour), true)}}}},
		{"create-stalled-first-deploy", []manifest.Service{v3}, Observed{
			Memory: Memory{CreateFailures: []CreateFailure{failedCreate(v3, 1, t0.Add(-time.Hour), true)}}}},
		{"busy", []manifest.Service{v3, other}, Observed{Releases: []release.Release{r1, r2, ro}, Routes: map[string]caddy.Route{"hello": routeTo(v2, r2), "other": routeTo(other, ro)},
			Memory: Memory{InFlight: []InFlight{{Service: "hello", Release: v3.ReleaseName(), Step: KindDeploy}}}}},
		{"busy-newer-commit", []manifest.Service{v3}, Observed{Releases: []release.Release{r1, r2}, Routes: map[string]caddy.Route{"hello": routeTo(v2, r2)},
			Memory: Memory{InFlight: []InFlight{{Service: "hello", Release: r2.Name, Step: KindWatch}}}}},
		{"busy-prune", []manifest.Service{v2}, Observed{Releases: []release.Release{r2, ro}, Routes: map[string]caddy.Route{"hello": routeTo(v2, r2), "other": routeTo(other, ro)},
			Memory: Memory{InFlight: []InFlight{{Service: "other", Release: ro.Name, Step: KindWatch}}}}},
		{"prune", []manifest.Service{v2}, Observed{Releases: []release.Release{r2, ro}, Routes: map[string]caddy.Route{"hello": routeTo(v2, r2), "other": routeTo(other, ro)}}},
		{"cleanup-retain", []manifest.Service{v2}, Observed{Releases: []release.Release{
			rel(svc("hello", strings.Repeat("4", 40)), 15, release.StateRetired, t0.Add(-5*time.Hour), false),
			rel(svc("hello", strings.Repeat("5", 40)), 16, release.StateFailed, t0.Add(-6*time.Hour), false),
			func() release.Release { f := failed; f.Created = t0.Add(-4 * time.Hour); return f }(),
			rel(svc("hello", strings.Repeat("6", 40)), 17, release.StateReady, t0.Add(-4*time.Hour), true),
			r1, r2,
		}, Routes: map[string]caddy.Route{"hello": routeTo(v2, r2)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			steps, err := Plan(Desired{Revision: "abc", Services: tt.d}, tt.o, t0)
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			for _, s := range steps {
				b.WriteString(s.String() + "\n")
			}
			golden.Assert(t, filepath.Join("testdata", "plans", tt.name+".golden"), []byte(b.String()))
		})
	}
}

// failedCreate is the executor's record of failed fetches or creates of s.
func failedCreate(s manifest.Service, n int, at time.Time, stalled bool) CreateFailure {
	reason := "fetch artifact: fetch file:///artifacts/hello: HTTP status 404 Not Found"
	if stalled {
		reason = "fetch artifact: fetch file:///artifacts/hello: checksum mismatch"
	}
	return CreateFailure{Service: s.Service, Release: s.ReleaseName(), Spec: s.SpecHash(), Failures: n, FailedAt: at, Reason: reason, Stalled: stalled}
}

func TestPlanRefusesPruningEverything(t *testing.T) {
	v := svc("hello", sha1)
	r := rel(v, 11, release.StateLive, t0, true)
	steps, err := Plan(Desired{}, Observed{Releases: []release.Release{r}}, t0)
	if !errors.Is(err, ErrPruneAll) {
		t.Fatalf("err = %v, want ErrPruneAll", err)
	}
	if len(steps) != 0 {
		t.Errorf("steps = %v, want none", steps)
	}
	// A repo that wants only services this host does not run (a wrong
	// path, a hosts: typo) is refused too.
	if _, err := Plan(Desired{Services: []manifest.Service{svc("other", sha2)}}, Observed{Releases: []release.Release{r}}, t0); !errors.Is(err, ErrPruneAll) {
		t.Errorf("replacing every service: err = %v, want ErrPruneAll", err)
	}
	// An empty host with an empty repo is fine.
	if _, err := Plan(Desired{}, Observed{}, t0); err != nil {
		t.Errorf("empty host: %v", err)
	}
}

func TestPlanIgnoresReleaseOrder(t *testing.T) {
	v1, v2 := svc("hello", sha1), svc("hello", sha2)
	// Two releases marked live (a crash between the switch and retiring the
	// previous one) and no route (Caddy lost it).
	a := rel(v1, 11, release.StateLive, t0.Add(-time.Hour), true)
	b := rel(v2, 12, release.StateLive, t0, true)
	for _, want := range []manifest.Service{v1, v2} {
		s1, err := Plan(Desired{Services: []manifest.Service{want}}, Observed{Releases: []release.Release{a, b}}, t0)
		if err != nil {
			t.Fatal(err)
		}
		s2, err := Plan(Desired{Services: []manifest.Service{want}}, Observed{Releases: []release.Release{b, a}}, t0)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(s1, s2); diff != "" {
			t.Errorf("plan for %s depends on release order:\n%s", want.SHA[:4], diff)
		}
		if s1[0].Kind != KindNone || s1[0].Target != want.ReleaseName() {
			t.Errorf("plan for %s = %s, want the live release of the desired spec kept", want.SHA[:4], s1[0])
		}
	}
}

func TestPlanIsOrderIndependent(t *testing.T) {
	a, b := svc("alpha", sha1), svc("beta", sha2)
	s1, err := Plan(Desired{Services: []manifest.Service{a, b}}, Observed{}, t0)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := Plan(Desired{Services: []manifest.Service{b, a}}, Observed{}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(s1, s2); diff != "" {
		t.Errorf("plans differ with input order:\n%s", diff)
	}
	if s1[0].Service != "alpha" || s1[1].Service != "beta" {
		t.Errorf("not sorted: %v", s1)
	}
}

func TestBackoff(t *testing.T) {
	for _, tt := range []struct {
		n    int
		want time.Duration
	}{{0, time.Minute}, {1, time.Minute}, {2, 2 * time.Minute}, {3, 4 * time.Minute}, {7, 60 * time.Minute}, {100, time.Hour}} {
		if got := Backoff(tt.n); got != tt.want {
			t.Errorf("Backoff(%d) = %s, want %s", tt.n, got, tt.want)
		}
	}
}

func TestPlanRewritesDriftedRoute(t *testing.T) {
	v := svc("hello", sha1)
	r := rel(v, 11, release.StateLive, t0, true)
	route := routeTo(v, r)
	route.Drifted = true // someone edited the handler by hand
	steps, err := Plan(Desired{Services: []manifest.Service{v}}, Observed{Releases: []release.Release{r}, Routes: map[string]caddy.Route{"hello": route}}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if steps[0].Kind != KindNone || steps[0].Route == nil || steps[0].Route.Drifted {
		t.Errorf("step = %s, want the route rewritten", steps[0])
	}
}
