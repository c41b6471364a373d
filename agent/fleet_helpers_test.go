package agent_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/agent"
	"github.com/jailkeeper/jailkeeper/reconcile"
)

// fleet is many hello services in one deploy repo, for the fleet-wide
// change test and `make bench-fleet`.
type fleet struct {
	*env
	names  []string
	health string            // the manifests' health line
	extra  map[string]string // per service: more manifest lines
	// retried counts load's requests dropped at a Caddy reload and sent
	// again.
	retried atomic.Int64
}

// newFleet makes an env for n services svc0000.. with health health
// (a YAML flow mapping). pool, when set, replaces the env's /24.
func newFleet(t *testing.T, n int, poll, health, pool string) *fleet {
	t.Helper()
	f := &fleet{env: newEnv(t, poll), health: health, extra: map[string]string{}}
	for i := range n {
		f.names = append(f.names, fmt.Sprintf("svc%04d", i))
	}
	if pool != "" {
		b, err := os.ReadFile(f.cfgPath)
		if err != nil {
			t.Fatal(err)
		}
		re := regexp.MustCompile(`process: \{pool: "[^"]*"\}`)
		cfg := re.ReplaceAllString(string(b), fmt.Sprintf("process: {pool: %q}", pool))
		if err := os.WriteFile(f.cfgPath, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		f.pool = pool
	}
	return f
}

// manifest renders name at hello version; gen, when set, is an env
// value: a change of it is a config-only change (a new release, same SHA).
func (f *fleet) manifest(name, version, gen string) string {
	url, sum := f.artifact(version)
	var b strings.Builder
	fmt.Fprintf(&b, "service: %s\nsha: %s\nartifact: {url: %q, sha256: %s}\nhostnames: [%s.example.com]\nport: 8080\n",
		name, helloSHA(name, version), url, sum, name)
	fmt.Fprintf(&b, "command: [/usr/local/bin/hello]\nhealth: %s\ndrain: 1s\nretain: 1\n", f.health)
	if gen != "" {
		fmt.Fprintf(&b, "env: {GEN: %q}\n", gen)
	}
	b.WriteString(f.extra[name])
	return b.String()
}

// commitAll commits every service at version and gen in one commit and
// returns the commit.
func (f *fleet) commitAll(msg, version, gen string) string {
	f.t.Helper()
	files := map[string]string{}
	for _, n := range f.names {
		files["services/"+n+".yaml"] = f.manifest(n, version, gen)
	}
	return f.commit(msg, files)
}

// convergedAt reports how many services /status shows converged at
// revision rev (0 while /status is at another revision).
func (f *fleet) convergedAt(rev string) int {
	b, err := f.agentGet("/status")
	if err != nil {
		return 0
	}
	st := decodeStatus(f.t, b)
	if st.Revision != rev {
		return 0
	}
	n := 0
	for _, s := range st.Services {
		if s.Converged {
			n++
		}
	}
	return n
}

// waitConverged waits until every service is converged at rev and
// returns how long that took from start.
func (f *fleet) waitConverged(rev string, start time.Time, timeout time.Duration) time.Duration {
	f.t.Helper()
	deadline := time.Now().Add(timeout)
	last, lastLog := 0, time.Now()
	for {
		n := f.convergedAt(rev)
		if n == len(f.names) {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("timed out after %s: %d of %d services converged at %s", timeout, n, len(f.names), short(rev))
		}
		if n != last || time.Since(lastLog) > 30*time.Second {
			f.t.Logf("%6.1fs: %d of %d converged", time.Since(start).Seconds(), n, len(f.names))
			last, lastLog = n, time.Now()
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// lastDeploy returns svc's last_deploy from /status.
func (f *fleet) lastDeploy(svc string) *reconcile.LastDeploy {
	f.t.Helper()
	for _, s := range f.status().Services {
		if s.Service == svc {
			return s.LastDeploy
		}
	}
	return nil
}

// lastDeploys returns every service's last_deploy that /status has.
func (f *fleet) lastDeploys() []reconcile.LastDeploy {
	f.t.Helper()
	var out []reconcile.LastDeploy
	for _, s := range f.status().Services {
		if s.LastDeploy != nil {
			out = append(out, *s.LastDeploy)
		}
	}
	return out
}

func decodeStatus(t *testing.T, b []byte) agent.Status {
	t.Helper()
	var st agent.Status
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("decode /status: %v", err)
	}
	return st
}

func short(rev string) string { return rev[:min(12, len(rev))] }

// load sends GET / through Caddy to every service in turn from clients
// goroutines until stop, which returns the good and failed requests and
// the last failure. A request that Caddy's old server dropped at a reload
// before answering (EOF or reset: golang/go#65802, see caddy's
// TestSwitchUnderLoad) was never handled; it is sent again once, as an
// HTTP client does with an idempotent request, and counted in retried.
func (f *fleet) load(clients int) (stop func() (ok, failed int64, last string)) {
	var okN, bad, next atomic.Int64
	var mu sync.Mutex
	last := ""
	done := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				svc := f.names[int(next.Add(1))%len(f.names)]
				code, body, err := f.through(client, svc, "/")
				if droppedAtReload(err) {
					f.retried.Add(1)
					code, body, err = f.through(client, svc, "/")
				}
				switch {
				case err != nil:
					bad.Add(1)
					mu.Lock()
					last = svc + ": " + err.Error()
					mu.Unlock()
				case code != 200:
					bad.Add(1)
					mu.Lock()
					last = fmt.Sprintf("%s: %d %s", svc, code, strings.TrimSpace(body))
					mu.Unlock()
				default:
					okN.Add(1)
				}
			}
		}()
	}
	var once sync.Once
	return func() (int64, int64, string) {
		once.Do(func() { close(done); wg.Wait() })
		mu.Lock()
		defer mu.Unlock()
		return okN.Load(), bad.Load(), last
	}
}

// droppedAtReload reports whether a request failed before any answer
// because Caddy closed its connection (EOF or reset).
func droppedAtReload(err error) bool {
	return err != nil && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET))
}

// median of ds; 0 for none.
func median(ds []float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := append([]float64(nil), ds...)
	sort.Float64s(s)
	return s[len(s)/2]
}
