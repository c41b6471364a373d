package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jailkeeper/jailkeeper/internal/testenv"
	"github.com/jailkeeper/jailkeeper/manifest"
)

func TestValidateExample(t *testing.T) {
	dir := filepath.Join(testenv.RepoRoot(t), "deploy-repo-example", "services")
	code, stdout, stderr := runCapture(t, "validate", dir)
	if code != 0 || stderr != "" {
		t.Fatalf("validate %s: exit %d, stderr:\n%s", dir, code, stderr)
	}
	svcs, err := manifest.Load(os.DirFS(dir), ".")
	if err != nil {
		t.Fatal(err)
	}
	if len(svcs) < 2 {
		t.Fatalf("the example has %d services, want at least 2", len(svcs))
	}
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if len(lines) != len(svcs) {
		t.Fatalf("got %d summary lines for %d services:\n%s", len(lines), len(svcs), stdout)
	}
	for i, s := range svcs {
		got := strings.Fields(lines[i])
		want := []string{s.Service, s.SHA[:12], s.ReleaseName(), strings.Join(s.Hostnames, ",")}
		if s.EnvFile != "" {
			want = []string{s.Service, s.SHA[:12], s.ReleaseName(), "(+env_file)", strings.Join(s.Hostnames, ",")}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("summary line %d (-want +got):\n%s", i, diff)
		}
	}
}

func TestValidateInvalid(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("hello.yaml", `service: hello
sha: 4b825dc642cb6eb9a060e54bf8d69288fbee4904
artifact:
  url: https://ci.example.com/hello.tar.gz
  sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
hostnames: [hello.example.com]
port: 8080
health:
  timeout: 5m
`)
	write("api.yaml", `service: api
sha: 4b825dc6
artifact: {url: "https://ci.example.com/api", sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}
hostnames: [hello.example.com]
port: 8080
colour: blue
`)
	write("README.md", "not a manifest\n")

	code, stdout, stderr := runCapture(t, "validate", dir)
	if code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	if stdout != "" {
		t.Errorf("stdout = %q, want nothing", stdout)
	}
	want := []string{
		filepath.Join(dir, "api.yaml") + ":2: sha: ",
		filepath.Join(dir, "api.yaml") + ":6: colour: unknown field",
		filepath.Join(dir, "hello.yaml") + ":6: hostnames[0]: \"hello.example.com\" is already a hostname of service \"api\"",
		filepath.Join(dir, "hello.yaml") + ":9: health.timeout: must be at most 1m0s",
	}
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("got %d lines on stderr, want %d:\n%s", len(lines), len(want), stderr)
	}
	format := regexp.MustCompile(`^[^:]+\.yaml:[0-9]+: [a-z_.\[\]0-9]+: .+$`)
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d = %q, want it to start with %q", i, lines[i], w)
		}
		if !format.MatchString(lines[i]) {
			t.Errorf("line %d = %q is not file:line: field: message", i, lines[i])
		}
	}
}

func TestValidateUsage(t *testing.T) {
	empty := t.TempDir()
	notDir := filepath.Join(t.TempDir(), "file.yaml")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"no directory", []string{"validate"}, 2, "validate takes one directory"},
		{"two directories", []string{"validate", empty, empty}, 2, "got 2 arguments"},
		{"missing directory", []string{"validate", filepath.Join(empty, "nope")}, 2, "no such file or directory"},
		{"not a directory", []string{"validate", notDir}, 2, "not a directory"},
		{"empty directory", []string{"validate", empty}, 0, "no manifests"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCapture(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tt.code, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
			if !strings.Contains(stderr, tt.stderr) {
				t.Errorf("stderr = %q, want it to contain %q", stderr, tt.stderr)
			}
		})
	}
}
