package jails

import (
	"bytes"
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestAttachExecEnvironment: jexec starts with PATH and TERM only, never
// with jailkeeper's own environment (here a token exported on the host).
// `env` stands in for jexec, which prints what it was given.
func TestAttachExecEnvironment(t *testing.T) {
	t.Setenv("SECRET_TOKEN", "s3cret")
	t.Setenv("TERM", "xterm-256color")
	var out bytes.Buffer
	if err := attachExec(context.Background(), []string{"env"}, nil, &out, &out); err != nil {
		t.Fatal(err)
	}
	want := "PATH=/bin:/usr/bin\nTERM=xterm-256color\n"
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("environment (-want +got)\n%s", diff)
	}

	t.Setenv("TERM", "")
	if got := jexecEnv(""); !cmp.Equal(got, []string{"PATH=/bin:/usr/bin"}) {
		t.Errorf("jexecEnv without a TERM = %q", got)
	}
}
