package jailstest_test

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jailkeeper/jailkeeper/internal/command"
	"github.com/jailkeeper/jailkeeper/jails"
	"github.com/jailkeeper/jailkeeper/jails/jailstest"
	"github.com/jailkeeper/jailkeeper/zfs"
)

func fixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "freebsd", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func run(t *testing.T, h *jailstest.Host, argv ...string) (string, error) {
	t.Helper()
	out, err := h.Run(context.Background(), argv, nil)
	return string(out), err
}

// TestOutputsAreTheCaptures rebuilds, on the fake, the hosts of two REAL
// captures and compares the fake's output with them byte for byte.
func TestOutputsAreTheCaptures(t *testing.T) {
	h := jailstest.New(t.TempDir(), nil)
	// jls-libxo-json-v.json: kleene-project/kleened, jls --libxo json -v -j 83.
	h.AddJail(jailstest.JailInfo{JID: 83, Name: "83", Path: "/zroot/kleene_basejail", CPUSetID: 4,
		IPv4: []netip.Addr{netip.MustParseAddr("172.17.0.1"), netip.MustParseAddr("172.17.0.2")}})
	got, err := run(t, h, "jls", "--libxo", "json", "-v", "-j", "83")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(fixture(t, "jls-libxo-json-v.json"), got); diff != "" {
		t.Errorf("jls -v (-capture +fake):\n%s", diff)
	}
	// ifconfig-lo1-14.0.txt: FreeBSD 14.0, lo1 with three aliases.
	var addrs []netip.Prefix
	for _, a := range []string{"127.0.2.1", "127.0.2.2", "127.0.2.3"} {
		addrs = append(addrs, netip.MustParsePrefix(a+"/32"))
	}
	h.AddInterface("lo1", addrs...)
	got, err = run(t, h, "ifconfig", "-a")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(fixture(t, "ifconfig-lo1-14.0.txt"), got); diff != "" {
		t.Errorf("ifconfig -a (-capture +fake):\n%s", diff)
	}
}

func prepared(t *testing.T) (*jailstest.Host, string) {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "jails")
	h := jailstest.Prepared(t, dir, jailstest.Layout{
		Dataset: "zroot/jails", Root: root, Interface: "lo1",
		Own: netip.MustParsePrefix("172.16.0.1/32"), Templates: []string{"14.3-RELEASE"},
	})
	return h, root
}

func writeConf(t *testing.T, dir, name, path, addr string) string {
	t.Helper()
	conf := filepath.Join(dir, name+".conf")
	text := name + " {\n\tpath = \"" + path + "\";\n\tip4.addr = \"lo1|" + addr + "/32\";\n\tmount.devfs;\n}\n"
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return conf
}

// TestJailLifecycle drives jail -c / -r and reads the results back with
// the runtime's own parsers.
func TestJailLifecycle(t *testing.T) {
	h, root := prepared(t)
	h.MustRun(t, "zfs", "clone", "-o", "jailkeeper:managed=yes", "zroot/jails/templates/14.3-RELEASE@base", "zroot/jails/containers/a")
	path := filepath.Join(root, "containers", "a")
	conf := writeConf(t, t.TempDir(), "a", path, "172.16.0.2")

	if out, err := run(t, h, "jail", "-f", conf, "-c", "a"); err != nil || out != "a: created\n" {
		t.Fatalf("jail -c = %q, %v", out, err)
	}
	out, err := run(t, h, "jls", "--libxo=json", "-v", "-d")
	if err != nil {
		t.Fatal(err)
	}
	js, err := jails.ParseJLS(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if len(js) != 1 || js[0].Name != "a" || js[0].Path != path || js[0].Dying() || !slices.Equal(js[0].IPv4, []netip.Addr{netip.MustParseAddr("172.16.0.2")}) {
		t.Errorf("jls after jail -c: %+v", js)
	}
	out, _ = run(t, h, "ifconfig", "-a")
	ifs, err := jails.ParseIfconfig(strings.NewReader(out))
	if err != nil || len(ifs) != 2 || ifs[1].Prefix != netip.MustParsePrefix("172.16.0.2/32") {
		t.Errorf("ifconfig after jail -c: %v %v", ifs, err)
	}
	out, _ = run(t, h, "mount", "-p", "--libxo=json")
	ms, err := jails.ParseMounts(strings.NewReader(out))
	if err != nil || !slices.Contains(ms, jails.Mount{Device: "devfs", Path: path + "/dev", FSType: "devfs"}) {
		t.Errorf("mounts after jail -c: %v %v", ms, err)
	}
	// The jail holds its root: zfs destroy fails busy (REAL text).
	_, err = run(t, h, "zfs", "destroy", "-r", "zroot/jails/containers/a")
	if want := "cannot unmount '" + path + "': pool or dataset is busy\n"; command.Stderr(err) != want {
		t.Errorf("destroy of a jail's root: %v, want %q", err, want)
	}
	if _, err := run(t, h, "jail", "-f", conf, "-c", "a"); command.Stderr(err) != `jail: "a" already exists`+"\n" {
		t.Errorf("second jail -c: %v", err)
	}
	if out, err := run(t, h, "jail", "-f", conf, "-r", "a"); err != nil || out != "a: removed\n" {
		t.Fatalf("jail -r = %q, %v", out, err)
	}
	if _, err := run(t, h, "jls", "-j", "a"); command.Stderr(err) != `jls: jail "a" not found`+"\n" {
		t.Errorf("jls -j after jail -r: %v", err)
	}
	if _, err := run(t, h, "jail", "-r", "a"); command.Stderr(err) != `jail: "a" not found`+"\n" {
		t.Errorf("second jail -r: %v", err)
	}
	if got := h.Addrs("lo1"); len(got) != 1 {
		t.Errorf("jail -r left the alias: %v", got)
	}
	if _, err := run(t, h, "zfs", "destroy", "-r", "zroot/jails/containers/a"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("root after destroy: %v", err)
	}
}

// TestRefusals: what the real host refuses, with its text.
func TestRefusals(t *testing.T) {
	h, root := prepared(t)
	snap := "zroot/jails/templates/14.3-RELEASE@base"
	h.MustRun(t, "zfs", "clone", snap, "zroot/jails/containers/a")
	conf := writeConf(t, t.TempDir(), "a", filepath.Join(root, "containers", "a"), "172.16.0.2")
	h.AddInterface("lo1", netip.MustParsePrefix("172.16.0.2/32")) // a crash leftover
	tests := []struct {
		argv []string
		want string
	}{
		{[]string{"jail", "-f", conf, "-c", "a"}, "ifconfig: ioctl (SIOCAIFADDR): File exists\njail: a: /sbin/ifconfig lo1 inet 172.16.0.2/32 alias: failed\n"},
		{[]string{"jls", "-j", "nope"}, `jls: jail "nope" not found` + "\n"},
		{[]string{"ifconfig", "lo9"}, "ifconfig: interface lo9 does not exist\n"},
		{[]string{"zfs", "clone", snap, "zroot/jails/containers/a"}, "cannot create 'zroot/jails/containers/a': dataset already exists\n"},
		{[]string{"zfs", "snapshot", snap}, "cannot create snapshot '" + snap + "': dataset already exists\n"},
		{[]string{"zfs", "get", "-Hp", "all", "zroot/nope"}, "cannot open 'zroot/nope': dataset does not exist\n"},
		{[]string{"zfs", "destroy", snap}, "cannot destroy '" + snap + "': snapshot has dependent clones\nuse '-R' to destroy the following datasets:\nzroot/jails/containers/a\n"},
		{[]string{"zfs", "destroy", "-r", "zroot/jails/templates"}, "cannot destroy 'zroot/jails/templates': filesystem has dependent clones\nuse '-R' to destroy the following datasets:\nzroot/jails/containers/a\n"},
	}
	// A dry run (-n) finds the dependents too.
	tests = append(tests, struct {
		argv []string
		want string
	}{[]string{"zfs", "destroy", "-n", "-r", "zroot/jails/templates"}, tests[len(tests)-1].want})
	for _, tt := range tests {
		_, err := run(t, h, tt.argv...)
		if code, _ := command.ExitCode(err); code != 1 || command.Stderr(err) != tt.want {
			t.Errorf("%s: exit %d %q, want exit 1 %q", command.Quote(tt.argv), code, command.Stderr(err), tt.want)
		}
	}
	if _, err := run(t, h, "zfs", "destroy", "-n", "-r", "zroot/jails/containers/a"); err != nil {
		t.Errorf("dry run: %v", err)
	}
	if _, ok := h.Dataset("zroot/jails/containers/a"); !ok {
		t.Error("a dry run destroyed the dataset")
	}
	if got := h.Addrs("lo1"); len(got) != 2 {
		t.Errorf("a failed jail -c changed lo1: %v", got)
	}
	if js := h.Jails(); len(js) != 0 {
		t.Errorf("a failed jail -c left %v", js)
	}
}

// TestDatasets runs the zfs client the FreeBSD runtime uses against the
// fake: properties, inventory, snapshots and busy retries.
func TestDatasets(t *testing.T) {
	ctx := context.Background()
	h, root := prepared(t)
	z := zfs.New(h).WithDestroyBackoff(0, 0)
	jailstest.AddTemplate(t, h, "zroot/jails/templates/other", "s1")
	h.MustRun(t, "zfs", "snapshot", "zroot/jails/templates/other@s2")
	snaps, err := z.Snapshots(ctx, "zroot/jails/templates/other")
	if err != nil || len(snaps) != 2 || snaps[1].Name != "zroot/jails/templates/other@s2" {
		t.Fatalf("Snapshots = %v, %v", snaps, err)
	}
	name := "zroot/jails/containers/x"
	d, err := z.Clone(ctx, snaps[1].Name, name, map[string]string{"jailkeeper:managed": "yes", "jailkeeper:state": "creating"})
	if err != nil {
		t.Fatal(err)
	}
	if d.Mountpoint != filepath.Join(root, "containers/x") || d.Origin != snaps[1].Name {
		t.Errorf("Clone = %+v", d)
	}
	if b, err := os.ReadFile(filepath.Join(d.Mountpoint, "etc/passwd")); err != nil || string(b) != jailstest.Passwd {
		t.Errorf("clone's files: %q %v", b, err)
	}
	if err := z.SetProps(ctx, name, map[string]string{"jailkeeper:state": "ready", "jailkeeper:reason": ""}); err != nil {
		t.Fatal(err)
	}
	inv, err := z.Inventory(ctx, "zroot/jails/containers")
	if err != nil {
		t.Fatal(err)
	}
	want := []zfs.Dataset{
		{Name: "zroot/jails/containers", Mountpoint: filepath.Join(root, "containers"), Props: map[string]string{}},
		{Name: name, Mountpoint: d.Mountpoint, Origin: snaps[1].Name, Props: map[string]string{"jailkeeper:managed": "yes", "jailkeeper:state": "ready"}},
	}
	if diff := cmp.Diff(want, inv); diff != "" {
		t.Errorf("Inventory (-want +got):\n%s", diff)
	}
	// The inherited property does not count (only local ones do).
	out := h.MustRun(t, "zfs", "get", "-Hp", "-r", "-t", "filesystem", "-o", "name,property,value,source", "all", "zroot/jails/containers")
	got, err := zfs.ParseGet(bytes.NewReader([]byte(out)))
	if err != nil || len(got) != 2 {
		t.Errorf("ParseGet: %v %v", got, err)
	}

	h.SetBusy(name, 2)
	if err := z.Destroy(ctx, name, 1); !errors.Is(err, zfs.ErrBusy) {
		t.Errorf("Destroy busy twice with 1 retry = %v, want ErrBusy", err)
	}
	h.SetBusy(name, 1)
	if err := z.Destroy(ctx, name, 1); err != nil {
		t.Errorf("Destroy busy once with 1 retry = %v", err)
	}
	if err := z.Destroy(ctx, name, 1); !errors.Is(err, zfs.ErrNotFound) {
		t.Errorf("Destroy of a destroyed dataset = %v, want ErrNotFound", err)
	}
	if _, ok := h.Dataset(name); ok {
		t.Error("dataset still there")
	}
}

func TestFaults(t *testing.T) {
	h, _ := prepared(t)
	h.SetFault(jailstest.FailOnce([]string{"zfs", "create"}, jailstest.Fault{After: true, Stderr: "lost\n"}))
	if _, err := run(t, h, "zfs", "create", "zroot/jails/x"); command.Stderr(err) != "lost\n" {
		t.Fatalf("faulted create: %v", err)
	}
	if _, ok := h.Dataset("zroot/jails/x"); !ok {
		t.Error("a fault after the command undid it")
	}
	if _, err := run(t, h, "zfs", "create", "zroot/jails/y"); err != nil {
		t.Errorf("FailOnce failed twice: %v", err)
	}
}

// TestDying: a removed jail stays DYING, listed by jls -d only, for the
// polls SetDying says, then goes.
func TestDying(t *testing.T) {
	h, root := prepared(t)
	h.MustRun(t, "zfs", "clone", "zroot/jails/templates/14.3-RELEASE@base", "zroot/jails/containers/a")
	conf := writeConf(t, t.TempDir(), "a", filepath.Join(root, "containers", "a"), "172.16.0.2")
	h.MustRun(t, "jail", "-f", conf, "-c", "a")
	h.SetDying(2)
	h.MustRun(t, "jail", "-f", conf, "-r", "a")
	if _, err := run(t, h, "jls", "-j", "a"); command.Stderr(err) != `jls: jail "a" is dying`+"\n" {
		t.Errorf("jls -j of a dying jail: %v", err)
	}
	for i, want := range []string{"DYING", "DYING", ""} {
		js, err := jails.ParseJLS(strings.NewReader(h.MustRun(t, "jls", "--libxo=json", "-v", "-d")))
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		if len(js) == 1 {
			got = js[0].State
		}
		if got != want {
			t.Errorf("jls -d poll %d: state %q, want %q (%+v)", i, got, want, js)
		}
	}
	if !strings.Contains(h.Transcript(), "jail -f "+conf+" -r a\n") {
		t.Errorf("transcript:\n%s", h.Transcript())
	}
}
