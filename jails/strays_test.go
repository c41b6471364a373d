package jails_test

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/caddy"
	"github.com/jailkeeper/jailkeeper/internal/command"
	"github.com/jailkeeper/jailkeeper/internal/testenv"
	"github.com/jailkeeper/jailkeeper/jails"
	"github.com/jailkeeper/jailkeeper/jails/jailstest"
	"github.com/jailkeeper/jailkeeper/manifest"
	"github.com/jailkeeper/jailkeeper/reconcile"
	"github.com/jailkeeper/jailkeeper/release"
	"github.com/jailkeeper/jailkeeper/zfs"
)

// strayRunner runs commands on the fake host; before the first `jail -c`
// whose release address is in strays, it adds that address as an alias of
// the runtime's interface, as a stranger (an rc.conf alias added by
// hand, a jail manager of its own) would in the moment between the
// runtime's own check and jail(8)'s ifconfig. jail(8) then fails as on
// FreeBSD 14.1 (the fake host prints the REAL text of errors.md).
type strayRunner struct {
	host  *jailstest.Host
	iface string
	mu    sync.Mutex
	addrs map[string]netip.Addr // release name -> address held when it starts
	added []netip.Addr
}

func (s *strayRunner) Run(ctx context.Context, argv []string, stdin io.Reader) ([]byte, error) {
	if len(argv) == 5 && argv[0] == "jail" && argv[3] == "-c" {
		s.mu.Lock()
		if a, ok := s.addrs[argv[4]]; ok {
			delete(s.addrs, argv[4])
			s.added = append(s.added, a)
			s.host.AddInterface(s.iface, netip.PrefixFrom(a, 32))
		}
		s.mu.Unlock()
	}
	return s.host.Run(ctx, argv, stdin)
}

// A start whose address is taken by what no release owns is the host's
// fault: Start returns release.ErrAddressInUse (no verdict, another
// address), both when jail(8) itself meets the alias (jail -c failing
// with "SIOCAIFADDR: File exists") and when the runtime sees the address
// on another interface before it runs jail(8). Nothing of the jail is
// left, and the stranger's address is never removed.
func TestFreeBSDStartStrayAddress(t *testing.T) {
	testenv.Root(t) // install chowns the env file to the jail's www
	ctx := context.Background()
	tests := []struct {
		name  string
		iface string // where the stray address appears
		want  string // in the error
	}{
		{"alias added before jail -c", "lo1", "(SIOCAIFADDR): File exists"},
		{"address on another interface", "em0", "is configured on em0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host, newRT, spec := fakeHostRuntime(t)
			r, err := newRT().Create(ctx, spec)
			if err != nil {
				t.Fatal(err)
			}
			var rt *jails.FreeBSD
			if tt.iface == "lo1" {
				rt = strayRuntime(t, host, map[string]netip.Addr{r.Name: r.IP})
			} else {
				host.AddInterface(tt.iface, netip.PrefixFrom(r.IP, 32))
				rt = newRT()
			}
			err = rt.Start(ctx, r.Name)
			if !errors.Is(err, release.ErrAddressInUse) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Start = %v, want release.ErrAddressInUse with %q", err, tt.want)
			}
			if js := host.Jails(); len(js) != 0 {
				t.Errorf("jails after the failed start: %+v", js)
			}
			if up, err := rt.Running(ctx, r.Name); err != nil || up {
				t.Errorf("Running = %v, %v; want false", up, err)
			}
			if got := host.Addrs(tt.iface); !slices.Contains(got, netip.PrefixFrom(r.IP, 32)) {
				t.Errorf("%s after the start: %v; the stranger's %s was removed", tt.iface, got, r.IP)
			}
			for _, c := range host.Calls() {
				if slices.Contains(c.Argv, "-alias") {
					t.Errorf("ran %v on a stranger's address", c.Argv)
				}
			}
		})
	}
}

// strayRuntime is the FreeBSD runtime of fakeHostRuntime over a
// strayRunner that adds, at each named release's jail -c, its address.
func strayRuntime(t *testing.T, host *jailstest.Host, addrs map[string]netip.Addr) *jails.FreeBSD {
	t.Helper()
	dir := host.Dir()
	runner := &strayRunner{host: host, iface: "lo1", addrs: addrs}
	f, err := jails.NewFreeBSD(jails.FreeBSDConfig{Dataset: "zroot/jails", Root: filepath.Join(dir, "jails"),
		Template: "14.3-RELEASE", Interface: "lo1", ConfDir: filepath.Join(dir, "jail.conf.d"), LogDir: filepath.Join(dir, "log"),
		Pool: netip.MustParsePrefix("172.16.0.0/12"), DyingTimeout: time.Minute, PollInterval: time.Millisecond,
		Runner: runner, Datasets: zfs.New(runner).WithDestroyBackoff(0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// A deploy on the FreeBSD runtime whose first address a stranger takes
// between the create and jail -c: the executor marks nothing failed,
// destroys the release that could not start, and deploys on the next
// address, which the runtime picks because the stray is now on lo1.
func TestFreeBSDDeployAroundStrayAlias(t *testing.T) {
	testenv.Root(t)
	ctx := context.Background()
	host, _, spec := fakeHostRuntime(t)
	s := manifest.Service{Service: "hello", SHA: spec.SHA,
		Artifact:  manifest.Artifact{URL: "file:///artifacts/hello", SHA256: strings.Repeat("a", 64)},
		Hostnames: []string{"hello.example.com"}, Port: 8080, Command: []string{"/usr/local/bin/hello"}, User: "www",
		Health: manifest.Health{Path: "/up", Interval: time.Millisecond, Timeout: time.Second, Threshold: 1, Deadline: time.Second},
		Retain: 1}
	// 172.16.0.1 is lo1's own: the first release gets .2.
	first := netip.MustParseAddr("172.16.0.2")
	rt := strayRuntime(t, host, map[string]netip.Addr{s.ReleaseName(): first})
	proxy := &memProxy{routes: map[string]caddy.Route{}}
	var events []reconcile.Event
	exec := reconcile.NewExecutor(reconcile.Options{Runtime: rt, Proxy: proxy, Prober: &okProber{},
		Fetcher: fixedFetcher(spec.Artifact), Parallel: 1, Events: func(ev reconcile.Event) { events = append(events, ev) }})
	if _, err := exec.Pass(ctx, reconcile.Desired{Services: []manifest.Service{s}}); err != nil {
		t.Fatalf("pass: %v", err)
	}
	rels, err := rt.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rels) != 1 || rels[0].State != release.StateLive || rels[0].IP == first || !rels[0].Running {
		t.Fatalf("releases %+v, want one live, running, not on %s", rels, first)
	}
	if got := proxy.upstream("hello"); got != rels[0].Addr() {
		t.Errorf("route -> %q, want %s", got, rels[0].Addr())
	}
	for _, ev := range events {
		if ev.Kind == reconcile.EventFailed || ev.Kind == reconcile.EventReverted {
			t.Errorf("event %+v blames the release", ev)
		}
	}
	if got := host.Addrs("lo1"); !slices.Contains(got, netip.PrefixFrom(first, 32)) {
		t.Errorf("lo1 %v: the stranger's %s was removed", got, first)
	}
}

var (
	_ command.Runner = (*strayRunner)(nil)
)
