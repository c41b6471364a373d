package jails

import (
	"context"
	"slices"
)

// StartOrder returns the releases whose jails are running (listed by jls
// and not dying), in the order they started: by JID, which the kernel
// hands out in increasing order (kern_jail.c: each new jail gets the
// lowest free JID above the last one given, wrapping only after JAIL_MAX,
// 999999). Jails that are not releases (no dataset with
// jailkeeper:managed=yes) are left out. `jailkeeper host shutdown` stops
// them in the reverse order.
func (f *FreeBSD) StartOrder(ctx context.Context) ([]string, error) {
	rels, _, err := f.releases(ctx)
	if err != nil {
		return nil, err
	}
	js, err := f.jails(ctx)
	if err != nil {
		return nil, err
	}
	js = slices.DeleteFunc(js, func(j Jail) bool {
		_, ok := rels[j.Name]
		return !ok || j.Dying()
	})
	slices.SortStableFunc(js, func(a, b Jail) int { return a.JID - b.JID })
	names := make([]string, len(js))
	for i, j := range js {
		names[i] = j.Name
	}
	return names, nil
}
