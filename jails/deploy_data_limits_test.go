package jails_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/caddy"
	"github.com/jailkeeper/jailkeeper/internal/golden"
	"github.com/jailkeeper/jailkeeper/internal/testenv"
	"github.com/jailkeeper/jailkeeper/jails"
	"github.com/jailkeeper/jailkeeper/manifest"
	"github.com/jailkeeper/jailkeeper/reconcile"
)

// A deploy and an upgrade of a service with persistent data and limits, as
// the agent drives them: the reconcile Executor over the jail runtime on
// the fake host. The golden transcript is every command the host ran:
// the data set made once and mounted into both releases, its snapshot
// before each switch, the rctl rules added before each jail -c and
// removed after the old release's jail -r.
func TestFreeBSDDeployWithDataAndLimits(t *testing.T) {
	testenv.Root(t) // install chowns the env file and the data to the jail's www
	ctx := context.Background()
	clock := &testClock{now: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)}
	host, newRT, spec := fakeHostRuntime(t, func(c *jails.FreeBSDConfig) { c.Now = clock.Now })
	proxy := &memProxy{routes: map[string]caddy.Route{}}
	exec := reconcile.NewExecutor(reconcile.Options{Runtime: newRT(), Proxy: proxy, Prober: &okProber{},
		Fetcher: fixedFetcher(spec.Artifact), Now: clock.Now, Parallel: 2})
	svc := func(sha string) manifest.Service {
		s := standbySvc(sha)
		s.Data = []manifest.Data{{Name: "uploads", Path: "/var/db/hello", Quota: 10 << 30}}
		s.Limits = manifest.Limits{Memory: 512 << 20, PCPU: 50, MaxProc: 100, OpenFiles: 1024, Disk: 2 << 30}
		return s
	}
	v1, v2 := svc(strings.Repeat("1", 40)), svc(strings.Repeat("2", 40))
	for _, v := range []manifest.Service{v1, v2} {
		res, err := exec.Pass(ctx, reconcile.Desired{Revision: v.SHA, Services: []manifest.Service{v}})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Steps) == 0 {
			t.Fatalf("pass for %s planned nothing", v.ReleaseName())
		}
		clock.advance(time.Minute)
	}
	r2, _ := findRelease(t, newRT(), v2.ReleaseName())
	if up := proxy.upstream("hello"); up != r2.Addr() {
		t.Errorf("route -> %s, want v2's %s", up, r2.Addr())
	}
	if jailRunning(host, v1.ReleaseName()) || !jailRunning(host, v2.ReleaseName()) {
		t.Errorf("jails %v, want only %s", host.Jails(), v2.ReleaseName())
	}
	var b strings.Builder
	for _, c := range host.Calls() {
		b.WriteString(strings.ReplaceAll(strings.Join(c.Argv, " "), host.Dir(), "<tmp>") + "\n")
	}
	golden.Assert(t, "testdata/freebsd/golden/deploy-data-limits.transcript", []byte(b.String()))
}
