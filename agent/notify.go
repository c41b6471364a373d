package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/jailkeeper/jailkeeper/internal/redact"
	"github.com/jailkeeper/jailkeeper/reconcile"
)

// notifyQueue bounds the events waiting for delivery. A receiver that is down
// for a long time costs at most this many events, never a stalled pass.
const notifyQueue = 256

// Backoff between delivery attempts: notifyBackoff, doubling, at most
// notifyMaxBackoff.
const (
	notifyBackoff    = time.Second
	notifyMaxBackoff = 30 * time.Second
)

// Notifier posts every deploy event as the JSON of reconcile.Event to the
// configured URL (the outgoing webhook, config `notify`). Notify never blocks:
// events wait in a bounded queue for one delivery goroutine (Run), and when
// the queue is full the event is dropped with a log line. Each event gets
// 1+Retries attempts, each bounded by Timeout, with exponential backoff
// between them; a 2xx answer is a delivery, a 4xx other than 408 and 429 is
// final. Events go out in the order they were queued. Safe for concurrent use.
type Notifier struct {
	url     string
	display string // url as messages name it: no secrets
	timeout time.Duration
	retries int
	client  *http.Client
	log     *slog.Logger
	// backoff is the wait before retry n (1-based); tests shorten it.
	backoff func(n int) time.Duration

	mu     sync.Mutex
	closed bool
	queue  chan reconcile.Event
}

// NewNotifier returns a Notifier for cfg, or nil when cfg.URL is empty.
// Nothing is sent before Run.
func NewNotifier(cfg NotifyConfig, log *slog.Logger) *Notifier {
	if cfg.URL == "" {
		return nil
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	return &Notifier{
		url:     cfg.URL,
		display: notifyDisplay(cfg.URL),
		timeout: timeout,
		retries: max(cfg.Retries, 0),
		client:  &http.Client{},
		log:     log,
		backoff: expBackoff(notifyBackoff, notifyMaxBackoff),
		queue:   make(chan reconcile.Event, notifyQueue),
	}
}

// notifyDisplay names a notify URL in messages: its scheme and host only.
// Webhook URLs carry their secret in the userinfo, the query or, as chat
// services' incoming webhooks do, in the path itself.
func notifyDisplay(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "notify.url"
	}
	d := redact.URL((&url.URL{Scheme: u.Scheme, Host: u.Host}).String())
	if u.Path != "" && u.Path != "/" {
		d += "/..."
	}
	return d
}

// expBackoff returns base * 2^(n-1), capped at limit.
func expBackoff(base, limit time.Duration) func(int) time.Duration {
	return func(n int) time.Duration {
		d := base
		for i := 1; i < n && d < limit; i++ {
			d *= 2
		}
		return min(d, limit)
	}
}

// Notify queues ev for delivery and reports whether it was queued. It never
// blocks: when the queue is full, or after Close, the event is dropped and
// logged. A nil Notifier drops everything silently.
func (n *Notifier) Notify(ev reconcile.Event) bool {
	if n == nil {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		n.log.Warn("notify: shutting down; event dropped", "event", string(ev.Kind), "service", ev.Service)
		return false
	}
	select {
	case n.queue <- ev:
		return true
	default:
		n.log.Warn("notify: queue full; event dropped", "event", string(ev.Kind), "service", ev.Service, "queue", cap(n.queue))
		return false
	}
}

// Close stops accepting events. Run then delivers what is queued and
// returns. Close is idempotent.
func (n *Notifier) Close() {
	if n == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.closed {
		n.closed = true
		close(n.queue)
	}
}

// Run delivers queued events until Close has been called and the queue is
// empty, or until ctx is done; then it abandons the attempt in flight, logs
// how many events were not delivered, and returns. Run is meant to run in
// one goroutine.
func (n *Notifier) Run(ctx context.Context) {
	if n == nil {
		return
	}
	stopped := func() {
		if left := len(n.queue); left > 0 {
			n.log.Warn("notify: stopped with events not delivered", "events", left)
		}
	}
	for {
		// A done ctx wins over a queued event.
		if ctx.Err() != nil {
			stopped()
			return
		}
		select {
		case ev, ok := <-n.queue:
			if !ok {
				return
			}
			if err := n.deliver(ctx, ev); err != nil {
				n.log.Warn("notify: event not delivered", "event", string(ev.Kind), "service", ev.Service, "err", err)
			}
		case <-ctx.Done():
			stopped()
			return
		}
	}
}

// start runs n in a goroutine. The returned stop closes the queue, lets Run
// deliver what is queued for up to grace, then abandons the rest and waits
// for Run to return. Both are no-ops on a nil Notifier.
func (n *Notifier) start(grace time.Duration) (stop func()) {
	if n == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.Run(ctx)
	}()
	return func() {
		n.Close()
		t := time.AfterFunc(grace, cancel)
		<-done
		t.Stop()
		cancel()
	}
}

// deliver posts ev with retries; it returns the last error.
func (n *Notifier) deliver(ctx context.Context, ev reconcile.Event) error {
	body, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	var last error
	for attempt := 0; attempt <= n.retries; attempt++ {
		if attempt > 0 {
			t := time.NewTimer(n.backoff(attempt))
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("%w (after %d attempts: %w)", ctx.Err(), attempt, last)
			case <-t.C:
			}
		}
		var final bool
		final, last = n.post(ctx, ev, body)
		if last == nil {
			return nil
		}
		n.log.Debug("notify: attempt failed", "event", string(ev.Kind), "service", ev.Service, "attempt", attempt+1, "err", last)
		if final || ctx.Err() != nil {
			return fmt.Errorf("after %d attempts: %w", attempt+1, last)
		}
	}
	return fmt.Errorf("after %d attempts: %w", n.retries+1, last)
}

// post makes one attempt. final is set when retrying cannot help.
func (n *Notifier) post(ctx context.Context, ev reconcile.Event, body []byte) (final bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, n.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.url, bytes.NewReader(body))
	if err != nil {
		// Never the URL: NewRequest's errors quote it.
		return true, fmt.Errorf("post %s: invalid notify.url", n.display)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "jailkeeper")
	req.Header.Set("X-Jailkeeper-Event", string(ev.Kind))
	resp, err := n.client.Do(req)
	if err != nil {
		// *url.Error quotes the whole URL: keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return false, fmt.Errorf("post %s: %s", n.display, redact.Text(err.Error()))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch c := resp.StatusCode; {
	case c/100 == 2:
		return false, nil
	case c == http.StatusRequestTimeout || c == http.StatusTooManyRequests || c/100 == 5:
		return false, fmt.Errorf("post %s: %s", n.display, redact.Printable(resp.Status))
	default:
		return true, fmt.Errorf("post %s: %s", n.display, redact.Printable(resp.Status))
	}
}
