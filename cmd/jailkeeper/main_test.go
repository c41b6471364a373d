package main

import (
	"io"
	"os"
	"strings"
	"testing"
)

// runCapture runs the CLI in process with os.Stdout and os.Stderr captured.
// It swaps process-wide files, so tests that use it must not be parallel.
func runCapture(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	oldOut, oldErr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = outW, errW
	t.Cleanup(func() { os.Stdout, os.Stderr = oldOut, oldErr })

	read := func(r io.Reader, into *string) chan struct{} {
		done := make(chan struct{})
		go func() {
			defer close(done)
			b, _ := io.ReadAll(r)
			*into = string(b)
		}()
		return done
	}
	outDone, errDone := read(outR, &stdout), read(errR, &stderr)
	code = run(args)
	os.Stdout, os.Stderr = oldOut, oldErr
	outW.Close()
	errW.Close()
	<-outDone
	<-errDone
	outR.Close()
	errR.Close()
	return code, stdout, stderr
}

func TestUsageErrorsExit2(t *testing.T) {
	for _, args := range [][]string{
		{"no-such-command"},
		{"status", "extra"},
		{"validate"},
		{"run", "--no-such-flag"},
		{"version", "x"},
	} {
		if code, _, stderr := runCapture(t, args...); code != exitInvalid {
			t.Errorf("jailkeeper %s: exit %d (%q), want %d", strings.Join(args, " "), code, stderr, exitInvalid)
		}
	}
}
