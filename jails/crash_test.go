package jails_test

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jailkeeper/jailkeeper/internal/crashpoint"
	"github.com/jailkeeper/jailkeeper/internal/testenv"
	"github.com/jailkeeper/jailkeeper/jails"
	"github.com/jailkeeper/jailkeeper/release"
)

// TestFreeBSDCrashPoints kills the FreeBSD runtime at each of its crash
// points in turn, on the stateful fake host, during a create, start, stop
// and destroy of one release. A new runtime over the same host then does
// what the next agent's pass would (destroy an interrupted create, create,
// start, destroy) and must leave the host as it found it: no jail, alias,
// dataset, mount, conf or log left, none twice, nothing failed.
//
// The kill is in-process: crashpoint.Arm with crashpoint.Die panics at the
// point and the panic is recovered here, since SIGKILL would end the test
// binary. Deferred functions of the runtime do run then; none of them
// undoes a create on a panic (they look at a returned error), so what
// stays on the fake host is what a SIGKILL would leave. The end-to-end
// sweep with a real child agent is agent's TestE2ECrashPoints.
func TestFreeBSDCrashPoints(t *testing.T) {
	testenv.Root(t) // install chowns the env file to the jail's www
	var points []string
	for _, p := range crashpoint.Points() {
		if strings.HasPrefix(p, "jails.") {
			points = append(points, p)
		}
	}
	if len(points) < 8 {
		t.Fatalf("jails crash points = %v: the FreeBSD runtime lost some", points)
	}
	for _, point := range points {
		t.Run(point, func(t *testing.T) {
			ctx := context.Background()
			host, newRT, spec := fakeHostRuntime(t)
			dirs := []string{filepath.Join(host.Dir(), "jail.conf.d"), filepath.Join(host.Dir(), "log")}
			before := host.Residue(dirs...)

			if !crashIn(t, point, func() { lifecycle(ctx, t, newRT(), spec) }) {
				t.Fatalf("a create, start, stop and destroy never reached %s", point)
			}
			t.Logf("killed at %s", point)

			// The next agent.
			rt := newRT()
			rels, err := rt.List(ctx)
			if err != nil {
				t.Fatalf("List after the crash: %v", err)
			}
			for _, r := range rels {
				if r.State == release.StateFailed {
					t.Errorf("%s is failed after a crash it did not cause: %s", r.Name, r.Reason)
				}
			}
			i := slices.IndexFunc(rels, func(r release.Release) bool { return r.Name == spec.Name })
			switch {
			case i >= 0 && rels[i].State == release.StateCreating:
				// Plan: "previous create was interrupted", destroy, create.
				if err := rt.Destroy(ctx, spec.Name); err != nil {
					t.Fatalf("destroy the interrupted create: %v", err)
				}
				fallthrough
			case i < 0:
				if _, err := rt.Create(ctx, spec); err != nil {
					t.Fatalf("create after the crash: %v", err)
				}
			}
			if err := rt.Start(ctx, spec.Name); err != nil {
				t.Fatalf("start after the crash: %v", err)
			}
			rels, err = rt.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(rels) != 1 || !rels[0].Running || rels[0].State != release.StateReady {
				t.Errorf("releases after the restart: %+v, want %s ready and running", rels, spec.Name)
			} else {
				alias := "alias lo1 " + rels[0].IP.String() + "/32"
				if n := countOf(host.Residue(), alias); n != 1 {
					t.Errorf("%s %d times on the host, want once", alias, n)
				}
			}
			if err := rt.Destroy(ctx, spec.Name); err != nil {
				t.Fatalf("destroy after the crash: %v", err)
			}
			if diff := cmp.Diff(before, host.Residue(dirs...)); diff != "" {
				t.Errorf("host after the crash and a destroy (-before +after):\n%s", diff)
			}
		})
	}
}

// crashIn runs fn with point armed to panic, and reports whether fn died
// there.
func crashIn(t *testing.T, point string, fn func()) (died bool) {
	t.Helper()
	defer crashpoint.Arm(point, crashpoint.Die)()
	defer func() {
		if v := recover(); v != nil {
			if c, ok := v.(crashpoint.Crash); !ok || c.Point != point {
				panic(v)
			}
			died = true
		}
	}()
	fn()
	return false
}

// lifecycle is one release's life: each step must succeed until the crash.
func lifecycle(ctx context.Context, t *testing.T, rt *jails.FreeBSD, spec release.Spec) {
	t.Helper()
	if _, err := rt.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(ctx, spec.Name); err != nil {
		t.Fatal(err)
	}
	if err := rt.Stop(ctx, spec.Name); err != nil {
		t.Fatal(err)
	}
	if err := rt.Destroy(ctx, spec.Name); err != nil {
		t.Fatal(err)
	}
}

func countOf(lines []string, s string) int {
	n := 0
	for _, l := range lines {
		if l == s {
			n++
		}
	}
	return n
}
