package jailstest

import (
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// iface is a cloned loopback interface (lo1).
type iface struct {
	name  string
	index int
	addrs []netip.Prefix
}

// jail is one jail.
type jail struct {
	jid      int
	name     string
	hostname string
	path     string
	ip4      []netip.Addr
	ifname   string   // the interface of ip4.addr "IF|ADDR", whose alias jail(8) owns
	devfs    bool     // mount.devfs: path/dev is mounted
	nullfs   []string // the mount points of its jail.conf `mount` lines, mounted
	cpuset   int      // 0: jid+3
	// dying counts the `jls -d` listings a removed jail still shows up in
	// with state DYING (see SetDying); 0 for a live jail.
	dying int
}

func (j *jail) cpusetid() int {
	if j.cpuset != 0 {
		return j.cpuset
	}
	return j.jid + 3
}

func (h *Host) iface(name string) *iface {
	for _, ifc := range h.ifaces {
		if ifc.name == name {
			return ifc
		}
	}
	return nil
}

// alive returns the jail called name that is not dying.
func (h *Host) alive(name string) *jail {
	for _, j := range h.jails {
		if j.name == name && j.dying == 0 {
			return j
		}
	}
	return nil
}

// SetDying makes the next jails removed by `jail -r` stay in jls -d's
// list, state DYING, for polls more listings: what a jail whose TCP
// sockets sit in TIME_WAIT does (jail(8): a removed jail is "dying" until
// its last reference goes).
func (h *Host) SetDying(polls int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.dyingPolls = polls
}

// xoString is a libxo JSON string: a JSON string without HTML escaping.
func xoString(s string) string {
	b, _ := json.Marshal(s)
	r := strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&")
	return r.Replace(string(b))
}

// jls answers the forms the runtime uses:
//
//	jls --libxo=json [-v] [-d]     (also --libxo json)
//	jls [-d] -j NAME               (plain text)
//
// Shapes from FACTS.md §1: -v is the REAL capture jls-libxo-json-v.json
// (kleene-project/kleened: `{"jid":83,"hostname":"",...}` with ", " before
// the address lists, and "]}\n}\n" at the end); the default libxo shape is
// jls-libxo-json-default.DERIVED.json (jls.c PRINT_DEFAULT). Text mode is
// jls.c's header and row format (DERIVED). A missing jail exits 1 with
// `jls: jail "NAME" not found` (REAL, errors.md); a dying one, without -d,
// with `jls: jail "NAME" is dying` (DERIVED: kern_jail.c
// kern_jail_get, vfs_opterror "jail \"%s\" is dying", printed by jls's
// xo_errx like the REAL not-found text).
func (h *Host) jls(argv, args []string) (res result) {
	libxo, verbose, dying, name := false, false, false, ""
	defer func() {
		if dying && res.exit == 0 { // each listing brings a dying jail closer to gone
			h.jails = slices.DeleteFunc(h.jails, func(j *jail) bool {
				if j.dying == 0 || j.dying == math.MaxInt {
					return false
				}
				j.dying--
				return j.dying == 0
			})
		}
	}()
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--libxo=json":
			libxo = true
		case a == "--libxo" && i+1 < len(args) && args[i+1] == "json":
			libxo = true
			i++
		case a == "-v":
			verbose = true
		case a == "-d":
			dying = true
		case a == "-j" && i+1 < len(args):
			name = args[i+1]
			i++
		default:
			return unsupported(argv, "argument "+strconv.Quote(a))
		}
	}
	var list []*jail
	for _, j := range h.jails {
		if name != "" && j.name != name && strconv.Itoa(j.jid) != name {
			continue
		}
		if j.dying > 0 && !dying {
			if name != "" {
				return fail(`jls: jail "` + name + `" is dying` + "\n")
			}
			continue
		}
		list = append(list, j)
	}
	if name != "" && len(list) == 0 {
		return fail(`jls: jail "` + name + `" not found` + "\n")
	}
	if !libxo {
		if verbose {
			return unsupported(argv, "-v without --libxo")
		}
		// jls.c: xo_emit("{T:JID/%6s}{P:  }{T:IP Address/%-15.15s}{P: }{T:Hostname/%-29.29s}{P: }{T:Path}\n")
		// and per jail "{:jid/%6d}{P:  }{:ipv4/%-15.15s}{P: }{:hostname/%-29.29s}{P: }{:path/%.74s}\n".
		var b strings.Builder
		fmt.Fprintf(&b, "%6s  %-15.15s %-29.29s %s\n", "JID", "IP Address", "Hostname", "Path")
		for _, j := range list {
			fmt.Fprintf(&b, "%6d  %-15.15s %-29.29s %.74s\n", j.jid, firstIP(j), j.hostname, j.path)
		}
		return ok(b.String())
	}
	var items []string
	for _, j := range list {
		if verbose {
			state := "ACTIVE"
			if j.dying > 0 {
				state = "DYING"
			}
			ips := make([]string, len(j.ip4))
			for i, a := range j.ip4 {
				ips[i] = xoString(a.String())
			}
			items = append(items, fmt.Sprintf(`{"jid":%d,"hostname":%s,"path":%s,"name":%s,"state":%s,"cpusetid":%d, "ipv4_addrs": [%s], "ipv6_addrs": []}`,
				j.jid, xoString(j.hostname), xoString(j.path), xoString(j.name), xoString(state), j.cpusetid(), strings.Join(ips, ",")))
		} else {
			items = append(items, fmt.Sprintf(`{"jid":%d,"ipv4":%s,"hostname":%s,"path":%s}`,
				j.jid, xoString(firstIP(j)), xoString(j.hostname), xoString(j.path)))
		}
	}
	return ok(`{"__version": "2", "jail-information": {"jail": [` + strings.Join(items, ", ") + "]}\n}\n")
}

func firstIP(j *jail) string {
	if len(j.ip4) == 0 {
		return ""
	}
	return j.ip4[0].String()
}

// jail answers `jail [-f CONF] -c NAME` and `jail [-f CONF] -r NAME`.
//
// -c follows jail(8)'s order for a jail.conf jail (usr.sbin/jail/jail.c
// startcommands; command.c): the "IF|ADDR" alias first, then devfs on
// path/dev, then the jail itself; a failed step undoes the ones before.
// Texts:
//   - `jail: "NAME" already exists` (DERIVED, errors.md: jail.c
//     jail_quoted_warnx);
//   - an alias already present: `ifconfig: ioctl (SIOCAIFADDR): File
//     exists` then `jail: NAME: /sbin/ifconfig IF inet ADDR/32 alias:
//     failed` (REAL, FreeBSD 14.1, errors.md; the command line is the one
//     command.c builds for "IF|ADDR/32": no netmask words for a /NN
//     suffix);
//   - a missing interface: `ifconfig: interface IF does not exist` then
//     the same failed line (REAL, errors.md);
//   - a missing path/dev for mount.devfs: `jail: NAME: mount.devfs:
//     PATH/dev: No such file or directory` (DERIVED, command.c check_path);
//   - a missing path: `jail: NAME: path PATH: No such file or directory`
//     (DERIVED, errors.md).
//
// Success prints `NAME: created` / `NAME: removed` (TEST, errors.md).
// exec.start runs nothing; exec.consolelog is created (opened O_APPEND|
// O_CREAT by command.c before exec.start runs).
//
// -r: `jail: "NAME" not found` when no live jail has the name (DERIVED,
// errors.md); otherwise the jail goes (or turns DYING, see SetDying), its
// devfs is unmounted and its alias removed, as command.c's "down"
// commands do.
func (h *Host) jail(argv, args []string) result {
	conf, op, name := "", "", ""
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-f" && i+1 < len(args):
			conf = args[i+1]
			i++
		case (a == "-c" || a == "-r") && i+1 < len(args) && op == "":
			op, name = a, args[i+1]
			i++
		default:
			return unsupported(argv, "argument "+strconv.Quote(a))
		}
	}
	switch {
	case op == "-r":
		return h.jailRemove(name)
	case op == "-c" && conf != "":
		return h.jailCreate(argv, conf, name)
	}
	return unsupported(argv, "want -f CONF -c NAME or [-f CONF] -r NAME")
}

func (h *Host) jailCreate(argv []string, conf, name string) result {
	params, err := readJailConf(conf, name)
	if err != nil {
		return unsupported(argv, err.Error())
	}
	if h.alive(name) != nil {
		return fail(`jail: "` + name + `" already exists` + "\n")
	}
	j := &jail{name: name, hostname: params["host.hostname"], path: params["path"]}
	var undo []func()
	rollback := func(r result) result {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
		return r
	}
	if v, ok := params["ip4.addr"]; ok {
		for _, a := range strings.Split(v, ",") {
			a = strings.TrimSpace(a)
			ifname, addr, ok := strings.Cut(a, "|")
			if !ok {
				ifname, addr = params["interface"], a
			}
			p, err := netip.ParsePrefix(addr)
			if err != nil {
				ip, err2 := netip.ParseAddr(addr)
				if err2 != nil {
					return unsupported(argv, "ip4.addr "+strconv.Quote(a))
				}
				p = netip.PrefixFrom(ip, 32)
			}
			comline := "/sbin/ifconfig " + ifname + " inet " + addr + " alias"
			if !strings.Contains(addr, "/") {
				comline = "/sbin/ifconfig " + ifname + " inet " + addr + " netmask 255.255.255.255 alias"
			}
			ifc := h.iface(ifname)
			if ifc == nil {
				return rollback(fail("ifconfig: interface " + ifname + " does not exist\njail: " + name + ": " + comline + ": failed\n"))
			}
			if slices.ContainsFunc(ifc.addrs, func(q netip.Prefix) bool { return q.Addr() == p.Addr() }) {
				return rollback(fail("ifconfig: ioctl (SIOCAIFADDR): File exists\njail: " + name + ": " + comline + ": failed\n"))
			}
			ifc.addrs = append(ifc.addrs, p)
			j.ip4 = append(j.ip4, p.Addr())
			j.ifname = ifname
			undo = append(undo, func() { h.delAlias(ifc, p.Addr()) })
		}
	}
	for line := range strings.Lines(params["mount"]) {
		mnt, r := h.jailMount(argv, name, j.path, strings.TrimSuffix(line, "\n"))
		if r.exit != 0 {
			return rollback(r)
		}
		j.nullfs = append(j.nullfs, mnt)
		undo = append(undo, func() { h.unmountNullfs(mnt) })
	}
	if _, ok := params["mount.devfs"]; ok {
		dev := filepath.Join(j.path, "dev")
		if fi, err := os.Lstat(dev); err != nil || !fi.IsDir() {
			return rollback(fail("jail: " + name + ": mount.devfs: " + dev + ": No such file or directory\n"))
		}
		j.devfs = true
		undo = append(undo, func() { j.devfs = false })
	}
	if fi, err := os.Stat(j.path); j.path == "" || err != nil || !fi.IsDir() {
		return rollback(fail("jail: " + name + ": path " + j.path + ": No such file or directory\n"))
	}
	if log := params["exec.consolelog"]; log != "" && h.inside(log) {
		if f, err := os.OpenFile(log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err == nil {
			f.Close()
		}
	}
	h.jid++
	j.jid = h.jid
	h.jails = append(h.jails, j)
	return ok(name + ": created\n")
}

func (h *Host) delAlias(ifc *iface, a netip.Addr) {
	ifc.addrs = slices.DeleteFunc(ifc.addrs, func(q netip.Prefix) bool { return q.Addr() == a })
}

func (h *Host) jailRemove(name string) result {
	j := h.alive(name)
	if j == nil {
		return fail(`jail: "` + name + `" not found` + "\n")
	}
	j.devfs = false
	// stopcommands: devfs, then the mount lines, then the address.
	for _, mnt := range slices.Backward(j.nullfs) {
		h.unmountNullfs(mnt)
	}
	j.nullfs = nil
	if ifc := h.iface(j.ifname); ifc != nil {
		for _, a := range j.ip4 {
			h.delAlias(ifc, a)
		}
	}
	if h.dyingPolls > 0 {
		j.dying = h.dyingPolls
	} else {
		h.jails = slices.DeleteFunc(h.jails, func(o *jail) bool { return o == j })
	}
	return ok(name + ": removed\n")
}

// readJailConf reads the parameters of jail name from a jail.conf(5) file
// as jailkeeper writes it: `NAME { key = "value"; flag; }`, values in
// double quotes with jail.conf's backslash escapes.
func readJailConf(path, name string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var lines []string
	for l := range strings.Lines(string(b)) {
		if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "#") {
			lines = append(lines, t)
		}
	}
	if len(lines) < 2 || lines[0] != name+" {" || lines[len(lines)-1] != "}" {
		return nil, fmt.Errorf("%s: want exactly one block %q", path, name+" { ... }")
	}
	params := map[string]string{}
	for _, l := range lines[1 : len(lines)-1] {
		l, ok := strings.CutSuffix(l, ";")
		if !ok {
			return nil, fmt.Errorf("%s: %q does not end in ';'", path, l)
		}
		if k, v, isList := strings.Cut(l, " += "); isList {
			// jail.conf(5): "+=" appends to a list parameter; the
			// fake keeps the values one per line.
			if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
				return nil, fmt.Errorf("%s: %s: value %s is not a double-quoted string", path, k, v)
			}
			if params[k] != "" {
				params[k] += "\n"
			}
			params[k] += unquoteJailConf(v[1 : len(v)-1])
			continue
		}
		k, v, isParam := strings.Cut(l, " = ")
		if !isParam {
			params[l] = "true"
			continue
		}
		if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
			return nil, fmt.Errorf("%s: %s: value %s is not a double-quoted string", path, k, v)
		}
		params[k] = unquoteJailConf(v[1 : len(v)-1])
	}
	return params, nil
}

// unquoteJailConf undoes the escapes of a double-quoted jail.conf string.
func unquoteJailConf(s string) string {
	return strings.NewReplacer(`\\`, `\`, `\"`, `"`, `\$`, `$`, `\n`, "\n", `\t`, "\t").Replace(s)
}

// ifconfig answers `ifconfig -a`, `ifconfig IF`, `ifconfig IF create` and
// `ifconfig IF inet ADDR[/N] [netmask M] alias|-alias`.
//
// Output is the layout of the REAL FreeBSD 14.0 capture
// ifconfig-lo1-14.0.txt (flags=1008049<...LOWER_UP>, options, one TAB
// before each detail line, "inet A netmask 0xffffffff", inet6 fe80::1,
// groups: lo, nd6). Errors: a missing interface `ifconfig: interface IF
// does not exist` (REAL, FACTS.md §2.4); an alias already there `ifconfig:
// ioctl (SIOCAIFADDR): File exists` (REAL, errors.md); removing an address
// that is not there `ifconfig: ioctl (SIOCDIFADDR): Can't assign requested
// address` (the SIOCAIFADDR line's err() form with strerror(EADDRNOTAVAIL);
// the same text is REAL in OpenVPN logs of macOS's BSD ifconfig, not
// captured on FreeBSD).
func (h *Host) ifconfig(argv, args []string) result {
	if len(args) == 1 && args[0] == "-a" {
		var b strings.Builder
		for _, ifc := range h.ifaces {
			writeIface(&b, ifc)
		}
		return ok(b.String())
	}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return unsupported(argv, "arguments")
	}
	name := args[0]
	ifc := h.iface(name)
	if len(args) == 2 && args[1] == "create" {
		if ifc != nil {
			return unsupported(argv, "interface exists")
		}
		h.ifaces = append(h.ifaces, &iface{name: name, index: len(h.ifaces) + 2})
		return ok(name + "\n") // ifconfig(8) prints the name of a cloned interface
	}
	if ifc == nil {
		return fail("ifconfig: interface " + name + " does not exist\n")
	}
	if len(args) == 1 {
		var b strings.Builder
		writeIface(&b, ifc)
		return ok(b.String())
	}
	if len(args) < 4 || args[1] != "inet" {
		return unsupported(argv, "arguments")
	}
	p, err := netip.ParsePrefix(args[2])
	if err != nil {
		a, err := netip.ParseAddr(args[2])
		if err != nil {
			return unsupported(argv, "address "+strconv.Quote(args[2]))
		}
		p = netip.PrefixFrom(a, 32)
	}
	rest := args[3:]
	if len(rest) == 3 && rest[0] == "netmask" && (rest[1] == "255.255.255.255" || rest[1] == "0xffffffff") {
		rest = rest[2:]
	}
	has := slices.ContainsFunc(ifc.addrs, func(q netip.Prefix) bool { return q.Addr() == p.Addr() })
	switch {
	case len(rest) == 1 && rest[0] == "alias":
		if has {
			return fail("ifconfig: ioctl (SIOCAIFADDR): File exists\n")
		}
		ifc.addrs = append(ifc.addrs, p)
		return ok("")
	case len(rest) == 1 && rest[0] == "-alias":
		if !has {
			return fail("ifconfig: ioctl (SIOCDIFADDR): Can't assign requested address\n")
		}
		h.delAlias(ifc, p.Addr())
		return ok("")
	}
	return unsupported(argv, "arguments")
}

func writeIface(b *strings.Builder, ifc *iface) {
	fmt.Fprintf(b, "%s: flags=1008049<UP,LOOPBACK,RUNNING,MULTICAST,LOWER_UP> metric 0 mtu 16384\n", ifc.name)
	b.WriteString("\toptions=680003<RXCSUM,TXCSUM,LINKSTATE,RXCSUM_IPV6,TXCSUM_IPV6>\n")
	for _, p := range ifc.addrs {
		mask := uint32(0xffffffff) << (32 - p.Bits())
		if p.Bits() == 0 {
			mask = 0
		}
		fmt.Fprintf(b, "\tinet %s netmask 0x%08x\n", p.Addr(), mask)
	}
	fmt.Fprintf(b, "\tinet6 fe80::1%%%s prefixlen 64 scopeid 0x%x\n", ifc.name, ifc.index)
	b.WriteString("\tgroups: lo\n")
	b.WriteString("\tnd6 options=21<PERFORMNUD,AUTO_LINKLOCAL>\n")
}

// allMounts lists what is mounted, in mount order: datasets, jails' devfs,
// then the mounts added by AddMount.
func (h *Host) allMounts() []Mount {
	var out []Mount
	for _, d := range h.sortedDatasets() {
		if mp, ok := h.mounted(d); ok {
			out = append(out, Mount{Device: d.name, Path: mp, FSType: "zfs"})
		}
	}
	for _, j := range h.jails {
		if j.devfs {
			out = append(out, Mount{Device: "devfs", Path: filepath.Join(j.path, "dev"), FSType: "devfs"})
		}
	}
	return append(out, h.mounts...)
}

// mount answers `mount -p --libxo=json` in the shape of the DERIVED
// fixture mount-p-libxo.DERIVED.json (sbin/mount/mount.c putfsent under
// xo_open_list("fstab"); libxo's ", " between instances and "\n}" at the
// end as in the jls captures).
func (h *Host) mount(argv, args []string) result {
	if !slices.Equal(args, []string{"-p", "--libxo=json"}) {
		return unsupported(argv, "arguments")
	}
	var items []string
	for _, m := range h.allMounts() {
		opts := "rw"
		if m.FSType == "zfs" {
			opts = "rw,nfsv4acls"
		}
		items = append(items, fmt.Sprintf(`{"device":%s,"mntpoint":%s,"fstype":%s,"opts":%s}`,
			xoString(m.Device), xoString(m.Path), xoString(m.FSType), xoString(opts)))
	}
	return ok(`{"mount": {"fstab": [` + strings.Join(items, ", ") + "]}\n}\n")
}

// umount answers `umount PATH` for a jail's devfs or an AddMount mount.
// Nothing mounted there: `umount: PATH: not a file system root directory`
// (DERIVED: sbin/umount/umount.c warnx("%s: not a file system root
// directory"); the same line appears in a PC-BSD update log).
func (h *Host) umount(argv, args []string) result {
	if len(args) != 1 || strings.HasPrefix(args[0], "-") {
		return unsupported(argv, "arguments")
	}
	p := filepath.Clean(args[0])
	for _, j := range h.jails {
		if j.devfs && filepath.Join(j.path, "dev") == p {
			j.devfs = false
			return ok("")
		}
	}
	for i, m := range h.mounts {
		if m.Path == p {
			h.mounts = slices.Delete(h.mounts, i, i+1)
			return ok("")
		}
	}
	for _, d := range h.ds {
		if mp, ok := h.mounted(d); ok && mp == p {
			return unsupported(argv, "unmounting a dataset")
		}
	}
	return fail("umount: " + p + ": not a file system root directory\n")
}
