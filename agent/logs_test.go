package agent

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jailkeeper/jailkeeper/caddy"
	"github.com/jailkeeper/jailkeeper/release"
)

func TestSeekLastLines(t *testing.T) {
	tests := []struct {
		name, content string
		n             int
		want          string
	}{
		{"empty", "", 10, ""},
		{"fewer lines than n", "a\nb\n", 10, "a\nb\n"},
		{"exactly n", "a\nb\n", 2, "a\nb\n"},
		{"last two", "a\nb\nc\n", 2, "b\nc\n"},
		{"unterminated last line counts", "a\nb\nc", 2, "b\nc"},
		{"zero prints nothing", "a\nb\n", 0, ""},
		{"blank lines count", "a\n\n\n", 2, "\n\n"},
		{"longer than a block", strings.Repeat("x", 40<<10) + "\nlast\n", 1, "last\n"},
		{"line across blocks", "first\n" + strings.Repeat("y", 70<<10) + "\n", 1, strings.Repeat("y", 70<<10) + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "log")
			if err := os.WriteFile(p, []byte(tt.content), 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := seekLastLines(f, tt.n); err != nil {
				t.Fatal(err)
			}
			got, err := readAll(f)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

func readAll(f *os.File) (string, error) {
	b, err := io.ReadAll(f)
	return string(b), err
}

// waitOutput waits until the follower's output ends with want.
func waitOutput(t *testing.T, out *syncBuffer, errc <-chan error, want string) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for !strings.HasSuffix(out.String(), want) {
		select {
		case err := <-errc:
			t.Fatalf("follower returned %v; output so far:\n%s", err, out.String())
		case <-deadline:
			t.Fatalf("output does not end with %q:\n%s", want, out.String())
		case <-time.After(2 * time.Millisecond):
		}
	}
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestFollowRotationTruncationAndSwitch drives the follower through what
// happens to a live release's log: lines appended, newsyslog's rotation
// (rename, a last line into the old file, a new file), a truncation, a
// switch to another release and that release's new lines.
func TestFollowRotationTruncationAndSwitch(t *testing.T) {
	dir := t.TempDir()
	logOf := func(name string) string { return filepath.Join(dir, name+".log") }
	var live atomic.Value
	live.Store("a")
	var liveErr atomic.Bool
	out := &syncBuffer{}
	tl := tailer{
		open: func(_ context.Context, name string) (*os.File, error) { return os.Open(logOf(name)) },
		live: func(context.Context) (string, error) {
			if liveErr.Load() {
				return "", errors.New("caddy and the store are down")
			}
			return live.Load().(string), nil
		},
		out:   out,
		lines: 1,
		poll:  time.Millisecond,
	}
	appendFile(t, logOf("a"), "a1\na2\n")
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- tl.follow(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Errorf("follow returned %v, want context.Canceled", err)
		}
	})

	waitOutput(t, out, errc, "a2\n") // -n 1: a1 is not printed
	appendFile(t, logOf("a"), "a3\n")
	waitOutput(t, out, errc, "a3\n")

	// newsyslog: the log is renamed, the app writes once more into the
	// old file before SIGHUP makes daemon -H reopen, then a new file.
	if err := os.Rename(logOf("a"), logOf("a")+".0"); err != nil {
		t.Fatal(err)
	}
	appendFile(t, logOf("a")+".0", "a4\n")
	appendFile(t, logOf("a"), "a5 a longer line\n")
	waitOutput(t, out, errc, "a4\na5 a longer line\n")

	// Truncated in place, then a shorter line.
	if err := os.Truncate(logOf("a"), 0); err != nil {
		t.Fatal(err)
	}
	appendFile(t, logOf("a"), "a6\n")
	waitOutput(t, out, errc, "a6\n")

	// A failed lookup of the live release keeps the current one.
	liveErr.Store(true)
	appendFile(t, logOf("a"), "a7\n")
	waitOutput(t, out, errc, "a7\n")
	liveErr.Store(false)

	// The switch: the old log's last line, the marker, the new log's last
	// line, then what it appends.
	appendFile(t, logOf("b"), "b0\nb1\n")
	appendFile(t, logOf("a"), "a8\n")
	live.Store("b")
	waitOutput(t, out, errc, "==> now following b\nb1\n")
	appendFile(t, logOf("b"), "b2\n")
	waitOutput(t, out, errc, "b2\n")

	want := "a2\na3\na4\na5 a longer line\na6\na7\na8\n==> now following b\nb1\nb2\n"
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("output (-want +got)\n%s", diff)
	}
}

// TestFollowWaitsForLog: a release that has not written its log yet is
// followed from its first line once the file appears.
func TestFollowWaitsForLog(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.log")
	out := &syncBuffer{}
	tl := tailer{
		open:  func(context.Context, string) (*os.File, error) { return os.Open(p) },
		live:  func(context.Context) (string, error) { return "a", nil },
		out:   out,
		lines: 10,
		poll:  time.Millisecond,
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- tl.follow(ctx) }()
	defer func() { cancel(); <-errc }()
	appendFile(t, p, "first\nsecond\n")
	waitOutput(t, out, errc, "first\nsecond\n")
	if got := out.String(); got != "first\nsecond\n" {
		t.Errorf("output %q", got)
	}
}

func TestOnceMissingLog(t *testing.T) {
	tl := tailer{
		open: func(context.Context, string) (*os.File, error) {
			return os.Open(filepath.Join(t.TempDir(), "none"))
		},
		live: func(context.Context) (string, error) { return "a", nil },
		out:  &syncBuffer{},
	}
	if err := tl.once(context.Background()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("once: %v, want fs.ErrNotExist", err)
	}
}

// listRuntime is an operatorRuntime that only lists.
type listRuntime struct {
	operatorRuntime
	rels []release.Release
}

func (l listRuntime) List(context.Context) ([]release.Release, error) { return l.rels, nil }

// TestLiveFallsBackToStoredState: with Caddy unreachable, the live release
// is the one whose stored state says live; other services' releases never
// count.
func TestLiveFallsBackToStoredState(t *testing.T) {
	// Nothing listens on port 1 of loopback: Caddy is down.
	proxy, err := caddy.New(caddy.Config{Admin: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	ip := netip.MustParseAddr("127.77.0.2")
	rel := func(name string, st release.State) release.Release {
		return release.Release{Name: name, Service: release.ServiceOf(name), State: st, IP: ip, Port: 8080}
	}
	tests := []struct {
		name string
		rels []release.Release
		want string
		err  error
	}{
		{"stored live", []release.Release{
			rel("hello_000000000001_aaaaaa", release.StateRetired),
			rel("hello_000000000002_bbbbbb", release.StateLive),
			rel("hello_000000000003_cccccc", release.StateReady),
			rel("other_000000000004_dddddd", release.StateLive),
		}, "hello_000000000002_bbbbbb", nil},
		{"none live", []release.Release{
			rel("hello_000000000001_aaaaaa", release.StateFailed),
			rel("other_000000000004_dddddd", release.StateLive),
		}, "", ErrNoLive},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op := &operator{rt: listRuntime{rels: tt.rels}, proxy: proxy}
			got, err := op.live(context.Background(), "hello")
			if got != tt.want || !errors.Is(err, tt.err) {
				t.Errorf("live = %q, %v; want %q, %v", got, err, tt.want, tt.err)
			}
		})
	}
}
