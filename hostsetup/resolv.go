package hostsetup

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/jailkeeper/jailkeeper/internal/atomicfile"
	"github.com/jailkeeper/jailkeeper/jails"
)

// ErrLoopbackResolver: the host's resolv.conf names only loopback DNS
// servers, which a jail cannot reach, and the config has no
// jails.resolvers to use instead.
var ErrLoopbackResolver = errors.New("no DNS server a jail can reach")

// maxResolvConf bounds the host's resolv.conf read.
const maxResolvConf = 1 << 20

// resolvPlan is what the template's /etc/resolv.conf gets: the host's
// file copied (copy), or text written from jails.resolvers (write).
type resolvPlan struct {
	copy  string
	write []byte
	skip  bool     // the host has no resolv.conf and no resolvers are set
	slow  []string // loopback servers in a copied file: each times out first
}

// planResolvConf decides the template's resolv.conf before anything is
// downloaded or changed, and refuses a host resolv.conf whose servers a
// jail cannot reach. It reads the host's file even in a dry run: a dry
// run must show the refusal a real run would meet.
//
// Why loopback fails: a jail with ip4.addr has no loopback address of its
// own, and a connection it makes to 127.0.0.1 is sent to the jail's own
// first address instead (prison_remote_ip4 in sys/netinet/in_jail.c
// rewrites INADDR_LOOPBACK to prison_primary_ip4; prison_remote_ip6
// rewrites ::1 to the jail's first IPv6 address, and a release has none).
// No DNS server listens there. Other 127/8 addresses
// (127.0.0.53) are not the jail's either. A resolv.conf without any
// nameserver line means the local host's server (resolver(5)), the same
// thing.
func planResolvConf(cfg TemplateConfig) (resolvPlan, error) {
	if len(cfg.Resolvers) > 0 {
		var b strings.Builder
		b.WriteString("# Written by jailkeeper template create from the agent config's jails.resolvers.\n")
		for _, r := range cfg.Resolvers {
			a, err := netip.ParseAddr(r)
			if err != nil || a.Zone() != "" || a.Unmap().IsLoopback() || a.IsUnspecified() {
				return resolvPlan{}, fmt.Errorf("jails.resolvers: %q is not the IP address of a DNS server a jail can reach", r)
			}
			fmt.Fprintf(&b, "nameserver %s\n", a)
		}
		return resolvPlan{write: []byte(b.String())}, nil
	}
	f, err := os.Open(cfg.ResolvConf)
	if errors.Is(err, os.ErrNotExist) {
		return resolvPlan{skip: true}, nil
	}
	if err != nil {
		return resolvPlan{}, err
	}
	defer f.Close()
	servers, err := nameservers(io.LimitReader(f, maxResolvConf))
	if err != nil {
		return resolvPlan{}, fmt.Errorf("%s: %w", cfg.ResolvConf, err)
	}
	p := resolvPlan{copy: cfg.ResolvConf}
	reachable := false
	for _, s := range servers {
		if a, err := netip.ParseAddr(s); err == nil && a.Unmap().IsLoopback() {
			p.slow = append(p.slow, s)
		} else {
			reachable = true
		}
	}
	if !reachable {
		return resolvPlan{}, loopbackOnly(cfg, servers)
	}
	return p, nil
}

// nameservers returns the values of resolv.conf(5)'s nameserver lines
// (resolver(5): "nameserver Internet-address", comments start with # or ;).
func nameservers(r io.Reader) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			out = append(out, f[1])
		}
	}
	return out, sc.Err()
}

// loopbackOnly is the refusal, with the two ways out: jails.resolvers
// naming servers the jails reach, or the host's own unbound serving them
// on the cloned interface's address.
func loopbackOnly(cfg TemplateConfig, servers []string) error {
	named := "no nameserver line, which means the local host's server (resolver(5))"
	if len(servers) > 0 {
		named = "only " + strings.Join(servers, ", ")
	}
	own, pool := "172.16.0.1", "172.16.0.0/12"
	if cfg.Pool.IsValid() && cfg.Pool.Addr().Is4() {
		own, pool = jails.InterfaceAddr(cfg.Pool).String(), cfg.Pool.Masked().String()
	}
	// unbound.conf(5): "interface: If none are given the default is to
	// listen to localhost", so naming lo1's address must name localhost
	// too, or the host loses its own resolver; access-control allows
	// only localhost by default. local-unbound-setup writes
	// /var/unbound/unbound.conf with "include: /var/unbound/conf.d/*.conf"
	// (usr.sbin/unbound/setup/local-unbound-setup.sh) and overwrites
	// unbound.conf itself, so the lines go into conf.d.
	return fmt.Errorf(`%s names %s: %w. Inside a jail 127.0.0.1 is the jail's own address, where no DNS server answers. Either set jails.resolvers in the agent config to DNS servers the jails can reach, or let the host's local_unbound serve them on %s: put in /var/unbound/conf.d/jails.conf
    server:
        interface: 127.0.0.1
        interface: ::1
        interface: %s
        access-control: %s allow
then run: service local_unbound restart, and set jails.resolvers: [%s]`,
		cfg.ResolvConf, named, ErrLoopbackResolver, own, own, pool, own)
}

// applyResolvConf puts the planned resolv.conf into the template at dir.
func applyResolvConf(h *hostSteps, p resolvPlan, dir string) error {
	dst := filepath.Join(dir, "etc", "resolv.conf")
	switch {
	case p.skip:
		h.note("skipped: the host has no resolv.conf and jails.resolvers is empty")
		return nil
	case p.copy != "":
		if len(p.slow) > 0 {
			h.note("warning: %s also names %s: in a jail each is the jail's own address, and every lookup waits for it to time out first; jails.resolvers avoids that",
				p.copy, strings.Join(p.slow, ", "))
		}
		return h.do("cp", p.copy, dst)
	}
	h.note("write %s (mode 0644) from jails.resolvers:", dst)
	for line := range strings.Lines(string(p.write)) {
		if !strings.HasPrefix(line, "#") {
			h.note("  %s", strings.TrimSuffix(line, "\n"))
		}
	}
	if h.dry {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(dst, p.write, 0o644)
}
