package reconcile

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jailkeeper/jailkeeper/manifest"
	"github.com/jailkeeper/jailkeeper/release"
)

// health probes r every interval for up to window. As a gate (gate=true) it
// succeeds at threshold consecutive 2xx answers and fails at the deadline; as
// a watch it succeeds when the window ends and fails at threshold consecutive
// failed probes. Either way a release whose process has exited fails at once.
func (e *Executor) health(ctx context.Context, r release.Release, h manifest.Health, window time.Duration, gate bool) error {
	url := "http://" + r.Addr() + h.Path
	end := time.NewTimer(window)
	defer end.Stop()
	tick := time.NewTicker(h.Interval)
	defer tick.Stop()
	ok, bad := 0, 0
	var last error
	for {
		running, err := e.rt.Running(ctx, r.Name)
		if err != nil {
			return fmt.Errorf("check %s: %w", r.Name, err)
		}
		if !running {
			return e.notRunning(ctx, r.Name)
		}
		if err := e.prober.Probe(ctx, url, h.Timeout); err != nil {
			ok, last = 0, err
			bad++
			if !gate && bad >= h.Threshold {
				return fmt.Errorf("%d consecutive failed checks: %w", bad, err)
			}
		} else {
			bad = 0
			ok++
			if gate && ok >= h.Threshold {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-end.C:
			if !gate {
				return nil
			}
			if last == nil {
				last = errors.New("not enough answers")
			}
			return fmt.Errorf("no %d consecutive healthy answers within %s: %w", h.Threshold, window, last)
		case <-tick.C:
		}
	}
}

// notRunning says that the release is not running, and why when the
// runtime can tell (Exiter).
func (e *Executor) notRunning(ctx context.Context, name string) error {
	if x, ok := e.rt.(Exiter); ok {
		if why := x.Exit(ctx, name); why != nil {
			return fmt.Errorf("%s is not running: %w", name, why)
		}
	}
	return fmt.Errorf("%s is not running", name)
}
