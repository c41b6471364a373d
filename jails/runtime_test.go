package jails_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jailkeeper/jailkeeper/internal/command/commandtest"
	"github.com/jailkeeper/jailkeeper/internal/golden"
	"github.com/jailkeeper/jailkeeper/internal/testenv"
	"github.com/jailkeeper/jailkeeper/jails"
	"github.com/jailkeeper/jailkeeper/reconcile"
	"github.com/jailkeeper/jailkeeper/release"
	"github.com/jailkeeper/jailkeeper/zfs"
)

// The FreeBSD runtime is what the reconciler drives.
var _ reconcile.Runtime = (*jails.FreeBSD)(nil)

const (
	relName = "hello_4b825dc642cb_1a2b3c"
	relDS   = "zroot/jails/containers/" + relName
)

var (
	jlsArgv      = []string{"jls", "--libxo=json", "-v", "-d"}
	jlsJArgv     = []string{"jls", "-j", relName}
	ifconfigArgv = []string{"ifconfig", "-a"}
	mountArgv    = []string{"mount", "-p", "--libxo=json"}
)

// Verbatim stderr texts from testdata/freebsd/errors.md.
const (
	// "jls(8) - jls -j NAME for a jail that does not exist", REAL.
	jlsNotFound = `jls: jail "` + relName + `" not found` + "\n"
	// "jail(8) - jail -c when that alias address is already configured on
	// the interface", REAL, FreeBSD 14.1 (Bastille #730).
	jailAliasExists = "ifconfig: ioctl (SIOCAIFADDR): File exists\n" +
		"jail: spamd: /sbin/ifconfig bastille0 inet 10.13.0.8 netmask 255.255.255.255 alias: failed\n"
	// "zfs - destroy ... while the dataset is mounted and busy", REAL (FreeBSD).
	zfsBusy = "cannot unmount '/jails/containers/thejail': pool or dataset is busy\n"
)

type harness struct {
	t       *testing.T
	r       *commandtest.Replay
	z       *fakeZFS
	f       *jails.FreeBSD
	tmp     string
	root    string // Root of the runtime
	confDir string
	logDir  string
	spec    release.Spec
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	tmp := t.TempDir()
	h := &harness{t: t, r: &commandtest.Replay{}, tmp: tmp,
		root: filepath.Join(tmp, "jails"), confDir: filepath.Join(tmp, "jail.conf.d"), logDir: filepath.Join(tmp, "log")}
	for _, d := range []string{h.confDir, h.logDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	h.z = newFakeZFS(h.r, "zroot/jails", h.root)
	if err := h.z.addTemplate("14.3-RELEASE", "base", "base-20250101-000000"); err != nil {
		t.Fatal(err)
	}
	f, err := jails.NewFreeBSD(jails.FreeBSDConfig{
		Dataset:      "zroot/jails",
		Root:         h.root,
		Template:     "14.3-RELEASE",
		Interface:    "lo1",
		ConfDir:      h.confDir,
		Pool:         netip.MustParsePrefix("172.16.0.0/12"),
		DyingTimeout: 50 * time.Millisecond,
		PollInterval: time.Millisecond,
		LogDir:       h.logDir,
		Runner:       h.r,
		Datasets:     h.z,
		Now:          func() time.Time { return time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC) },
	})
	if err != nil {
		t.Fatal(err)
	}
	h.f = f
	art := filepath.Join(tmp, "hello")
	if err := os.WriteFile(art, []byte("#!/bin/sh\necho hello\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	secrets := filepath.Join(tmp, "hello.env")
	if err := os.WriteFile(secrets, []byte("TOKEN=s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h.spec = release.Spec{
		Name:     relName,
		Service:  "hello",
		SHA:      "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
		Spec:     "1a2b3c" + strings.Repeat("0", 58),
		Port:     8080,
		Command:  []string{"/usr/local/bin/hello"},
		Env:      map[string]string{"GREETING": "hi"},
		EnvFile:  secrets,
		User:     "www",
		Artifact: art,
	}
	// The host as the captures show it: lo1 with three aliases outside
	// the pool (FreeBSD 14.0), no jails, nothing mounted below the root.
	h.r.On(ifconfigArgv, h.file("ifconfig-lo1-14.0.txt"))
	h.r.On(jlsArgv, h.file("jls-libxo-json-empty.txt"))
	h.r.On(mountArgv, commandtest.OK(`{"mount": {"fstab": []}}`+"\n"))
	return h
}

func (h *harness) file(name string) commandtest.Response {
	h.t.Helper()
	return commandtest.File(h.t, filepath.Join("testdata", "freebsd", name))
}

// mounts is the derived mount -p --libxo=json fixture with the release's
// root in place of @ROOT@.
func (h *harness) mounts() commandtest.Response {
	b := fixture(h.t, "mount-p-libxo.DERIVED.json")
	return commandtest.OK(strings.ReplaceAll(string(b), "@ROOT@", h.relRoot()))
}

func (h *harness) relRoot() string  { return filepath.Join(h.root, "containers", relName) }
func (h *harness) confPath() string { return filepath.Join(h.confDir, relName+".conf") }

// transcript is the Replay transcript with the temporary directory shown
// as <tmp>.
func (h *harness) transcript() string {
	return strings.ReplaceAll(h.r.Transcript(), h.tmp, "<tmp>")
}

func (h *harness) create() release.Release {
	h.t.Helper()
	rel, err := h.f.Create(context.Background(), h.spec)
	if err != nil {
		h.t.Fatal(err)
	}
	return rel
}

func TestFreeBSDSequence(t *testing.T) {
	testenv.Root(t) // the env file is chowned to the jail's www
	h := newHarness(t)
	ctx := context.Background()
	var b strings.Builder
	step := func(name string) {
		b.WriteString("# " + name + "\n" + h.transcript())
		h.r.Reset()
	}

	rel := h.create()
	step("create")
	if rel.State != release.StateReady || rel.IP != netip.MustParseAddr("172.16.0.2") || rel.Addr() != "172.16.0.2:8080" {
		t.Errorf("created %+v", rel)
	}
	if got := h.z.prop(relDS, "jailkeeper:state"); got != "ready" {
		t.Errorf("state property %q", got)
	}
	root := h.relRoot()
	for _, p := range []string{"usr/local/bin/hello", "usr/local/etc/rc.d/hello", "usr/local/etc/newsyslog.conf.d/hello.conf"} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("installed: %v", err)
		}
	}
	// The rc variables are files of the jail's /etc/rc.conf.d, written from
	// Go: no sysrc, and no rc.conf of the jail touched.
	for p, want := range map[string]string{
		"etc/rc.conf.d/hello":    `hello_enable="YES"`,
		"etc/rc.conf.d/syslogd":  `syslogd_flags="-ss"`,
		"etc/rc.conf.d/sendmail": `sendmail_enable="NONE"`, // rc.d/sendmail: no MTA at all
	} {
		if b, err := os.ReadFile(filepath.Join(root, p)); err != nil || !strings.Contains(string(b), want+"\n") {
			t.Errorf("%s: %q %v, want a line %s", p, b, err, want)
		}
	}
	if _, err := os.Lstat(filepath.Join(root, "etc/rc.conf")); !os.IsNotExist(err) {
		t.Errorf("the jail's etc/rc.conf was created: %v", err)
	}
	env := filepath.Join(root, "usr/local/etc/jailkeeper/hello.env")
	// root's, readable by www's group (80 in the jail's /etc/passwd): the
	// app reads it after daemon -u, and cannot change it.
	if st, err := os.Stat(env); err != nil || st.Mode().Perm() != 0o640 {
		t.Errorf("env file: %v %v, want mode 0640", st, err)
	} else if uid, gid := fileOwner(t, st); uid != 0 || gid != 80 {
		t.Errorf("env file owned by %d:%d, want root and www's group (0:80)", uid, gid)
	}
	envText, _ := os.ReadFile(env)
	for _, want := range []string{"GREETING='hi'", "TOKEN='s3cret'", "PORT='8080'", "HOST='172.16.0.2'", "ADDR='172.16.0.2:8080'"} {
		if !strings.Contains(string(envText), want+"\n") {
			t.Errorf("env file lacks %s:\n%s", want, envText)
		}
	}
	conf, err := os.ReadFile(h.confPath())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(conf), `ip4.addr = "lo1|172.16.0.2/32";`) || !strings.Contains(string(conf), `path = "`+root+`";`) {
		t.Errorf("conf:\n%s", conf)
	}

	rels, err := h.f.List(ctx)
	if err != nil || len(rels) != 1 || rels[0].Name != relName || rels[0].Running || !rels[0].Created.Equal(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)) {
		t.Errorf("List = %+v, %v", rels, err)
	}
	step("list")

	h.r.On(jlsJArgv, commandtest.OK(""))
	if err := h.f.Start(ctx, relName); err != nil {
		t.Fatal(err)
	}
	step("start")

	h.r.On(jlsArgv, h.file("jls-v-release-active.DERIVED.json"))
	if up, err := h.f.Running(ctx, relName); err != nil || !up {
		t.Errorf("Running = %v, %v", up, err)
	}
	if err := h.f.Start(ctx, relName); err != nil { // already running: nothing to do
		t.Fatal(err)
	}
	if err := h.f.SetStatus(ctx, relName, release.Status{State: release.StateLive}); err != nil {
		t.Fatal(err)
	}
	step("running, start again, set status live")

	h.r.On(jlsArgv, h.file("jls-v-release-active.DERIVED.json"), h.file("jls-libxo-json-empty.txt"))
	if err := h.f.Stop(ctx, relName); err != nil {
		t.Fatal(err)
	}
	if err := h.f.Stop(ctx, relName); err != nil { // stopped already
		t.Fatal(err)
	}
	failedAt := time.Date(2026, 11, 25, 12, 5, 0, 0, time.UTC)
	if err := h.f.SetStatus(ctx, relName, release.Status{State: release.StateFailed, Reason: "health: GET /up: 503\nService Unavailable", Failures: 2, FailedAt: failedAt}); err != nil {
		t.Fatal(err)
	}
	rels, err = h.f.List(ctx)
	if err != nil || rels[0].State != release.StateFailed || rels[0].Failures != 2 || !rels[0].FailedAt.Equal(failedAt) || rels[0].Reason != "health: GET /up: 503 Service Unavailable" {
		t.Errorf("after SetStatus: %+v %v", rels, err)
	}
	step("stop, stop again, set status failed, list")

	h.r.On(mountArgv, h.mounts())
	if err := h.f.Destroy(ctx, relName); err != nil {
		t.Fatal(err)
	}
	if h.z.has(relDS) {
		t.Error("dataset still there")
	}
	if _, err := os.Stat(h.confPath()); !os.IsNotExist(err) {
		t.Errorf("conf still there: %v", err)
	}
	h.r.On(mountArgv, commandtest.OK(`{"mount": {"fstab": []}}`+"\n"))
	if err := h.f.Destroy(ctx, relName); err != nil { // gone already
		t.Errorf("second destroy: %v", err)
	}
	step("destroy, destroy again")
	golden.Assert(t, "testdata/freebsd/golden/sequence.transcript", []byte(
		"# The FreeBSD runtime's commands for one release's life (TestFreeBSDSequence).\n"+
			"# The zfs lines are what the zfs package runs, recorded by the test's Datasets fake.\n"+b.String()))
}

func TestFreeBSDConcurrentCreatesGetDistinctAddresses(t *testing.T) {
	testenv.Root(t)
	h := newHarness(t)
	specs := []release.Spec{h.spec, h.spec, h.spec}
	for i, svc := range []string{"hello", "world", "third"} {
		specs[i].Service = svc
		specs[i].Name = svc + "_4b825dc642cb_1a2b3c"
	}
	ips := make([]netip.Addr, len(specs))
	errs := make([]error, len(specs))
	var wg sync.WaitGroup
	for i := range specs {
		wg.Go(func() {
			var rel release.Release
			rel, errs[i] = h.f.Create(context.Background(), specs[i])
			ips[i] = rel.IP
		})
	}
	wg.Wait()
	seen := map[netip.Addr]bool{}
	for i, ip := range ips {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if seen[ip] {
			t.Errorf("address %s handed out twice: %v", ip, ips)
		}
		seen[ip] = true
	}
}

func TestFreeBSDCreateUsesNewestSnapshotAndRCNameFallback(t *testing.T) {
	testenv.Root(t)
	h := newHarness(t)
	h.spec.Service = "cron"
	h.spec.Name = "cron_4b825dc642cb_1a2b3c"
	if _, err := h.f.Create(context.Background(), h.spec); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(h.r.Transcript(), "zroot/jails/templates/14.3-RELEASE@base-20250101-000000 zroot/jails/containers/cron_") {
		t.Errorf("not cloned from the newest snapshot:\n%s", h.r.Transcript())
	}
	// The base system has /etc/rc.d/cron: the app's script gets another name.
	root := filepath.Join(h.root, "containers", h.spec.Name)
	if _, err := os.Stat(filepath.Join(root, "usr/local/etc/rc.d/jailkeeper_cron")); err != nil {
		t.Error(err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "etc/rc.conf.d/jailkeeper_cron")); err != nil || !strings.Contains(string(b), "\njailkeeper_cron_enable=\"YES\"\n") {
		t.Errorf("rc.conf.d not set for jailkeeper_cron: %q %v", b, err)
	}
}

func TestFreeBSDCreateFailureUndoes(t *testing.T) {
	testenv.Root(t)
	h := newHarness(t)
	// A directory where the service's rc.conf.d file goes: the install
	// fails half-way, after the artifact and the rc.d script.
	if err := os.MkdirAll(filepath.Join(h.root, "templates/14.3-RELEASE/etc/rc.conf.d/hello"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := h.f.Create(context.Background(), h.spec)
	if err == nil {
		t.Fatal("create succeeded")
	}
	if h.z.has(relDS) {
		t.Error("clone left behind")
	}
	if _, err := os.Stat(h.confPath()); !os.IsNotExist(err) {
		t.Errorf("conf left behind: %v", err)
	}
	if !strings.Contains(h.r.Transcript(), "zfs destroy -r "+relDS) {
		t.Errorf("no destroy in\n%s", h.r.Transcript())
	}
}

// tarEntry is one entry of a test artifact: a regular file (Link empty,
// Dir false), a directory or a symbolic link to Link.
type tarEntry struct {
	Name, Body, Link string
	Dir              bool
}

// writeTarball writes entries as a gzip'd tar, the artifact format.
func writeTarball(t *testing.T, path string, entries []tarEntry) {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.Name, Mode: 0o755, Typeflag: tar.TypeReg, Size: int64(len(e.Body))}
		switch {
		case e.Dir:
			hdr.Typeflag, hdr.Size = tar.TypeDir, 0
		case e.Link != "":
			hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeSymlink, e.Link, 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(e.Body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// The artifact is untrusted input to the host: it can replace any file of
// the jail. A tarball with an etc/rc.conf that runs a command when sourced,
// and symbolic links where jailkeeper writes: nothing runs on the host, no
// host tool reads the jail's rc.conf (no sysrc -f), nothing is written
// outside the release's root or through a link.
func TestFreeBSDCreateHostileArtifact(t *testing.T) {
	testenv.Root(t)
	hello := tarEntry{Name: "usr/local/bin/hello", Body: "#!/bin/sh\n"}
	tests := []struct {
		name    string
		entries func(outside string) []tarEntry
		wantErr string // "" : create succeeds
	}{
		{
			name: "link out of the root",
			entries: func(outside string) []tarEntry {
				return []tarEntry{hello, {Name: "etc/rc.conf.d", Link: outside}}
			},
			wantErr: "etc/rc.conf.d", // refused by artifact.Install or by jailkeeper's writes
		},
		{
			name: "link inside the root on a directory jailkeeper writes into",
			entries: func(string) []tarEntry {
				return []tarEntry{hello, {Name: "var/planted", Dir: true}, {Name: "etc/rc.conf.d", Link: "../var/planted"}}
			},
			wantErr: "symbolic link",
		},
		{
			name: "links inside the root on files jailkeeper writes",
			entries: func(string) []tarEntry {
				return []tarEntry{hello, {Name: "etc/planted", Body: "planted\n"},
					{Name: "etc/rc.conf.d/hello", Link: "../planted"},
					{Name: "usr/local/etc/jailkeeper/hello.env", Link: "../../../../etc/planted"}}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			outside := t.TempDir()
			marker := filepath.Join(outside, "ran")
			entries := append(tt.entries(outside), tarEntry{Name: "etc/rc.conf", Body: "x=$(touch " + marker + ")\nhello_enable=NO\n"})
			h.spec.Artifact = filepath.Join(h.tmp, "hello.tar.gz")
			writeTarball(t, h.spec.Artifact, entries)

			_, err := h.f.Create(context.Background(), h.spec)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Create = %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Create = %v, want an error about %q", err, tt.wantErr)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Error("the artifact's rc.conf was run on the host")
			}
			if left, _ := os.ReadDir(outside); len(left) != 0 {
				t.Errorf("written outside the release's root: %v", left)
			}
			if strings.Contains(h.r.Transcript(), "sysrc") {
				t.Errorf("a host tool read the jail's files:\n%s", h.r.Transcript())
			}
			if err != nil {
				if h.z.has(relDS) {
					t.Error("clone left behind")
				}
				return
			}
			root := h.relRoot()
			if b, _ := os.ReadFile(filepath.Join(root, "etc/planted")); string(b) != "planted\n" {
				t.Errorf("written through a link: etc/planted = %q", b)
			}
			for _, p := range []string{"etc/rc.conf.d/hello", "usr/local/etc/jailkeeper/hello.env"} {
				if fi, err := os.Lstat(filepath.Join(root, p)); err != nil || !fi.Mode().IsRegular() {
					t.Errorf("%s: %v %v, want jailkeeper's regular file in place of the link", p, fi, err)
				}
			}
		})
	}
}

// zfs clone created the dataset but reading it back failed: the clone is
// destroyed, not left to block the release name.
func TestFreeBSDCreateUndoesCloneWhenReadBackFails(t *testing.T) {
	testenv.Root(t)
	h := newHarness(t)
	// No captured text: the exit status is what counts.
	h.r.On([]string{"zfs", "list", "-H", "-o", "mountpoint,origin", relDS}, commandtest.Fail(1, ""))
	if _, err := h.f.Create(context.Background(), h.spec); err == nil {
		t.Fatal("create succeeded")
	}
	if h.z.has(relDS) {
		t.Errorf("clone left behind:\n%s", h.r.Transcript())
	}
	if !strings.Contains(h.r.Transcript(), "zfs destroy -r "+relDS+"\n") {
		t.Errorf("no destroy in\n%s", h.r.Transcript())
	}

	// The name taken by someone else meanwhile (zfs clone says it exists):
	// that dataset is not ours to destroy.
	h = newHarness(t)
	// errors.md "zfs clone or create onto an existing name", REAL.
	h.r.OnPrefix([]string{"zfs", "clone"}, commandtest.Fail(1, "cannot create '"+relDS+"': dataset already exists\n"))
	if _, err := h.f.Create(context.Background(), h.spec); !errors.Is(err, zfs.ErrExists) {
		t.Fatalf("create = %v, want ErrExists", err)
	}
	if strings.Contains(h.r.Transcript(), "zfs destroy") {
		t.Errorf("destroyed a dataset it did not create:\n%s", h.r.Transcript())
	}
}

func TestFreeBSDCreateRefusals(t *testing.T) {
	testenv.Root(t)
	ctx := context.Background()
	h := newHarness(t)
	bad := h.spec
	bad.Template = "13.0-RELEASE"
	if _, err := h.f.Create(ctx, bad); !errors.Is(err, release.ErrNoTemplate) {
		t.Errorf("missing template: %v", err)
	}
	bad = h.spec
	bad.User = "nobody"
	if _, err := h.f.Create(ctx, bad); err == nil || !strings.Contains(err.Error(), "nobody") || h.z.has(relDS) {
		t.Errorf("unknown user: %v (dataset left: %v)", err, h.z.has(relDS))
	}
	for _, mod := range []func(*release.Spec){
		func(s *release.Spec) { s.Service = "other" },
		func(s *release.Spec) { s.Command = []string{"hello"} },
		func(s *release.Spec) { s.Allow = []string{"raw_sockets; persist"} },
		func(s *release.Spec) { s.Env = map[string]string{"A B": "x"} },
		func(s *release.Spec) { s.User = "root;x" },
		func(s *release.Spec) { s.Template = "14.3:RELEASE" },
		func(s *release.Spec) { s.Template = "a b" },
	} {
		s := h.spec
		mod(&s)
		if _, err := h.f.Create(ctx, s); err == nil {
			t.Errorf("spec %+v accepted", s)
		}
	}
	h.create()
	if _, err := h.f.Create(ctx, h.spec); !errors.Is(err, zfs.ErrExists) {
		t.Errorf("second create: %v", err)
	}
}

func TestFreeBSDCreateReplacesCloneLeftover(t *testing.T) {
	testenv.Root(t)
	h := newHarness(t)
	// A clone whose properties were never set (a crash inside zfs clone).
	h.z.props[relDS] = map[string]string{}
	if err := os.MkdirAll(h.relRoot(), 0o755); err != nil {
		t.Fatal(err)
	}
	rel := h.create()
	if rel.State != release.StateReady || h.z.prop(relDS, "jailkeeper:managed") != "yes" {
		t.Errorf("created %+v", rel)
	}
	if !strings.Contains(h.r.Transcript(), "zfs destroy -r "+relDS+"\n") {
		t.Errorf("leftover not destroyed:\n%s", h.r.Transcript())
	}
}

func TestFreeBSDStartJailFails(t *testing.T) {
	testenv.Root(t)
	h := newHarness(t)
	h.create()
	h.r.Reset()
	h.r.On([]string{"jail", "-f", h.confPath(), "-c", relName}, commandtest.Fail(1, jailAliasExists))
	err := h.f.Start(context.Background(), relName)
	if err == nil || !strings.Contains(err.Error(), "SIOCAIFADDR: File exists") && !strings.Contains(err.Error(), "(SIOCAIFADDR): File exists") {
		t.Fatalf("Start = %v, want the jail -c error", err)
	}
	if !errors.Is(err, release.ErrAddressInUse) {
		t.Errorf("Start = %v, want release.ErrAddressInUse: the address was added meanwhile, no fault of the release", err)
	}
	if strings.Contains(h.r.Transcript(), "jls -j") {
		t.Error("jls -j ran after jail -c failed")
	}

	// "already exists" while the jail runs: someone else started it.
	h.r.On([]string{"jail", "-f", h.confPath(), "-c", relName}, commandtest.Fail(1, `jail: "`+relName+`" already exists`+"\n"))
	h.r.On(jlsJArgv, commandtest.OK(""))
	if err := h.f.Start(context.Background(), relName); err != nil {
		t.Errorf("already exists and running: %v", err)
	}

	// jail -c "succeeds" but the jail is gone at once (nothing kept it up).
	h.r.On([]string{"jail", "-f", h.confPath(), "-c", relName}, commandtest.OK(relName+": created\n"))
	h.r.On(jlsJArgv, commandtest.Fail(1, jlsNotFound))
	if err := h.f.Start(context.Background(), relName); err == nil || !strings.Contains(err.Error(), "does not find") {
		t.Errorf("jail vanished: %v", err)
	}
}

func TestFreeBSDStartRemovesStaleAliasAndRefusesTakenAddress(t *testing.T) {
	testenv.Root(t)
	h := newHarness(t)
	h.create()
	// lo1 still has the release's address from a crash (the 12.x capture's
	// block with the release's address in it), and no jail holds it.
	stale := strings.Replace(string(fixture(t, "ifconfig-lo1-12.1.txt")), "172.31.255.17", "172.16.0.2", 1)
	h.r.On(ifconfigArgv, commandtest.OK(stale))
	h.r.On(jlsJArgv, commandtest.OK(""))
	h.r.Reset()
	if err := h.f.Start(context.Background(), relName); err != nil {
		t.Fatal(err)
	}
	want := "ifconfig lo1 inet 172.16.0.2 -alias\njail -f <tmp>/jail.conf.d/" + relName + ".conf -c " + relName + "\n"
	if !strings.Contains(h.transcript(), want) {
		t.Errorf("transcript lacks\n%s\ngot:\n%s", want, h.transcript())
	}

	// Now another jail holds the address: refused, jail -c not run.
	h.r.On(jlsArgv, h.file("jls-libxo-json-empty.txt"), h.file("jls-v-other-holds-ip.DERIVED.json"))
	h.r.Reset()
	err := h.f.Start(context.Background(), relName)
	if !errors.Is(err, jails.ErrAddressTaken) || !strings.Contains(err.Error(), `"other"`) {
		t.Errorf("Start = %v, want ErrAddressTaken naming the jail", err)
	}
	if !errors.Is(err, release.ErrAddressInUse) {
		t.Errorf("Start = %v, want release.ErrAddressInUse, for reconcile to retry elsewhere", err)
	}
	if strings.Contains(h.r.Transcript(), "jail -f") || strings.Contains(h.r.Transcript(), "-alias") {
		t.Errorf("acted on a taken address:\n%s", h.r.Transcript())
	}
}

func TestFreeBSDAllocate(t *testing.T) {
	testenv.Root(t)
	tests := []struct {
		name     string
		pool     string
		ifconfig string
		jls      string
		released map[string]string // other releases on the host: name -> jailkeeper:ip
		wantIP   string
		wantCmds []string // the only ifconfig changes that must run
	}{
		{
			// lo1's own address (the pool's first) and two jails' take .97-.99.
			name: "skip own and jail addresses", pool: "172.16.20.96/28",
			ifconfig: "ifconfig-lo1-14.0.txt", jls: "jls-libxo-json-v.3jails.json", wantIP: "172.16.20.100",
		},
		{
			// 172.31.255.17 is lo1's address from rc.conf in the capture
			// (ifconfig_lo1="172.31.255.17/32"), inside the pool but not the
			// pool's first address. No release has it: it is left alone
			// and not handed out.
			name: "interface's configured address kept", pool: "172.31.255.0/24",
			ifconfig: "ifconfig-lo1-12.1.txt", jls: "jls-libxo-json-empty.txt", wantIP: "172.31.255.2",
		},
		{
			// The same alias, recorded as a stopped release's address, no
			// jail holding it: a crash leftover, removed; the release keeps
			// its address.
			name: "stale alias of a release removed", pool: "172.31.255.0/24",
			ifconfig: "ifconfig-lo1-12.1.txt", jls: "jls-libxo-json-empty.txt",
			released: map[string]string{"old_4b825dc642cb_1a2b3c": "172.31.255.17"},
			wantIP:   "172.31.255.2",
			wantCmds: []string{"ifconfig lo1 inet 172.31.255.17 -alias"},
		},
		{
			// The same address held by a dying jail is not a leftover.
			name: "dying jail keeps its address", pool: "172.16.0.0/29",
			ifconfig: "", jls: "jls-v-release-dying.DERIVED.json", wantIP: "172.16.0.3",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			f, err := jails.NewFreeBSD(jails.FreeBSDConfig{Dataset: "zroot/jails", Root: h.root, Template: "14.3-RELEASE",
				Interface: "lo1", ConfDir: h.confDir, LogDir: h.logDir, Pool: netip.MustParsePrefix(tt.pool), Runner: h.r, Datasets: h.z})
			if err != nil {
				t.Fatal(err)
			}
			if tt.ifconfig != "" {
				h.r.On(ifconfigArgv, h.file(tt.ifconfig))
			} else {
				h.r.On(ifconfigArgv, commandtest.OK(""))
			}
			h.r.On(jlsArgv, h.file(tt.jls))
			for name, ip := range tt.released {
				h.z.props["zroot/jails/containers/"+name] = map[string]string{"jailkeeper:managed": "yes",
					"jailkeeper:service": "old", "jailkeeper:state": "retired", "jailkeeper:ip": ip}
			}
			rel, err := f.Create(context.Background(), h.spec)
			if err != nil {
				t.Fatal(err)
			}
			if rel.IP.String() != tt.wantIP {
				t.Errorf("IP %s, want %s", rel.IP, tt.wantIP)
			}
			var changes []string
			for _, c := range h.r.Calls() {
				if c.Argv[0] == "ifconfig" && len(c.Argv) > 2 {
					changes = append(changes, strings.Join(c.Argv, " "))
				}
			}
			if diff := cmp.Diff(tt.wantCmds, changes); diff != "" {
				t.Errorf("ifconfig changes (-want +got):\n%s", diff)
			}
		})
	}

	// A full pool: /30 has two hosts, the first is lo1's own.
	h := newHarness(t)
	f, _ := jails.NewFreeBSD(jails.FreeBSDConfig{Dataset: "zroot/jails", Root: h.root, Template: "14.3-RELEASE",
		Interface: "lo1", ConfDir: h.confDir, LogDir: h.logDir, Pool: netip.MustParsePrefix("172.16.0.0/30"), Runner: h.r, Datasets: h.z})
	h.r.On(jlsArgv, h.file("jls-v-release-dying.DERIVED.json")) // holds 172.16.0.2
	if _, err := f.Create(context.Background(), h.spec); !errors.Is(err, release.ErrPoolExhausted) {
		t.Errorf("full pool: %v", err)
	}
}

// A pool that overlaps the network of an address on another interface is
// refused before anything is cloned. The captures show lo1 only, so the
// runtime's interface is lo2 here and lo1 plays the other interface.
func TestFreeBSDPoolOverlapsOtherInterface(t *testing.T) {
	testenv.Root(t)
	tests := []struct{ ifconfig, pool string }{
		// lo1 192.168.0.1 netmask 0xfffffff8: 192.168.0.0/29.
		{"ifconfig-lo1-pre12-multialias.txt", "192.168.0.0/24"},
		{"ifconfig-lo1-pre12-multialias.txt", "192.168.0.4/30"},
		// lo1 127.0.2.1/32 (and .2, .3), inside the pool.
		{"ifconfig-lo1-14.0.txt", "127.0.2.0/24"},
	}
	for _, tt := range tests {
		h := newHarness(t)
		f, err := jails.NewFreeBSD(jails.FreeBSDConfig{Dataset: "zroot/jails", Root: h.root, Template: "14.3-RELEASE",
			Interface: "lo2", ConfDir: h.confDir, LogDir: h.logDir, Pool: netip.MustParsePrefix(tt.pool), Runner: h.r, Datasets: h.z})
		if err != nil {
			t.Fatal(err)
		}
		h.r.On(ifconfigArgv, h.file(tt.ifconfig))
		_, err = f.Create(context.Background(), h.spec)
		if !errors.Is(err, jails.ErrPoolOverlap) || !strings.Contains(err.Error(), "lo1") {
			t.Errorf("%s with %s: Create = %v, want ErrPoolOverlap naming lo1", tt.pool, tt.ifconfig, err)
		}
		if strings.Contains(h.r.Transcript(), "zfs clone") || strings.Contains(h.r.Transcript(), "-alias") {
			t.Errorf("acted despite the overlap:\n%s", h.r.Transcript())
		}
	}
	// No overlap: the same host, a pool beside lo1's network.
	h := newHarness(t)
	f, _ := jails.NewFreeBSD(jails.FreeBSDConfig{Dataset: "zroot/jails", Root: h.root, Template: "14.3-RELEASE",
		Interface: "lo2", ConfDir: h.confDir, LogDir: h.logDir, Pool: netip.MustParsePrefix("192.168.0.16/29"), Runner: h.r, Datasets: h.z})
	h.r.On(ifconfigArgv, h.file("ifconfig-lo1-pre12-multialias.txt"))
	if rel, err := f.Create(context.Background(), h.spec); err != nil || rel.IP.String() != "192.168.0.18" {
		t.Errorf("Create = %+v, %v; want 192.168.0.18 (.16 network, .17 lo2's own)", rel, err)
	}
}

// Start never removes the interface's own address, even when a release
// records it (a dataset edited by hand, or a pool changed under releases).
func TestFreeBSDStartRefusesInterfaceAddress(t *testing.T) {
	testenv.Root(t)
	h := newHarness(t)
	h.create()
	if err := h.z.SetProps(context.Background(), relDS, map[string]string{"jailkeeper:ip": "172.16.0.1"}); err != nil {
		t.Fatal(err)
	}
	stale := strings.Replace(string(fixture(t, "ifconfig-lo1-12.1.txt")), "172.31.255.17", "172.16.0.1", 1)
	h.r.On(ifconfigArgv, commandtest.OK(stale))
	h.r.Reset()
	if err := h.f.Start(context.Background(), relName); !errors.Is(err, jails.ErrAddressTaken) {
		t.Errorf("Start = %v, want ErrAddressTaken", err)
	}
	if strings.Contains(h.r.Transcript(), "-alias") || strings.Contains(h.r.Transcript(), "jail -f") {
		t.Errorf("acted on lo1's own address:\n%s", h.r.Transcript())
	}
}

func TestFreeBSDDestroyBusy(t *testing.T) {
	testenv.Root(t)
	h := newHarness(t)
	h.create()
	h.r.Reset()
	h.r.On([]string{"zfs", "destroy", "-r", relDS}, commandtest.Fail(1, zfsBusy))
	err := h.f.Destroy(context.Background(), relName)
	if !errors.Is(err, zfs.ErrBusy) {
		t.Fatalf("Destroy = %v, want ErrBusy", err)
	}
	if n := strings.Count(h.r.Transcript(), "zfs destroy -r "+relDS); n != 6 {
		t.Errorf("%d destroy attempts, want 1 + 5 retries", n)
	}
	// Everything stays for the next pass: dataset, files, conf.
	if !h.z.has(relDS) {
		t.Error("dataset gone")
	}
	if _, err := os.Stat(h.confPath()); err != nil {
		t.Errorf("conf removed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(h.relRoot(), "usr/local/bin/hello")); err != nil {
		t.Errorf("files removed: %v", err)
	}
}

func TestFreeBSDDestroyUnmountsDeepestFirst(t *testing.T) {
	testenv.Root(t)
	h := newHarness(t)
	h.create()
	h.r.Reset()
	h.r.On(mountArgv, h.mounts())
	if err := h.f.Destroy(context.Background(), relName); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range h.r.Calls() {
		if c.Argv[0] == "umount" || c.Argv[0] == "zfs" && c.Argv[1] == "destroy" {
			got = append(got, strings.Join(c.Argv, " "))
		}
	}
	want := []string{
		"umount " + h.relRoot() + "/var/cache/pkg",
		"umount " + h.relRoot() + "/dev",
		"zfs destroy -r " + relDS,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// An unmount that fails stops the destroy: nothing is destroyed while
	// something is still mounted below the root.
	h = newHarness(t)
	h.create()
	h.r.On(mountArgv, h.mounts())
	h.r.On([]string{"umount", h.relRoot() + "/dev"}, commandtest.Fail(1, ""))
	h.r.Reset()
	if err := h.f.Destroy(context.Background(), relName); err == nil {
		t.Fatal("destroy went on after a failed unmount")
	}
	if strings.Contains(h.r.Transcript(), "zfs destroy") || !h.z.has(relDS) {
		t.Errorf("destroyed with a mount left:\n%s", h.r.Transcript())
	}
}

func TestFreeBSDStuckDying(t *testing.T) {
	testenv.Root(t)
	h := newHarness(t)
	h.create()
	h.r.On(jlsArgv, h.file("jls-v-release-dying.DERIVED.json"))
	h.r.Reset()
	ctx := context.Background()
	// Stopping a dying jail: already stopped.
	if err := h.f.Stop(ctx, relName); err != nil {
		t.Errorf("Stop of a dying jail: %v", err)
	}
	if up, err := h.f.Running(ctx, relName); up || err != nil {
		t.Errorf("Running of a dying jail = %v, %v", up, err)
	}
	// Destroy and start wait for it, then give up.
	if err := h.f.Destroy(ctx, relName); !errors.Is(err, jails.ErrDying) {
		t.Errorf("Destroy = %v, want ErrDying", err)
	}
	if err := h.f.Start(ctx, relName); !errors.Is(err, jails.ErrDying) {
		t.Errorf("Start = %v, want ErrDying", err)
	}
	tr := h.r.Transcript()
	if strings.Contains(tr, "jail -") || strings.Contains(tr, "zfs destroy") || strings.Contains(tr, "umount") {
		t.Errorf("acted on a dying jail:\n%s", tr)
	}
	if !h.z.has(relDS) {
		t.Error("dataset destroyed")
	}

	// A jail that finishes dying while we wait: destroyed.
	h.r.On(jlsArgv, h.file("jls-v-release-dying.DERIVED.json"), h.file("jls-v-release-dying.DERIVED.json"), h.file("jls-libxo-json-empty.txt"))
	if err := h.f.Destroy(ctx, relName); err != nil {
		t.Errorf("Destroy after dying ended: %v", err)
	}
}

func TestFreeBSDStopNotFound(t *testing.T) {
	testenv.Root(t)
	h := newHarness(t)
	h.create()
	// jls saw it, but it is gone by the time jail -r runs.
	h.r.On(jlsArgv, h.file("jls-v-release-active.DERIVED.json"), h.file("jls-libxo-json-empty.txt"))
	// errors.md: "jail(8) - jail -r / jail -m on a jail that does not exist", DERIVED.
	h.r.On([]string{"jail", "-f", h.confPath(), "-r", relName}, commandtest.Fail(1, `jail: "`+relName+`" not found`+"\n"))
	if err := h.f.Stop(context.Background(), relName); err != nil {
		t.Errorf("Stop = %v", err)
	}
	// Any other failure is an error.
	h.r.On(jlsArgv, h.file("jls-v-release-active.DERIVED.json"))
	h.r.On([]string{"jail", "-f", h.confPath(), "-r", relName}, commandtest.Fail(1, "jail: "+relName+": jail_remove: Operation not permitted\n"))
	if err := h.f.Stop(context.Background(), relName); err == nil {
		t.Error("Stop ignored a jail -r failure")
	}
}

func TestFreeBSDListSkipsUnmanaged(t *testing.T) {
	testenv.Root(t)
	h := newHarness(t)
	h.create()
	// A dataset an operator made by hand, and one that inherits nothing
	// jailkeeper reads: not releases.
	h.z.props["zroot/jails/containers/manual"] = map[string]string{}
	h.z.props["zroot/jails/containers/"+relName+"/data"] = map[string]string{"jailkeeper:managed": "yes"}
	h.r.On(jlsArgv, h.file("jls-v-release-active.DERIVED.json"))
	rels, err := h.f.List(context.Background())
	if err != nil || len(rels) != 1 || !rels[0].Running || rels[0].Port != 8080 || rels[0].Service != "hello" {
		t.Errorf("List = %+v, %v", rels, err)
	}
	if _, err := h.f.Running(context.Background(), "../etc"); err == nil {
		t.Error("invalid name accepted")
	}
}

func TestNewFreeBSDChecksConfig(t *testing.T) {
	good := jails.FreeBSDConfig{Dataset: "zroot/jails", Root: "/usr/local/jails", Template: "14.3-RELEASE",
		Interface: "lo1", ConfDir: "/etc/jail.conf.d", Pool: netip.MustParsePrefix("172.16.0.0/12")}
	if _, err := jails.NewFreeBSD(good); err != nil {
		t.Fatal(err)
	}
	for _, tmpl := range []string{"15.0-BETA2", "14.3-RELEASE-p2", "custom_base.2", strings.Repeat("a", 64)} {
		c := good
		c.Template = tmpl
		if _, err := jails.NewFreeBSD(c); err != nil {
			t.Errorf("template %q refused: %v", tmpl, err)
		}
	}
	for _, mod := range []func(*jails.FreeBSDConfig){
		func(c *jails.FreeBSDConfig) { c.Dataset = "" },
		func(c *jails.FreeBSDConfig) { c.Root = "jails" },
		func(c *jails.FreeBSDConfig) { c.Interface = "lo1; rm" },
		func(c *jails.FreeBSDConfig) { c.Pool = netip.MustParsePrefix("fd00::/64") },
		func(c *jails.FreeBSDConfig) { c.Pool = netip.MustParsePrefix("172.16.0.0/31") },
		func(c *jails.FreeBSDConfig) { c.Template = "../x" },
		func(c *jails.FreeBSDConfig) { c.Template = "14.3:RELEASE" },
		func(c *jails.FreeBSDConfig) { c.Template = "-o" },
		func(c *jails.FreeBSDConfig) { c.Template = strings.Repeat("a", 65) },
	} {
		c := good
		mod(&c)
		if _, err := jails.NewFreeBSD(c); err == nil {
			t.Errorf("config %+v accepted", c)
		}
	}
}
