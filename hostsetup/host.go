package hostsetup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/jailkeeper/jailkeeper/internal/atomicfile"
	"github.com/jailkeeper/jailkeeper/internal/command"
	"github.com/jailkeeper/jailkeeper/jails"
)

// HostConfig is what host init prepares; it comes from the agent config's
// jails section.
type HostConfig struct {
	Dataset   string       // zroot/jails
	Root      string       // its mountpoint, /usr/local/jails
	Interface string       // lo1
	Pool      netip.Prefix // 172.16.0.0/12; the interface gets jails.InterfaceAddr(Pool)/32
	ConfDir   string       // /etc/jail.conf.d
	// JailConf is the jail.conf(5) that must include ConfDir's files.
	// Default /etc/jail.conf.
	JailConf string
}

// HostInit prepares a FreeBSD host for the jail runtime, idempotently:
// each step checks first and changes only what is missing.
//
//   - Interface as a cloned interface in rc.conf (cloned_interfaces+=lo1)
//     with its own address, jails.InterfaceAddr(Pool)/32, as ifconfig_lo1 (the
//     interface's address in rc.conf(5); the releases' aliases are never
//     put there: jail(8) adds and removes them, and an alias already
//     present makes jail -c fail); created and addressed now too;
//   - the datasets Dataset (mounted at Root), Dataset/media (downloads),
//     Dataset/templates and Dataset/containers; Root and Root/containers
//     get mode 0700, so no host user reaches a jail's files (the
//     environment files with the apps' secrets among them);
//   - ConfDir, and the line `.include "ConfDir/*.conf";` in JailConf
//     (jail.conf(5), "Includes"), so rc.d/jail and jail(8) without -f see
//     every release;
//   - a check of kern.racct.enable, which resource limits need: when it
//     is 0 it prints the loader.conf line and that a reboot is needed, and
//     changes nothing (checkRacct).
//
// Every command that changes something is printed to out before it runs.
// With dryRun nothing is run, read or written: the checks are printed as
// comments and every step is shown as if the host were fresh. Last, it
// prints the pf(4) NAT rule the jails need to reach the outside, which it
// does not install.
//
// It does not set jail_enable: rc.d/jail would start every jail of
// /etc/jail.conf at boot, and through the .include that is every release,
// retired and failed ones too, which stay stopped (DESIGN.md). The agent
// starts the live releases itself: its first pass finds a live release
// that is not running, starts it and gates it again.
func HostInit(ctx context.Context, cfg HostConfig, r command.Runner, dryRun bool, out io.Writer) error {
	if cfg.JailConf == "" {
		cfg.JailConf = "/etc/jail.conf"
	}
	if !cfg.Pool.IsValid() || !cfg.Pool.Addr().Is4() || cfg.Pool.Bits() > 30 {
		return fmt.Errorf("host init: pool %s is not an IPv4 prefix of /30 or wider", cfg.Pool)
	}
	if jails.ValidInterface(cfg.Interface) != nil || !filepath.IsAbs(cfg.Root) || !filepath.IsAbs(cfg.ConfDir) || cfg.Dataset == "" {
		return fmt.Errorf("host init: invalid jails config (interface %q, root %q, conf_dir %q, dataset %q)",
			cfg.Interface, cfg.Root, cfg.ConfDir, cfg.Dataset)
	}
	h := &hostSteps{ctx: ctx, r: r, dry: dryRun, out: out}
	if dryRun {
		h.note("jailkeeper host init, dry run: nothing is run or written. Each step")
		h.note("runs only where its check (shown) says it is needed; here all are shown.")
	}
	if err := hostInit(h, cfg); err != nil {
		return fmt.Errorf("host init: %w", err)
	}
	checkRacct(h)
	printNAT(out, cfg.Pool)
	return nil
}

func hostInit(h *hostSteps, cfg HostConfig) error {
	iface := cfg.Interface
	own := netip.PrefixFrom(jails.InterfaceAddr(cfg.Pool), 32)

	h.note("%s: a cloned interface for the jails' addresses, with its own address %s", iface, own)
	if err := rcClonedInterface(h, iface); err != nil {
		return err
	}
	if err := rcIfconfig(h, iface, own); err != nil {
		return err
	}
	out, err := h.check("ifconfig", iface)
	haveIface, haveAddr := err == nil, false
	switch {
	case err == nil:
		addrs, perr := jails.ParseIfconfig(bytes.NewReader(out))
		if perr != nil {
			return perr
		}
		for _, a := range addrs {
			haveAddr = haveAddr || a.Prefix.Addr() == own.Addr()
		}
	case errors.Is(err, errDryRun):
	case strings.Contains(command.Stderr(err), "does not exist"):
		// ifconfig: interface lo1 does not exist (jails/testdata/freebsd/FACTS.md §2.4, REAL)
	default:
		return err
	}
	if !haveIface {
		if err := h.do("ifconfig", iface, "create"); err != nil {
			return err
		}
	}
	if !haveAddr {
		if err := h.do("ifconfig", iface, "inet", own.String(), "alias"); err != nil {
			return err
		}
	} else {
		h.note("ok: %s has %s", iface, own.Addr())
	}

	h.note("datasets: %s mounted at %s, with media, templates and containers", cfg.Dataset, cfg.Root)
	ok, err := h.zfsExists(cfg.Dataset)
	if err != nil {
		return err
	}
	if !ok {
		if err := h.zfsDo().Create(h.ctx, cfg.Dataset, map[string]string{"mountpoint": cfg.Root}); err != nil {
			return err
		}
	} else {
		props, err := h.zfsCheck().Get(h.ctx, cfg.Dataset, "mountpoint")
		if err != nil {
			return err
		}
		if mp, ok := props["mountpoint"]; !ok || filepath.Clean(mp.Value) != filepath.Clean(cfg.Root) {
			mp := mp.Value
			if !ok {
				mp = "?"
			}
			return fmt.Errorf("%s exists with mountpoint %s, but the config's jails.root is %s: change one of them", cfg.Dataset, mp, cfg.Root)
		}
		h.note("ok: %s mounted at %s", cfg.Dataset, cfg.Root)
	}
	for _, child := range []string{"media", "templates", "containers"} {
		ds := cfg.Dataset + "/" + child
		ok, err := h.zfsExists(ds)
		if err != nil {
			return err
		}
		if ok {
			h.note("ok: %s", ds)
			continue
		}
		if err := h.zfsDo().Create(h.ctx, ds, nil); err != nil {
			return err
		}
	}

	// jail(8), NOTES: an unprivileged host user can cooperate with a
	// privileged user inside a jail to gain privileges on the host, and
	// "most of these attacks can be mitigated by ensuring that the jail
	// root is not accessible to unprivileged users in the host
	// environment". The directories above the jails' roots are root's only;
	// that does not reach into the jails, whose processes start from their
	// root and never look the path up through these directories.
	for _, dir := range []string{cfg.Root, filepath.Join(cfg.Root, "containers")} {
		if err := ensureMode(h, dir, 0o700); err != nil {
			return err
		}
	}

	h.note("jail.conf: one file per release in %s, included from %s", cfg.ConfDir, cfg.JailConf)
	if err := ensureDir(h, cfg.ConfDir); err != nil {
		return err
	}
	return ensureInclude(h, cfg.JailConf, `.include "`+filepath.Join(cfg.ConfDir, "*.conf")+`";`)
}

// rcClonedInterface makes sure rc.conf's cloned_interfaces lists iface
// among its words, whatever else it lists. It reads the value with
// `sysrc -i -n cloned_interfaces` (the value and exit 0; nothing and exit
// 1 when unset, which defaults/rc.conf's cloned_interfaces="" makes rare;
// usr.sbin/sysrc/sysrc) and tests membership in Go, instead of asking
// `sysrc -c cloned_interfaces+=lo1`: -c compares the whole value sysrc
// would write with the current one (sysrc(8): "return success if no
// changes are required"), which is only right where sysrc's += skips
// words already present, and then depends on that. `sysrc
// cloned_interfaces+=lo1` runs only when lo1 is missing, so it never adds
// a second lo1.
func rcClonedInterface(h *hostSteps, iface string) error {
	const name = "cloned_interfaces"
	out, err := h.check("sysrc", "-i", "-n", name)
	switch {
	case err == nil:
		v := strings.TrimSuffix(string(out), "\n")
		if slices.Contains(strings.Fields(v), iface) {
			h.note("ok: %s=%q lists %s", name, v, iface)
			return nil
		}
	case errors.Is(err, errDryRun):
	default:
		if code, ok := command.ExitCode(err); !ok || code != 1 || strings.TrimSpace(command.Stderr(err)) != "" {
			return err
		}
	}
	return h.do("sysrc", name+"+="+iface)
}

// rcIfconfig makes sure rc.conf's ifconfig_<iface> gives the interface its
// own address, own. It reads the variable with `sysrc -i -n`, which prints
// the value and exits 0 when it is set, and prints nothing and exits 1 when
// it is not (-i: no "unknown variable" message; usr.sbin/sysrc/sysrc). An
// unset variable is set; a value that already gives own, in any of the
// forms ifconfig(8) takes (see ifconfigGives), is left; any other value is
// refused, as a dataset with another mountpoint is: it is the operator's,
// and overwriting it would move the interface's address at the next boot.
func rcIfconfig(h *hostSteps, iface string, own netip.Prefix) error {
	name := "ifconfig_" + iface
	out, err := h.check("sysrc", "-i", "-n", name)
	switch {
	case err == nil:
		v := strings.TrimSuffix(string(out), "\n")
		if ifconfigGives(v, own) {
			h.note("ok: %s=%q", name, v)
			return nil
		}
		return fmt.Errorf("rc.conf has %s=%q, but the interface's address must be %s, the first address of the pool: change rc.conf or jails.pool (host init does not overwrite it)",
			name, v, own)
	case errors.Is(err, errDryRun):
	default:
		if code, ok := command.ExitCode(err); !ok || code != 1 || strings.TrimSpace(command.Stderr(err)) != "" {
			return err
		}
	}
	return h.do("sysrc", name+"=inet "+own.String())
}

// ifconfigGives reports whether the rc.conf value v of ifconfig_<iface>,
// which rc.d/netif hands to ifconfig(8) as arguments, sets exactly the
// address own with a /32 mask: "[inet] A/32" or "[inet] A netmask M" with
// M 0xffffffff or 255.255.255.255, and nothing else.
func ifconfigGives(v string, own netip.Prefix) bool {
	f := strings.Fields(v)
	if len(f) > 0 && f[0] == "inet" {
		f = f[1:]
	}
	switch {
	case len(f) == 1 && strings.Contains(f[0], "/"):
		p, err := netip.ParsePrefix(f[0])
		return err == nil && p == own
	case len(f) == 3 && f[1] == "netmask" && (f[2] == "0xffffffff" || f[2] == "255.255.255.255"):
		a, err := netip.ParseAddr(f[0])
		return err == nil && a == own.Addr() && own.Bits() == 32
	}
	return false
}

func ensureDir(h *hostSteps, dir string) error {
	if !h.dry {
		if st, err := os.Stat(dir); err == nil && st.IsDir() {
			h.note("ok: %s", dir)
			return nil
		}
	}
	h.note("create directory %s (mode 0755)", dir)
	if h.dry {
		return nil
	}
	return os.MkdirAll(dir, 0o755)
}

// ensureMode sets dir's permission bits to mode unless they are already;
// dir must exist (a dataset's mountpoint, mounted by zfs create). Only
// root's access is kept: host users cannot reach the releases' files.
func ensureMode(h *hostSteps, dir string, mode os.FileMode) error {
	if h.dry {
		h.note("set mode %04o on %s: host users must not reach the jails' files", mode, dir)
		return nil
	}
	st, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if st.Mode().Perm() == mode {
		h.note("ok: %s has mode %04o", dir, mode)
		return nil
	}
	h.note("set mode %04o on %s (was %04o): host users must not reach the jails' files", mode, dir, st.Mode().Perm())
	return os.Chmod(dir, mode)
}

// ensureInclude appends line to the file unless a line of it already
// reads exactly that (leading and trailing blanks aside).
func ensureInclude(h *hostSteps, file, line string) error {
	var old []byte
	if !h.dry {
		var err error
		old, err = os.ReadFile(file)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		for l := range strings.Lines(string(old)) {
			if strings.TrimSpace(l) == line {
				h.note("ok: %s has %s", file, line)
				return nil
			}
		}
	}
	h.note("append to %s (created if missing, mode 0644): %s", file, line)
	if h.dry {
		return nil
	}
	data := old
	if len(data) > 0 && !bytes.HasSuffix(data, []byte("\n")) {
		data = append(data, '\n')
	}
	data = append(data, "# Added by jailkeeper host init: every jailkeeper release.\n"+line+"\n"...)
	mode := os.FileMode(0o644)
	if st, err := os.Stat(file); err == nil {
		mode = st.Mode().Perm()
	}
	return atomicfile.WriteFile(file, data, mode)
}

// printNAT prints the pf.conf(5) rule that lets the jails reach the
// outside through the host's address. Addresses in 127.0.0.0/8 cannot be
// translated (jails/testdata/freebsd/FACTS.md §8).
func printNAT(out io.Writer, pool netip.Prefix) {
	fmt.Fprintf(out, `#
# Outbound traffic: jailkeeper does not touch pf. For the jails to reach the
# outside (package mirrors, APIs), add to /etc/pf.conf, with ext_if the host's
# outside interface, then: sysrc pf_enable=YES && service pf start
#
#   nat on $ext_if inet from %s to any -> ($ext_if)
#
# Caddy on the host reaches the jails over the cloned interface; pf's usual
# "set skip on lo" covers it (its interface group is lo).
`, pool)
	if pool.Addr().IsLoopback() {
		fmt.Fprintf(out, "# Warning: %s is in 127.0.0.0/8, which pf cannot translate: pick a private range.\n", pool)
	}
}
