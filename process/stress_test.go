package process_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/caddy"
	"github.com/jailkeeper/jailkeeper/manifest"
	"github.com/jailkeeper/jailkeeper/process"
	"github.com/jailkeeper/jailkeeper/reconcile"
	"github.com/jailkeeper/jailkeeper/release"
)

// stressEnv turns on TestStressParallelDeploys; `make stress` sets it and
// runs it 20 times in a row. It is not part of `make test`.
const stressEnv = "JAILKEEPER_STRESS"

// stressServices deploy at once, parallel 8 at a time.
const stressServices = 24

// TestStressParallelDeploys deploys 24 services at once through the
// Executor with the real process runtime, parallel 8, then upgrades them
// all: artifacts are installed while other goroutines fork and exec
// releases and commands (the ETXTBSY race of golang/go#22315). No release may be
// marked failed, and every one must end live and answering.
func TestStressParallelDeploys(t *testing.T) {
	if os.Getenv(stressEnv) == "" {
		t.Skipf("stress test: set %s=1 (make stress)", stressEnv)
	}
	ctx := context.Background()
	p := newProcess(t, process.Config{})
	t.Cleanup(func() {
		rels, _ := p.List(context.Background())
		for _, r := range rels {
			if err := p.Destroy(context.Background(), r.Name); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
	bin := helloBin(t)
	e := reconcile.NewExecutor(reconcile.Options{
		Runtime: p, Proxy: newMemProxy(), Prober: httpProber{}, Fetcher: pathFetcher(bin), Parallel: 8,
	})
	// A fork storm, as an agent that runs zfs, jail and release commands
	// from other goroutines makes: each fork copies the descriptors open
	// at that moment into a child until it execs.
	stop := make(chan struct{})
	var storm sync.WaitGroup
	for range 4 {
		storm.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				exec.Command("true").Run()
			}
		})
	}
	defer storm.Wait()
	defer close(stop)
	port := randomPort()
	for i, sha := range []string{strings.Repeat("a1", 20), strings.Repeat("b2", 20)} {
		d := reconcile.Desired{Revision: fmt.Sprintf("r%d", i)}
		for s := range stressServices {
			d.Services = append(d.Services, manifest.Service{
				Service:   fmt.Sprintf("svc%02d", s),
				SHA:       sha,
				Artifact:  manifest.Artifact{URL: "file:///hello", SHA256: strings.Repeat("c", 64)},
				Hostnames: []string{fmt.Sprintf("svc%02d.example.com", s)},
				Port:      port,
				Command:   []string{"/usr/local/bin/hello"},
				Health:    manifest.Health{Path: "/up", Interval: 50 * time.Millisecond, Timeout: 2 * time.Second, Threshold: 2, Deadline: time.Minute, Watch: 100 * time.Millisecond},
				Retain:    1,
			})
		}
		if _, err := e.Pass(ctx, d); err != nil {
			t.Fatalf("pass %s: %v", d.Revision, err)
		}
		e.Wait()
		live := 0
		for _, r := range list(t, p) {
			switch {
			case r.State == release.StateFailed:
				t.Errorf("%s marked failed: %s\nlog:\n%s", r.Name, r.Reason, readLog(t, p, r.Name))
			case r.State == release.StateLive && r.SHA == sha && r.Running:
				live++
			}
		}
		if live != stressServices {
			t.Fatalf("pass %s: %d of %d services live on %s", d.Revision, live, stressServices, sha[:4])
		}
	}
}

// memProxy is a Proxy that keeps routes in memory: Caddy is not what this
// test is about.
type memProxy struct {
	mu     sync.Mutex
	routes map[string]caddy.Route
}

func newMemProxy() *memProxy { return &memProxy{routes: map[string]caddy.Route{}} }

func (m *memProxy) Routes(context.Context) (map[string]caddy.Route, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]caddy.Route, len(m.routes))
	for k, v := range m.routes {
		out[k] = v
	}
	return out, nil
}

func (m *memProxy) Set(_ context.Context, routes ...caddy.Route) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range routes {
		m.routes[r.Service] = r
	}
	return nil
}

func (m *memProxy) Remove(_ context.Context, services ...string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range services {
		delete(m.routes, s)
	}
	return nil
}

func (m *memProxy) Drain(context.Context, string, time.Duration) error { return nil }

// httpProber GETs the release itself, on loopback.
type httpProber struct{}

func (httpProber) Probe(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// pathFetcher hands out one local file for every artifact.
type pathFetcher string

func (f pathFetcher) Fetch(context.Context, string, string) (string, error) { return string(f), nil }
