package reconcile

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/artifact"
	"github.com/jailkeeper/jailkeeper/manifest"
	"github.com/jailkeeper/jailkeeper/release"
)

// errTransientFetch is what the artifact store returns while it answers 503.
var errTransientFetch = fmt.Errorf("fetch http://127.0.0.1:8081/a: %w: %w: HTTP status 503 Service Unavailable",
	artifact.ErrFetch, artifact.ErrTransient)

// onlyFailure returns the one create failure the executor remembers.
func onlyFailure(t *testing.T, h *harness) CreateFailure {
	t.Helper()
	m := h.exec.Memory()
	if len(m.CreateFailures) != 1 {
		t.Fatalf("create failures = %+v, want one", m.CreateFailures)
	}
	return m.CreateFailures[0]
}

func (h *harness) lastWake() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.wakes) == 0 {
		return 0
	}
	return h.wakes[len(h.wakes)-1]
}

// A transient fetch failure (the store down, a 404 before CI publishes)
// is retried after 5s, 10s, 20s ... at most 5m; the executor asks to be
// woken then, /status shows the count and the time, and the deploy goes
// live on the first try that works.
func TestTransientFetchRetrySchedule(t *testing.T) {
	h := newHarness()
	v := svc("hello", sha1)
	h.fetcher.err = errTransientFetch
	want := []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second,
		80 * time.Second, 160 * time.Second, 5 * time.Minute, 5 * time.Minute}
	for i, d := range want {
		n := i + 1
		res, err := h.pass(t, v)
		if err == nil {
			t.Fatalf("try %d: pass succeeded with a failing fetch", n)
		}
		if h.fetcher.fetches != n {
			t.Fatalf("try %d: fetches = %d, want %d", n, h.fetcher.fetches, n)
		}
		f := onlyFailure(t, h)
		if f.Failures != n || f.Stalled || !f.Transient {
			t.Errorf("try %d: failure = %+v, want %d transient failures", n, f, n)
		}
		if got := f.RetryAt.Sub(f.FailedAt); got != d {
			t.Errorf("try %d: retry after %s, want %s", n, got, d)
		}
		if got := h.lastWake(); got != d {
			t.Errorf("try %d: wake-up asked in %s, want %s", n, got, d)
		}
		st := res.Services[0]
		if st.Failures != n || !st.RetryAt.Equal(f.RetryAt) {
			t.Errorf("try %d: status failures=%d retry_at=%s, want %d %s", n, st.Failures, st.RetryAt, n, f.RetryAt)
		}
		at := f.RetryAt.UTC().Format(time.RFC3339)
		if !strings.Contains(st.Message, "503") || !strings.Contains(st.Message, at) || !strings.Contains(st.Message, fmt.Sprintf("%d time(s)", n)) {
			t.Errorf("try %d: status message %q lacks the cause, the count or the retry time %s", n, st.Message, at)
		}
		// Just before the retry time nothing is fetched.
		h.advance(d - time.Millisecond)
		res, err = h.pass(t, v)
		if err == nil || h.fetcher.fetches != n {
			t.Fatalf("try %d: within the backoff: err=%v fetches=%d", n, err, h.fetcher.fetches)
		}
		if res.Steps[0].Kind != KindBackoff || !res.Steps[0].RetryAt.Equal(f.RetryAt) {
			t.Errorf("try %d: step %s, want backoff until %s", n, res.Steps[0], at)
		}
		h.advance(time.Millisecond)
	}
	h.fetcher.mu.Lock()
	h.fetcher.err = nil // the store is back
	h.fetcher.mu.Unlock()
	res, err := h.pass(t, v)
	if err != nil {
		t.Fatalf("pass after the store came back: %v", err)
	}
	mustState(t, h, v.ReleaseName(), release.StateLive, true)
	if m := h.exec.Memory(); len(m.CreateFailures) != 0 {
		t.Errorf("failures remembered after the deploy: %+v", m.CreateFailures)
	}
	if st := res.Services[0]; st.Failures != 0 || !st.RetryAt.IsZero() {
		t.Errorf("converged status keeps failures=%d retry_at=%s", st.Failures, st.RetryAt)
	}
}

// Jitter only ever shortens a transient backoff, by at most a fifth: the
// retry never comes later than the schedule promises.
func TestTransientFetchJitter(t *testing.T) {
	tests := []struct {
		jitter float64
		want   time.Duration
	}{
		{0, 5 * time.Second},
		{0.5, 4500 * time.Millisecond},
		{0.999999, 4000*time.Millisecond + time.Microsecond},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.jitter), func(t *testing.T) {
			h := newHarness()
			h.jitter = tt.jitter
			h.fetcher.err = errTransientFetch
			if _, err := h.pass(t, svc("hello", sha1)); err == nil {
				t.Fatal("pass succeeded with a failing fetch")
			}
			f := onlyFailure(t, h)
			got := f.RetryAt.Sub(f.FailedAt)
			if got != tt.want {
				t.Errorf("retry after %s, want %s", got, tt.want)
			}
			if got <= 4*time.Second || got > 5*time.Second {
				t.Errorf("retry after %s, outside (4s, 5s]", got)
			}
		})
	}
}

// Failures a retry cannot cure keep their schedules: a checksum mismatch
// stalls until a new commit, any other failed fetch backs off 1m, doubling.
func TestPermanentFetchFailures(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		stalled bool
		retry   time.Duration
	}{
		{"checksum", fmt.Errorf("fetch x: %w: the content does not have the expected sha256", artifact.ErrChecksum), true, 0},
		{"unsafe", fmt.Errorf("install: %w: entry ../x", artifact.ErrUnsafe), true, 0},
		{"403", fmt.Errorf("fetch x: %w: HTTP status 403 Forbidden", artifact.ErrFetch), false, time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness()
			h.fetcher.err = tt.err
			res, err := h.pass(t, svc("hello", sha1))
			if err == nil {
				t.Fatal("pass succeeded with a failing fetch")
			}
			f := onlyFailure(t, h)
			if f.Stalled != tt.stalled || f.Transient {
				t.Errorf("failure = %+v, want stalled=%v, not transient", f, tt.stalled)
			}
			if tt.stalled {
				if !f.RetryAt.IsZero() || h.lastWake() != 0 || !res.Services[0].RetryAt.IsZero() {
					t.Errorf("stalled spec has a retry: %+v, wake %s", f, h.lastWake())
				}
				return
			}
			if got := f.RetryAt.Sub(f.FailedAt); got != tt.retry || h.lastWake() != tt.retry {
				t.Errorf("retry after %s (wake %s), want %s", got, h.lastWake(), tt.retry)
			}
		})
	}
}

// Plan retries at the RetryAt the executor stored (jitter included), and
// falls back to FailedAt+Backoff for a record without one (an older
// agent's /status read by `jailkeeper plan`).
func TestPlanUsesStoredRetryAt(t *testing.T) {
	v := svc("hello", sha1)
	f := CreateFailure{Service: "hello", Release: v.ReleaseName(), Spec: v.SpecHash(), Failures: 1,
		FailedAt: t0, RetryAt: t0.Add(4 * time.Second), Transient: true, Reason: "503"}
	old := f
	old.RetryAt, old.Transient = time.Time{}, false
	tests := []struct {
		name string
		f    CreateFailure
		now  time.Time
		want Kind
	}{
		{"before RetryAt", f, t0.Add(4*time.Second - time.Millisecond), KindBackoff},
		{"at RetryAt", f, t0.Add(4 * time.Second), KindDeploy},
		{"no RetryAt, within 1m", old, t0.Add(59 * time.Second), KindBackoff},
		{"no RetryAt, after 1m", old, t0.Add(time.Minute), KindDeploy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			steps, err := Plan(Desired{Services: []manifest.Service{v}},
				Observed{Memory: Memory{CreateFailures: []CreateFailure{tt.f}}}, tt.now)
			if err != nil {
				t.Fatal(err)
			}
			if steps[0].Kind != tt.want {
				t.Errorf("step %s, want %s", steps[0], tt.want)
			}
		})
	}
}

// A full disk (ENOSPC or EDQUOT, from the artifact cache or from the
// runtime writing a release) is the host's fault: the spec is retried on
// the transient schedule, no failure is reported for the release, and
// /status says why it waits.
func TestDiskFullIsNoVerdict(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string // in the status message
	}{
		{"fetch ENOSPC", fmt.Errorf("fetch artifact: %w", &fs.PathError{Op: "write", Path: "/var/db/jailkeeper/cache/x", Err: syscall.ENOSPC}),
			syscall.ENOSPC.Error()},
		{"create EDQUOT", fmt.Errorf("create hello_x: install: %w", &fs.PathError{Op: "write", Path: "root/usr/local/bin/hello", Err: syscall.EDQUOT}),
			syscall.EDQUOT.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness()
			h.fetcher.err = tt.err
			res, err := h.pass(t, svc("hello", sha1))
			if err == nil {
				t.Fatal("pass succeeded with a full disk")
			}
			var he *HostError
			if !errors.As(err, &he) {
				t.Errorf("pass = %v, want a *HostError", err)
			}
			f := onlyFailure(t, h)
			if !f.Transient || f.Stalled {
				t.Errorf("failure = %+v, want transient", f)
			}
			if got := f.RetryAt.Sub(f.FailedAt); got != TransientBackoff(1) {
				t.Errorf("retry after %s, want %s", got, TransientBackoff(1))
			}
			for _, k := range h.kinds() {
				if strings.HasPrefix(k, "failed ") {
					t.Errorf("events %v report a failure", h.kinds())
				}
			}
			if msg := res.Services[0].Message; !strings.Contains(msg, tt.want) {
				t.Errorf("status message %q does not say the disk is full", msg)
			}
		})
	}
}
