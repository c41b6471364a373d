package main

import (
	"strings"
	"testing"

	"github.com/jailkeeper/jailkeeper/internal/golden"
)

// The dry runs print the exact commands a fresh FreeBSD host gets, and run
// nothing (there is no sysrc, jail or FreeBSD zfs here to run).
func TestHostInitDryRun(t *testing.T) {
	code, out, errOut := runCapture(t, "host", "init", "--dry-run", "--config", "testdata/freebsd.yaml")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	golden.Assert(t, "testdata/host-init-dry-run.golden", []byte(out))
	if strings.Contains(out, "jail_enable") {
		t.Error("host init sets jail_enable: rc.d/jail would start retired and failed releases at boot")
	}
}

func TestTemplateCreateDryRun(t *testing.T) {
	code, out, errOut := runCapture(t, "template", "create", "14.3-RELEASE", "--dry-run", "--arch", "amd64", "--resolv-conf", "testdata/resolv.conf", "--config", "testdata/freebsd.yaml")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	golden.Assert(t, "testdata/template-create-dry-run.golden", []byte(out))

	code, out, errOut = runCapture(t, "template", "create", "14.3-RELEASE", "--dry-run", "--update", "--file", "/usr/freebsd-dist/base.txz", "--resolv-conf", "testdata/resolv.conf", "--config", "testdata/freebsd.yaml")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"# use /usr/freebsd-dist/base.txz, checked against /usr/freebsd-dist/MANIFEST\n",
		"tar -x -C /usr/local/jails/templates/14.3-RELEASE --unlink -f - < /usr/freebsd-dist/base.txz\n",
		"env PAGER=/bin/cat freebsd-update --not-running-from-cron --currently-running 14.3-RELEASE -b /usr/local/jails/templates/14.3-RELEASE fetch install\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("--file --update output lacks %q:\n%s", want, out)
		}
	}
}

// A host whose resolv.conf names only 127.0.0.1 (local_unbound) gets a
// refusal that names jails.resolvers and the unbound lines for lo1's
// address; with jails.resolvers the template names those.
func TestTemplateCreateDryRunResolvers(t *testing.T) {
	code, out, errOut := runCapture(t, "template", "create", "14.3-RELEASE", "--dry-run", "--arch", "amd64", "--resolv-conf", "testdata/resolv-local-unbound.conf", "--config", "testdata/freebsd.yaml")
	if code != 1 {
		t.Fatalf("loopback resolver: exit %d, want 1\n%s", code, out)
	}
	golden.Assert(t, "testdata/template-create-loopback-resolver.golden", []byte(errOut))

	code, out, errOut = runCapture(t, "template", "create", "14.3-RELEASE", "--dry-run", "--arch", "amd64", "--resolv-conf", "testdata/resolv-local-unbound.conf", "--config", "testdata/freebsd-resolvers.yaml")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	golden.Assert(t, "testdata/template-create-resolvers-dry-run.golden", []byte(out))
}

func TestHostTemplateUsage(t *testing.T) {
	for _, args := range [][]string{
		{"template", "create", "--dry-run", "--config", "testdata/freebsd.yaml"},
		{"template", "create", "14.3-RELEASE", "--url", "https://x/", "--file", "/b.txz", "--dry-run", "--config", "testdata/freebsd.yaml"},
		{"host", "init", "extra", "--config", "testdata/freebsd.yaml"},
		{"host", "init", "--dry-run", "--config", "testdata/does-not-exist.yaml"},
		{"host"},
	} {
		if code, _, _ := runCapture(t, args...); code != exitInvalid {
			t.Errorf("%q: exit %d, want %d", args, code, exitInvalid)
		}
	}
	// A bad version is a failure of the command, not a crash.
	if code, _, errOut := runCapture(t, "template", "create", "latest", "--dry-run", "--config", "testdata/freebsd.yaml"); code == 0 || !strings.Contains(errOut, "14.3-RELEASE") {
		t.Errorf("bad version: exit %d, %s", code, errOut)
	}
}
