package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/caddy"
	"github.com/jailkeeper/jailkeeper/caddy/caddytest"
	"github.com/jailkeeper/jailkeeper/internal/testenv"
	"github.com/jailkeeper/jailkeeper/reconcile"
	"github.com/jailkeeper/jailkeeper/release"
)

// BenchmarkIdlePass is one poll and pass of an agent with 1,000
// converged services in which nothing changes (issue 11's idle cost):
// a real git repo, a real Caddy with 1,000 routes, and the process
// runtime's release directories, whose pidfiles name this process (alive,
// identified), so no app runs and no loopback address is taken. Its
// per-op figures are an idle pass's CPU and allocations; profile it with
// -cpuprofile.
func BenchmarkIdlePass(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			a := idleAgent(b, n)
			ctx := context.Background()
			b.ResetTimer()
			cpu0, passes := processCPU(b), 0
			for b.Loop() {
				d := a.poll(ctx)
				if d == nil {
					b.Fatal("poll: no desired state")
				}
				a.pass(ctx, *d)
				passes++
			}
			b.StopTimer()
			// CPU, not wall time: on a shared machine the wall time is
			// mostly waiting for the other tenants.
			b.ReportMetric(float64(processCPU(b)-cpu0)/float64(time.Millisecond)/float64(passes), "cpu-ms/pass")
			st := a.Status()
			if st.Error != "" {
				b.Fatalf("status error: %s", st.Error)
			}
			for _, s := range st.Services {
				if !s.Converged {
					b.Fatalf("%s not converged: %+v", s.Service, s)
				}
			}
		})
	}
}

// idleAgent builds an agent whose n services are converged.
func idleAgent(b *testing.B, n int) *Agent {
	b.Helper()
	if runtime.GOOS != "linux" {
		b.Skip("the pidfiles name this process by its Linux /proc identity")
	}
	git := testenv.Command(b, "git")
	in := caddytest.Start(b)
	dir := b.TempDir()
	run := func(dir string, args ...string) {
		b.Helper()
		cmd := exec.Command(git, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir, "GIT_AUTHOR_NAME=Dev", "GIT_AUTHOR_EMAIL=dev@example.com",
			"GIT_COMMITTER_NAME=Dev", "GIT_COMMITTER_EMAIL=dev@example.com")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	remote, work := filepath.Join(dir, "deploy.git"), filepath.Join(dir, "work")
	run(dir, "init", "-q", "--bare", "-b", "main", remote)
	run(dir, "init", "-q", "-b", "main", work)
	if err := os.MkdirAll(filepath.Join(work, "services"), 0o755); err != nil {
		b.Fatal(err)
	}
	for i := range n {
		name := fmt.Sprintf("svc%04d", i)
		sha := sha256.Sum256([]byte(name))
		m := fmt.Sprintf("service: %s\nsha: %s\nartifact: {url: \"https://ci.example.com/%s\", sha256: %s}\nhostnames: [%s.example.com]\nport: 8080\n",
			name, hex.EncodeToString(sha[:20]), name, hex.EncodeToString(sha[:]), name)
		if err := os.WriteFile(filepath.Join(work, "services", name+".yaml"), []byte(m), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	run(work, "add", ".")
	run(work, "commit", "-q", "-m", "fleet")
	run(work, "push", "-q", remote, "main")

	state := filepath.Join(dir, "state")
	cfgPath := filepath.Join(dir, "jailkeeper.yaml")
	cfg := fmt.Sprintf("repo: {url: %q, branch: main, path: services, poll: \"@every 1h\"}\nruntime: process\nstate_dir: %s\n"+
		"process: {pool: \"127.75.0.0/16\"}\ncaddy: {admin: %q, server: jailkeeper, listen: [%q]}\nlisten: \"127.0.0.1:0\"\n",
		"file://"+remote, state, in.Admin, in.Listen)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		b.Fatal(err)
	}
	c, err := LoadConfig(cfgPath)
	if err != nil {
		b.Fatal(err)
	}
	a, err := New(c, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { a.proxy.Close() })
	ctx := context.Background()
	d := a.poll(ctx)
	if d == nil || len(d.Services) != n {
		b.Fatalf("poll: %v", d)
	}

	// Each service's release, live, on disk and alive: its pidfile names
	// this process.
	pid := fmt.Sprintf("%d %s\n", os.Getpid(), selfIdentity(b))
	var routes []caddy.Route
	ip := netip.MustParseAddr("127.75.0.2")
	for i := range d.Services {
		s := &d.Services[i]
		r := release.Release{Name: s.ReleaseName(), Service: s.Service, SHA: s.SHA, Spec: s.SpecHash(), IP: ip, Port: s.Port,
			State: release.StateLive, Created: time.Unix(1700000000, 0).UTC()}
		ip = ip.Next()
		rd := filepath.Join(c.Process.Root, r.Name)
		if err := os.MkdirAll(filepath.Join(rd, "root"), 0o750); err != nil {
			b.Fatal(err)
		}
		js, _ := json.Marshal(r)
		if err := os.WriteFile(filepath.Join(rd, "release.json"), js, 0o644); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(rd, "pid"), []byte(pid), 0o644); err != nil {
			b.Fatal(err)
		}
		routes = append(routes, reconcile.DesiredRoute(s, r))
	}
	if err := a.proxy.Ensure(ctx); err != nil {
		b.Fatal(err)
	}
	if err := a.proxy.Set(ctx, routes...); err != nil {
		b.Fatal(err)
	}
	a.pass(ctx, *d)
	if st := a.Status(); st.Error != "" || len(st.Services) != n || !st.Services[n-1].Converged {
		b.Fatalf("not idle after the first pass: %+v", st.Services[:min(3, len(st.Services))])
	}
	return a
}

// selfIdentity is the process runtime's identity of this process:
// "<boot id>:<start time>" (proc(5): field 22 of /proc/self/stat).
func selfIdentity(b *testing.B) string {
	b.Helper()
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		b.Fatal(err)
	}
	stat, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		b.Fatal(err)
	}
	s := string(stat)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return strings.TrimSpace(string(boot)) + ":" + f[22-3]
}

// processCPU is the user and system CPU this process has used.
func processCPU(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
