package agent

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jailkeeper/jailkeeper/internal/command"
	"github.com/jailkeeper/jailkeeper/internal/golden"
	"github.com/jailkeeper/jailkeeper/internal/testenv"
	"github.com/jailkeeper/jailkeeper/jails"
	"github.com/jailkeeper/jailkeeper/jails/jailstest"
	"github.com/jailkeeper/jailkeeper/process"
	"github.com/jailkeeper/jailkeeper/release"
	"github.com/jailkeeper/jailkeeper/zfs"
)

// TestShutdownStopsReleasesNewestFirst: `host shutdown` on a FreeBSD host
// (the jailstest fake) stops every running release with jail -r, which
// runs /etc/rc.shutdown in it, in the reverse of the order they started
// (by JID), removes their rctl rules, and leaves stopped releases and
// jails that are not releases alone. The host's commands are a golden
// transcript.
func TestShutdownStopsReleasesNewestFirst(t *testing.T) {
	testenv.Root(t) // install chowns the env file to the jail's www
	ctx := context.Background()
	dir := t.TempDir()
	confDir, logDir := filepath.Join(dir, "jail.conf.d"), filepath.Join(dir, "log")
	for _, d := range []string{confDir, logDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	host := jailstest.Prepared(t, dir, jailstest.Layout{Dataset: "zroot/jails", Root: filepath.Join(dir, "jails"),
		Interface: "lo1", Own: netip.MustParsePrefix("172.16.0.1/32"), Templates: []string{"14.3-RELEASE"}})
	rt, err := jails.NewFreeBSD(jails.FreeBSDConfig{Dataset: "zroot/jails", Root: filepath.Join(dir, "jails"),
		Template: "14.3-RELEASE", Interface: "lo1", ConfDir: confDir, LogDir: logDir,
		Pool: netip.MustParsePrefix("172.16.0.0/12"), PollInterval: time.Millisecond,
		Runner: host, Datasets: zfs.New(host).WithDestroyBackoff(0, 0),
		Now: func() time.Time { return time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	art := filepath.Join(dir, "app")
	if err := os.WriteFile(art, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	spec := func(svc string, limits release.Limits) release.Spec {
		return release.Spec{Name: svc + "_4b825dc642cb_1a2b3c", Service: svc, SHA: strings.Repeat("ab", 20),
			Spec: strings.Repeat("cd", 32), Port: 8080, Command: []string{"/usr/local/bin/" + svc}, User: "www",
			Artifact: art, Limits: limits}
	}
	// Started in the order web, api, blog (JIDs 1, 2, 3); mail is created
	// and never started; a jail that is not a release runs too.
	host.AddJail(jailstest.JailInfo{Name: "other", Path: "/usr/local/bastille/jails/other/root"})
	for _, s := range []release.Spec{spec("web", release.Limits{}), spec("api", release.Limits{Memory: 256 << 20, MaxProc: 100}),
		spec("blog", release.Limits{}), spec("mail", release.Limits{})} {
		if _, err := rt.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
		if s.Service != "mail" {
			if err := rt.Start(ctx, s.Name); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got, want := host.Rules("api_4b825dc642cb_1a2b3c"), 2; len(got) != want {
		t.Fatalf("api's rules: %v", got)
	}
	from := len(host.Calls())

	var out bytes.Buffer
	if err := stopAll(ctx, rt, &out); err != nil {
		t.Fatal(err)
	}
	var stopped []string
	for line := range strings.Lines(out.String()) {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "stopped" {
			stopped = append(stopped, f[1])
		}
	}
	want := []string{"blog_4b825dc642cb_1a2b3c", "api_4b825dc642cb_1a2b3c", "web_4b825dc642cb_1a2b3c"}
	if diff := cmp.Diff(want, stopped); diff != "" {
		t.Errorf("stopped (-want +got):\n%s\noutput:\n%s", diff, out.String())
	}
	if !strings.HasSuffix(out.String(), "3 of 3 running releases stopped\n") {
		t.Errorf("output:\n%s", out.String())
	}
	var jailsLeft []string
	for _, j := range host.Jails() {
		jailsLeft = append(jailsLeft, j.Name)
	}
	if !slices.Equal(jailsLeft, []string{"other"}) {
		t.Errorf("jails after shutdown: %v, want only the stranger", jailsLeft)
	}
	if got := host.Rules("api_4b825dc642cb_1a2b3c"); len(got) != 0 {
		t.Errorf("rctl rules after shutdown: %v", got)
	}
	rels, err := rt.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rels {
		if r.State != release.StateReady {
			t.Errorf("%s in state %s after shutdown: a shutdown changes no state", r.Name, r.State)
		}
	}

	var tr strings.Builder
	for _, c := range host.Calls()[from:] {
		tr.WriteString(strings.ReplaceAll(command.Quote(c.Argv), dir, "<tmp>"))
		if c.Exit != 0 {
			tr.WriteString("  # exit " + strconv.Itoa(c.Exit))
		}
		tr.WriteByte('\n')
	}
	golden.Assert(t, "testdata/shutdown.transcript", []byte(
		"# jailkeeper host shutdown on the fake FreeBSD host (TestShutdownStopsReleasesNewestFirst):\n"+
			"# web, api (with limits) and blog started in that order, mail never, other not a release.\n"+tr.String()))
}

// TestShutdownProcessRuntime: the process runtime does not know the start
// order; its running releases are stopped newest created first, and the
// stopped ones are left alone.
func TestShutdownProcessRuntime(t *testing.T) {
	ctx := context.Background()
	tmpl := t.TempDir()
	sh, err := os.ReadFile("/bin/sh")
	if err != nil {
		testenv.Need(t, "/bin/sh: %v", err)
	}
	if err := os.MkdirAll(filepath.Join(tmpl, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmpl, "bin/sh"), sh, 0o755); err != nil {
		t.Fatal(err)
	}
	rt, err := process.New(process.Config{Root: filepath.Join(t.TempDir(), "releases"), Template: tmpl,
		Pool: netip.MustParsePrefix("127.66.201.0/24")})
	if err != nil {
		t.Fatal(err)
	}
	created := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	var names []string
	for i, svc := range []string{"zeta", "alpha", "mid", "idle"} {
		s := release.Spec{Name: svc + "_4b825dc642cb_1a2b3c", Service: svc, SHA: strings.Repeat("ab", 20),
			Spec: strings.Repeat("cd", 32), Port: 20000 + i, Command: []string{"/bin/sh", "-c", "exec sleep 1000"},
			Created: created.Add(time.Duration(i) * time.Minute)}
		if _, err := rt.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rt.Destroy(context.Background(), s.Name) })
		if svc != "idle" {
			if err := rt.Start(ctx, s.Name); err != nil {
				t.Fatal(err)
			}
			names = append(names, s.Name)
		}
	}
	var out bytes.Buffer
	if err := stopAll(ctx, rt, &out); err != nil {
		t.Fatal(err)
	}
	var stopped []string
	for line := range strings.Lines(out.String()) {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "stopped" {
			stopped = append(stopped, f[1])
		}
	}
	slices.Reverse(names)
	if diff := cmp.Diff(names, stopped); diff != "" {
		t.Errorf("stopped (-want +got):\n%s", diff)
	}
	for _, n := range names {
		if up, err := rt.Running(ctx, n); err != nil || up {
			t.Errorf("%s running after shutdown: %v %v", n, up, err)
		}
	}
}

// TestShutdownRefusesWhileAgentRuns: the agent would start the live
// releases again, so shutdown refuses while it holds the state dir.
func TestShutdownRefusesWhileAgentRuns(t *testing.T) {
	dir := t.TempDir()
	unlock, err := lockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	cfg := &Config{StateDir: dir, Runtime: "process", File: "jk.yaml"}
	err = Shutdown(context.Background(), cfg, &bytes.Buffer{})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "service jailkeeper stop") {
		t.Errorf("Shutdown while the agent runs = %v, want ErrLocked saying to stop the agent", err)
	}
}
