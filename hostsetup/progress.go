package hostsetup

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Progress lines: how often a terminal line is redrawn, and how often a
// line is printed when out is not a terminal (a log, a pipe).
const (
	redrawEvery = 200 * time.Millisecond
	logEvery    = 5 * time.Second
)

// progress shows how far a long transfer (a download, an unpack) has got:
// bytes, rate and time left. On a terminal it is one line rewritten in
// place ("\r", then the line cleared to its end); otherwise a line is
// printed every logEvery. The clock is injected. Not safe for concurrent
// use: one transfer, one goroutine.
type progress struct {
	out      io.Writer
	now      func() time.Time
	terminal bool
	what     string // "download base.txz"

	start, last time.Time
}

func newProgress(out io.Writer, now func() time.Time, terminal bool, what string) *progress {
	t := now()
	return &progress{out: out, now: now, terminal: terminal, what: what, start: t, last: t}
}

// update reports done bytes of total (total <= 0: unknown).
func (p *progress) update(done, total int64) {
	t := p.now()
	every := logEvery
	if p.terminal {
		every = redrawEvery
	}
	if t.Sub(p.last) < every {
		return
	}
	p.last = t
	p.print(p.line(done, total, t))
}

// finish prints the last line: the total and the time it took.
func (p *progress) finish(done int64) {
	el := p.now().Sub(p.start)
	line := fmt.Sprintf("%s: %s in %s", p.what, size(done), el.Round(time.Second))
	if r := rate(done, el); r > 0 {
		line += ", " + size(int64(r)) + "/s"
	}
	p.print(line)
	if p.terminal {
		fmt.Fprintln(p.out)
	}
}

func (p *progress) print(line string) {
	if p.terminal {
		// \033[K: erase to the end of the line, so a shorter line leaves
		// nothing of the longer one before it (ECMA-48 EL).
		fmt.Fprintf(p.out, "\r# %s\033[K", line)
		return
	}
	fmt.Fprintf(p.out, "# %s\n", line)
}

func (p *progress) line(done, total int64, t time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", p.what, size(done))
	if total > 0 {
		fmt.Fprintf(&b, " of %s (%d%%)", size(total), done*100/total)
	}
	r := rate(done, t.Sub(p.start))
	if r > 0 {
		fmt.Fprintf(&b, ", %s/s", size(int64(r)))
		if total > done {
			left := time.Duration(float64(total-done) / r * float64(time.Second))
			fmt.Fprintf(&b, ", %s left", left.Round(time.Second))
		}
	}
	return b.String()
}

// rate is bytes per second, 0 when no time has passed.
func rate(done int64, el time.Duration) float64 {
	if el <= 0 {
		return 0
	}
	return float64(done) / el.Seconds()
}

// size formats n bytes in binary units, one decimal.
func size(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f, i := float64(n), -1
	for f >= unit && i < 3 {
		f /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", f, "KMGT"[i])
}

// progressReader passes reads through and reports them to a progress.
type progressReader struct {
	r           io.Reader
	done, total int64
	p           *progress
}

func (pr *progressReader) Read(b []byte) (int, error) {
	n, err := pr.r.Read(b)
	pr.done += int64(n)
	pr.p.update(pr.done, pr.total)
	return n, err
}
