package agent_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/caddy/caddytest"
)

// TestFleetBench is `make bench-fleet` (issue 11): it runs only with
// JAILKEEPER_BENCH_FLEET=1, never in `make test`, and prints figures as
// ratios on this machine; it asserts no wall-clock time. For each size
// in JAILKEEPER_BENCH_FLEET_SIZES (default 10,200,1000) it deploys that
// many hello services with the process runtime, a real Caddy and a real
// git repo (health interval 200ms, threshold 2, watch 6s; parallel 4;
// poll every 1s) and measures:
//
//   - one upgrade alone: its phases give the floor of a fleet change,
//     one gate + one watch + N × the create time / cores;
//   - a change to every service in one commit (a config change: each gets
//     a new release), under client load, as a ratio to that floor;
//   - one Caddy route write at N routes: GET and PATCH of a handler's
//     upstreams, on a decoy server of the same Caddy;
//   - rollback latency after standby (the retained release is stopped:
//     start, gate, switch), commit seen to live, as a ratio to that write;
//     the within-standby figure is a hook (rollbackWithinStandby);
//   - CPU per idle pass per 1,000 services and the agent's RSS.
//
// The agent runs in the test process (its CPU and RSS are the process's:
// the releases are separate processes, and the bench itself is idle
// while it measures). JAILKEEPER_BENCH_CPUPROFILE=DIR writes a CPU
// profile of the idle window per size, and a CPU and a mutex profile of
// the change of every service (profileWindow).
func TestFleetBench(t *testing.T) {
	if os.Getenv("JAILKEEPER_BENCH_FLEET") == "" {
		t.Skip("make bench-fleet runs this (JAILKEEPER_BENCH_FLEET=1)")
	}
	sizes := []int{10, 200, 1000}
	if v := os.Getenv("JAILKEEPER_BENCH_FLEET_SIZES"); v != "" {
		sizes = nil
		for _, s := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n < 4 || n > 2000 {
				t.Fatalf("JAILKEEPER_BENCH_FLEET_SIZES=%q: want sizes of 4..2000", v)
			}
			sizes = append(sizes, n)
		}
	}
	var report []string
	for _, n := range sizes {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			report = append(report, benchFleet(t, n)...)
		})
	}
	fmt.Printf("\n== make bench-fleet (%d cores; figures are ratios on this machine) ==\n%s\n", runtime.NumCPU(), strings.Join(report, "\n"))
}

// benchHealth is issue 11's health settings.
const benchHealth = "{path: /up, interval: 200ms, timeout: 1s, threshold: 2, deadline: 60s, watch: 6s}"

// rollbackServices are the services whose rollback is timed.
const rollbackServices = 3

func benchFleet(t *testing.T, n int) []string {
	out := func(format string, args ...any) string {
		return fmt.Sprintf("%5d services: ", n) + fmt.Sprintf(format, args...)
	}
	// A /16 of its own: 1,000 services hold 2,000 addresses during a change.
	f := newFleet(t, n, "@every 1s", benchHealth, "127.76.0.0/16")
	// The 1,000 run has no standby (issue 11), so the old releases stop
	// after their watch. The timed rollbacks after standby are of services
	// with none either; the others keep the agent's default standby (the
	// test env's agent config turns it off), as a fleet would.
	for i, name := range f.names {
		if n >= 1000 || (i >= 1 && i <= rollbackServices) {
			f.extra[name] = "standby: 0s\n"
		} else {
			f.extra[name] = "standby: 15m\n"
		}
	}
	var lines []string

	rev := f.commitAll("fleet v1", "v1", "")
	start := time.Now()
	f.runAgent()
	first := f.waitConverged(rev, start, 60*time.Minute)
	lines = append(lines, out("first deploy in one commit: %.1fs", first.Seconds()))

	// One upgrade alone: the floor's create, gate and watch.
	rev = f.commit("svc0000 v2", map[string]string{"services/" + f.names[0] + ".yaml": f.manifest(f.names[0], "v2", "")})
	start = time.Now()
	f.sync()
	one := f.waitConverged(rev, start, 5*time.Minute)
	ld := f.lastDeploy(f.names[0])
	if ld == nil {
		t.Fatal("no last_deploy for the single upgrade")
	}
	create := ld.Phases["create"] + ld.Phases["fetch"]
	gate, watch := ld.Phases["gate"], ld.Phases["watch"]
	cores := float64(runtime.NumCPU())
	floor := gate + watch + float64(n)*create/cores
	lines = append(lines, out("one upgrade alone: %.2fs to converged, live %.3fs after the commit was seen (create %.3fs, start %.3fs, gate %.3fs, watch %.2fs)",
		one.Seconds(), ld.Live, create, ld.Phases["start"], gate, watch))

	// The whole fleet in one commit, under load.
	stop := f.load(4)
	rev = f.commitAll("fleet: GEN=b everywhere", "v1", "b")
	endProfile := profileWindow(t, fmt.Sprintf("change-%d", n))
	start = time.Now()
	f.sync()
	took := f.waitConverged(rev, start, 60*time.Minute)
	endProfile()
	okN, failed, last := stop()
	var creates, totals []float64
	phases := map[string][]float64{}
	for _, d := range f.lastDeploys() {
		creates = append(creates, d.Phases["create"]+d.Phases["fetch"])
		totals = append(totals, d.Total)
		sum := 0.0
		for p, v := range d.Phases {
			phases[string(p)] = append(phases[string(p)], v)
			sum += v
		}
		phases["waiting for a slot or Caddy"] = append(phases["waiting for a slot or Caddy"], d.Total-sum)
	}
	var breakdown []string
	for _, p := range []string{"fetch", "create", "start", "gate", "switch", "watch", "drain", "waiting for a slot or Caddy"} {
		breakdown = append(breakdown, fmt.Sprintf("%s %.3fs", p, median(phases[p])))
	}
	lines = append(lines, out("change of every service in one commit: %.1fs = %.2f × floor (floor %.1fs = gate %.2fs + watch %.1fs + %d × create %.3fs / %.0f cores; median create under the change %.3fs)",
		took.Seconds(), took.Seconds()/floor, floor, gate, watch, n, create, cores, median(creates)))
	lines = append(lines, out("the change's deploys, medians: %s; deploy total median %.1fs, max %.1fs",
		strings.Join(breakdown, ", "), median(totals), slices.Max(append(totals, 0))))
	lines = append(lines, out("requests through Caddy during the change: %d ok, %d failed %s (%d dropped by Caddy at a reload before any answer, sent again)",
		okN, failed, last, f.retried.Load()))
	if failed > 0 {
		t.Errorf("%d requests failed during the change; last: %s", failed, last)
	}

	write := f.routeWrite(t)
	lines = append(lines, out("one Caddy route write (GET+PATCH upstreams) at %d routes: %.1fms", n, write*1000))

	// Rollback after standby: back to the retained release, stopped.
	var after []float64
	for _, name := range f.names[1 : 1+rollbackServices] {
		changed := f.lastDeploy(name).Release
		rev = f.commit("revert "+name, map[string]string{"services/" + name + ".yaml": f.manifest(name, "v1", "")})
		f.sync()
		f.waitFor(name+" rolled back", 2*time.Minute, func() bool {
			ld := f.lastDeploy(name)
			return ld != nil && f.status().Revision == rev && ld.Release != changed && ld.Live > 0
		})
		after = append(after, f.lastDeploy(name).Live)
	}
	lines = append(lines, out("rollback after standby (start + gate + switch), commit seen to live: %.3fs = %.1f × one route write (median of %d)",
		median(after), median(after)/write, len(after)))
	if within, ok := rollbackWithinStandby(t, f); ok {
		lines = append(lines, out("rollback within standby, commit seen to live: %.3fs = %.1f × one route write", within, within/write))
	} else {
		lines = append(lines, out("rollback within standby: not measured (no service has standby in the %d run)", n))
	}

	// Idle: nothing changes; the deploy repo is polled every second.
	time.Sleep(3 * time.Second)
	idle := 20 * time.Second
	if v := os.Getenv("JAILKEEPER_BENCH_IDLE"); v != "" {
		var err error
		if idle, err = time.ParseDuration(v); err != nil {
			t.Fatalf("JAILKEEPER_BENCH_IDLE: %v", err)
		}
	}
	if dir := os.Getenv("JAILKEEPER_BENCH_CPUPROFILE"); dir != "" {
		pf, err := os.Create(filepath.Join(dir, fmt.Sprintf("idle-%d.pprof", n)))
		if err != nil {
			t.Fatal(err)
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			t.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	p0, c0, w0 := f.passCount(), cpuTime(t), time.Now()
	time.Sleep(idle)
	// The CPU first: the scrape that counts the passes is the bench's.
	c1, w1 := cpuTime(t), time.Now()
	p1 := f.passCount()
	passes := p1 - p0
	cpu := (c1 - c0).Seconds()
	if passes > 0 {
		lines = append(lines, out("idle: %d passes in %.0fs, %.1f%% of a core; CPU per idle pass %.1fms = %.1fms per 1,000 services",
			passes, w1.Sub(w0).Seconds(), 100*cpu/w1.Sub(w0).Seconds(), 1000*cpu/float64(passes), 1000*cpu/float64(passes)*1000/float64(n)))
	}
	lines = append(lines, out("agent RSS %d MB (VmRSS of the process, after %d services' deploys)", rssKB(t)/1024, n))
	// What the RSS is made of: the Go heap, what it keeps from busier
	// times, stacks; and what returning its free memory leaves.
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	lines = append(lines, out("Go memory: heap in use %d MB, free heap kept from the OS %d MB, stacks %d MB, all the runtime holds %d MB; %d goroutines",
		ms.HeapInuse>>20, (ms.HeapIdle-ms.HeapReleased)>>20, ms.StackInuse>>20, (ms.Sys-ms.HeapReleased)>>20, runtime.NumGoroutine()))
	debug.FreeOSMemory()
	lines = append(lines, out("agent RSS after the Go runtime returned its free memory: %d MB", rssKB(t)/1024))
	if dir := os.Getenv("JAILKEEPER_BENCH_CPUPROFILE"); dir != "" {
		writeHeapProfile(t, filepath.Join(dir, fmt.Sprintf("heap-%d.pprof", n)))
	}
	for _, l := range lines {
		t.Log(l)
	}
	return lines
}

// rollbackWithinStandby times a rollback to a release still on standby:
// the fleet-wide change left each service with standby its previous
// release running; reverting one service's change goes back to it with
// one probe and one route switch. It returns the commit seen to live time,
// ok false when no service has standby (the 1,000 run).
func rollbackWithinStandby(t *testing.T, f *fleet) (seconds float64, ok bool) {
	t.Helper()
	if len(f.names) <= rollbackServices+1 {
		return 0, false
	}
	name := f.names[rollbackServices+1]
	if f.extra[name] != "standby: 15m\n" {
		return 0, false
	}
	var standby string
	for _, s := range f.status().Services {
		if s.Service == name {
			standby = s.Standby
		}
	}
	if standby == "" {
		t.Errorf("%s has no standby release after the change", name)
		return 0, false
	}
	rev := f.commit("revert "+name, map[string]string{"services/" + name + ".yaml": f.manifest(name, "v1", "")})
	f.sync()
	f.waitFor(name+" rolled back to its standby", 2*time.Minute, func() bool {
		ld := f.lastDeploy(name)
		return ld != nil && f.status().Revision == rev && ld.Release == standby && ld.Live > 0
	})
	return f.lastDeploy(name).Live, true
}

// routeWrite times one upstream switch as the caddy client makes it (GET
// a handler's upstreams, PATCH them) on a decoy server of f's Caddy, so
// that Caddy reloads the config with all of f's routes: the median of 7.
func (f *fleet) routeWrite(t *testing.T) float64 {
	t.Helper()
	decoy := fmt.Sprintf(`{"listen": [%q], "routes": [{"handle": [{"@id": "bench.decoy", "handler": "reverse_proxy", "upstreams": [{"dial": "127.0.0.1:1"}]}]}]}`,
		caddytest.FreeAddr(t))
	f.caddy.MustDo(t, "PUT", "/config/apps/http/servers/benchdecoy", decoy)
	var ds []float64
	for i := range 7 {
		start := time.Now()
		f.caddy.MustDo(t, "GET", "/id/bench.decoy/upstreams", "")
		f.caddy.MustDo(t, "PATCH", "/id/bench.decoy/upstreams", fmt.Sprintf(`[{"dial": "127.0.0.1:%d"}]`, 2+i%2))
		ds = append(ds, time.Since(start).Seconds())
	}
	f.caddy.MustDo(t, "DELETE", "/config/apps/http/servers/benchdecoy", "")
	return median(ds)
}

// passCount is the agent's jailkeeper_reconcile_total, all results.
func (f *fleet) passCount() int {
	f.t.Helper()
	n := 0
	for _, l := range f.metricLines("jailkeeper_reconcile_total{") {
		v, err := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
		if err != nil {
			f.t.Fatalf("metric line %q: %v", l, err)
		}
		n += int(v)
	}
	return n
}

// cpuTime is the user and system CPU this process has used.
func cpuTime(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// writeHeapProfile writes the live heap, after a GC, to path: what holds
// the RSS at the end of the idle window (JAILKEEPER_BENCH_CPUPROFILE=DIR
// writes DIR/heap-N.pprof).
func writeHeapProfile(t *testing.T, path string) {
	t.Helper()
	runtime.GC()
	pf, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	if err := pprof.WriteHeapProfile(pf); err != nil {
		t.Fatal(err)
	}
}

// rssKB is this process's VmRSS (proc(5)).
func rssKB(t *testing.T) int {
	t.Helper()
	fh, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatalf("VmRSS %q: %v", v, err)
			}
			return kb
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// profileWindow starts a CPU profile and mutex sampling of a window of
// the bench when JAILKEEPER_BENCH_CPUPROFILE names a directory, and
// returns what ends it and writes DIR/name.pprof and DIR/name.mutex.pprof:
// where a fleet change spends the agent's CPU, and which locks it waits
// on (issue 11).
func profileWindow(t *testing.T, name string) (end func()) {
	t.Helper()
	dir := os.Getenv("JAILKEEPER_BENCH_CPUPROFILE")
	if dir == "" {
		return func() {}
	}
	pf, err := os.Create(filepath.Join(dir, name+".pprof"))
	if err != nil {
		t.Fatal(err)
	}
	if err := pprof.StartCPUProfile(pf); err != nil {
		pf.Close()
		t.Fatal(err)
	}
	runtime.SetMutexProfileFraction(10)
	return func() {
		pprof.StopCPUProfile()
		pf.Close()
		runtime.SetMutexProfileFraction(0)
		mf, err := os.Create(filepath.Join(dir, name+".mutex.pprof"))
		if err != nil {
			t.Fatal(err)
		}
		defer mf.Close()
		if err := pprof.Lookup("mutex").WriteTo(mf, 0); err != nil {
			t.Fatal(err)
		}
	}
}
