package jails

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jailkeeper/jailkeeper/internal/command"
	"github.com/jailkeeper/jailkeeper/release"
	"github.com/jailkeeper/jailkeeper/zfs"
)

// propValue keeps empty values out of zfs set: "-" stands for "". It is
// what zfs get shows for an unset user property, but only a local value
// counts (zfs.ParseGet), so the two never mix.
func propValue(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func fromProp(s string) string {
	if s == "-" {
		return ""
	}
	return s
}

// releases reads the releases from the dataset inventory, by name. It also
// returns the leftovers: datasets directly below Dataset/containers with a
// release's name but without jailkeeper:managed=yes. Only a crash between
// zfs clone creating a clone and setting its properties leaves one (see
// zfs.Clone); it would block that release's name forever.
func (f *FreeBSD) releases(ctx context.Context) (rels map[string]release.Release, leftovers map[string]bool, err error) {
	ds, err := f.cfg.Datasets.Inventory(ctx, f.containers())
	if err != nil {
		return nil, nil, fmt.Errorf("list releases: %w", err)
	}
	rels, leftovers = map[string]release.Release{}, map[string]bool{}
	for _, d := range ds {
		name, ok := strings.CutPrefix(d.Name, f.containers()+"/")
		if !ok || strings.Contains(name, "/") || release.ValidName(name) != nil {
			continue
		}
		if d.Props[release.PropManaged] != "yes" {
			leftovers[name] = true
			continue
		}
		r, err := releaseFromProps(name, d.Props)
		if err != nil {
			return nil, nil, fmt.Errorf("list releases: dataset %s: %w", d.Name, err)
		}
		rels[name] = r
	}
	return rels, leftovers, nil
}

func releaseFromProps(name string, p map[string]string) (release.Release, error) {
	r := release.Release{
		Name:    name,
		Service: p[release.PropService],
		SHA:     p[release.PropSHA],
		Spec:    p[release.PropSpec],
		State:   release.State(p[release.PropState]),
		Reason:  fromProp(p[release.PropReason]),

		TemplateSnapshot: fromProp(p[release.PropTemplateSnapshot]),
	}
	var errs []error
	if !r.State.Valid() {
		errs = append(errs, fmt.Errorf("%s %q", release.PropState, p[release.PropState]))
	}
	if s := fromProp(p[release.PropIP]); s != "" {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", release.PropIP, err))
		}
		r.IP = ip
	}
	if s := fromProp(p[release.PropPort]); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", release.PropPort, err))
		}
		r.Port = n
	}
	if s := fromProp(p[release.PropFailures]); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", release.PropFailures, err))
		}
		r.Failures = n
	}
	if s := fromProp(p[release.PropLimits]); s != "" {
		l, err := release.ParseLimits(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", release.PropLimits, err))
		}
		r.Limits = l
	}
	times := map[string]*time.Time{release.PropCreated: &r.Created, release.PropFailedAt: &r.FailedAt,
		release.PropMigrated: &r.Migrated}
	if r.State == release.StateStandby {
		times[release.PropStandbySince] = &r.StandbySince
	}
	for prop, t := range times {
		if s := fromProp(p[prop]); s != "" {
			v, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", prop, err))
			}
			*t = v
		}
	}
	return r, errors.Join(errs...)
}

// jails runs `jls --libxo=json -v -d`: every jail, dying ones included,
// with name, state and all addresses.
func (f *FreeBSD) jails(ctx context.Context) ([]Jail, error) {
	out, err := f.run(ctx, "jls", "--libxo=json", "-v", "-d")
	if err != nil {
		return nil, fmt.Errorf("list jails: %w", err)
	}
	return ParseJLS(bytes.NewReader(out))
}

// jail returns the jail called name, if jls lists it.
func (f *FreeBSD) jail(ctx context.Context, name string) (Jail, bool, error) {
	js, err := f.jails(ctx)
	if err != nil {
		return Jail{}, false, err
	}
	for _, j := range js {
		if j.Name == name {
			return j, true, nil
		}
	}
	return Jail{}, false, nil
}

// List returns every release on this host with Running from jls, sorted by
// name. Datasets below Dataset/containers without jailkeeper:managed=yes
// set locally are not releases and are left out.
func (f *FreeBSD) List(ctx context.Context) ([]release.Release, error) {
	rels, _, err := f.releases(ctx)
	if err != nil {
		return nil, err
	}
	js, err := f.jails(ctx)
	if err != nil {
		return nil, err
	}
	running := map[string]bool{}
	for _, j := range js {
		if !j.Dying() {
			running[j.Name] = true
		}
	}
	out := make([]release.Release, 0, len(rels))
	for _, r := range rels {
		r.Running = running[r.Name]
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b release.Release) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Running reports whether the release's jail is up (listed by jls and not
// dying). A release that does not exist is release.ErrNotFound.
func (f *FreeBSD) Running(ctx context.Context, name string) (bool, error) {
	if err := release.ValidName(name); err != nil {
		return false, err
	}
	j, ok, err := f.jail(ctx, name)
	if err != nil || ok {
		return ok && !j.Dying(), err
	}
	rels, _, err := f.releases(ctx)
	if err != nil {
		return false, err
	}
	if _, ok := rels[name]; !ok {
		return false, fmt.Errorf("release %s: %w", name, release.ErrNotFound)
	}
	return false, nil
}

// running asks `jls -j NAME`, which exits 1 with `jls: jail "NAME" not
// found` when there is no such jail (testdata/freebsd/FACTS.md §1, REAL). Only the exit status
// is used.
func (f *FreeBSD) running(ctx context.Context, name string) (bool, error) {
	_, err := f.run(ctx, "jls", "-j", name)
	if err == nil {
		return true, nil
	}
	if code, ok := command.ExitCode(err); ok && code == 1 && strings.Contains(command.Stderr(err), "not found") {
		return false, nil
	}
	return false, err
}

// SetStatus stores st in the release's properties with one zfs set.
func (f *FreeBSD) SetStatus(ctx context.Context, name string, st release.Status) error {
	if err := release.ValidName(name); err != nil {
		return err
	}
	if !st.State.Valid() {
		return fmt.Errorf("set status of %s: invalid state %q", name, st.State)
	}
	failedAt := ""
	if !st.FailedAt.IsZero() {
		failedAt = st.FailedAt.UTC().Format(time.RFC3339Nano)
	}
	props := map[string]string{
		release.PropState:    string(st.State),
		release.PropReason:   propValue(oneLine(st.Reason)),
		release.PropFailures: strconv.Itoa(st.Failures),
		release.PropFailedAt: propValue(failedAt),
	}
	// Only a standby sets its time: every other state's zfs set stays as
	// it was, and releaseFromProps ignores a leftover value.
	if st.State == release.StateStandby {
		props[release.PropStandbySince] = st.StandbySince.UTC().Format(time.RFC3339Nano)
	}
	err := f.cfg.Datasets.SetProps(ctx, f.dataset(name), props)
	if errors.Is(err, zfs.ErrNotFound) {
		return fmt.Errorf("set status of %s: %w: %w", name, release.ErrNotFound, err)
	}
	if err != nil {
		return fmt.Errorf("set status of %s: %w", name, err)
	}
	return nil
}

// oneLine makes s fit a ZFS property: no newlines, at most 1024 bytes.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 1024 {
		s = s[:1024]
	}
	return s
}
