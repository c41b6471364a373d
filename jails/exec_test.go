package jails_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/internal/command/commandtest"
	"github.com/jailkeeper/jailkeeper/internal/golden"
	"github.com/jailkeeper/jailkeeper/internal/testenv"
	"github.com/jailkeeper/jailkeeper/jails"
	"github.com/jailkeeper/jailkeeper/release"
)

// withAttach rebuilds h.f with an Attach that replays through h.r, so the
// interactive jexec lands in the transcript with the other commands; what
// the replay "prints" goes to the caller's stdout.
func withAttach(t *testing.T, h *harness) {
	t.Helper()
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
		Attach: func(ctx context.Context, argv []string, stdin io.Reader, stdout, _ io.Writer) error {
			out, err := h.r.Run(ctx, argv, stdin)
			if stdout != nil {
				stdout.Write(out)
			}
			return err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	h.f = f
}

// TestFreeBSDExec pins the jexec command line of `jailkeeper exec`: the
// app's user from the release's rc.d script, looked up in the jail (-U),
// no -l (it would chdir into www's /nonexistent home and fail); the
// jail's root only when asked; nothing run in a jail that is not running.
func TestFreeBSDExec(t *testing.T) {
	testenv.Root(t) // create chowns the env file
	h := newHarness(t)
	withAttach(t, h)
	h.create()
	ctx := context.Background()
	var b strings.Builder
	step := func(name string) {
		b.WriteString("# " + name + "\n" + h.transcript())
		h.r.Reset()
	}
	h.r.Reset()

	h.r.On(jlsJArgv, commandtest.OK(""))
	var out bytes.Buffer
	if err := h.f.Exec(ctx, relName, release.ExecRequest{Argv: []string{"sh", "-c", "echo $PORT"}, Stdout: &out}); err != nil {
		t.Fatal(err)
	}
	step("exec as the app's user")
	if err := h.f.Exec(ctx, relName, release.ExecRequest{Argv: []string{"id", "-u"}, Root: true, Stdout: &out}); err != nil {
		t.Fatal(err)
	}
	step("exec --root")

	// The command's failure is the caller's to see.
	h.r.On([]string{"jexec", "-U", "www", relName, "false"}, commandtest.Fail(1, ""))
	if err := h.f.Exec(ctx, relName, release.ExecRequest{Argv: []string{"false"}, Stdout: &out}); err == nil {
		t.Error("a failing command: no error")
	}
	step("exec a failing command")

	h.r.On(jlsJArgv, commandtest.Fail(1, jlsNotFound))
	if err := h.f.Exec(ctx, relName, release.ExecRequest{Argv: []string{"true"}}); !errors.Is(err, jails.ErrNotRunning) {
		t.Errorf("exec in a stopped jail: %v, want ErrNotRunning", err)
	}
	step("exec in a stopped jail: no jexec")

	golden.Assert(t, "testdata/freebsd/golden/exec.transcript", []byte(b.String()))
}

// TestFreeBSDExecUserFromRCScript: the user is the one install gave
// daemon -u, whatever the manifest named.
func TestFreeBSDExecUserFromRCScript(t *testing.T) {
	testenv.Root(t)
	h := newHarness(t)
	withAttach(t, h)
	h.spec.User = "root" // the fake template's passwd has root and www only
	h.create()
	h.r.Reset()
	h.r.On(jlsJArgv, commandtest.OK(""))
	if err := h.f.Exec(context.Background(), relName, release.ExecRequest{Argv: []string{"true"}}); err != nil {
		t.Fatal(err)
	}
	if want := "jexec -U root " + relName + " true\n"; !strings.Contains(h.transcript(), want) {
		t.Errorf("transcript lacks %q:\n%s", want, h.transcript())
	}

	// No rc.d script (a broken release): refused, nothing run.
	if err := os.Remove(filepath.Join(h.relRoot(), "usr/local/etc/rc.d/hello")); err != nil {
		t.Fatal(err)
	}
	h.r.Reset()
	err := h.f.Exec(context.Background(), relName, release.ExecRequest{Argv: []string{"true"}})
	if err == nil || strings.Contains(h.transcript(), "jexec") {
		t.Errorf("exec without an rc.d script: %v, transcript:\n%s", err, h.transcript())
	}
}

// TestFreeBSDOpenLog reads the app log from the host, and refuses what the
// jail's root could plant there: the jail's root owns the jail's
// /var/log, and jailkeeper reads it as the host's root.
func TestFreeBSDOpenLog(t *testing.T) {
	testenv.Root(t)
	h := newHarness(t)
	h.create()
	ctx := context.Background()
	logPath := filepath.Join(h.relRoot(), "var/log/hello.log")
	if _, err := h.f.OpenLog(ctx, relName); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("no log yet: %v, want fs.ErrNotExist", err)
	}
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(logPath, []byte("hello v1 listening\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := h.f.OpenLog(ctx, relName)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(f)
	f.Close()
	if err != nil || string(got) != "hello v1 listening\n" {
		t.Errorf("log %q %v", got, err)
	}

	// A host file the jail must never make the host read.
	secret := filepath.Join(h.tmp, "master.passwd")
	if err := os.WriteFile(secret, []byte("root:$6$secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(filepath.Dir(logPath), secret)
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{secret, rel} {
		if err := os.Remove(logPath); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, logPath); err != nil {
			t.Fatal(err)
		}
		if f, err := h.f.OpenLog(ctx, relName); err == nil {
			b, _ := io.ReadAll(f)
			f.Close()
			t.Errorf("log linked to %s was opened, read %q", target, b)
		}
	}

	// A FIFO would block a plain open until some writer came.
	if err := os.Remove(logPath); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(logPath, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := h.f.OpenLog(ctx, relName); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("log is a FIFO: %v, want refused as not a regular file", err)
	}

	if p, err := h.f.ConsoleLog(relName); err != nil || p != filepath.Join(h.logDir, "jail_"+relName+"_console.log") {
		t.Errorf("ConsoleLog = %q, %v", p, err)
	}
}
