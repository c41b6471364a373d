package process_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jailkeeper/jailkeeper/process"
	"github.com/jailkeeper/jailkeeper/release"
)

// TestProcessExec runs commands in a running release the way `jailkeeper
// exec hello -- ...` does: typed argv, the release's environment, the
// release root as working directory, the caller's stdio, the exit status.
func TestProcessExec(t *testing.T) {
	p := newProcess(t, process.Config{})
	spec := helloSpec(t, map[string]string{"GREETING": "hi there"})
	r := create(t, p, spec)
	ctx := context.Background()

	var out bytes.Buffer
	err := p.Exec(ctx, r.Name, release.ExecRequest{Argv: []string{"sh", "-c", "echo $PORT"}, Stdout: &out})
	if !strings.Contains(errText(err), "not running") {
		t.Errorf("exec in a stopped release: %v, want it refused as not running", err)
	}

	if err := p.Start(ctx, r.Name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop(context.Background(), r.Name) })
	waitUp(t, p, r)

	out.Reset()
	var stderr bytes.Buffer
	err = p.Exec(ctx, r.Name, release.ExecRequest{
		Argv:   []string{"sh", "-c", `echo "$PORT|$HOST|$ADDR|$GREETING"; pwd; read line; echo "in:$line"; echo oops >&2`},
		Stdin:  strings.NewReader("typed\n"),
		Stdout: &out,
		Stderr: &stderr,
	})
	if err != nil {
		t.Fatalf("exec: %v (stderr %q)", err, stderr.String())
	}
	root, err := filepath.EvalSymlinks(filepath.Join(filepath.Dir(mustLog(t, p, r.Name)), "root"))
	if err != nil {
		t.Fatal(err)
	}
	want := strconv.Itoa(r.Port) + "|" + r.IP.String() + "|" + r.Addr() + "|hi there\n" + root + "\nin:typed\n"
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("stdout (-want +got)\n%s", diff)
	}
	if stderr.String() != "oops\n" {
		t.Errorf("stderr %q, want oops", stderr.String())
	}

	// The command's exit status comes back.
	err = p.Exec(ctx, r.Name, release.ExecRequest{Argv: []string{"sh", "-c", "exit 3"}, Stdout: io.Discard})
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("exec exit 3: %v, want an *exec.ExitError with status 3", err)
	}

	// A path with a slash is the release root's.
	err = p.Exec(ctx, r.Name, release.ExecRequest{Argv: []string{"./usr/local/bin/hello", "-no-such-flag"}, Stdout: io.Discard, Stderr: io.Discard})
	if !errors.As(err, &ee) {
		t.Errorf("exec ./usr/local/bin/hello: %v, want it started (and its exit status)", err)
	}

	if err := p.Exec(ctx, r.Name, release.ExecRequest{Argv: []string{"id"}, Root: true}); !errors.Is(err, process.ErrNoUsers) {
		t.Errorf("exec --root: %v, want ErrNoUsers", err)
	}
	if err := p.Exec(ctx, r.Name, release.ExecRequest{}); err == nil {
		t.Error("exec with no command: no error")
	}
	other := releaseName("hello")
	if err := p.Exec(ctx, other, release.ExecRequest{Argv: []string{"true"}}); !errors.Is(err, release.ErrNotFound) {
		t.Errorf("exec in a missing release: %v, want release.ErrNotFound", err)
	}
}

// TestProcessOpenLog: the log `jailkeeper logs` reads is the release's
// command output.
func TestProcessOpenLog(t *testing.T) {
	p := newProcess(t, process.Config{})
	r := create(t, p, helloSpec(t, nil))
	ctx := context.Background()
	if _, err := p.OpenLog(ctx, r.Name); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("log before the first start: %v, want fs.ErrNotExist", err)
	}
	if err := p.Start(ctx, r.Name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop(context.Background(), r.Name) })
	waitUp(t, p, r)
	waitFor(t, "the app's first log line", func() bool { return strings.Contains(readLog(t, p, r.Name), r.Addr()) })
	f, err := p.OpenLog(ctx, r.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil || !strings.Contains(string(b), r.Addr()) {
		t.Errorf("log %q %v, want the app's line naming %s", b, err, r.Addr())
	}
	if _, err := p.OpenLog(ctx, "../etc"); err == nil {
		t.Error("OpenLog accepted an invalid release name")
	}
}

func mustLog(t *testing.T, p *process.Runtime, name string) string {
	t.Helper()
	path, err := p.Log(name)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
