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

// TestValidateRefusesSymlinks (issue 9 item 3): a symlinked manifest is
// refused, as the agent refuses it, and nothing of the link's target (its
// path or its content) reaches the output. Before the fix validate followed
// the link and passed, while the agent skipped it and pruned the service.
func TestValidateRefusesSymlinks(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "services")
	for _, d := range []string{dir, filepath.Join(root, "private")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	manifest := func(svc string) string {
		return "service: " + svc + `
sha: 4b825dc642cb6eb9a060e54bf8d69288fbee4904
artifact: {url: "https://ci.example.com/x", sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}
hostnames: [` + svc + `.example.com]
port: 8080
`
	}
	if err := os.WriteFile(filepath.Join(dir, "aaa.yaml"), []byte(manifest("aaa")), 0o644); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(root, "private", "s3cr3t-target.yaml")
	if err := os.WriteFile(target, []byte(manifest("bbb")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(dir, "bbb.yaml")); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCapture(t, "validate", dir)
	if code != 2 || stdout != "" {
		t.Errorf("exit %d, stdout %q; want 2 and nothing", code, stdout)
	}
	want := filepath.Join(dir, "bbb.yaml") + ": is a symlink"
	if !strings.HasPrefix(stderr, want) {
		t.Errorf("stderr = %q, want it to start with %q", stderr, want)
	}
	if strings.Contains(stderr, "s3cr3t") || strings.Contains(stderr, "private") {
		t.Errorf("stderr shows the link's target: %q", stderr)
	}
}

// TestValidatePolicy (issue 9 item 6): without --policy, validate applies
// the default policy (user: root and host-wide allow.* are refused, naming
// the field); --policy FILE takes the policy key of FILE, such as the
// agent's config.
func TestValidatePolicy(t *testing.T) {
	dir := t.TempDir()
	m := `service: hello
sha: 4b825dc642cb6eb9a060e54bf8d69288fbee4904
artifact: {url: "https://ci.example.com/x", sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}
hostnames: [hello.example.com]
port: 8080
user: root
allow: [settime, raw_sockets]
`
	if err := os.WriteFile(filepath.Join(dir, "hello.yaml"), []byte(m), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCapture(t, "validate", dir)
	if code != 2 {
		t.Errorf("default policy: exit %d, want 2", code)
	}
	for _, want := range []string{":7: allow[0]: allow.settime", ":7: allow[1]: allow.raw_sockets", ":6: user: \"root\""} {
		if !strings.Contains(stderr, filepath.Join(dir, "hello.yaml")+want) {
			t.Errorf("default policy: stderr %q, want %q", stderr, want)
		}
	}

	cfg := filepath.Join(t.TempDir(), "jailkeeper.yaml")
	write := func(body string) {
		t.Helper()
		if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("repo: {url: https://git.example.com/deploy.git}\npolicy: {allow: [settime, raw_sockets], users: [root]}\n")
	if code, stdout, stderr := runCapture(t, "validate", "--policy", cfg, dir); code != 0 || !strings.HasPrefix(stdout, "hello") {
		t.Errorf("--policy allowing it all: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	write("policy: {allow: [raw_sockets], users: [root]}\n")
	if code, _, stderr := runCapture(t, "validate", "--policy", cfg, dir); code != 2 || !strings.Contains(stderr, "allow[0]: allow.settime") || strings.Contains(stderr, "raw_sockets") {
		t.Errorf("--policy without settime: exit %d, stderr %q", code, stderr)
	}
	write("policy: {allow: [settimes]}\n")
	if code, _, stderr := runCapture(t, "validate", "--policy", cfg, dir); code != 2 || !strings.Contains(stderr, "policy.allow[0]") {
		t.Errorf("bad policy: exit %d, stderr %q", code, stderr)
	}
	write("repo: {url: x}\n")
	if code, _, stderr := runCapture(t, "validate", "--policy", cfg, dir); code != 2 || !strings.Contains(stderr, "no policy") {
		t.Errorf("file without policy: exit %d, stderr %q", code, stderr)
	}
}
