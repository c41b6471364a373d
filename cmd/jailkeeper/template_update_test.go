package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/jailkeeper/jailkeeper/internal/golden"
)

// template update --dry-run prints the plan from the agent config's jails
// section: the tree under jails.root, the dataset under jails.dataset.
func TestTemplateUpdateDryRun(t *testing.T) {
	code, out, errOut := runCapture(t, "template", "update", "14.3-RELEASE", "--dry-run", "--config", "testdata/freebsd.yaml")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	// The snapshot is named after the clock (release.TemplateSnapshot).
	stamp := regexp.MustCompile(`@20[0-9]{6}T[0-9]{6}Z\b`)
	if n := len(stamp.FindAllString(out, -1)); n != 2 {
		t.Errorf("%d snapshot names @<UTC time> in the plan, want 2:\n%s", n, out)
	}
	golden.Assert(t, "testdata/template-update-dry-run.golden", []byte(stamp.ReplaceAllString(out, "@<UTC time>")))
}

func TestTemplateUpdateUsage(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no name", []string{"template", "update", "--dry-run", "--config", "testdata/freebsd.yaml"}, 2, "exactly one NAME"},
		{"two names", []string{"template", "update", "14.3-RELEASE", "14.2-RELEASE", "--dry-run", "--config", "testdata/freebsd.yaml"}, 2, "exactly one NAME"},
		{"not a release", []string{"template", "update", "../etc", "--dry-run", "--config", "testdata/freebsd.yaml"}, 1, "not a FreeBSD release name"},
		{"no subcommand", []string{"template"}, 2, "create or update"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCapture(t, tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q, want exit %d and %q (stdout %q)", code, errOut, tc.code, tc.want, out)
			}
		})
	}
}
