package caddy_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/caddy"
	"github.com/jailkeeper/jailkeeper/caddy/caddytest"
)

// poll is what DrainObserved reports after one poll.
type poll struct{ found, next string }

// slowBackend starts an HTTP server on 127.0.0.1 whose handler signals
// started, then blocks until release is called, then answers "slow". It
// returns its host:port. release is idempotent and also runs in t.Cleanup,
// before the server closes.
func slowBackend(t *testing.T) (addr string, started <-chan struct{}, release func()) {
	t.Helper()
	st := make(chan struct{}, 1)
	gate := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case st <- struct{}{}:
		default:
		}
		<-gate
		io.WriteString(w, "slow")
	}))
	t.Cleanup(srv.Close)
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release)
	return strings.TrimPrefix(srv.URL, "http://"), st, release
}

// TestDrainWaitsForInFlightRequest: a request still in flight to the old
// upstream after the switch keeps Drain waiting until it is answered, both
// when the switch is a config write and when it is an upstream file
// (Config.UpstreamDir): Caddy 2.11.2+ counts in-flight requests by the
// address it dialled, placeholder resolved.
func TestDrainWaitsForInFlightRequest(t *testing.T) {
	t.Run("reload", func(t *testing.T) { testDrainWaits(t, newClient) })
	t.Run("file", func(t *testing.T) { testDrainWaits(t, newFileClient) })
}

func testDrainWaits(t *testing.T, newClient func(testing.TB, *caddytest.Instance) *caddy.Client) {
	in := caddytest.Start(t)
	c := newClient(t, in)
	slowAddr, started, release := slowBackend(t)
	fast := backend(t, "fast")
	if err := c.Set(t.Context(), route("svc", slowAddr)); err != nil {
		t.Fatal(err)
	}

	type result struct {
		st   int
		body string
		err  error
	}
	reqDone := make(chan result, 1)
	go func() {
		// getRetry: a fresh connection right after Set's reload can be
		// dropped (see wantBody); that is not what this test tests.
		st, body, err := getRetry(t, http.DefaultClient, in.HTTPAddr, "svc.example.com")
		reqDone <- result{st, body, err}
	}()
	select {
	case <-started:
	case r := <-reqDone:
		t.Fatalf("request finished before reaching the backend: %+v", r)
	}
	if err := c.Set(t.Context(), route("svc", fast)); err != nil {
		t.Fatal(err)
	}
	wantBody(t, in, "svc.example.com", "fast")

	var (
		mu    sync.Mutex
		polls []poll
	)
	const busyPolls = 3
	sawBusy := make(chan struct{})
	var released atomic.Bool
	drained := make(chan error, 1)
	go func() {
		busy := 0
		err := caddy.DrainObserved(t.Context(), c, slowAddr, time.Hour, func(found, next string) {
			mu.Lock()
			polls = append(polls, poll{found, next})
			mu.Unlock()
			if found == "busy" {
				if busy++; busy == busyPolls {
					close(sawBusy)
				}
			}
		})
		if !released.Load() {
			err = fmt.Errorf("Drain returned while the request was in flight (err %v)", err)
		}
		drained <- err
	}()
	// Drain has seen the request in flight several times and kept waiting.
	select {
	case err := <-drained:
		t.Fatalf("Drain returned early: %v", err)
	case <-sawBusy:
	}
	released.Store(true)
	release()
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
	if r := <-reqDone; r.err != nil || r.st != http.StatusOK || r.body != "slow" {
		t.Fatalf("in-flight request: %+v, want 200 slow", r)
	}
	mu.Lock()
	defer mu.Unlock()
	// Caddy 2.11.9 drops the address once its count reaches 0.
	if last := polls[len(polls)-1]; last != (poll{"absent", "idle"}) && last != (poll{"idle", "idle"}) {
		t.Errorf("last poll %+v, want absent or idle, then idle; all: %v", last, polls)
	}
	for _, p := range polls[:len(polls)-1] {
		if p != (poll{"busy", "poll"}) {
			t.Errorf("poll %+v before the request ended, want busy then poll; all: %v", p, polls)
		}
	}
}

// TestDrainIdleUpstream: against Caddy 2.11.2+, an old upstream with
// nothing in flight is released at the first poll, not after max.
func TestDrainIdleUpstream(t *testing.T) {
	in := caddytest.Start(t)
	c := newClient(t, in)
	a, b := backend(t, "A"), backend(t, "B")
	if err := c.Set(t.Context(), route("svc", a)); err != nil {
		t.Fatal(err)
	}
	wantBody(t, in, "svc.example.com", "A")
	if err := c.Set(t.Context(), route("svc", b)); err != nil {
		t.Fatal(err)
	}
	wantBody(t, in, "svc.example.com", "B")
	if got := caddy.ListsInFlight(t.Context(), c); got != "yes" {
		t.Fatalf("bin/caddy (2.11.9) read as listing in-flight upstreams: %q, want yes", got)
	}

	// The deadline only keeps a wrong Drain (one waiting for max) from
	// hanging the test; it is far above the one poll expected.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var polls []poll
	err := caddy.DrainObserved(ctx, c, a, time.Hour, func(found, next string) {
		polls = append(polls, poll{found, next})
	})
	if err != nil {
		t.Fatalf("Drain of an idle upstream: %v (polls %v)", err, polls)
	}
	if len(polls) != 1 || polls[0].next != "idle" {
		t.Errorf("polls %v, want one that found it absent (or idle), then idle", polls)
	}
}

// TestDrainContextDone: a done ctx ends Drain with ctx.Err(), even while
// the upstream is busy.
func TestDrainContextDone(t *testing.T) {
	in := caddytest.Start(t)
	c := newClient(t, in)
	slowAddr, started, release := slowBackend(t)
	if err := c.Set(t.Context(), route("svc", slowAddr)); err != nil {
		t.Fatal(err)
	}
	reqDone := make(chan struct{})
	go func() {
		defer close(reqDone)
		getRetry(t, http.DefaultClient, in.HTTPAddr, "svc.example.com") // as above
	}()
	select {
	case <-started:
	case <-reqDone:
		t.Fatal("request finished before reaching the backend")
	}
	defer func() { release(); <-reqDone }()

	done, cancel := context.WithCancel(t.Context())
	cancel()
	if err := c.Drain(done, slowAddr, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("Drain with a done ctx = %v, want context.Canceled", err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	drained := make(chan error, 1)
	go func() {
		drained <- caddy.DrainObserved(ctx, c, slowAddr, time.Hour, func(found, next string) {
			if found == "busy" {
				cancel()
			}
		})
	}()
	if err := <-drained; !errors.Is(err, context.Canceled) {
		t.Errorf("Drain cancelled while busy = %v, want context.Canceled", err)
	}
}
