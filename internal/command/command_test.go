package command_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jailkeeper/jailkeeper/internal/command"
	"github.com/jailkeeper/jailkeeper/internal/testenv"
)

// TestMain lets the test binary stand in for an external program: with
// COMMANDTEST_HELPER set it prints its arguments, copies stdin, writes to
// stderr and exits as asked instead of running the tests.
func TestMain(m *testing.M) {
	if os.Getenv("COMMANDTEST_HELPER") == "1" {
		helper(os.Args[1:])
		return
	}
	os.Exit(m.Run())
}

func helper(args []string) {
	code := 0
	for _, a := range args {
		switch {
		case strings.HasPrefix(a, "out="):
			fmt.Print(strings.TrimPrefix(a, "out="))
		case strings.HasPrefix(a, "err="):
			fmt.Fprint(os.Stderr, strings.TrimPrefix(a, "err="))
		case a == "stdin":
			b, _ := os.ReadFile("/dev/stdin")
			os.Stdout.Write(b)
		case strings.HasPrefix(a, "exit="):
			fmt.Sscan(strings.TrimPrefix(a, "exit="), &code)
		}
	}
	os.Exit(code)
}

func helperExec(t *testing.T) (command.Exec, string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return command.Exec{Env: append(os.Environ(), "COMMANDTEST_HELPER=1")}, self
}

func TestExecSuccess(t *testing.T) {
	x, self := helperExec(t)
	out, err := x.Run(context.Background(), []string{self, "out=hello ", "stdin"}, strings.NewReader("world"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(out), "hello world"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
}

func TestExecFailureCarriesArgvExitStderr(t *testing.T) {
	x, self := helperExec(t)
	argv := []string{self, "out=partial", `err=jls: jail "x" not found` + "\n", "exit=1"}
	out, err := x.Run(context.Background(), argv, nil)
	var ce *command.Error
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want *command.Error", err)
	}
	if diff := cmp.Diff(argv, ce.Argv); diff != "" {
		t.Errorf("Argv (-want +got):\n%s", diff)
	}
	if ce.Exit != 1 || ce.Stderr != `jls: jail "x" not found`+"\n" {
		t.Errorf("Exit %d Stderr %q", ce.Exit, ce.Stderr)
	}
	if string(out) != "partial" {
		t.Errorf("stdout = %q, want the partial output", out)
	}
	if code, ok := command.ExitCode(err); !ok || code != 1 {
		t.Errorf("ExitCode = %d, %v", code, ok)
	}
	if got := command.Stderr(fmt.Errorf("wrapped: %w", err)); !strings.Contains(got, "not found") {
		t.Errorf("Stderr through wrapping = %q", got)
	}
	if msg := err.Error(); !strings.Contains(msg, "exit 1") || !strings.Contains(msg, `jls: jail "x" not found`) {
		t.Errorf("message %q lacks exit code or stderr", msg)
	}
}

func TestExecNotFound(t *testing.T) {
	_, err := command.Exec{}.Run(context.Background(), []string{"/nonexistent/jailkeeper-no-such-program"}, nil)
	var ce *command.Error
	if !errors.As(err, &ce) || ce.Exit != -1 {
		t.Fatalf("err = %#v, want *command.Error with Exit -1", err)
	}
	if _, ok := command.ExitCode(err); ok {
		t.Error("ExitCode reports a code for a command that never ran")
	}
	if _, err := (command.Exec{}).Run(context.Background(), nil, nil); err == nil {
		t.Error("empty argv ran")
	}
}

func TestExecContextCancelled(t *testing.T) {
	x, self := helperExec(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := x.Run(ctx, []string{self}, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestExecIsRealExec(t *testing.T) {
	// The stdlib's exec must find programs on PATH for argv[0] without a slash.
	if _, err := exec.LookPath("true"); err != nil {
		t.Skip("no true(1) on PATH")
	}
	if _, err := (command.Exec{}).Run(context.Background(), []string{"true"}, nil); err != nil {
		t.Fatal(err)
	}
}

func TestQuote(t *testing.T) {
	tests := []struct {
		argv []string
		want string
	}{
		{[]string{"jail", "-f", "/etc/jail.conf.d/a_b.conf", "-c", "a_b"}, "jail -f /etc/jail.conf.d/a_b.conf -c a_b"},
		{[]string{"sysrc", "cloned_interfaces+=lo1"}, "sysrc cloned_interfaces+=lo1"},
		{[]string{"sysrc", "ifconfig_lo1=inet 172.16.0.1/32"}, "sysrc 'ifconfig_lo1=inet 172.16.0.1/32'"},
		{[]string{"echo", "it's", ""}, `echo 'it'\''s' ''`},
		{[]string{"x", "$HOME", "a|b"}, "x '$HOME' 'a|b'"},
	}
	for _, tt := range tests {
		if got := command.Quote(tt.argv); got != tt.want {
			t.Errorf("Quote(%q) = %s, want %s", tt.argv, got, tt.want)
		}
	}
}

// TestShellQuoteRoundTrip evaluates ShellQuote's text with a real sh, the
// way rc.subr evaluates command_args (eval), and checks that the words come
// back exactly and nothing ran: a command substitution that ran would
// create the marker file.
func TestShellQuoteRoundTrip(t *testing.T) {
	sh := testenv.Command(t, "sh")
	marker := filepath.Join(t.TempDir(), "ran")
	nasty := []string{
		"x=y", // an assignment if it were the first bare word
		"plain", "", "it's", "''", `'\''`, `"double"`, `back\slash`, `\`,
		"$HOME", "${HOME}", "$(touch " + marker + ")", "`touch " + marker + "`",
		"; touch " + marker, "| touch " + marker, "&& touch " + marker,
		"*", "?", "[a]", "~", "~root", "{a,b}", "#comment", "a b\tc",
		"-n", "--", "\r", "ünïcödé", "\x7f",
	}
	for _, argv := range [][]string{nasty, {"only"}, {}, {""}} {
		q, err := command.ShellQuote(argv)
		if err != nil {
			t.Fatalf("ShellQuote(%q): %v", argv, err)
		}
		// $1 is the quoted text; eval splits it into the positional
		// parameters, which are printed NUL-terminated.
		out, err := exec.Command(sh, "-c", `eval "set -- $1"; for a; do printf '%s\0' "$a"; done`, "sh", q).Output()
		if err != nil {
			t.Fatalf("sh: %v", err)
		}
		got := []string{}
		if len(out) > 0 {
			got = strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
		}
		if diff := cmp.Diff(argv, got); diff != "" {
			t.Errorf("round trip of %s (-want +got):\n%s", q, diff)
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("evaluating the quoted text ran a command")
	}

	// The same text, quoted once more, survives an assignment and a second
	// eval: what an rc.d script's command_args=... and rc.subr do.
	inner, _ := command.ShellQuote(nasty)
	outer, _ := command.ShellQuote([]string{inner})
	out, err := exec.Command(sh, "-c", "args="+outer+`; eval "set -- $args"; for a; do printf '%s\0' "$a"; done`).Output()
	if err != nil {
		t.Fatalf("sh: %v", err)
	}
	if diff := cmp.Diff(nasty, strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")); diff != "" {
		t.Errorf("double round trip (-want +got):\n%s", diff)
	}

	for _, bad := range [][]string{{"a\nb"}, {"ok", "nul\x00"}, {"\n"}} {
		if q, err := command.ShellQuote(bad); !errors.Is(err, command.ErrUnquotable) {
			t.Errorf("ShellQuote(%q) = %q, %v; want ErrUnquotable", bad, q, err)
		}
	}
}
