package jails

import (
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jailkeeper/jailkeeper/internal/command"
	"github.com/jailkeeper/jailkeeper/internal/golden"
	"github.com/jailkeeper/jailkeeper/internal/testenv"
)

const testRelease = "hello_4b825dc642cb_1a2b3c"

func testRC() rcScript {
	return rcScript{
		RCName:  "hello",
		Service: "hello",
		Release: testRelease,
		User:    "www",
		Command: []string{"/usr/local/bin/hello", "--greeting=it's $HOME", "-v"},
	}
}

func TestRenderJailConf(t *testing.T) {
	c := jailConf{
		Name:        testRelease,
		Service:     "hello",
		Path:        "/usr/local/jails/containers/" + testRelease,
		Interface:   "lo1",
		IP:          netip.MustParseAddr("172.16.0.2"),
		ConsoleLog:  "/var/log/jail_" + testRelease + "_console.log",
		ExecTimeout: 60 * time.Second,
		StopTimeout: 30 * time.Second,
		Allow:       []string{"sysvipc", "raw_sockets", "sysvipc"},
	}
	golden.Assert(t, "testdata/freebsd/golden/jail.conf", c.render())

	// Nothing asked for: every permission the kernel grants by default
	// (JAIL_DEFAULT_ALLOW but suser) is turned off, nothing is granted.
	c.Allow = nil
	var got []string
	for l := range strings.Lines(string(c.render())) {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "allow.") {
			got = append(got, l)
		}
	}
	want := []string{"allow.noreserved_ports;", "allow.noset_hostname;", "allow.nounprivileged_proc_debug;"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("allow.* without a manifest asking (-want +got):\n%s", diff)
	}
	// Asked for: granted, and not also turned off.
	c.Allow = []string{"set_hostname"}
	conf := string(c.render())
	if !strings.Contains(conf, "\tallow.set_hostname;\n") || strings.Contains(conf, "noset_hostname") || !strings.Contains(conf, "allow.noreserved_ports;") {
		t.Errorf("allow set_hostname:\n%s", conf)
	}
	if strings.Contains(conf, "suser") {
		t.Errorf("allow.suser touched:\n%s", conf)
	}
}

func TestJailConfQuote(t *testing.T) {
	if got, want := jailConfQuote(`/a b/$x "q" \`), `"/a b/\$x \"q\" \\"`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestRenderRCScript(t *testing.T) {
	rc := testRC()
	script := mustRender(t, rc)
	golden.Assert(t, "testdata/freebsd/golden/rc.d-hello", script)
	golden.Assert(t, "testdata/freebsd/golden/newsyslog-hello.conf", rc.newsyslogLine())
	golden.Assert(t, "testdata/freebsd/golden/rc.conf.d-hello", rc.rcConf())
	golden.Assert(t, "testdata/freebsd/golden/rc.conf.d-syslogd", syslogdRCConf())
	golden.Assert(t, "testdata/freebsd/golden/rc.conf.d-sendmail", sendmailRCConf())
}

// TestRCScriptShell checks the rendered script with sh -n and then runs it
// as `service hello start` would, with a stand-in for /etc/rc.subr whose
// run_rc_command does what rc.subr's does for start (libexec/rc/rc.subr):
// rc_flags from $flags or ${name}_flags, the start_precmd if any, then
// `eval "$command $rc_flags $command_args"`. /usr/sbin/daemon is a
// stand-in that takes daemon's options (printing them) and runs the rest,
// and the app prints its argv and environment.
//
// The env file sets rc_flags (to a command), PATH and a value full of
// quotes: they must reach the app, and nothing may run in the rc shell.
// If that shell sourced the file, the eval would run the marker command.
func TestRCScriptShell(t *testing.T) {
	sh := testenv.Command(t, "sh")
	rc := testRC()
	dir := t.TempDir()
	script := filepath.Join(dir, "hello")
	if err := os.WriteFile(script, mustRender(t, rc), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(sh, "-n", script).CombinedOutput(); err != nil {
		t.Fatalf("sh -n: %v\n%s", err, out)
	}
	marker := filepath.Join(dir, "ran-as-rc")
	files := map[string]string{
		"rc.subr": `load_rc_config() { :; }
run_rc_command() {
	if [ -n "$flags" ]; then rc_flags=$flags; else eval rc_flags=\$${name}_flags; fi
	eval _precmd=\$${1}_precmd
	[ -n "$_precmd" ] && eval "$_precmd"
	_doit="$command $rc_flags $command_args"
	eval "$_doit"
}
`,
		// daemon's getopt string is "+cfHrSp:P:t:u:m:o:s:T:l:R:" (daemon.c).
		"daemon": `#!/bin/sh
while getopts cfHrSp:P:t:u:m:o:s:T:l:R: o; do echo "daemon -$o $OPTARG"; done
shift $((OPTIND - 1))
exec "$@"
`,
		"app": `#!/bin/sh
for a in "$0" "$@"; do printf 'arg %s\n' "$a"; done
printf 'env GREETING=%s\nenv rc_flags=%s\nenv PATH=%s\n' "$GREETING" "$rc_flags" "$PATH"
`,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	env := filepath.Join(dir, "hello.env")
	greeting := "hi 'there' $USER `x` \"q\""
	if err := os.WriteFile(env, renderJailEnv("hello", "www", map[string]string{
		"GREETING": greeting,
		"rc_flags": "; touch " + marker,
		"PATH":     "/nonexistent",
	}), 0o600); err != nil {
		t.Fatal(err)
	}
	body := strings.NewReplacer(
		". /etc/rc.subr", ". "+filepath.Join(dir, "rc.subr"),
		"command=/usr/sbin/daemon", "command="+filepath.Join(dir, "daemon"),
		rc.envFile(), env,
		rc.Command[0], filepath.Join(dir, "app"),
	).Replace(string(mustRender(t, rc)))
	out, err := exec.Command(sh, "-c", body, "hello", "start").CombinedOutput()
	if err != nil {
		t.Fatalf("running the script: %v\n%s", err, out)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the env file's rc_flags ran in the rc shell: it was read as root")
	}
	want := []string{
		"daemon -f ", "daemon -r ", "daemon -P /var/run/hello.pid", "daemon -p /var/run/hello_child.pid",
		"daemon -u www", "daemon -H ", "daemon -o /var/log/hello.log", "daemon -t hello",
		"arg " + filepath.Join(dir, "app"), "arg --greeting=it's $HOME", "arg -v",
		"env GREETING=" + greeting, "env rc_flags=; touch " + marker, "env PATH=/nonexistent",
	}
	if diff := cmp.Diff(want, strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")); diff != "" {
		t.Errorf("what daemon and the app got (-want +got):\n%s", diff)
	}

	// The script itself never reads the env file: it is named only in
	// daemon's arguments (and the comments), after -u.
	for l := range strings.Lines(string(mustRender(t, rc))) {
		if strings.Contains(l, rc.envFile()) && !strings.HasPrefix(l, "#") && !strings.HasPrefix(l, "command_args=") {
			t.Errorf("env file used outside daemon's arguments: %q", l)
		}
		if strings.Contains(l, "precmd") || strings.HasPrefix(strings.TrimSpace(l), ". ") && !strings.Contains(l, "/etc/rc.subr") {
			t.Errorf("the script sources something as root: %q", l)
		}
	}
	argv := rc.daemonArgv()
	if u, c := slices.Index(argv, "-u"), slices.Index(argv, rc.envFile()); u < 0 || c < u || argv[u+1] != "www" {
		t.Errorf("env file not after -u www in %q", argv)
	}
}

func mustRender(t *testing.T, rc rcScript) []byte {
	t.Helper()
	b, err := rc.render()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRenderRCScriptRefusesNewline(t *testing.T) {
	rc := testRC()
	rc.Command = []string{"/usr/local/bin/hello", "a\nb"}
	if _, err := rc.render(); !errors.Is(err, command.ErrUnquotable) {
		t.Errorf("render with a newline in the command: %v", err)
	}
}

func TestDaemonArgv(t *testing.T) {
	got := testRC().daemonArgv()
	want := []string{"-f", "-r", "-P", "/var/run/hello.pid", "-p", "/var/run/hello_child.pid", "-u", "www",
		"-H", "-o", "/var/log/hello.log", "-t", "hello",
		"/bin/sh", "-c", `set -a; . "$0"; set +a; exec "$@"`, "/usr/local/etc/jailkeeper/hello.env",
		"/usr/local/bin/hello", "--greeting=it's $HOME", "-v"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestNewsyslogLine checks the entry against the layout of FreeBSD's own
// /etc/newsyslog.conf (captured): logfile, owner:group, mode, count, size,
// when, flags, then the pid file that gets SIGHUP.
func TestNewsyslogLine(t *testing.T) {
	captured, err := os.ReadFile("testdata/freebsd/newsyslog.conf.14.txt")
	if err != nil {
		t.Fatal(err)
	}
	var lines [][]string
	for l := range strings.Lines(string(captured)) {
		if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(f[0], "/") {
			lines = append(lines, f)
		}
	}
	ours := ""
	for l := range strings.Lines(string(testRC().newsyslogLine())) {
		if !strings.HasPrefix(l, "#") {
			ours = l
		}
	}
	f := strings.Fields(ours)
	if len(f) != 8 {
		t.Fatalf("%d fields in %q, want 8", len(f), ours)
	}
	// The captured /var/log/all.log line has no owner:group; ours does.
	all := lines[0]
	if all[0] != "/var/log/all.log" || all[3] != "*" || all[4] != "@T00" || all[5] != "J" {
		t.Fatalf("unexpected capture %q", all)
	}
	if f[0] != "/var/log/hello.log" || f[1] != "root:wheel" || f[2] != "600" || f[3] != "7" || f[4] != all[3] || f[5] != all[4] || f[6] != all[5] || f[7] != "/var/run/hello.pid" {
		t.Errorf("entry %q", f)
	}
}

func TestRenderEnvAndReadEnvFile(t *testing.T) {
	golden.Assert(t, "testdata/freebsd/golden/hello.env", renderJailEnv("hello", "www", map[string]string{
		"PORT": "8080", "HOST": "172.16.0.2", "ADDR": "172.16.0.2:8080", "GREETING": "it's me",
	}))
	p := filepath.Join(t.TempDir(), "s.env")
	os.WriteFile(p, []byte("# secrets\n\nTOKEN=a=b c\r\nexport DB_URL=postgres://x\n"), 0o600)
	got, err := readJailEnvFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"TOKEN": "a=b c", "DB_URL": "postgres://x"}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	os.WriteFile(p, []byte("SECRET=hunter2\nnot a line\n"), 0o600)
	if _, err := readJailEnvFile(p); err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("bad line: %v", err)
	}
}

func TestLookupUser(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Lines of FreeBSD's /etc/passwd (etc/master.passwd in freebsd-src).
	os.WriteFile(filepath.Join(dir, "etc/passwd"), []byte("root:*:0:0:Charlie &:/root:/bin/sh\nwww:*:80:80:World Wide Web Owner:/nonexistent:/usr/sbin/nologin\n"), 0o644)
	jr, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer jr.Close()
	if uid, gid, err := jailLookupUser(jr, "www"); err != nil || uid != 80 || gid != 80 {
		t.Errorf("www: %d %d %v", uid, gid, err)
	}
	if _, _, err := jailLookupUser(jr, "nobody"); err == nil {
		t.Error("missing user found")
	}
	// A passwd that is a link out of the jail, or not a regular file, is
	// not read.
	outside := filepath.Join(t.TempDir(), "passwd")
	os.WriteFile(outside, []byte("www:*:0:0::/:/bin/sh\n"), 0o644)
	os.Remove(filepath.Join(dir, "etc/passwd"))
	if err := os.Symlink(outside, filepath.Join(dir, "etc/passwd")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := jailLookupUser(jr, "www"); err == nil {
		t.Error("read a passwd outside the jail through a symbolic link")
	}
	os.Remove(filepath.Join(dir, "etc/passwd"))
	os.Mkdir(filepath.Join(dir, "etc/passwd"), 0o755)
	if _, _, err := jailLookupUser(jr, "www"); err == nil {
		t.Error("read a directory as passwd")
	}
}

func TestLastAddr(t *testing.T) {
	for in, want := range map[string]string{"172.16.0.0/12": "172.31.255.255", "10.0.0.0/30": "10.0.0.3", "192.168.1.0/24": "192.168.1.255"} {
		if got := lastAddr(netip.MustParsePrefix(in)); got.String() != want {
			t.Errorf("lastAddr(%s) = %s, want %s", in, got, want)
		}
	}
}
