package jails_test

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/internal/command"
	"github.com/jailkeeper/jailkeeper/internal/testenv"
	"github.com/jailkeeper/jailkeeper/jails"
	"github.com/jailkeeper/jailkeeper/jails/jailstest"
	"github.com/jailkeeper/jailkeeper/release"
	"github.com/jailkeeper/jailkeeper/release/runtimetest"
	"github.com/jailkeeper/jailkeeper/zfs"
)

// fakeHostRuntime is the FreeBSD runtime on a fresh fake host.
func fakeHostRuntime(t *testing.T, opts ...func(*jails.FreeBSDConfig)) (*jailstest.Host, func() *jails.FreeBSD, release.Spec) {
	t.Helper()
	dir := t.TempDir()
	confDir, logDir := filepath.Join(dir, "jail.conf.d"), filepath.Join(dir, "log")
	for _, d := range []string{confDir, logDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	host := jailstest.Prepared(t, dir, jailstest.Layout{Dataset: "zroot/jails", Root: filepath.Join(dir, "jails"),
		Interface: "lo1", Own: netip.MustParsePrefix("172.16.0.1/32"), Templates: []string{"14.3-RELEASE"}})
	newRT := func() *jails.FreeBSD {
		cfg := jails.FreeBSDConfig{Dataset: "zroot/jails", Root: filepath.Join(dir, "jails"),
			Template: "14.3-RELEASE", Interface: "lo1", ConfDir: confDir, LogDir: logDir,
			Pool: netip.MustParsePrefix("172.16.0.0/12"), DyingTimeout: time.Minute, PollInterval: time.Millisecond,
			Runner: host, Datasets: zfs.New(host).WithDestroyBackoff(0, 0)}
		for _, o := range opts {
			o(&cfg)
		}
		f, err := jails.NewFreeBSD(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	art := filepath.Join(dir, "hello")
	if err := os.WriteFile(art, []byte("#!/bin/sh\necho hello\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	spec := release.Spec{Name: releaseName("hello"), Service: "hello", SHA: strings.Repeat("ab", 20),
		Spec: strings.Repeat("cd", 32), Port: 8080, Command: []string{"/usr/local/bin/hello"}, User: "www", Artifact: art}
	return host, newRT, spec
}

// TestFreeBSDFakeHostCrashLeftovers: what a crash leaves on a FreeBSD
// host, as the fake keeps it, does not stop the next agent.
func TestFreeBSDFakeHostCrashLeftovers(t *testing.T) {
	testenv.Root(t) // install chowns the env file to the jail's www
	ctx := context.Background()
	host, newRT, spec := fakeHostRuntime(t)

	// A jail that is not jailkeeper's holds the pool's first free address:
	// a new release gets the next one.
	stranger := netip.MustParseAddr("172.16.0.2")
	host.AddJail(jailstest.JailInfo{Name: "other", Path: "/usr/local/bastille/jails/other/root", IPv4: []netip.Addr{stranger}})
	r, err := newRT().Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if r.IP != netip.MustParseAddr("172.16.0.3") {
		t.Errorf("address %s, want the one after the stranger's", r.IP)
	}

	// The agent died after jail(8) added the alias and before the jail
	// existed: jail -c alone now fails as on FreeBSD 14.1, and a new
	// runtime value removes the leftover and starts the jail.
	alias := netip.PrefixFrom(r.IP, 32)
	host.AddInterface("lo1", alias)
	conf := filepath.Join(host.Dir(), "jail.conf.d", r.Name+".conf")
	if _, err := host.Run(ctx, []string{"jail", "-f", conf, "-c", r.Name}, nil); !strings.Contains(command.Stderr(err), "SIOCAIFADDR): File exists") {
		t.Fatalf("jail -c over a leftover alias: %v", err)
	}
	if err := newRT().Start(ctx, r.Name); err != nil {
		t.Fatal(err)
	}
	if n := slices.Index(host.Addrs("lo1"), alias); n < 0 || slices.Index(host.Addrs("lo1")[n+1:], alias) >= 0 {
		t.Errorf("lo1 after Start: %v, want %s once", host.Addrs("lo1"), alias)
	}

	// A jail -r whose jail stays dying: Destroy waits for it (the dataset
	// is busy until it is gone), then removes everything.
	host.SetDying(3)
	if err := newRT().Destroy(ctx, r.Name); err != nil {
		t.Fatal(err)
	}
	calls := host.Calls()
	i := slices.IndexFunc(calls, func(c jailstest.Call) bool { return slices.Contains(c.Argv, "-r") && c.Argv[0] == "jail" })
	polls := 0
	for _, c := range calls[i+1:] {
		if slices.Equal(c.Argv, []string{"jls", "--libxo=json", "-v", "-d"}) {
			polls++
		}
	}
	if polls < 3 {
		t.Errorf("Destroy listed jails %d times after jail -r; the jail was dying for 3", polls)
	}
	if _, ok := host.Dataset("zroot/jails/containers/" + r.Name); ok {
		t.Error("dataset outlived Destroy")
	}
	if got := host.Residue(); slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, r.Name) || strings.Contains(s, r.IP.String()+"/") }) {
		t.Errorf("Destroy left %v", got)
	}
}

// releaseName returns a fresh valid release name of service.
func releaseName(service string) string { return runtimetest.NewName(service) }
