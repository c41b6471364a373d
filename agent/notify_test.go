package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jailkeeper/jailkeeper/reconcile"
)

// receiver is an httptest server on 127.0.0.1 that answers with the codes
// in script, one per request (the last one repeats), and records what it got.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	script []int
	got    []receivedEvent
	hits   chan struct{} // one per request
	hang   bool          // hold every request until the client gives up
}

type receivedEvent struct {
	header http.Header
	event  reconcile.Event
	status int
}

func newReceiver(t *testing.T, script ...int) *receiver {
	t.Helper()
	r := &receiver{script: script, hits: make(chan struct{}, 1024)}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var ev reconcile.Event
		if err := json.Unmarshal(body, &ev); err != nil {
			t.Errorf("receiver: decode %q: %v", body, err)
		}
		r.mu.Lock()
		code := r.script[min(len(r.got), len(r.script)-1)]
		r.got = append(r.got, receivedEvent{header: req.Header.Clone(), event: ev, status: code})
		hang := r.hang
		r.mu.Unlock()
		r.hits <- struct{}{}
		if hang {
			<-req.Context().Done()
			return
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) received() []receivedEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]receivedEvent(nil), r.got...)
}

// wait blocks until n more requests arrived; the bound only keeps a broken
// test from hanging.
func (r *receiver) wait(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-r.hits:
		case <-time.After(30 * time.Second):
			t.Fatalf("receiver: no request after %d of %d", len(r.received()), n)
		}
	}
}

// testNotifier is a Notifier for url with a tiny backoff and its log in buf.
func testNotifier(t *testing.T, url string, retries int, timeout time.Duration) (*Notifier, *syncBuffer) {
	t.Helper()
	buf := &syncBuffer{}
	n := NewNotifier(NotifyConfig{URL: url, Timeout: timeout, Retries: retries}, slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	n.backoff = expBackoff(time.Millisecond, 4*time.Millisecond)
	return n, buf
}

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runNotifier runs n until the test ends and returns a wait for Run's return.
func runNotifier(t *testing.T, n *Notifier) (cancel func(), done <-chan struct{}) {
	t.Helper()
	ctx, cancelCtx := context.WithCancel(context.Background())
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		n.Run(ctx)
	}()
	t.Cleanup(func() {
		cancelCtx()
		<-ch
	})
	return cancelCtx, ch
}

var liveEvent = reconcile.Event{
	Time: t0, Kind: reconcile.EventLive, Service: "hello", Release: testRel, Previous: testRel2,
	SHA: testSHA, Revision: testRev, Duration: 2500 * time.Millisecond, CommitTime: t0.Add(-time.Minute),
	HealthFailure: true, // not part of the JSON
}

func TestNotifyRetriesUntilDelivered(t *testing.T) {
	r := newReceiver(t, 500, 503, 200)
	n, _ := testNotifier(t, r.srv.URL, 3, 5*time.Second)
	runNotifier(t, n)
	if !n.Notify(liveEvent) {
		t.Fatal("Notify dropped the event")
	}
	r.wait(t, 3)

	got := r.received()
	var codes []int
	for _, g := range got {
		codes = append(codes, g.status)
	}
	if diff := cmp.Diff([]int{500, 503, 200}, codes); diff != "" {
		t.Errorf("attempts (-want +got):\n%s", diff)
	}
	want := liveEvent
	want.HealthFailure = false
	for i, g := range got {
		if diff := cmp.Diff(want, g.event); diff != "" {
			t.Errorf("attempt %d body (-want +got):\n%s", i+1, diff)
		}
		if ct := g.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("attempt %d Content-Type = %q", i+1, ct)
		}
		if k := g.header.Get("X-Jailkeeper-Event"); k != "live" {
			t.Errorf("attempt %d X-Jailkeeper-Event = %q", i+1, k)
		}
	}
}

// The JSON is reconcile.Event's own encoding: these names are what a
// receiver parses.
func TestNotifyJSONFields(t *testing.T) {
	b, err := json.Marshal(liveEvent)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"time": "2025-06-01T12:00:00Z", "event": "live", "service": "hello", "release": testRel,
		"previous": testRel2, "sha": testSHA, "revision": testRev, "duration_ns": float64(2.5e9),
		"commit_time": "2025-06-01T11:59:00Z",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("event JSON (-want +got):\n%s", diff)
	}
}

func TestNotifyGivesUpAndMovesOn(t *testing.T) {
	tests := []struct {
		name         string
		script       []int
		retries      int
		wantAttempts int
	}{
		{"server error every time", []int{500}, 2, 3},
		{"no retries", []int{502}, 0, 1},
		{"client error is final", []int{400, 200}, 3, 1},
		{"429 is retried", []int{429, 429, 200}, 3, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newReceiver(t, tt.script...)
			n, log := testNotifier(t, r.srv.URL, tt.retries, 5*time.Second)
			n.retries = tt.retries // NotifyConfig defaults are the config's job
			runNotifier(t, n)
			n.Notify(reconcile.Event{Kind: reconcile.EventFailed, Service: "first"})
			r.wait(t, tt.wantAttempts)
			// The next event is attempted after the first is given up:
			// a dead receiver does not stall the queue.
			r.mu.Lock()
			r.script = []int{200}
			r.mu.Unlock()
			n.Notify(reconcile.Event{Kind: reconcile.EventLive, Service: "second"})
			r.wait(t, 1)
			got := r.received()
			if len(got) != tt.wantAttempts+1 {
				t.Fatalf("requests = %d, want %d attempts and the next event", len(got), tt.wantAttempts+1)
			}
			for i, g := range got[:tt.wantAttempts] {
				if g.event.Service != "first" {
					t.Errorf("request %d is for %q, want first", i+1, g.event.Service)
				}
			}
			if last := got[len(got)-1].event.Service; last != "second" {
				t.Errorf("last request is for %q, want second", last)
			}
			final := got[tt.wantAttempts-1].status
			if final/100 != 2 && !strings.Contains(log.String(), "notify: event not delivered") {
				t.Errorf("giving up logged nothing:\n%s", log)
			}
		})
	}
}

func TestNotifyTimeout(t *testing.T) {
	r := newReceiver(t, 200)
	r.hang = true
	// Many retries: on a loaded machine an attempt may time out before it
	// even reaches the receiver.
	n, log := testNotifier(t, r.srv.URL, 1000, 50*time.Millisecond)
	cancel, done := runNotifier(t, n)
	n.Notify(liveEvent)
	r.wait(t, 2) // an attempt timed out and was retried
	cancel()
	<-done
	if !strings.Contains(log.String(), "deadline exceeded") {
		t.Errorf("log does not name the timeout:\n%s", log)
	}
}

func TestNotifyNeverBlocks(t *testing.T) {
	n, log := testNotifier(t, "http://127.0.0.1:9/", 0, time.Second)
	// Nothing delivers: the queue fills, then events are dropped.
	for i := range notifyQueue {
		if !n.Notify(reconcile.Event{Kind: reconcile.EventLive, Service: "hello"}) {
			t.Fatalf("event %d dropped with room in the queue", i)
		}
	}
	if n.Notify(reconcile.Event{Kind: reconcile.EventPruned, Service: "gone"}) {
		t.Error("Notify queued beyond the bound")
	}
	if !strings.Contains(log.String(), "queue full") || !strings.Contains(log.String(), "service=gone") {
		t.Errorf("drop not logged:\n%s", log)
	}
	n.Close()
	n.Close() // idempotent
	if n.Notify(reconcile.Event{Kind: reconcile.EventLive, Service: "late"}) {
		t.Error("Notify queued after Close")
	}
}

func TestNotifyShutdown(t *testing.T) {
	t.Run("cancel abandons a hanging receiver", func(t *testing.T) {
		r := newReceiver(t, 200)
		r.hang = true
		n, log := testNotifier(t, r.srv.URL, 5, time.Hour)
		cancel, done := runNotifier(t, n)
		n.Notify(liveEvent)
		n.Notify(liveEvent)
		r.wait(t, 1)
		cancel()
		<-done
		if !strings.Contains(log.String(), "context canceled") {
			t.Errorf("abandoned delivery not logged:\n%s", log)
		}
		if !strings.Contains(log.String(), "stopped with events not delivered") {
			t.Errorf("undelivered events not logged:\n%s", log)
		}
	})
	t.Run("stop flushes the queue", func(t *testing.T) {
		r := newReceiver(t, 200)
		n, _ := testNotifier(t, r.srv.URL, 3, 5*time.Second)
		stop := n.start(time.Minute)
		for _, svc := range []string{"a", "b", "c"} {
			n.Notify(reconcile.Event{Kind: reconcile.EventLive, Service: svc})
		}
		stop()
		var got []string
		for _, g := range r.received() {
			got = append(got, g.event.Service)
		}
		if diff := cmp.Diff([]string{"a", "b", "c"}, got); diff != "" {
			t.Errorf("delivered before stop returned (-want +got):\n%s", diff)
		}
	})
	t.Run("stop gives up after the grace", func(t *testing.T) {
		r := newReceiver(t, 200)
		r.hang = true
		n, _ := testNotifier(t, r.srv.URL, 3, time.Hour)
		stop := n.start(10 * time.Millisecond)
		n.Notify(liveEvent)
		r.wait(t, 1)
		stop() // returns although the receiver never answers
	})
}

func TestExpBackoff(t *testing.T) {
	b := expBackoff(time.Second, 30*time.Second)
	var got []time.Duration
	for n := 1; n <= 7; n++ {
		got = append(got, b(n))
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("backoff (-want +got):\n%s", diff)
	}
}

func TestNotifierNil(t *testing.T) {
	n := NewNotifier(NotifyConfig{}, nil)
	if n != nil {
		t.Fatalf("NewNotifier without a URL = %v, want nil", n)
	}
	// A nil Notifier is the disabled one: every method is a no-op.
	if n.Notify(liveEvent) {
		t.Error("nil Notifier queued an event")
	}
	n.Close()
	n.Run(context.Background())
	n.start(time.Second)()
}

// Agent.event forwards every event to the notifier.
func TestAgentEventNotifies(t *testing.T) {
	r := newReceiver(t, 200)
	a := newTestAgent(t)
	a.notify, _ = testNotifier(t, r.srv.URL, 0, 5*time.Second)
	stop := a.notify.start(time.Minute)
	kinds := []reconcile.EventKind{reconcile.EventDeployStarted, reconcile.EventFailed, reconcile.EventReverted,
		reconcile.EventLive, reconcile.EventRolledBack, reconcile.EventPruned, reconcile.EventRouteRestored}
	for _, k := range kinds {
		a.event(reconcile.Event{Kind: k, Service: "hello"})
	}
	stop()
	var got []reconcile.EventKind
	for _, g := range r.received() {
		got = append(got, g.event.Kind)
	}
	if diff := cmp.Diff(kinds, got); diff != "" {
		t.Errorf("notified (-want +got):\n%s", diff)
	}
}
