package agent_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/caddy"
	"github.com/jailkeeper/jailkeeper/internal/testenv"
)

// canaryTag is the split Caddy makes for hello now, read from the files
// it dials (caddy.Config.UpstreamDir): "plain" without slot files, else
// the percentage of requests on the new release ("0", "10", "50", "100").
func (e *env) canaryTag() string {
	dir := filepath.Join(e.stateDir, "upstreams")
	read := func(name string) (string, bool) {
		b, err := os.ReadFile(caddy.UpstreamFile(dir, name))
		return strings.TrimSpace(string(b)), err == nil
	}
	main, _ := read("hello")
	s0, ok0 := read(caddy.SlotFile("hello", 0))
	s1, ok1 := read(caddy.SlotFile("hello", 1))
	switch {
	case !ok0 || !ok1:
		return "plain"
	case s0 == main && s1 == main:
		if s0 == "" {
			return "?"
		}
		// Promoted (everything on the new release) or not begun: the
		// slots alone cannot tell; the step before says which.
		return "same"
	case s0 != main && s1 != main:
		return "50"
	case s0 != main:
		return "10"
	}
	return "?"
}

// answer is one request of the canary load.
type answer struct {
	at       time.Time
	tag      string // canaryTag when it was sent
	changed  time.Time
	version  string // the body of /version: v1, v2, v3
	code     int
	err      error
	freshEOF bool
}

// canaryLoad sends GET /version for hello through Caddy from n keep-alive
// clients, tagging each answer with the split in force when it was sent.
type canaryLoad struct {
	mu      sync.Mutex
	answers []answer
	changes []time.Time  // when the tag changed, in order
	tag     atomic.Value // string
	changed atomic.Int64 // unix nanos of the last tag change
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	once    sync.Once
}

func startCanaryLoad(e *env, n int) *canaryLoad {
	l := &canaryLoad{}
	l.tag.Store(e.canaryTag())
	l.changed.Store(time.Now().UnixNano())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // bounded even if the test hangs
	l.cancel = cancel
	// The tag follows the files every 2 ms.
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for ctx.Err() == nil {
			if t := e.canaryTag(); t != l.tag.Load().(string) {
				now := time.Now()
				l.changed.Store(now.UnixNano())
				l.tag.Store(t)
				l.mu.Lock()
				l.changes = append(l.changes, now)
				l.mu.Unlock()
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	client := &http.Client{Timeout: 10 * time.Second}
	for range n {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				a := answer{at: time.Now(), tag: l.tag.Load().(string), changed: time.Unix(0, l.changed.Load())}
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+e.caddy.HTTPAddr+"/version", nil)
				req.Host = "hello.example.com"
				var reused atomic.Bool
				req = req.WithContext(httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
					GotConn: func(i httptrace.GotConnInfo) { reused.Store(i.Reused) },
				}))
				resp, err := client.Do(req)
				if err == nil {
					var b []byte
					b, err = io.ReadAll(resp.Body)
					resp.Body.Close()
					a.code, a.version = resp.StatusCode, strings.TrimSpace(string(b))
				}
				if ctx.Err() != nil {
					return
				}
				a.err, a.freshEOF = err, errors.Is(err, io.EOF) && !reused.Load()
				l.mu.Lock()
				l.answers = append(l.answers, a)
				l.mu.Unlock()
				time.Sleep(time.Millisecond) // 2 cores, shared
			}
		}()
	}
	return l
}

// stop ends the load and returns the answers and the times the split
// changed.
func (l *canaryLoad) stop() ([]answer, []time.Time) {
	l.once.Do(func() { l.cancel(); l.wg.Wait() })
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.answers), slices.Clone(l.changes)
}

// settled reports whether a was sent well after the split last changed
// and well before it changed again (next), so that its tag is the split
// Caddy applied to it.
func settled(a answer, next time.Time) bool {
	const margin = 100 * time.Millisecond
	return a.at.Sub(a.changed) > margin && (next.IsZero() || next.Sub(a.at) > margin)
}

// splits counts, per tag, the settled answers and those from version.
func splits(answers []answer, changes []time.Time, version string) (total, on map[string]int) {
	total, on = map[string]int{}, map[string]int{}
	for _, a := range answers {
		var next time.Time
		if i, _ := slices.BinarySearchFunc(changes, a.at, func(c, at time.Time) int { return c.Compare(at) }); i < len(changes) {
			next = changes[i]
		}
		if a.err != nil || a.code != http.StatusOK || !settled(a, next) {
			continue
		}
		total[a.tag]++
		if a.version == version {
			on[a.tag]++
		}
	}
	return total, on
}

// classify sorts failed answers: 5xx from the bad canary (expected in an
// abort), requests dropped by a config reload of Caddy (a fresh
// connection's EOF within its window, matched to Caddy's log), and the
// rest, which the test fails on.
func classify(t *testing.T, e *env, answers []answer) (canary5xx, reloadDrops int, lost []string) {
	t.Helper()
	reloads := caddyReloads(t, e.caddy.LogPath)
	for _, a := range answers {
		switch {
		case a.err == nil && a.code == http.StatusOK:
		case a.err == nil && a.code == http.StatusInternalServerError && strings.Contains(a.version, "failing on purpose"):
			canary5xx++
		case a.err != nil && a.freshEOF && slices.ContainsFunc(reloads, func(r time.Time) bool {
			return !a.at.Before(r.Add(-50*time.Millisecond)) && a.at.Before(r.Add(500*time.Millisecond))
		}):
			reloadDrops++
			t.Logf("dropped by a config reload (entering or leaving the canary): %s: %v", a.at.UTC().Format("15:04:05.000"), a.err)
		default:
			lost = append(lost, fmt.Sprintf("%s tag %s: %d %q %v", a.at.UTC().Format("15:04:05.000"), a.tag, a.code, a.version, a.err))
		}
	}
	return canary5xx, reloadDrops, lost
}

// TestE2ECanary: under client load, a healthy canary walks its steps
// (each split, measured by clients over at least 2,000 requests, within 5
// points of its weight) and is promoted, with status and metrics showing
// the step; a canary that answers 500 to a fifth of its requests is
// aborted at its first step by Caddy's count of its failures, and every
// request goes back to the live release. No request fails because of the
// split; the only failures let through are the 500s of the bad canary and
// requests Caddy dropped at the two reloads of a canary (entering and
// leaving it), each matched to a reload in Caddy's log.
func TestE2ECanary(t *testing.T) {
	testenv.Command(t, "go")
	e := newEnv(t, "@every 1h")
	e.startHello()
	canary := "canary: {steps: [10, 50], interval: 8s, max_failures: 5}\n"
	load := startCanaryLoad(e, 8)

	// A healthy canary: v2.
	e.commit("hello v2 as a canary", map[string]string{"services/hello.yaml": e.helloManifest("hello", "v2", canary)})
	e.sync()
	var sawSteps []int
	var sawMetrics bool
	e.waitFor("v2 live", 90*time.Second, func() bool {
		st := e.status()
		for _, f := range st.Memory.InFlight {
			if c := f.Canary; c != nil && c.Step > 0 && !slices.Contains(sawSteps, c.Step) {
				sawSteps = append(sawSteps, c.Step)
				row, _ := e.serviceStatus("hello")
				t.Logf("status during step %d: state %s: %s", c.Step, row.State, row.Message)
				if row.State != "canary" || !strings.Contains(row.Message, fmt.Sprintf("canary step %d/2", c.Step)) {
					t.Errorf("status row during step %d: %+v", c.Step, row)
				}
				b, err := e.agentGet("/metrics")
				if err == nil && strings.Contains(string(b), fmt.Sprintf(`jailkeeper_canary_weight_percent{service="hello"} %d`, c.Percent)) {
					sawMetrics = true
				}
			}
		}
		row, _ := e.serviceStatus("hello")
		return row.Converged && row.LiveSHA != "" && e.version("hello") == "v2" && len(st.Memory.InFlight) == 0
	})
	if !slices.Equal(sawSteps, []int{1, 2}) {
		t.Errorf("status showed canary steps %v, want [1 2]", sawSteps)
	}
	if !sawMetrics {
		t.Error("/metrics never showed jailkeeper_canary_weight_percent at the step in force")
	}
	healthy, changes := load.stop()
	total, onV2 := splits(healthy, changes, "v2")
	for _, tag := range []string{"10", "50"} {
		pct := map[string]int{"10": 10, "50": 50}[tag]
		n, got := total[tag], 0.0
		if n > 0 {
			got = 100 * float64(onV2[tag]) / float64(n)
		}
		t.Logf("step %s%%: %d requests, %.1f%% on v2", tag, n, got)
		if n < 2000 {
			t.Errorf("step %s%%: only %d requests measured, want at least 2000", tag, n)
		}
		if got < float64(pct-5) || got > float64(pct+5) {
			t.Errorf("step %s%%: %.1f%% of requests on v2, want within 5 points", tag, got)
		}
	}
	c5, drops, lost := classify(t, e, healthy)
	t.Logf("healthy canary: %d requests, %d dropped at a reload, %d 5xx", len(healthy), drops, c5)
	if c5 != 0 || len(lost) > 0 {
		t.Errorf("healthy canary: %d 5xx, lost %d requests: %v", c5, len(lost), lost[:min(len(lost), 10)])
	}
	metrics, err := e.agentGet("/metrics")
	if err != nil || !strings.Contains(string(metrics), `jailkeeper_canary_total{result="promoted",service="hello"} 1`) {
		t.Errorf("metrics after the promotion: %v\n%s", err, grepLines(string(metrics), "jailkeeper_canary"))
	}

	// A bad canary: v3 answers 500 to every fifth request but /up.
	load = startCanaryLoad(e, 8)
	bad := canary + "env: {HELLO_FAIL_EVERY: \"5\"}\n"
	e.commit("hello v3, failing, as a canary", map[string]string{"services/hello.yaml": e.helloManifest("hello", "v3", bad)})
	e.sync()
	e.waitFor("v3 aborted", 90*time.Second, func() bool {
		b, err := e.agentGet("/metrics")
		return err == nil && strings.Contains(string(b), `jailkeeper_canary_total{result="aborted",service="hello"} 1`)
	})
	abortedAt := time.Now()
	e.waitFor("no canary in flight", 30*time.Second, func() bool { return len(e.status().Memory.InFlight) == 0 })
	// Traffic is back on v2, all of it.
	time.Sleep(time.Second)
	answers, _ := load.stop()
	var after, afterV2 int
	for _, a := range answers {
		if a.at.After(abortedAt.Add(500*time.Millisecond)) && a.err == nil {
			after++
			if a.code == http.StatusOK && a.version == "v2" {
				afterV2++
			}
		}
	}
	t.Logf("after the abort: %d of %d requests answered 200 by v2", afterV2, after)
	if after < 100 || afterV2 != after {
		t.Errorf("after the abort: %d of %d requests answered 200 by v2, want all of at least 100", afterV2, after)
	}
	c5, drops, lost = classify(t, e, answers)
	t.Logf("bad canary: %d requests, %d 5xx from the canary (expected), %d dropped at a reload", len(answers), c5, drops)
	if c5 == 0 {
		t.Error("the bad canary answered no 500: was it ever routed?")
	}
	if len(lost) > 0 {
		t.Errorf("bad canary: lost %d requests: %v", len(lost), lost[:min(len(lost), 10)])
	}
	row, _ := e.serviceStatus("hello")
	if row.LiveSHA == "" || !strings.Contains(row.Message, "canary at step 1 (10%)") {
		t.Errorf("status after the abort: %+v", row)
	}
	if got := e.version("hello"); got != "v2" {
		t.Errorf("serving %q after the abort, want v2", got)
	}
	if r := e.routes(t)["hello"]; r.Canary != nil || r.Drifted {
		t.Errorf("route after the abort: %+v", r)
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestE2ECanaryAgentRestart: an agent stopped during a canary puts every
// request back on the live release before it exits; started again, it
// deploys the new release again and runs its canary from the first step to
// the promotion. Under load, no request fails but those a reload of
// Caddy dropped (matched to its log).
func TestE2ECanaryAgentRestart(t *testing.T) {
	testenv.Command(t, "go")
	e := newEnv(t, "@every 1h")
	stop := e.startHello()
	load := startCanaryLoad(e, 4)
	e.commit("hello v2 as a canary", map[string]string{"services/hello.yaml": e.helloManifest("hello", "v2",
		"canary: {steps: [10, 50], interval: 3s, max_failures: 5}\n")})
	e.sync()
	e.waitFor("canary step 1", 60*time.Second, func() bool {
		for _, f := range e.status().Memory.InFlight {
			if f.Canary != nil && f.Canary.Step == 1 {
				return true
			}
		}
		return false
	})
	stop()
	if tag := e.canaryTag(); tag != "plain" {
		t.Errorf("after the agent stopped: split %q, want the plain route", tag)
	}
	if r := e.routes(t)["hello"]; r.Canary != nil || r.Drifted {
		t.Errorf("route after the agent stopped: %+v", r)
	}
	for range 20 {
		if v := e.version("hello"); v != "v1" {
			t.Fatalf("after the agent stopped: serving %q, want v1 only", v)
		}
	}
	e.runAgent()
	var steps []int
	e.waitFor("v2 live after the restart", 90*time.Second, func() bool {
		st := e.status()
		for _, f := range st.Memory.InFlight {
			if c := f.Canary; c != nil && c.Step > 0 && !slices.Contains(steps, c.Step) {
				steps = append(steps, c.Step)
			}
		}
		row, _ := e.serviceStatus("hello")
		return row.Converged && e.version("hello") == "v2" && len(st.Memory.InFlight) == 0
	})
	if !slices.Equal(steps, []int{1, 2}) {
		t.Errorf("canary steps after the restart %v, want [1 2]", steps)
	}
	answers, _ := load.stop()
	c5, drops, lost := classify(t, e, answers)
	t.Logf("%d requests, %d dropped at a reload, %d 5xx", len(answers), drops, c5)
	if c5 != 0 || len(lost) > 0 {
		t.Errorf("%d 5xx, lost %d requests: %v", c5, len(lost), lost[:min(len(lost), 10)])
	}
}

// TestE2ECanaryAgentKilled: an agent killed (SIGKILL) during a canary
// leaves the route split; the next agent reads it as drifted, deploys the
// new release again, runs its canary from the first step and promotes it,
// ending with the plain route. Under load, no request fails but those a
// reload of Caddy dropped (matched to its log).
func TestE2ECanaryAgentKilled(t *testing.T) {
	testenv.Command(t, "go")
	e := newEnv(t, "@every 1s")
	e.commit("add hello", map[string]string{"services/hello.yaml": e.helloManifest("hello", "v1", "")})
	ag := startChild(t, e, "")
	e.waitVersion("hello", "v1", 60*time.Second)
	load := startCanaryLoad(e, 4)
	e.commit("hello v2 as a canary", map[string]string{"services/hello.yaml": e.helloManifest("hello", "v2",
		"canary: {steps: [10, 50], interval: 3s, max_failures: 5}\n")})
	waitUntil(t, "canary step 1", 60*time.Second, func() error {
		if tag := e.canaryTag(); tag != "10" {
			return fmt.Errorf("split %q", tag)
		}
		return nil
	})
	_ = ag.cmd.Process.Kill()
	<-ag.done
	if r := e.routes(t)["hello"]; r.Canary == nil || !r.Drifted || r.Canary.Step != 1 {
		t.Errorf("route after the kill: %+v, want the canary left at step 1", r)
	}
	ag = startChild(t, e, "")
	defer ag.terminate(t)
	var tags []string
	waitUntil(t, "v2 live with the plain route", 90*time.Second, func() error {
		if tag := e.canaryTag(); len(tags) == 0 || tags[len(tags)-1] != tag {
			tags = append(tags, tag)
		}
		st, _, err := e.readStatus()
		if err != nil {
			return err
		}
		r := e.routes(t)["hello"]
		if e.version("hello") != "v2" || len(st.Memory.InFlight) > 0 || r.Canary != nil || r.Drifted {
			return fmt.Errorf("serving %s, in flight %+v, route %+v", e.version("hello"), st.Memory.InFlight, r)
		}
		return nil
	})
	t.Logf("splits seen after the restart: %v", tags)
	if !slices.Contains(tags, "50") {
		t.Errorf("splits after the restart %v: the canary did not reach step 2", tags)
	}
	answers, _ := load.stop()
	c5, drops, lost := classify(t, e, answers)
	t.Logf("%d requests, %d dropped at a reload, %d 5xx", len(answers), drops, c5)
	if c5 != 0 || len(lost) > 0 {
		t.Errorf("%d 5xx, lost %d requests: %v", c5, len(lost), lost[:min(len(lost), 10)])
	}
}
