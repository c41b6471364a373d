package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestValidateSecondWave: validate accepts the second-wave keys (data,
// limits, standby, canary, migrate, template pins) and checks their units,
// naming file, line and field.
func TestValidateSecondWave(t *testing.T) {
	const head = `sha: 4b825dc642cb6eb9a060e54bf8d69288fbee4904
artifact:
  url: https://ci.example.com/hello.tar.gz
  sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
port: 8080
`
	write := func(dir, name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	good := t.TempDir()
	write(good, "hello.yaml", "service: hello\nhostnames: [hello.example.com]\n"+head+`template: 14.3-RELEASE@base
data: [{name: uploads, path: /var/db/hello, quota: 10G}]
limits: {memory: 512M, pcpu: 50, maxproc: 200, openfiles: 4096, disk: 5G}
standby: 15m
canary: {steps: [10, 50], interval: 2m, max_failures: 5}
migrate: [/usr/local/bin/hello, migrate]
migrate_timeout: 5m
`)
	if code, stdout, stderr := runCapture(t, "validate", good); code != 0 || stderr != "" || !strings.HasPrefix(stdout, "hello ") {
		t.Errorf("validate of a manifest with every key: exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}

	bad := t.TempDir()
	write(bad, "hello.yaml", "service: hello\nhostnames: [hello.example.com]\n"+head+`data: [{name: uploads, path: /etc/hello, quota: 10 GB}]
limits:
  memory: 512
  pcpu: 50%
canary: {steps: [50, 10]}
migrate_timeout: 5m
`)
	code, stdout, stderr := runCapture(t, "validate", bad)
	if code != 2 || stdout != "" {
		t.Errorf("exit %d, stdout %q; want 2 and nothing", code, stdout)
	}
	f := filepath.Join(bad, "hello.yaml")
	want := []string{
		f + ":8: data[0].path: ",
		f + ":8: data[0].quota: ",
		f + ":10: limits.memory: ",
		f + ":11: limits.pcpu: ",
		f + ":12: canary.steps[1]: ",
		f + ":13: migrate_timeout: ",
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSuffix(stderr, "\n"), "\n") {
		if i := strings.Index(line, ": "); i >= 0 {
			if j := strings.Index(line[i+2:], ": "); j >= 0 {
				line = line[:i+2+j+2]
			}
		}
		got = append(got, line)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("problems (-want +got):\n%s\nstderr:\n%s", diff, stderr)
	}
}
