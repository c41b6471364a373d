package jails

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/jailkeeper/jailkeeper/internal/command"
	"github.com/jailkeeper/jailkeeper/release"
	"github.com/jailkeeper/jailkeeper/zfs"
)

// Start starts the release's jail with `jail -f CONF -c NAME` (not `service
// jail`, which exits 0 when a jail fails) and checks it with `jls -j NAME`.
// A running jail is left alone. A dying one is waited for (DyingTimeout).
// jail(8) adds the release's alias itself, and fails with "SIOCAIFADDR:
// File exists" when it is already there (testdata/freebsd/FACTS.md §3), so an alias of the
// release's address that no jail holds, left by a crash, is removed first.
// A release with limits gets its rctl rules just before jail -c (addRules);
// a kernel without racct makes that ErrRacct.
func (f *FreeBSD) Start(ctx context.Context, name string) error {
	if err := release.ValidName(name); err != nil {
		return err
	}
	if err := f.start(ctx, name); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	return nil
}

func (f *FreeBSD) start(ctx context.Context, name string) (err error) {
	rels, _, err := f.releases(ctx)
	if err != nil {
		return err
	}
	r, ok := rels[name]
	if !ok {
		return release.ErrNotFound
	}
	conf := f.confPath(name)
	if _, err := os.Stat(conf); err != nil {
		return fmt.Errorf("jail conf: %w", err)
	}
	j, ok, err := f.jail(ctx, name)
	switch {
	case err != nil:
		return err
	case ok && !j.Dying():
		return nil
	case ok:
		if err := f.waitGone(ctx, name); err != nil {
			return err
		}
	}

	if err := f.clearDataMounts(ctx, name, conf); err != nil {
		return err
	}
	f.net.RLock()
	defer f.net.RUnlock()
	if err := f.clearAlias(ctx, name, r.IP); err != nil {
		return err
	}
	// The limits go on before the jail exists, so nothing in it ever runs
	// unlimited; they come off again when it does not start.
	if err := f.addRules(ctx, name, r.Limits); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, f.removeRules(context.WithoutCancel(ctx), name, r.Limits))
		}
	}()
	if _, err := f.run(ctx, "jail", "-f", conf, "-c", name); err != nil {
		// "already exists": started meanwhile by someone else (rc.d/jail?).
		if strings.Contains(command.Stderr(err), "already exists") {
			if up, _ := f.running(ctx, name); up {
				return nil
			}
		}
		// clearAlias found the address free, yet jail(8)'s own
		// `ifconfig IF inet ADDR alias` met it: something added it
		// meanwhile. "ifconfig: ioctl (SIOCAIFADDR): File exists" is
		// what jail(8) prints then (testdata/freebsd/errors.md, REAL on
		// 14.1: BastilleBSD issue 730).
		// The host's fault, not the release's.
		if strings.Contains(command.Stderr(err), "(SIOCAIFADDR): File exists") {
			return fmt.Errorf("%w: %s: %w", release.ErrAddressInUse, r.IP, err)
		}
		return err
	}
	cpStartCreated.Hit()
	up, err := f.running(ctx, name)
	if err != nil {
		return err
	}
	if !up {
		return fmt.Errorf("jail -c succeeded but jls -j %s does not find the jail (did /etc/rc start anything?)", name)
	}
	return nil
}

// waitGone waits until jls -d no longer lists the jail, polling every
// PollInterval for at most DyingTimeout; then it fails with ErrDying.
func (f *FreeBSD) waitGone(ctx context.Context, name string) error {
	deadline := time.NewTimer(f.cfg.DyingTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(f.cfg.PollInterval)
	defer tick.Stop()
	for {
		j, ok, err := f.jail(ctx, name)
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		if !j.Dying() {
			return fmt.Errorf("jail %s is running again", name)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("%w: %s still DYING after %s (jls -d)", ErrDying, name, f.cfg.DyingTimeout)
		case <-tick.C:
		}
	}
}

// Stop stops the release's jail with `jail -f CONF -r NAME`: exec.stop
// runs /etc/rc.shutdown, remaining processes get SIGTERM and stop.timeout.
// Then the release's rctl rules, if it has limits, are removed.
// A jail that is not running, or only dying, is already stopped. A dying
// jail is not waited for here: TCP sockets in TIME_WAIT keep a stopped jail
// dying for about a minute, and nothing needs it gone until a start or a
// destroy, which wait for it.
func (f *FreeBSD) Stop(ctx context.Context, name string) error {
	if err := release.ValidName(name); err != nil {
		return err
	}
	if err := f.stop(ctx, name); err != nil {
		return fmt.Errorf("stop %s: %w", name, err)
	}
	return nil
}

func (f *FreeBSD) stop(ctx context.Context, name string) error {
	j, ok, err := f.jail(ctx, name)
	if err != nil || !ok || j.Dying() {
		return err
	}
	argv := []string{"jail", "-f", f.confPath(name), "-r", name}
	if _, err := os.Stat(f.confPath(name)); errors.Is(err, fs.ErrNotExist) {
		argv = []string{"jail", "-r", name} // no conf left: remove it without exec.stop
	}
	f.net.RLock()
	_, err = f.run(ctx, argv...)
	f.net.RUnlock()
	cpStopRemoved.Hit()
	if err != nil {
		// jail: "NAME" not found (testdata/freebsd/FACTS.md §3): it went away by itself.
		if !strings.Contains(command.Stderr(err), `"`+name+`" not found`) {
			return err
		}
	}
	if j, ok, err := f.jail(ctx, name); err != nil {
		return err
	} else if ok && !j.Dying() {
		return fmt.Errorf("jail %s still running after jail -r", name)
	}
	return f.dropRules(ctx, name)
}

// dropRules removes the rctl rules of the release's limits (removeRules),
// read from its dataset; a release without limits, or without a dataset,
// has none.
func (f *FreeBSD) dropRules(ctx context.Context, name string) error {
	rels, _, err := f.releases(ctx)
	if err != nil {
		return err
	}
	return f.removeRules(ctx, name, rels[name].Limits)
}

// Destroy stops the jail, waits for it to stop dying (its root stays busy
// until then), unmounts whatever is still mounted below the release's root
// (deepest first; a jail -r that failed half-way can leave devfs mounted),
// destroys the dataset with `zfs destroy -r` (retried while busy) and
// removes the conf and the console log. It never deletes files itself, so
// nothing still mounted can be removed with them. A missing release is
// not an error. On error the conf stays, so the jail can still be managed
// and the next pass tries again.
func (f *FreeBSD) Destroy(ctx context.Context, name string) error {
	if err := release.ValidName(name); err != nil {
		return err
	}
	if err := f.destroy(ctx, name); err != nil {
		return fmt.Errorf("destroy %s: %w", name, err)
	}
	return nil
}

func (f *FreeBSD) destroy(ctx context.Context, name string) error {
	if err := f.stop(ctx, name); err != nil {
		return err
	}
	if err := f.waitGone(ctx, name); err != nil {
		return err
	}
	// Rules left by a stop interrupted between jail -r and rctl -r.
	if err := f.dropRules(ctx, name); err != nil {
		return err
	}
	cpDestroyStopped.Hit()
	if err := f.unmountBelow(ctx, f.root(name)); err != nil {
		return err
	}
	cpDestroyUnmounted.Hit()
	err := f.cfg.Datasets.Destroy(ctx, f.dataset(name), f.cfg.DestroyRetries)
	if err != nil && !errors.Is(err, zfs.ErrNotFound) {
		return err
	}
	cpDestroyDataset.Hit()
	for _, p := range []string{f.confPath(name), f.consoleLog(name)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// unmountBelow unmounts every file system mounted strictly below root,
// deepest first, as `mount -p --libxo=json` lists them. root itself (the
// clone) is left to zfs destroy.
func (f *FreeBSD) unmountBelow(ctx context.Context, root string) error {
	out, err := f.run(ctx, "mount", "-p", "--libxo=json")
	if err != nil {
		return fmt.Errorf("list mounts: %w", err)
	}
	mounts, err := ParseMounts(bytes.NewReader(out))
	if err != nil {
		return err
	}
	var below []string
	for _, m := range mounts {
		p := filepath.Clean(m.Path)
		if strings.HasPrefix(p, root+"/") {
			below = append(below, p)
		}
	}
	// Deepest first: a longer path is never the parent of a shorter one.
	slices.SortFunc(below, func(a, b string) int {
		if c := strings.Count(b, "/") - strings.Count(a, "/"); c != 0 {
			return c
		}
		return strings.Compare(b, a)
	})
	for _, p := range slices.Compact(below) {
		if _, err := f.run(ctx, "umount", p); err != nil {
			return fmt.Errorf("unmount below %s: %w", root, err)
		}
	}
	return nil
}
