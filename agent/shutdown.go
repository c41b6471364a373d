package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/jailkeeper/jailkeeper/reconcile"
	"github.com/jailkeeper/jailkeeper/release"
)

// Shutdown stops every running release, the newest first, for `jailkeeper
// host shutdown`: the rc.d script jailkeeper_shutdown runs it when the
// host shuts down (rc.shutdown), after the agent has stopped. With the
// jail runtime each stop is `jail -r`, whose exec.stop runs
// /etc/rc.shutdown in the jail so its services stop cleanly, and removes
// the release's rctl rules; without it the jails' processes are only
// killed by init. Stopping the agent alone (`service jailkeeper stop`)
// leaves the releases serving.
//
// It takes the state dir's lock first, so it refuses to run while an agent
// runs (ErrLocked): the agent would start the live releases again. It
// changes no release's state: the live ones stay live, and the agent
// starts them again at boot. A release that fails to stop does not stop
// the others; the errors are returned together.
func Shutdown(ctx context.Context, cfg *Config, out io.Writer) error {
	switch _, err := os.Stat(cfg.StateDir); {
	case errors.Is(err, fs.ErrNotExist):
		// No agent ever ran with this config: nothing to lock against.
	case err != nil:
		return err
	default:
		unlock, err := lockDir(cfg.StateDir)
		if err != nil {
			if errors.Is(err, ErrLocked) {
				return fmt.Errorf("%w: the agent is running and would start the releases again; stop it first (service jailkeeper stop)", err)
			}
			return err
		}
		defer unlock()
	}
	rt, err := newRuntime(cfg)
	if err != nil {
		return err
	}
	return stopAll(ctx, rt, out)
}

// startOrderer is a runtime that knows the order in which its running
// releases started (jails.FreeBSD: by JID).
type startOrderer interface {
	StartOrder(ctx context.Context) ([]string, error)
}

// stopAll stops the running releases of rt in the reverse of their start
// order, one at a time, printing each. A runtime that does not know the
// order (the process runtime) has its running releases stopped newest
// created first.
func stopAll(ctx context.Context, rt reconcile.Runtime, out io.Writer) error {
	var order []string
	if so, ok := rt.(startOrderer); ok {
		var err error
		if order, err = so.StartOrder(ctx); err != nil {
			return fmt.Errorf("list running releases: %w", err)
		}
	} else {
		rels, err := rt.List(ctx)
		if err != nil {
			return fmt.Errorf("list running releases: %w", err)
		}
		rels = slices.DeleteFunc(rels, func(r release.Release) bool { return !r.Running })
		slices.SortStableFunc(rels, func(a, b release.Release) int {
			if c := a.Created.Compare(b.Created); c != 0 {
				return c
			}
			return strings.Compare(a.Name, b.Name)
		})
		for _, r := range rels {
			order = append(order, r.Name)
		}
	}
	var errs []error
	stopped := 0
	for _, name := range slices.Backward(order) {
		start := time.Now()
		if err := rt.Stop(ctx, name); err != nil {
			fmt.Fprintf(out, "stop %s: %v\n", name, err)
			errs = append(errs, err)
			continue
		}
		stopped++
		fmt.Fprintf(out, "stopped %s (%s)\n", name, time.Since(start).Round(time.Millisecond))
	}
	fmt.Fprintf(out, "%d of %d running releases stopped\n", stopped, len(order))
	return errors.Join(errs...)
}
