package jails

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
)

// ifaddrs runs `ifconfig -a` and returns every IPv4 address on every
// interface.
func (f *FreeBSD) ifaddrs(ctx context.Context) ([]IfAddr, error) {
	out, err := f.run(ctx, "ifconfig", "-a")
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	return ParseIfconfig(bytes.NewReader(out))
}

// removeAlias removes addr from the runtime's interface, as jail(8) does on
// stop (usr.sbin/jail/command.c: "ifconfig IF inet ADDR ... -alias").
func (f *FreeBSD) removeAlias(ctx context.Context, addr netip.Addr) error {
	if _, err := f.run(ctx, "ifconfig", f.cfg.Interface, "inet", addr.String(), "-alias"); err != nil {
		return fmt.Errorf("remove stale alias %s: %w", addr, err)
	}
	return nil
}

// lastAddr is the highest address of p: the broadcast address of an IPv4
// network.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v |= host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// allocate picks the lowest free address of the pool for a new release.
// Free means: not the network or broadcast address, not the interface's own
// address (InterfaceAddr), not present on any interface (ifconfig -a), not
// held by any jail, dying ones included (jls -d), and not recorded by any
// release, running or not (its jailkeeper:ip: a stopped release gets its
// address back when it starts again). On the way it removes stale aliases:
// addresses of the pool on the runtime's interface that no jail holds,
// left by a crash between jail(8) adding an alias and the jail existing,
// or by a jail -r that failed half-way; jail -c would fail on them.
// rels are the releases on the host; the caller holds f.net exclusively.
func (f *FreeBSD) allocate(ctx context.Context, rels map[string]Release) (netip.Addr, error) {
	ifs, err := f.ifaddrs(ctx)
	if err != nil {
		return netip.Addr{}, err
	}
	js, err := f.jails(ctx)
	if err != nil {
		return netip.Addr{}, err
	}
	pool, own := f.cfg.Pool, InterfaceAddr(f.cfg.Pool)
	used := map[netip.Addr]bool{own: true, pool.Addr(): true, lastAddr(pool): true}
	held := map[netip.Addr]bool{}
	for _, j := range js {
		for _, a := range j.IPv4 {
			held[a] = true
			used[a] = true
		}
	}
	for _, r := range rels {
		if r.IP.IsValid() {
			used[r.IP] = true
		}
	}
	for _, ia := range ifs {
		a := ia.Prefix.Addr()
		if ia.Interface == f.cfg.Interface && pool.Contains(a) && a != own && !held[a] {
			if err := f.removeAlias(ctx, a); err != nil {
				return netip.Addr{}, err
			}
			continue
		}
		used[a] = true
	}
	for a := pool.Addr(); pool.Contains(a); a = a.Next() {
		if !used[a] {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("%w: %s on %s", ErrPoolExhausted, pool, f.cfg.Interface)
}

// clearAlias makes sure jail -c can add addr for the release name: an alias
// of addr on the runtime's interface that no jail holds is a leftover and
// is removed; addr held by another jail, or configured on another
// interface, is ErrAddressTaken. The caller holds f.net (shared is enough:
// only this release uses addr).
func (f *FreeBSD) clearAlias(ctx context.Context, name string, addr netip.Addr) error {
	if !addr.IsValid() {
		return fmt.Errorf("release has no address (property %s)", propIP)
	}
	ifs, err := f.ifaddrs(ctx)
	if err != nil {
		return err
	}
	present := ""
	for _, ia := range ifs {
		if ia.Prefix.Addr() == addr {
			present = ia.Interface
			if ia.Interface != f.cfg.Interface {
				return fmt.Errorf("%w: %s is configured on %s", ErrAddressTaken, addr, ia.Interface)
			}
		}
	}
	if present == "" {
		return nil
	}
	js, err := f.jails(ctx)
	if err != nil {
		return err
	}
	for _, j := range js {
		for _, a := range j.IPv4 {
			if a == addr && j.Name != name {
				return fmt.Errorf("%w: %s is held by jail %q (jid %d)", ErrAddressTaken, addr, j.Name, j.JID)
			}
		}
	}
	return f.removeAlias(ctx, addr)
}
