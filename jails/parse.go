package jails

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
)

// Jail is one jail as jls(8) reports it.
type Jail struct {
	JID      int
	Name     string // "" in jls's default mode, which does not print it
	Hostname string
	Path     string
	// State is "ACTIVE" or "DYING" with -v, "" in modes that do not print
	// it (where a listed jail is active unless -d was given).
	State string
	IPv4  []netip.Addr
	IPv6  []netip.Addr
}

// Dying reports whether the jail has been removed but still holds
// resources (sockets in TIME_WAIT, a mounted root): jls -d lists it with
// state DYING, and its name and addresses are not free yet.
func (j Jail) Dying() bool { return j.State == "DYING" }

// ErrParse marks output of a FreeBSD command that jailkeeper cannot read.
var ErrParse = errors.New("unreadable command output")

// ParseJLS parses the output of `jls --libxo=json [-v] [-d]` (libxo version
// "2", and the historical "1"). The envelope is
//
//	{"__version": "2", "jail-information": {"jail": [ ... ]}}
//
// with or without a newline before the last brace (14.x prints one, 15.x
// does not) and with an empty list when there are no jails. Both jail
// shapes are understood (testdata/freebsd/FACTS.md §1, jls.c): the default one
// (jid, ipv4 holding only the first address, hostname, path) and -v's (jid,
// hostname, path, name, state, cpusetid, ipv4_addrs, ipv6_addrs), as well as
// the parameter mode where every value is a string ("jid":"1") and
// addresses come as "ip4.addr"/"ip6.addr" lists. Never call it on the
// output of a jls that exited non-zero: its stdout may hold half an
// envelope (testdata/freebsd/FACTS.md §10.3).
func ParseJLS(r io.Reader) ([]Jail, error) {
	var doc struct {
		Version *string `json:"__version"`
		Info    *struct {
			Jail []map[string]json.RawMessage `json:"jail"`
		} `json:"jail-information"`
	}
	dec := json.NewDecoder(io.LimitReader(r, 64<<20))
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%w: jls: %v", ErrParse, err)
	}
	if doc.Version == nil || (*doc.Version != "1" && *doc.Version != "2") {
		v := "none"
		if doc.Version != nil {
			v = strconv.Quote(*doc.Version)
		}
		return nil, fmt.Errorf("%w: jls: libxo __version %s, want \"2\"", ErrParse, v)
	}
	if doc.Info == nil {
		return nil, fmt.Errorf("%w: jls: no jail-information", ErrParse)
	}
	jails := make([]Jail, 0, len(doc.Info.Jail))
	for i, m := range doc.Info.Jail {
		j, err := jailFromJSON(m)
		if err != nil {
			return nil, fmt.Errorf("%w: jls: jail %d: %v", ErrParse, i, err)
		}
		jails = append(jails, j)
	}
	return jails, nil
}

func jailFromJSON(m map[string]json.RawMessage) (Jail, error) {
	var j Jail
	var err error
	str := func(keys ...string) string {
		for _, k := range keys {
			raw, ok := m[k]
			if !ok || err != nil {
				continue
			}
			var s string
			if e := json.Unmarshal(raw, &s); e != nil {
				err = fmt.Errorf("%s: %v", k, e)
			}
			return s
		}
		return ""
	}
	addrs := func(keys ...string) []netip.Addr {
		var out []netip.Addr
		for _, k := range keys {
			raw, ok := m[k]
			if !ok || err != nil {
				continue
			}
			var list []string
			if e := json.Unmarshal(raw, &list); e != nil {
				var one string // default mode: "ipv4":"a.b.c.d" or ""
				if json.Unmarshal(raw, &one) != nil {
					err = fmt.Errorf("%s: %v", k, e)
					return nil
				}
				list = []string{one}
			}
			for _, s := range list {
				if s == "" {
					continue
				}
				a, e := netip.ParseAddr(s)
				if e != nil {
					err = fmt.Errorf("%s: %v", k, e)
					return nil
				}
				out = append(out, a)
			}
		}
		return out
	}
	if raw, ok := m["jid"]; ok {
		var n json.Number
		if e := json.Unmarshal(raw, &n); e != nil { // a number
			var s string // parameter mode: "1"
			if json.Unmarshal(raw, &s) != nil {
				return j, fmt.Errorf("jid: %v", e)
			}
			n = json.Number(s)
		}
		id, e := strconv.Atoi(n.String())
		if e != nil {
			return j, fmt.Errorf("jid: %v", e)
		}
		j.JID = id
	}
	j.Name = str("name")
	j.Hostname = str("hostname", "host.hostname")
	j.Path = str("path")
	j.State = str("state")
	all := append(addrs("ipv4_addrs", "ipv4", "ip4.addr"), addrs("ipv6_addrs", "ip6.addr")...)
	if err != nil {
		return j, err
	}
	// Version 1 listed IPv6 addresses in ipv4_addrs; sort by family.
	for _, a := range all {
		if a.Is4() || a.Is4In6() {
			j.IPv4 = append(j.IPv4, a.Unmap())
		} else {
			j.IPv6 = append(j.IPv6, a)
		}
	}
	switch j.State {
	case "", "ACTIVE", "DYING":
	default:
		return j, fmt.Errorf("state %q", j.State)
	}
	return j, nil
}

// IfAddr is one IPv4 address configured on an interface.
type IfAddr struct {
	Interface string
	Prefix    netip.Prefix // the address with its netmask, e.g. 172.16.0.2/32
}

// ParseIfconfig reads the IPv4 addresses from the output of ifconfig(8)
// (`ifconfig -a`, or `ifconfig IF`), in the order printed (the kernel's
// insertion order, not sorted). An interface block starts with
// "NAME: flags=..." at the start of a line; its detail lines are indented
// (a TAB on FreeBSD). Addresses are "inet A.B.C.D netmask 0xffffffff" or,
// with -f inet:cidr, "inet A.B.C.D/32". ifconfig has no libxo output in
// 14.x (testdata/freebsd/FACTS.md §2.4).
func ParseIfconfig(r io.Reader) ([]IfAddr, error) {
	var out []IfAddr
	iface := ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" {
			continue
		}
		if line[0] != ' ' && line[0] != '\t' {
			name, _, ok := strings.Cut(line, ":")
			if !ok || name == "" || strings.ContainsAny(name, " \t") {
				return nil, fmt.Errorf("%w: ifconfig line %d: %q is not an interface header", ErrParse, n, line)
			}
			iface = name
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "inet" {
			continue
		}
		if iface == "" {
			return nil, fmt.Errorf("%w: ifconfig line %d: address before any interface", ErrParse, n)
		}
		p, err := parseInet(f[1:])
		if err != nil {
			return nil, fmt.Errorf("%w: ifconfig line %d: %v", ErrParse, n, err)
		}
		out = append(out, IfAddr{Interface: iface, Prefix: p})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: ifconfig: %v", ErrParse, err)
	}
	return out, nil
}

// parseInet parses what follows "inet": "A netmask 0xHHHHHHHH ..." or "A/N ...".
func parseInet(f []string) (netip.Prefix, error) {
	if strings.Contains(f[0], "/") {
		return netip.ParsePrefix(f[0])
	}
	a, err := netip.ParseAddr(f[0])
	if err != nil || !a.Is4() {
		return netip.Prefix{}, fmt.Errorf("inet %q", f[0])
	}
	bits := 32
	for i := 1; i+1 < len(f); i++ {
		if f[i] != "netmask" {
			continue
		}
		m, err := strconv.ParseUint(strings.TrimPrefix(f[i+1], "0x"), 16, 32)
		if err != nil || !strings.HasPrefix(f[i+1], "0x") {
			return netip.Prefix{}, fmt.Errorf("netmask %q", f[i+1])
		}
		bits = 0
		for mask := uint32(m); mask&0x80000000 != 0; mask <<= 1 {
			bits++
		}
		break
	}
	return netip.PrefixFrom(a, bits), nil
}

// Mount is one mounted file system.
type Mount struct {
	Device, Path, FSType string
}

// ParseMounts parses the output of `mount -p --libxo=json`:
//
//	{"mount": {"fstab": [{"device":"...","mntpoint":"...","fstype":"...","opts":"..."}]}}
//
// It also accepts the list that plain `mount --libxo=json` prints
// ("mounted", with "special" and "node"). The shape is derived from
// sbin/mount/mount.c (putfsent and prmount emit those fields inside
// xo_open_list("fstab"/"mounted") within the "mount" container); no
// capture of it was available. JSON, unlike mount -p's text, survives a
// blank in a path.
func ParseMounts(r io.Reader) ([]Mount, error) {
	var doc struct {
		Mount *struct {
			Fstab []struct {
				Device   string `json:"device"`
				Mntpoint string `json:"mntpoint"`
				FSType   string `json:"fstype"`
			} `json:"fstab"`
			Mounted []struct {
				Special string `json:"special"`
				Node    string `json:"node"`
				FSType  string `json:"fstype"`
			} `json:"mounted"`
		} `json:"mount"`
	}
	if err := json.NewDecoder(io.LimitReader(r, 64<<20)).Decode(&doc); err != nil {
		return nil, fmt.Errorf("%w: mount: %v", ErrParse, err)
	}
	if doc.Mount == nil {
		return nil, fmt.Errorf("%w: mount: no \"mount\" container", ErrParse)
	}
	var out []Mount
	for _, m := range doc.Mount.Fstab {
		out = append(out, Mount{Device: m.Device, Path: m.Mntpoint, FSType: m.FSType})
	}
	for _, m := range doc.Mount.Mounted {
		out = append(out, Mount{Device: m.Special, Path: m.Node, FSType: m.FSType})
	}
	for _, m := range out {
		if !strings.HasPrefix(m.Path, "/") {
			return nil, fmt.Errorf("%w: mount: mount point %q is not absolute", ErrParse, m.Path)
		}
	}
	return out, nil
}
