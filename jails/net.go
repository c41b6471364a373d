package jails

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"

	"github.com/jailkeeper/jailkeeper/release"
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
// address back when it starts again).
//
// A pool that overlaps the network of an address on another interface
// (lo0's 127.0.0.1/8, the host's LAN) is refused with ErrPoolOverlap
// before anything is chosen: such addresses are routed elsewhere.
//
// On the way it removes stale aliases: an alias on the runtime's interface
// that is the recorded address of a release and that no jail holds, left
// by a crash between jail(8) adding it and the jail existing, or by a
// jail -r that failed half-way; jail -c would fail on it. Only release
// addresses are ever removed: any other address on the interface, inside
// the pool or not, is the operator's (the interface's own address from
// rc.conf among them, whatever the pool says it should be) and is only
// left out of the choice. rels are the releases on the host; the caller
// holds f.net exclusively.
func (f *FreeBSD) allocate(ctx context.Context, rels map[string]release.Release) (netip.Addr, error) {
	ifs, err := f.ifaddrs(ctx)
	if err != nil {
		return netip.Addr{}, err
	}
	pool, own := f.cfg.Pool, InterfaceAddr(f.cfg.Pool)
	for _, ia := range ifs {
		if ia.Interface != f.cfg.Interface && ia.Prefix.Masked().Overlaps(pool) {
			return netip.Addr{}, fmt.Errorf("%w: pool %s overlaps %s (%s on %s): pick another jails.pool",
				ErrPoolOverlap, pool, ia.Prefix.Masked(), ia.Prefix.Addr(), ia.Interface)
		}
	}
	js, err := f.jails(ctx)
	if err != nil {
		return netip.Addr{}, err
	}
	used := map[netip.Addr]bool{own: true, pool.Addr(): true, lastAddr(pool): true}
	held := map[netip.Addr]bool{}
	for _, j := range js {
		for _, a := range j.IPv4 {
			held[a] = true
			used[a] = true
		}
	}
	recorded := map[netip.Addr]bool{}
	for _, r := range rels {
		if r.IP.IsValid() {
			used[r.IP] = true
			recorded[r.IP] = true
		}
	}
	for _, ia := range ifs {
		a := ia.Prefix.Addr()
		used[a] = true
		if ia.Interface == f.cfg.Interface && recorded[a] && !held[a] && a != own {
			if err := f.removeAlias(ctx, a); err != nil {
				return netip.Addr{}, err
			}
		}
	}
	for a := pool.Addr(); pool.Contains(a); a = a.Next() {
		if !used[a] {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("%w: %s on %s", release.ErrPoolExhausted, pool, f.cfg.Interface)
}

// clearAlias makes sure jail -c can add addr for the release name: an alias
// of addr on the runtime's interface that no jail holds is a leftover and
// is removed; addr held by another jail, or configured on another
// interface, is ErrAddressTaken, and so is the interface's own address
// (InterfaceAddr), which is never removed. The caller holds f.net (shared
// is enough: only this release uses addr).
func (f *FreeBSD) clearAlias(ctx context.Context, name string, addr netip.Addr) error {
	if !addr.IsValid() {
		return fmt.Errorf("release has no address (property %s)", release.PropIP)
	}
	if addr == InterfaceAddr(f.cfg.Pool) {
		return fmt.Errorf("%w: %s is %s's own address", ErrAddressTaken, addr, f.cfg.Interface)
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
