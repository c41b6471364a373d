package hostsetup_test

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jailkeeper/jailkeeper/hostsetup"
	"github.com/jailkeeper/jailkeeper/internal/command/commandtest"
	"github.com/jailkeeper/jailkeeper/internal/golden"
)

// What local-unbound-setup leaves in /etc/resolv.conf: the forwarders it
// took over commented out, then 127.0.0.1 and edns0
// (usr.sbin/unbound/setup/local-unbound-setup.sh, gen_resolv_conf).
const localUnboundResolvConf = "# nameserver 192.0.2.53\nnameserver 127.0.0.1\noptions edns0\n"

func writeResolv(t *testing.T, cfg *hostsetup.TemplateConfig, body string) {
	t.Helper()
	if err := os.WriteFile(cfg.ResolvConf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A loopback-only resolv.conf is refused, in a dry run too, before
// anything is downloaded or changed, with the config key and the unbound
// lines that would serve the jails instead.
func TestTemplateCreateRefusesLoopbackResolver(t *testing.T) {
	for name, body := range map[string]string{
		"local_unbound":    localUnboundResolvConf,
		"ipv6 loopback":    "nameserver ::1\n",
		"other 127/8":      "nameserver 127.0.0.53\nsearch example.com\n",
		"no nameserver":    "search example.com\n",
		"both loopbacks":   "nameserver 127.0.0.1 ; local\nnameserver ::1\n",
		"mapped loopback":  "nameserver ::ffff:127.0.0.1\n",
		"commented server": "#nameserver 192.0.2.53\nnameserver 127.0.0.1\n",
	} {
		t.Run(name, func(t *testing.T) {
			for _, dry := range []bool{true, false} {
				rel := newRelease(t)
				cfg, _ := templateConfig(t, rel)
				cfg.Pool = netip.MustParsePrefix("172.16.0.0/12")
				writeResolv(t, &cfg, body)
				var r commandtest.Replay
				missing(&r, tds)
				var out bytes.Buffer
				err := hostsetup.TemplateCreate(context.Background(), cfg, &r, dry, &out)
				if !errors.Is(err, hostsetup.ErrLoopbackResolver) {
					t.Fatalf("dry %v: TemplateCreate = %v, want ErrLoopbackResolver", dry, err)
				}
				for _, want := range []string{cfg.ResolvConf, "jails.resolvers", "interface: 172.16.0.1\n", "interface: 127.0.0.1\n", "access-control: 172.16.0.0/12 allow\n"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("dry %v: error lacks %q:\n%v", dry, want, err)
					}
				}
				if rel.hits.Load() != 0 || strings.Contains(r.Transcript(), "zfs create") || strings.Contains(out.String(), "\nzfs create") {
					t.Errorf("dry %v: went on after the refusal:\n%s\n%s", dry, r.Transcript(), out.String())
				}
			}
		})
	}
}

// The refusal, in full, as `template create` prints it.
func TestTemplateCreateLoopbackResolverMessage(t *testing.T) {
	cfg, tmp := templateConfig(t, nil)
	cfg.Pool = netip.MustParsePrefix("10.20.0.0/16")
	writeResolv(t, &cfg, localUnboundResolvConf)
	err := hostsetup.TemplateCreate(context.Background(), cfg, &commandtest.Replay{}, true, &bytes.Buffer{})
	if err == nil {
		t.Fatal("loopback resolver accepted")
	}
	golden.Assert(t, "testdata/golden/template-create-loopback-resolver.err", []byte(strings.ReplaceAll(err.Error(), tmp, "<tmp>")+"\n"))
}

// With jails.resolvers the template's resolv.conf names those, whatever
// the host's says; a dry run shows the lines it would write.
func TestTemplateCreateResolvers(t *testing.T) {
	resolvers := []string{"172.16.0.1", "2001:db8::53"}
	dry, tmp := templateConfig(t, nil) // download.freebsd.org: a dry run fetches nothing
	writeResolv(t, &dry, localUnboundResolvConf)
	dry.Resolvers = resolvers
	var out bytes.Buffer
	if err := hostsetup.TemplateCreate(context.Background(), dry, &commandtest.Replay{}, true, &out); err != nil {
		t.Fatal(err)
	}
	golden.Assert(t, "testdata/golden/template-create-resolvers-dry-run.out", []byte(strings.ReplaceAll(out.String(), tmp, "<tmp>")))

	rel := newRelease(t)
	cfg, _ := templateConfig(t, rel)
	writeResolv(t, &cfg, localUnboundResolvConf)
	cfg.Resolvers = resolvers

	var r commandtest.Replay
	missing(&r, tds)
	if err := hostsetup.TemplateCreate(context.Background(), cfg, &r, false, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(r.Transcript(), "resolv.conf") {
		t.Errorf("copied the host's resolv.conf:\n%s", r.Transcript())
	}
	p := filepath.Join(cfg.Root, "templates", "14.3-RELEASE", "etc", "resolv.conf")
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	golden.Assert(t, "testdata/golden/template-resolvers.resolv.conf", got)
	if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("%s: %v %v, want mode 0644", p, st, err)
	}

	// The config validates them; a caller that did not is refused too.
	cfg.Resolvers = []string{"127.0.0.1"}
	if err := hostsetup.TemplateCreate(context.Background(), cfg, &commandtest.Replay{}, true, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "jails.resolvers") {
		t.Errorf("loopback in Resolvers: %v", err)
	}
}

// A resolv.conf with a reachable server besides loopback ones is copied,
// with a warning: each loopback server times out before the next.
func TestTemplateCreateMixedResolvers(t *testing.T) {
	rel := newRelease(t)
	cfg, _ := templateConfig(t, rel)
	writeResolv(t, &cfg, "nameserver 127.0.0.1\nnameserver 192.0.2.53\n")
	var r commandtest.Replay
	missing(&r, tds)
	var out bytes.Buffer
	if err := hostsetup.TemplateCreate(context.Background(), cfg, &r, false, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.Transcript(), "cp "+cfg.ResolvConf+" ") {
		t.Errorf("resolv.conf not copied:\n%s", r.Transcript())
	}
	if !strings.Contains(out.String(), "warning: "+cfg.ResolvConf+" also names 127.0.0.1") {
		t.Errorf("no warning:\n%s", out.String())
	}
}
