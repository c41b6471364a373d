package hostsetup_test

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jailkeeper/jailkeeper/hostsetup"
	"github.com/jailkeeper/jailkeeper/internal/command/commandtest"
	"github.com/jailkeeper/jailkeeper/internal/golden"
)

func hostConfig(t *testing.T, pool string) (hostsetup.HostConfig, string) {
	t.Helper()
	tmp := t.TempDir()
	return hostsetup.HostConfig{
		Dataset:   "zroot/jails",
		Root:      filepath.Join(tmp, "jails"),
		Interface: "lo1",
		Pool:      netip.MustParsePrefix(pool),
		ConfDir:   filepath.Join(tmp, "jail.conf.d"),
		JailConf:  filepath.Join(tmp, "jail.conf"),
	}, tmp
}

// A fresh host: every check fails the way FreeBSD's tools do.
func TestHostInitFresh(t *testing.T) {
	cfg, tmp := hostConfig(t, "172.16.0.0/12")
	var r commandtest.Replay
	// defaults/rc.conf sets cloned_interfaces="", so sysrc -n prints an
	// empty line and exits 0 (usr.sbin/sysrc/sysrc: f_sysrc_get, echo).
	r.On([]string{"sysrc", "-i", "-n", "cloned_interfaces"}, commandtest.OK("\n"))
	// sysrc -i -n of an unset variable prints nothing and exits 1
	// (usr.sbin/sysrc/sysrc: -i suppresses "unknown variable").
	r.On([]string{"sysrc", "-i", "-n", "ifconfig_lo1"}, commandtest.Fail(1, ""))
	// jails/testdata/freebsd/FACTS.md §2.4 / errors.md (REAL): the interface is missing.
	r.On([]string{"ifconfig", "lo1"}, commandtest.Fail(1, "ifconfig: interface lo1 does not exist\n"))
	// errors.md "zfs - get/list/destroy of a dataset that does not exist" (REAL), per dataset.
	for _, ds := range []string{"zroot/jails", "zroot/jails/media", "zroot/jails/templates", "zroot/jails/containers"} {
		r.On([]string{"zfs", "list", "-H", "-o", "name", ds}, commandtest.Fail(1, "cannot open '"+ds+"': dataset does not exist\n"))
	}
	// GENERIC has options RACCT and RCTL, off by default (rctl(8)): the
	// boolean tunable prints 0 (sys/kern/kern_racct.c).
	r.On([]string{"sysctl", "-n", "kern.racct.enable"}, commandtest.OK("0\n"))
	// What zfs create's mounts leave: the datasets' directories, mode 0755.
	if err := os.MkdirAll(filepath.Join(cfg.Root, "containers"), 0o755); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := hostsetup.HostInit(context.Background(), cfg, &r, false, &out); err != nil {
		t.Fatal(err)
	}
	// Host users cannot reach the jails' roots (jail(8), NOTES).
	for _, d := range []string{cfg.Root, filepath.Join(cfg.Root, "containers")} {
		if st, err := os.Stat(d); err != nil || st.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v %v, want mode 0700", d, st, err)
		}
	}
	got := strings.ReplaceAll(r.Transcript(), tmp, "<tmp>")
	golden.Assert(t, "testdata/golden/host-init-fresh.transcript", []byte(got))
	golden.Assert(t, "testdata/golden/host-init-fresh.out", []byte(strings.ReplaceAll(out.String(), tmp, "<tmp>")))
	conf, err := os.ReadFile(cfg.JailConf)
	if err != nil || !strings.Contains(string(conf), `.include "`+cfg.ConfDir+`/*.conf";`+"\n") {
		t.Errorf("jail.conf: %q %v", conf, err)
	}
	if st, err := os.Stat(cfg.ConfDir); err != nil || !st.IsDir() {
		t.Errorf("conf dir: %v", err)
	}
	// rc.d/jail would start retired and failed releases at boot: the
	// agent starts the live ones.
	if strings.Contains(got, "jail_enable") || strings.Contains(out.String(), "jail_enable") {
		t.Errorf("host init enables rc.d/jail:\n%s", got)
	}
}

// A host that is ready already: only checks run, nothing changes.
func TestHostInitIdempotent(t *testing.T) {
	// ifconfig-lo1-12.1.txt (REAL) shows lo1 with 172.31.255.17/32, which is
	// jails.InterfaceAddr of this pool.
	cfg, _ := hostConfig(t, "172.31.255.16/28")
	for _, d := range []string{cfg.ConfDir, filepath.Join(cfg.Root, "containers")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	before := "# existing\n.include \"" + cfg.ConfDir + "/*.conf\";\n"
	if err := os.WriteFile(cfg.JailConf, []byte(before), 0o600); err != nil {
		t.Fatal(err)
	}
	var r commandtest.Replay
	// The capture's host ran sysrc cloned_interfaces+="lo1" on an empty
	// value (ifconfig-lo1-12.1.txt.source).
	r.On([]string{"sysrc", "-i", "-n", "cloned_interfaces"}, commandtest.OK("lo1\n"))
	// The value the capture's host set: sysrc ifconfig_lo1="172.31.255.17/32"
	// (ifconfig-lo1-12.1.txt.source), without the "inet" host init writes.
	r.On([]string{"sysrc", "-i", "-n", "ifconfig_lo1"}, commandtest.OK("172.31.255.17/32\n"))
	r.On([]string{"ifconfig", "lo1"}, commandtest.File(t, "testdata/freebsd/ifconfig-lo1-12.1.txt"))
	r.On([]string{"sysctl", "-n", "kern.racct.enable"}, commandtest.OK("1\n"))
	// The fixture with the test's root as the mountpoint.
	tsv := strings.Replace(string(fixture(t, "zfs-get-mountpoint.DERIVED.tsv")), "/usr/local/jails", cfg.Root, 1)
	r.On([]string{"zfs", "get", "-Hp", "-o", "name,property,value,source", "mountpoint", "zroot/jails"}, commandtest.OK(tsv))
	var out bytes.Buffer
	if err := hostsetup.HostInit(context.Background(), cfg, &r, false, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "# ok: "+cfg.Root+" has mode 0700\n") {
		t.Errorf("mode not checked:\n%s", out.String())
	}
	for _, c := range r.Calls() {
		check := c.Argv[0] == "sysrc" && c.Argv[1] == "-i" || c.Argv[0] == "ifconfig" && len(c.Argv) == 2 ||
			c.Argv[0] == "sysctl" && c.Argv[1] == "-n" ||
			c.Argv[0] == "zfs" && (c.Argv[1] == "list" || c.Argv[1] == "get")
		if !check {
			t.Errorf("changed something on a ready host: %q", c.Argv)
		}
	}
	if after, _ := os.ReadFile(cfg.JailConf); string(after) != before {
		t.Errorf("jail.conf rewritten:\n%s", after)
	}
	if !strings.Contains(out.String(), "# ok: lo1 has 172.31.255.17") {
		t.Errorf("output:\n%s", out.String())
	}
}

func TestHostInitMountpointMismatch(t *testing.T) {
	cfg, _ := hostConfig(t, "172.16.0.0/12")
	cfg.Root = "/jails"
	var r commandtest.Replay
	r.On([]string{"sysrc", "-i", "-n", "ifconfig_lo1"}, commandtest.OK("inet 172.16.0.1/32\n"))
	r.On([]string{"zfs", "get", "-Hp", "-o", "name,property,value,source", "mountpoint", "zroot/jails"},
		commandtest.File(t, "testdata/freebsd/zfs-get-mountpoint.DERIVED.tsv"))
	err := hostsetup.HostInit(context.Background(), cfg, &r, false, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "/usr/local/jails") {
		t.Fatalf("HostInit = %v", err)
	}
	if strings.Contains(r.Transcript(), "zfs set") || strings.Contains(r.Transcript(), "zfs create") {
		t.Errorf("changed datasets:\n%s", r.Transcript())
	}
}

func TestHostInitDryRunRunsNothing(t *testing.T) {
	cfg, _ := hostConfig(t, "127.0.2.0/24")
	var r commandtest.Replay
	var out bytes.Buffer
	if err := hostsetup.HostInit(context.Background(), cfg, &r, true, &out); err != nil {
		t.Fatal(err)
	}
	if n := len(r.Calls()); n != 0 {
		t.Errorf("dry run ran %d commands", n)
	}
	if _, err := os.Stat(cfg.JailConf); !os.IsNotExist(err) {
		t.Errorf("dry run wrote %s", cfg.JailConf)
	}
	for _, want := range []string{"sysrc cloned_interfaces+=lo1\n", "ifconfig lo1 inet 127.0.2.1/32 alias\n", "zfs create zroot/jails/containers\n", "nat on $ext_if inet from 127.0.2.0/24", "cannot translate"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("dry run output lacks %q:\n%s", want, out.String())
		}
	}
}

// An ifconfig_lo1 in rc.conf that gives lo1 another address is the
// operator's: host init stops and says so instead of overwriting it.
func TestHostInitRefusesOtherIfconfig(t *testing.T) {
	cfg, _ := hostConfig(t, "172.16.0.0/12")
	var r commandtest.Replay
	r.On([]string{"sysrc", "-i", "-n", "cloned_interfaces"}, commandtest.OK("lo1\n"))
	r.On([]string{"sysrc", "-i", "-n", "ifconfig_lo1"}, commandtest.OK("172.31.255.17/32\n"))
	err := hostsetup.HostInit(context.Background(), cfg, &r, false, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "172.31.255.17/32") || !strings.Contains(err.Error(), "172.16.0.1/32") {
		t.Fatalf("HostInit = %v, want a refusal naming both addresses", err)
	}
	for _, c := range r.Calls() {
		if c.Argv[0] == "sysrc" && c.Argv[1] != "-i" || c.Argv[0] == "ifconfig" || c.Argv[0] == "zfs" {
			t.Errorf("went on after the refusal: %q", c.Argv)
		}
	}
}

// cloned_interfaces is a list: host init adds lo1 only when it is not one
// of its words, whatever else the operator listed there (a bridge, a
// tap, lo10), and stops on an error it does not understand.
func TestHostInitClonedInterfaces(t *testing.T) {
	add := []string{"sysrc", "cloned_interfaces+=lo1"}
	for _, tc := range []struct {
		name    string
		resp    commandtest.Response
		wantAdd bool
		wantErr bool
	}{
		{"empty (defaults/rc.conf)", commandtest.OK("\n"), true, false},
		{"unset", commandtest.Fail(1, ""), true, false},
		{"only lo1", commandtest.OK("lo1\n"), false, false},
		{"lo1 among others", commandtest.OK("bridge0 lo1 tap0\n"), false, false},
		{"lo1 last, extra blanks", commandtest.OK("bridge0  lo1\n"), false, false},
		{"others only", commandtest.OK("bridge0 tap0\n"), true, false},
		{"a longer name", commandtest.OK("lo10\n"), true, false},
		{"sysrc fails", commandtest.Fail(2, "sysrc: cannot read /etc/rc.conf\n"), false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _ := hostConfig(t, "172.16.0.0/12")
			var r commandtest.Replay
			r.On([]string{"sysrc", "-i", "-n", "cloned_interfaces"}, tc.resp)
			// Stop right after: rc.conf's ifconfig_lo1 is someone else's.
			r.On([]string{"sysrc", "-i", "-n", "ifconfig_lo1"}, commandtest.OK("inet 10.0.0.1/32\n"))
			err := hostsetup.HostInit(context.Background(), cfg, &r, false, &bytes.Buffer{})
			if err == nil {
				t.Fatal("HostInit went past the ifconfig_lo1 refusal")
			}
			if got := strings.Contains(err.Error(), "cannot read"); got != tc.wantErr {
				t.Errorf("error %v, want the sysrc failure: %v", err, tc.wantErr)
			}
			added := 0
			for _, c := range r.Calls() {
				if strings.Join(c.Argv, " ") == strings.Join(add, " ") {
					added++
				}
			}
			if want := map[bool]int{true: 1}[tc.wantAdd]; added != want {
				t.Errorf("%q ran %d times, want %d:\n%s", add, added, want, r.Transcript())
			}
		})
	}
}
