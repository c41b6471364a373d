package reconcile

import (
	"fmt"
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

const newSnap = "20261129T150405Z"

// onSnap is s with its template snapshot resolved to snap.
func onSnap(s manifest.Service, snap string) manifest.Service {
	s.TemplateSnapshot = snap
	return s
}

// liveOn is the live, routed release of s cloned from snap ("" for a
// release made before releases recorded their snapshot).
func liveOn(s manifest.Service, ip byte, snap string) (release.Release, caddy.Route) {
	r := rel(onSnap(s, snap), ip, release.StateLive, t0.Add(-time.Hour), true)
	r.TemplateSnapshot = snap
	return r, routeTo(s, r)
}

// rebaseFleet is n services a..., each live on snap.
func rebaseFleet(n int, snap string) ([]manifest.Service, Observed) {
	var svcs []manifest.Service
	o := Observed{Routes: map[string]caddy.Route{}}
	for i := range n {
		s := svc(fmt.Sprintf("svc%d", i+1), sha1)
		r, route := liveOn(s, byte(10+i), snap)
		svcs = append(svcs, s)
		o.Releases = append(o.Releases, r)
		o.Routes[s.Service] = route
	}
	return svcs, o
}

func templates(snaps ...string) TemplateView {
	return TemplateView{Default: "14.3-RELEASE", Snapshots: map[string][]string{"14.3-RELEASE": snaps}}
}

// failedOn is the release of s on snap that failed its gate at when.
func failedOn(s manifest.Service, ip byte, snap string, at time.Time) release.Release {
	r := rel(onSnap(s, snap), ip, release.StateFailed, at, false)
	r.TemplateSnapshot, r.Failures, r.FailedAt, r.Reason = snap, 1, at, "health gate: 503"
	return r
}

// TestRebaseKeepsNamesOfOldReleases: a release made before releases
// recorded their template snapshot (none stored, spec hashed without one)
// keeps its name and is not redeployed while its template has only @base.
func TestRebaseKeepsNamesOfOldReleases(t *testing.T) {
	s := svc("hello", sha1)
	old := rel(s, 10, release.StateLive, t0.Add(-time.Hour), true) // no TemplateSnapshot
	o := Observed{Releases: []release.Release{old}, Routes: map[string]caddy.Route{"hello": routeTo(s, old)}}
	rp := PlanRebase(Desired{Services: []manifest.Service{s}}, o, templates("base"), RebaseInput{Options: RebaseOptions{MaxParallel: 1}})
	if got := rp.Desired.Services[0].ReleaseName(); got != old.Name {
		t.Errorf("desired release %s, want the old name %s", got, old.Name)
	}
	steps, err := Plan(rp.Desired, o, t0)
	if err != nil {
		t.Fatal(err)
	}
	if steps[0].Kind != KindNone || steps[0].changesNothing() == false {
		t.Errorf("step %s, want none that changes nothing", steps[0])
	}
	if len(rp.Services) != 0 {
		t.Errorf("rebase %v, want none", rp.Services)
	}
}

func TestPlanRebase(t *testing.T) {
	three, o3 := rebaseFleet(3, "")
	resumed := t0.Add(-time.Minute)
	tests := []struct {
		name string
		svcs []manifest.Service
		o    Observed
		tv   TemplateView
		in   RebaseInput
		// want is each service's resolved snapshot and rebase state.
		want map[string]string
	}{
		{
			name: "one-at-a-time", svcs: three, o: o3, tv: templates("base", newSnap),
			in:   RebaseInput{Options: RebaseOptions{MaxParallel: 1, PauseOnFailure: true}},
			want: map[string]string{"svc1": newSnap + " rolling", "svc2": "base pending", "svc3": "base pending"},
		},
		{
			name: "two-at-a-time", svcs: three, o: o3, tv: templates("base", newSnap),
			in:   RebaseInput{Options: RebaseOptions{MaxParallel: 2, PauseOnFailure: true}},
			want: map[string]string{"svc1": newSnap + " rolling", "svc2": newSnap + " rolling", "svc3": "base pending"},
		},
		{
			name: "in-flight-keeps-its-slot", svcs: three, tv: templates("base", newSnap),
			o: func() Observed {
				o := o3
				t := onSnap(three[1], newSnap)
				o.Memory = Memory{InFlight: []InFlight{{Service: "svc2", Release: t.ReleaseName(), Step: KindDeploy}}}
				return o
			}(),
			in:   RebaseInput{Options: RebaseOptions{MaxParallel: 1, PauseOnFailure: true}},
			want: map[string]string{"svc1": "base pending", "svc2": newSnap + " rolling", "svc3": "base pending"},
		},
		{
			name: "done-services-are-current", svcs: three, tv: templates("base", newSnap),
			o: func() Observed {
				_, o := rebaseFleet(3, "")
				r, route := liveOn(three[0], 30, newSnap)
				o.Releases[0] = r
				o.Routes["svc1"] = route
				return o
			}(),
			in:   RebaseInput{Options: RebaseOptions{MaxParallel: 1, PauseOnFailure: true}},
			want: map[string]string{"svc1": newSnap + " -", "svc2": newSnap + " rolling", "svc3": "base pending"},
		},
		{
			name: "failure-pauses", svcs: three, tv: templates("base", newSnap),
			o: func() Observed {
				_, o := rebaseFleet(3, "")
				o.Releases = append(o.Releases, failedOn(three[0], 30, newSnap, t0.Add(-30*time.Second)))
				return o
			}(),
			in:   RebaseInput{Options: RebaseOptions{MaxParallel: 1, PauseOnFailure: true}},
			want: map[string]string{"svc1": "base failed", "svc2": "base paused", "svc3": "base paused"},
		},
		{
			name: "failure-without-pause", svcs: three, tv: templates("base", newSnap),
			o: func() Observed {
				_, o := rebaseFleet(3, "")
				o.Releases = append(o.Releases, failedOn(three[0], 30, newSnap, t0.Add(-30*time.Second)))
				return o
			}(),
			in:   RebaseInput{Options: RebaseOptions{MaxParallel: 1}},
			want: map[string]string{"svc1": newSnap + " failed", "svc2": newSnap + " rolling", "svc3": "base pending"},
		},
		{
			name: "create-failure-pauses", svcs: three, tv: templates("base", newSnap),
			o: func() Observed {
				o := o3
				o.Memory = Memory{CreateFailures: []CreateFailure{failedCreate(onSnap(three[1], newSnap), 1, t0.Add(-time.Second), false)}}
				return o
			}(),
			in:   RebaseInput{Options: RebaseOptions{MaxParallel: 1, PauseOnFailure: true}},
			want: map[string]string{"svc1": "base paused", "svc2": "base failed", "svc3": "base paused"},
		},
		{
			name: "resume-tries-again", svcs: three, tv: templates("base", newSnap),
			o: func() Observed {
				_, o := rebaseFleet(3, "")
				o.Releases = append(o.Releases, failedOn(three[0], 30, newSnap, resumed.Add(-time.Second)))
				return o
			}(),
			in:   RebaseInput{Options: RebaseOptions{MaxParallel: 1, PauseOnFailure: true}, ResumedAt: resumed},
			want: map[string]string{"svc1": newSnap + " rolling", "svc2": "base pending", "svc3": "base pending"},
		},
		{
			name: "newer-snapshot-resumes", svcs: three, tv: templates("base", newSnap, "20261130T000000Z"),
			o: func() Observed {
				_, o := rebaseFleet(3, "")
				o.Releases = append(o.Releases, failedOn(three[0], 30, newSnap, t0.Add(-30*time.Second)))
				return o
			}(),
			in:   RebaseInput{Options: RebaseOptions{MaxParallel: 1, PauseOnFailure: true}},
			want: map[string]string{"svc1": "20261130T000000Z rolling", "svc2": "base pending", "svc3": "base pending"},
		},
		{
			name: "commit-to-failed-service-resumes", tv: templates("base", newSnap),
			svcs: []manifest.Service{svc("svc1", sha2), three[1], three[2]},
			o: func() Observed {
				_, o := rebaseFleet(3, "")
				o.Releases = append(o.Releases, failedOn(three[0], 30, newSnap, t0.Add(-30*time.Second)))
				return o
			}(),
			in: RebaseInput{Options: RebaseOptions{MaxParallel: 1, PauseOnFailure: true}},
			// The fix deploys on the newest at once and takes the slot.
			want: map[string]string{"svc1": newSnap + " rolling", "svc2": "base pending", "svc3": "base pending"},
		},
		{
			name: "roll-in-its-watch-keeps-its-slot", svcs: three, tv: templates("base", newSnap),
			o: func() Observed {
				_, o := rebaseFleet(3, "")
				// svc1 switched to its release on the newest snapshot;
				// the watch has not ended (ready, routed).
				r := rel(onSnap(three[0], newSnap), 30, release.StateReady, t0, true)
				r.TemplateSnapshot = newSnap
				o.Releases = append(o.Releases, r)
				o.Routes["svc1"] = routeTo(three[0], r)
				return o
			}(),
			in:   RebaseInput{Options: RebaseOptions{MaxParallel: 1, PauseOnFailure: true}},
			want: map[string]string{"svc1": newSnap + " -", "svc2": "base pending", "svc3": "base pending"},
		},
		{
			name: "held-takes-no-slot", svcs: three, o: o3, tv: templates("base", newSnap),
			in: RebaseInput{Options: RebaseOptions{MaxParallel: 1, PauseOnFailure: true}, Gate: func(svc string) (string, bool) {
				return "suspended", svc == "svc1"
			}},
			want: map[string]string{"svc1": "base held", "svc2": newSnap + " rolling", "svc3": "base pending"},
		},
		{
			name: "pinned-stays-behind", tv: templates("base", newSnap),
			svcs: []manifest.Service{onSnap(three[0], "base"), three[1], three[2]}, o: o3,
			in:   RebaseInput{Options: RebaseOptions{MaxParallel: 1, PauseOnFailure: true}},
			want: map[string]string{"svc1": "base -", "svc2": newSnap + " rolling", "svc3": "base pending"},
		},
		{
			name: "bad-pin", tv: templates("base", newSnap),
			svcs: []manifest.Service{onSnap(three[0], "nope"), three[1], three[2]}, o: o3,
			in:   RebaseInput{Options: RebaseOptions{MaxParallel: 1, PauseOnFailure: true}},
			want: map[string]string{"svc1": "base bad pin", "svc2": newSnap + " rolling", "svc3": "base pending"},
		},
		{
			name: "first-deploy-takes-newest", tv: templates("base", newSnap),
			svcs: []manifest.Service{three[0]}, o: Observed{},
			in:   RebaseInput{Options: RebaseOptions{MaxParallel: 1, PauseOnFailure: true}},
			want: map[string]string{"svc1": newSnap + " -"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rp := PlanRebase(Desired{Revision: "abc", Services: tt.svcs}, tt.o, tt.tv, tt.in)
			got := map[string]string{}
			for _, s := range rp.Desired.Services {
				state := "-"
				if r, ok := rp.Services[s.Service]; ok {
					state = r.State
				}
				got[s.Service] = s.TemplateSnapshot + " " + state
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("snapshot and state by service (-want +got):\n%s", diff)
			}
			steps, err := Plan(rp.Desired, tt.o, t0)
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			for _, st := range rp.Annotate(steps) {
				b.WriteString(st.String() + "\n")
			}
			for _, tm := range rp.Templates {
				fmt.Fprintf(&b, "template %+v\n", tm)
			}
			golden.Assert(t, filepath.Join("testdata", "plans", "rebase-"+tt.name+".golden"), []byte(b.String()))
		})
	}
}
