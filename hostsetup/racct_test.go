package hostsetup_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jailkeeper/jailkeeper/hostsetup"
	"github.com/jailkeeper/jailkeeper/internal/command/commandtest"
)

// TestHostInitRacct: host init reads kern.racct.enable and, when it is 0,
// prints the loader.conf line and that a reboot is needed; it never runs
// anything that changes the boot configuration, and never fails because of
// it (only releases with limits need racct).
func TestHostInitRacct(t *testing.T) {
	for _, tc := range []struct {
		name string
		resp commandtest.Response
		want []string
		not  []string
	}{
		{"off", commandtest.OK("0\n"),
			[]string{"#   kern.racct.enable=1\n", "reboot", "does not edit loader.conf", "releases without limits run"}, nil},
		{"on", commandtest.OK("1\n"), []string{"# ok: kern.racct.enable=1\n"}, []string{"reboot"}},
		// sbin/sysctl/sysctl.c: a kernel without options RACCT has no such oid.
		{"no racct in the kernel", commandtest.Fail(1, "sysctl: unknown oid 'kern.racct.enable'\n"),
			[]string{"this kernel has no RACCT", "options RACCT and RCTL"}, []string{"reboot"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _ := hostConfig(t, "172.16.0.0/12")
			var r commandtest.Replay
			r.On([]string{"sysrc", "-i", "-n", "ifconfig_lo1"}, commandtest.OK("inet 172.16.0.1/32\n"))
			// errors.md (REAL): no dataset exists yet, so host init creates them.
			r.OnPrefix([]string{"zfs", "list"}, commandtest.Fail(1, "cannot open 'zroot/jails': dataset does not exist\n"))
			r.On([]string{"sysctl", "-n", "kern.racct.enable"}, tc.resp)
			// What zfs create's mounts leave.
			if err := os.MkdirAll(filepath.Join(cfg.Root, "containers"), 0o755); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := hostsetup.HostInit(context.Background(), cfg, &r, false, &out); err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			for _, w := range tc.not {
				if strings.Contains(out.String(), w) {
					t.Errorf("output has %q:\n%s", w, out.String())
				}
			}
			for _, c := range r.Calls() {
				if c.Argv[0] == "sysctl" && len(c.Argv) != 3 || strings.Contains(strings.Join(c.Argv, " "), "loader.conf") {
					t.Errorf("host init ran %q", c.Argv)
				}
			}
		})
	}
}

func TestHostInitRacctDryRun(t *testing.T) {
	cfg, _ := hostConfig(t, "172.16.0.0/12")
	var r commandtest.Replay
	var out bytes.Buffer
	if err := hostsetup.HostInit(context.Background(), cfg, &r, true, &out); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"# check: sysctl -n kern.racct.enable\n", "if it prints 0: add kern.racct.enable=1 to /boot/loader.conf and reboot"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("dry run output lacks %q:\n%s", w, out.String())
		}
	}
}
