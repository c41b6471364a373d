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

	"github.com/jailkeeper/jailkeeper/internal/testenv"
	"github.com/jailkeeper/jailkeeper/jails"
	"github.com/jailkeeper/jailkeeper/jails/jailstest"
	jkrelease "github.com/jailkeeper/jailkeeper/release"
	"github.com/jailkeeper/jailkeeper/release/runtimetest"
	"github.com/jailkeeper/jailkeeper/zfs"
)

// The FreeBSD runtime passes the runtime conformance suite on the fake
// FreeBSD host; its zfs commands go through the zfs client to the fake.
func TestConformanceFreeBSD(t *testing.T) { conformanceFreeBSD(t, jkrelease.Limits{}) }

// TestConformanceFreeBSDWithLimits: the same, every release with limits:
// its rctl rules come and go with its jail, and none is left behind
// (Residue lists them), crashes included.
func TestConformanceFreeBSDWithLimits(t *testing.T) {
	conformanceFreeBSD(t, jkrelease.Limits{Memory: 256 << 20, PCPU: 50, MaxProc: 100, OpenFiles: 1024, Disk: 1 << 30})
}

func conformanceFreeBSD(t *testing.T, limits jkrelease.Limits) {
	testenv.Root(t) // install chowns the env file to the jail's www
	runtimetest.Run(t, func(t *testing.T) *runtimetest.Harness {
		dir := t.TempDir()
		confDir, logDir := filepath.Join(dir, "jail.conf.d"), filepath.Join(dir, "log")
		for _, d := range []string{confDir, logDir} {
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		host := jailstest.Prepared(t, dir, jailstest.Layout{Dataset: "zroot/jails", Root: filepath.Join(dir, "jails"),
			Interface: "lo1", Own: netip.MustParsePrefix("172.16.0.1/32"), Templates: []string{"14.3-RELEASE"}})
		cfg := jails.FreeBSDConfig{Dataset: "zroot/jails", Root: filepath.Join(dir, "jails"), Template: "14.3-RELEASE",
			Interface: "lo1", ConfDir: confDir, LogDir: logDir, Pool: netip.MustParsePrefix("172.16.0.0/12"),
			DyingTimeout: 50 * time.Millisecond, PollInterval: time.Millisecond, DestroyRetries: 2,
			Runner: host, Datasets: zfs.New(host).WithDestroyBackoff(0, 0)}
		newRT := func(t *testing.T) runtimetest.Runtime {
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
		fail := func(prefix ...string) func(*testing.T, context.CancelFunc) func() {
			return func(*testing.T, context.CancelFunc) func() {
				host.SetFault(jailstest.FailOnce(prefix, jailstest.Fault{After: true}))
				return func() { host.SetFault(nil) }
			}
		}
		// The agent shuts down while zfs clone runs: the clone is made, and
		// every later command of the create sees the cancelled context.
		shutdown := func(_ *testing.T, cancel context.CancelFunc) func() {
			host.SetFault(func(argv []string) *jailstest.Fault {
				if len(argv) > 1 && argv[0] == "zfs" && argv[1] == "clone" {
					cancel()
				}
				return nil
			})
			return func() { host.SetFault(nil) }
		}
		return &runtimetest.Harness{
			Runtime: newRT(t),
			Restart: newRT,
			Spec: func(t *testing.T) jkrelease.Spec {
				return jkrelease.Spec{Name: releaseName("hello"), Service: "hello", SHA: strings.Repeat("ab", 20),
					Spec: strings.Repeat("cd", 32), Port: 8080, Command: []string{"/usr/local/bin/hello"},
					User: "www", Artifact: art, Limits: limits}
			},
			Up: func(t *testing.T, r jkrelease.Release) bool {
				up := slices.ContainsFunc(host.Jails(), func(j jailstest.JailInfo) bool {
					return j.Name == r.Name && !j.Dying && slices.Contains(j.IPv4, r.IP)
				})
				return up && slices.Contains(host.Addrs("lo1"), netip.PrefixFrom(r.IP, 32))
			},
			Residue: func(t *testing.T) []string { return host.Residue(confDir, logDir) },
			Hold: func(t *testing.T, addr netip.Addr, _ int) {
				host.AddJail(jailstest.JailInfo{Name: "stranger", Path: "/usr/local/bastille/jails/stranger/root", IPv4: []netip.Addr{addr}})
			},
			Busy: func(t *testing.T, name string) func() {
				host.SetBusy("zroot/jails/containers/"+name, -1)
				return func() { host.SetBusy("zroot/jails/containers/"+name, 0) }
			},
			// Each command of Create after the clone exists fails once,
			// having done its work: the agent lost the answer.
			Faults: []runtimetest.Fault{
				{Name: "zfs clone", Inject: fail("zfs", "clone")},
				{Name: "clone read back", Inject: fail("zfs", "list", "-H", "-o", "mountpoint,origin")},
				{Name: "state ready", Inject: fail("zfs", "set", "jailkeeper:state=ready")},
				{Name: "shutdown during zfs clone", Inject: shutdown},
			},
		}
	})
}
