package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"time"

	"github.com/jailkeeper/jailkeeper/caddy"
	"github.com/jailkeeper/jailkeeper/jails"
	"github.com/jailkeeper/jailkeeper/process"
	"github.com/jailkeeper/jailkeeper/reconcile"
	"github.com/jailkeeper/jailkeeper/release"
)

// operatorRuntime is what `logs` and `exec` need of a runtime besides the
// reconcile contract: the release's app log and a command run in it.
type operatorRuntime interface {
	reconcile.Runtime
	// OpenLog opens the release's app log for reading; one not written
	// yet wraps fs.ErrNotExist.
	OpenLog(ctx context.Context, name string) (*os.File, error)
	// Exec runs a command in the release with the caller's stdio.
	Exec(ctx context.Context, name string, req release.ExecRequest) error
}

// consoleLogger is a runtime with a console log per release besides the
// app's (jails: jail(8)'s exec.consolelog).
type consoleLogger interface {
	ConsoleLog(name string) (string, error)
}

var (
	_ consoleLogger   = (*jails.FreeBSD)(nil)
	_ operatorRuntime = (*jails.FreeBSD)(nil)
	_ operatorRuntime = (*process.Runtime)(nil)
)

// ErrNoLive: the service has no live release (and none was named).
var ErrNoLive = errors.New("no live release")

// LogsOptions is `jailkeeper logs`.
type LogsOptions struct {
	Service string
	// Release, when set, is read instead of the live release, whatever its
	// state (failed and retired included); -f then never switches.
	Release string
	// Follow keeps printing what is appended (tail -F), and follows the
	// service to the new live release after a switch.
	Follow bool
	// Lines is how many last lines are printed first; 0 none.
	Lines int
	// Console reads the jail's console log (what jail(8) wrote while
	// exec.start and exec.stop ran) instead of the app log. Jail runtime
	// only.
	Console bool
	// Poll is how often a follower looks for new lines, a rotated log and
	// a new live release. Default 1s.
	Poll time.Duration
}

// operator is the runtime and the live-release lookup `logs` and `exec`
// share, built from the agent config as the daemon builds them.
type operator struct {
	rt    operatorRuntime
	proxy *caddy.Client
}

func newOperator(cfg *Config) (*operator, error) {
	rt, err := newRuntime(cfg)
	if err != nil {
		return nil, err
	}
	ort, ok := rt.(operatorRuntime)
	if !ok {
		return nil, fmt.Errorf("%w: %s: runtime %q has no logs or exec", ErrConfig, cfg.File, cfg.Runtime)
	}
	proxy, err := caddy.New(cfg.Caddy.client())
	if err != nil {
		return nil, fmt.Errorf("%w: %s: caddy: %w", ErrConfig, cfg.File, err)
	}
	return &operator{rt: ort, proxy: proxy}, nil
}

func (o *operator) Close() error { return o.proxy.Close() }

// live returns the service's live release as the reconciler sees it
// (reconcile.KnownGood): the release Caddy routes the service to (Caddy's
// config is the source of truth, DESIGN "Words"), else, when Caddy does not
// answer or has no route, the release whose stored state is live. It
// lists the releases on each call (one zfs get and one jls on FreeBSD):
// a follower calls it once per poll.
func (o *operator) live(ctx context.Context, service string) (string, error) {
	rels, err := o.rt.List(ctx)
	if err != nil {
		return "", err
	}
	var mine []release.Release
	for _, r := range rels {
		if r.Service == service {
			mine = append(mine, r)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	routes, rerr := o.proxy.Routes(cctx)
	cancel()
	route, hasRoute := routes[service]
	if rerr != nil {
		// Caddy down: the stored state is the best knowledge there is.
		hasRoute = false
	}
	good, _, ok := reconcile.KnownGood(mine, route, hasRoute, "")
	if !ok {
		return "", fmt.Errorf("service %s: %w", service, ErrNoLive)
	}
	return good.Name, nil
}

// Logs prints a service's app log to w (see LogsOptions) until ctx ends
// when following, else once. It runs on the host, against the runtime, not
// through the agent's listener.
func Logs(ctx context.Context, cfg *Config, opts LogsOptions, w io.Writer) error {
	if err := release.ValidService(opts.Service); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if opts.Release != "" {
		if err := release.ValidName(opts.Release); err != nil || release.ServiceOf(opts.Release) != opts.Service {
			return fmt.Errorf("%w: --release %q is not a release of %s", ErrConfig, opts.Release, opts.Service)
		}
	}
	op, err := newOperator(cfg)
	if err != nil {
		return err
	}
	defer op.Close()
	t := tailer{open: op.rt.OpenLog, out: w, lines: opts.Lines, poll: opts.Poll}
	if opts.Console {
		c, ok := op.rt.(consoleLogger)
		if !ok {
			return fmt.Errorf("%w: %s: --console: the %s runtime has no console log; its command's output is the log", ErrConfig, cfg.File, cfg.Runtime)
		}
		t.open = func(_ context.Context, name string) (*os.File, error) {
			p, err := c.ConsoleLog(name)
			if err != nil {
				return nil, err
			}
			// A host file jail(8) writes as the host's root: no jail
			// path is on the way.
			return os.Open(p)
		}
	}
	if opts.Release != "" {
		// A release that does not exist would be waited for forever.
		rels, err := op.rt.List(ctx)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(rels, func(r release.Release) bool { return r.Name == opts.Release }) {
			return fmt.Errorf("--release %s: %w", opts.Release, release.ErrNotFound)
		}
		t.live = func(context.Context) (string, error) { return opts.Release, nil }
	} else {
		t.live = func(ctx context.Context) (string, error) { return op.live(ctx, opts.Service) }
	}
	if !opts.Follow {
		return t.once(ctx)
	}
	err = t.follow(ctx)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// tailer prints the tail of a release's log and follows it.
type tailer struct {
	open  func(ctx context.Context, name string) (*os.File, error)
	live  func(ctx context.Context) (string, error)
	out   io.Writer
	lines int
	poll  time.Duration
}

// once prints the last lines of the live release's log.
func (t *tailer) once(ctx context.Context) error {
	name, err := t.live(ctx)
	if err != nil {
		return err
	}
	f, err := t.open(ctx, name)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := seekLastLines(f, t.lines); err != nil {
		return err
	}
	_, err = io.Copy(t.out, f)
	return err
}

// follow is tail -F over the live release's log: the last lines first,
// then every poll what was appended. A log that shrank (truncated) is read
// again from its start; one whose file changed (newsyslog renamed it and
// the app's daemon(8) -H opened a new one) is read to its end, then the new
// one from its start. When another release becomes live, the old log is
// read to its end, a line "==> now following RELEASE" is printed, and the
// new release's log is followed from its last lines on, as if started
// anew on it. A failed lookup of the live release (Caddy and the store
// both unreachable for a moment) keeps the current one. It returns when
// ctx ends.
func (t *tailer) follow(ctx context.Context) error {
	poll := t.poll
	if poll <= 0 {
		poll = time.Second
	}
	name, err := t.live(ctx)
	if err != nil {
		return err
	}
	var cur *os.File // nil until the log exists
	defer func() {
		if cur != nil {
			cur.Close()
		}
	}()
	openAt := func(name string, last bool) error {
		f, err := t.open(ctx, name)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // not written yet: try again next poll
		}
		if err != nil {
			return err
		}
		if last {
			err = seekLastLines(f, t.lines)
		}
		if err != nil {
			f.Close()
			return err
		}
		cur = f
		return nil
	}
	if err := openAt(name, true); err != nil {
		return err
	}
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		if cur != nil {
			if _, err := io.Copy(t.out, cur); err != nil {
				return err
			}
			if err := t.reopen(ctx, name, &cur); err != nil {
				return err
			}
		} else if err := openAt(name, false); err != nil {
			return err
		}
		if now, err := t.live(ctx); err == nil && now != name {
			if cur != nil {
				if _, err := io.Copy(t.out, cur); err != nil {
					return err
				}
				cur.Close()
				cur = nil
			}
			name = now
			fmt.Fprintf(t.out, "==> now following %s\n", name)
			if err := openAt(name, true); err != nil {
				return err
			}
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// reopen handles rotation and truncation of *cur, the open log of name,
// read up to its end: a different file at the path replaces it (read from
// its start), a file shorter than what was read is read again from its
// start.
func (t *tailer) reopen(ctx context.Context, name string, cur **os.File) error {
	f := *cur
	pos, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return err
	}
	nf, err := t.open(ctx, name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // mid-rotation: the new file comes next poll
	}
	if err != nil {
		return err
	}
	oldInfo, err1 := f.Stat()
	newInfo, err2 := nf.Stat()
	if err := errors.Join(err1, err2); err != nil {
		nf.Close()
		return err
	}
	if !os.SameFile(oldInfo, newInfo) {
		// Rotated: what the app wrote to the old file before it reopened
		// is read first.
		if _, err := io.Copy(t.out, f); err != nil {
			nf.Close()
			return err
		}
		f.Close()
		*cur = nf
		return nil
	}
	nf.Close()
	if newInfo.Size() < pos {
		_, err = f.Seek(0, io.SeekStart)
	}
	return err
}

// seekLastLines positions f at the start of its last n lines (a last line
// without a newline counts), reading backwards in blocks.
func seekLastLines(f *os.File, n int) error {
	end, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	if n <= 0 {
		return nil
	}
	const block = 32 << 10
	buf := make([]byte, block)
	pos := end
	seen := 0
	for pos > 0 {
		size := int64(block)
		if pos < size {
			size = pos
		}
		pos -= size
		b := buf[:size]
		if _, err := f.ReadAt(b, pos); err != nil && err != io.EOF {
			return err
		}
		for i := len(b) - 1; i >= 0; i-- {
			if b[i] != '\n' || pos+int64(i) == end-1 {
				continue
			}
			seen++
			if seen == n {
				_, err := f.Seek(pos+int64(i)+1, io.SeekStart)
				return err
			}
		}
	}
	_, err = f.Seek(0, io.SeekStart)
	return err
}
