package hostsetup

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newFakeClock() *fakeClock           { return &fakeClock{t: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)} }
func mib(n float64) int64                { return int64(n * (1 << 20)) }
func feed(p *progress, c *fakeClock, step time.Duration, done ...int64) {
	for _, d := range done {
		c.add(step)
		p.update(d, mib(200))
	}
}

// Not a terminal: a line every 5 s however often it is told, each with
// bytes, percentage, rate and time left, and a last line with the total.
func TestProgressLog(t *testing.T) {
	c := newFakeClock()
	var out bytes.Buffer
	p := newProgress(&out, c.now, false, "download base.txz")
	// 2 MiB/s for 12 s, reported every second.
	var done []int64
	for i := 1; i <= 12; i++ {
		done = append(done, mib(float64(2*i)))
	}
	feed(p, c, time.Second, done...)
	p.finish(mib(24))
	want := "# download base.txz: 10.0 MiB of 200.0 MiB (5%), 2.0 MiB/s, 1m35s left\n" +
		"# download base.txz: 20.0 MiB of 200.0 MiB (10%), 2.0 MiB/s, 1m30s left\n" +
		"# download base.txz: 24.0 MiB in 12s, 2.0 MiB/s\n"
	if got := out.String(); got != want {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
}

// A terminal: one line redrawn in place at most every 200 ms, erased to
// its end each time, and ended with a newline by finish.
func TestProgressTerminal(t *testing.T) {
	c := newFakeClock()
	var out bytes.Buffer
	p := newProgress(&out, c.now, true, "unpack base.txz")
	feed(p, c, 100*time.Millisecond, mib(1), mib(2), mib(3), mib(4)) // redrawn at 200 and 400 ms
	p.update(mib(4), -1)                                             // no time passed: nothing
	p.finish(mib(4))
	want := "\r# unpack base.txz: 2.0 MiB of 200.0 MiB (1%), 10.0 MiB/s, 20s left\033[K" +
		"\r# unpack base.txz: 4.0 MiB of 200.0 MiB (2%), 10.0 MiB/s, 20s left\033[K" +
		"\r# unpack base.txz: 4.0 MiB in 0s, 10.0 MiB/s\033[K\n"
	if got := out.String(); got != want {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
	if n := strings.Count(out.String(), "\n"); n != 1 {
		t.Errorf("%d newlines, want 1 (the line is rewritten in place)", n)
	}
}

// Unknown size, no time passed: bytes only; the reader reports what
// passes through it.
func TestProgressReader(t *testing.T) {
	c := newFakeClock()
	var out bytes.Buffer
	pr := &progressReader{r: strings.NewReader(strings.Repeat("x", 3000)), total: -1, p: newProgress(&out, c.now, false, "unpack")}
	if _, err := io.Copy(io.Discard, struct{ io.Reader }{pr}); err != nil {
		t.Fatal(err)
	}
	c.add(6 * time.Second)
	pr.p.update(pr.done, pr.total)
	pr.p.finish(pr.done)
	want := "# unpack: 2.9 KiB, 500 B/s\n# unpack: 2.9 KiB in 6s, 500 B/s\n"
	if pr.done != 3000 || out.String() != want {
		t.Errorf("done %d, output\n%q\nwant\n%q", pr.done, out.String(), want)
	}
}
