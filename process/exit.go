package process

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jailkeeper/jailkeeper/release"
)

// held reports whether something on this host holds addr:port, which a
// release's app would then fail to bind: a bind probe. What counts is a
// socket bound to that address and port (or to the wildcard address and
// that port), the one conflict that stops the app and would send its
// traffic elsewhere; a stray on another port of the address stops neither.
// Only EADDRINUSE means held: an address not configured here
// (EADDRNOTAVAIL, a missing lo1 alias) is for Start to report.
func held(addr string) bool {
	l, err := net.Listen("tcp4", addr)
	if err == nil {
		l.Close()
		return false
	}
	return errors.Is(err, syscall.EADDRINUSE)
}

// exitRecord is what this Runtime value saw of the last process it started
// for a release: where its log began, and how it ended.
type exitRecord struct {
	offset int64         // size of the log when it started
	done   chan struct{} // closed once it has been reaped; state is set then
	state  string        // "exit status 1", "signal: killed"
	pid    atomic.Int64  // its PID once known (List: alive until done)
}

func (p *Runtime) setExit(name string, rec *exitRecord) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if rec == nil {
		delete(p.exits, name)
		return
	}
	p.exits[name] = rec
}

func (p *Runtime) exit(name string) *exitRecord {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exits[name]
}

// logLines is how many of the log's last lines Exit quotes.
const logLines = 5

// Exit explains why a release's process is not running, for the failure
// reason a caller records: nil while it runs; otherwise an error with its
// exit status (when this Runtime value started it) and the last lines of
// its log since that start, sanitised (no control characters or terminal
// escapes, each line cut at 200 bytes). When the log says the address was
// already in use, or its ADDR:port is held by another process now, the
// error wraps release.ErrAddressInUse: the host's fault, not the release's.
// Safe for concurrent use; it waits, bounded by ctx, until this Runtime has
// reaped the process.
func (p *Runtime) Exit(ctx context.Context, name string) error {
	if err := release.ValidName(name); err != nil {
		return err
	}
	unlock := p.lock(name)
	defer unlock()
	r, err := p.read(name)
	if err != nil {
		return err
	}
	if running, err := p.running(name); err != nil || running {
		return err
	}
	status, offset := "exited", int64(-1)
	if rec := p.exit(name); rec != nil {
		select {
		case <-rec.done:
			status = rec.state
		case <-ctx.Done():
		}
		offset = rec.offset
	}
	log := p.logSince(name, offset)
	why := status
	if lines := lastLines(log, logLines); lines != "" {
		why += "; log: " + lines
	}
	switch {
	case bytes.Contains(bytes.ToLower(log), []byte("address already in use")):
		return fmt.Errorf("%w: %s: the app could not bind it (%s)", release.ErrAddressInUse, r.Addr(), why)
	case r.IP.IsValid() && held(r.Addr()):
		return fmt.Errorf("%w: %s is held by another process (%s)", release.ErrAddressInUse, r.Addr(), why)
	}
	return errors.New(why)
}

// logTail bounds what Exit reads of a log whose start offset is unknown.
const logTail = 8 << 10

// logSince returns the release's log from offset on (its last logTail
// bytes at most; offset < 0: the last logTail bytes). A log that cannot be
// read is empty: Exit explains what it can.
func (p *Runtime) logSince(name string, offset int64) []byte {
	f, err := os.Open(filepath.Join(p.dir(name), logFile))
	if err != nil {
		return nil
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil
	}
	start := max(fi.Size()-logTail, offset, 0)
	b, _ := io.ReadAll(io.NewSectionReader(f, start, fi.Size()-start))
	return b
}

// csi matches terminal control sequences (ESC [ ... final byte).
var csi = regexp.MustCompile(`\x1b\[[0-9;?]*[ -/]*[@-~]`)

// lastLines returns the last n non-empty lines of log that are the app's
// (not the runtime's own "jailkeeper:" lines), sanitised and joined by
// " | ".
func lastLines(log []byte, n int) string {
	var out []string
	for _, l := range strings.Split(string(log), "\n") {
		l = sanitize(l)
		if l == "" || strings.HasPrefix(l, "jailkeeper: ") {
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out[max(len(out)-n, 0):], " | ")
}

// sanitize drops terminal escapes and control characters from one log
// line, makes it valid UTF-8 and cuts it at 200 bytes.
func sanitize(s string) string {
	s = csi.ReplaceAllString(s, "")
	s = strings.ToValidUTF8(s, "?")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) > 200 {
		cut := 200
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	return s
}

// busyTries bounds how often Start tries an exec that fails with ETXTBSY.
const busyTries = 8

// startBusy runs start until it does not fail with ETXTBSY ("text file
// busy"), at most busyTries times, waiting a little longer each time. The
// executable was just written (artifact.Install), and a child another
// goroutine forked meanwhile holds the write descriptor until it execs
// (golang/go#22315): that passes in milliseconds. One that lasts is
// release.ErrHostBusy, the host's fault and never the release's.
func startBusy(ctx context.Context, start func() error) error {
	var err error
	for i := range busyTries {
		if err = start(); !errors.Is(err, syscall.ETXTBSY) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", release.ErrHostBusy, err)
		case <-time.After(time.Duration(i+1) * 10 * time.Millisecond):
		}
	}
	return fmt.Errorf("%w: %w (tried %d times)", release.ErrHostBusy, err, busyTries)
}
