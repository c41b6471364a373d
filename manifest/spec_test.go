package manifest

import (
	"strings"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/release"
)

func mustDecode(t *testing.T, in string) *Service {
	t.Helper()
	s, err := Decode("hello.yaml", []byte(in))
	if err != nil {
		t.Fatalf("Decode:\n%s\n%v", in, err)
	}
	return s
}

// TestSpecHashFormatting: how the YAML is written does not change the hash.
func TestSpecHashFormatting(t *testing.T) {
	variants := []string{
		full,
		// Keys reordered, block style instead of flow, quoting, comments,
		// blank lines, trailing spaces, default values spelled out.
		`allow:
  - mount.nullfs    # order of allow does not matter
  - raw_sockets
template: "14.3-RELEASE"

env:
  DEBUG: "false"
  GREETING: 'hi'
  COUNT: "3"
user: hello_app
command:
  - /usr/local/bin/hello
  - "-v"
  - ''
port: 8080   
sha: "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
service: hello
artifact: {sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08, url: "file:///var/cache/artifacts/hello"}
hostnames: [www.hello.example.com, hello.example.com]
env_file: hello/prod.env
`,
		// Windows line ends.
		strings.ReplaceAll(full, "\n", "\r\n"),
	}
	want := mustDecode(t, full).SpecHash()
	for i, v := range variants {
		if got := mustDecode(t, v).SpecHash(); got != want {
			t.Errorf("variant %d: SpecHash = %s, want %s", i, got, want)
		}
	}
}

// TestSpecHashGolden pins the canonical encoding: if this changes, every
// release on every host gets a new name and is redeployed. The value is
// printf '%s' '{"v":1,"sha":"4b825dc642cb6eb9a060e54bf8d69288fbee4904","artifact_url":"https://ci.example.com/hello/4b825dc6/hello.tar.gz","artifact_sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","port":8080,"command":["/usr/local/bin/hello"],"user":"www"}' | sha256sum
func TestSpecHashGolden(t *testing.T) {
	s := mustDecode(t, base)
	const want = "aa1cada048780be031721215a12d2d2aaa9f7715b9db30e813beeed7a37a700a"
	if got := s.SpecHash(); got != want {
		t.Errorf("SpecHash(base) = %s, want %s; changing the canonical encoding renames every release, bump specVersion on purpose", got, want)
	}
	if got, want := s.ReleaseName(), "hello_4b825dc642cb_"+want[:6]; got != want {
		t.Errorf("ReleaseName = %s, want %s", got, want)
	}
}

// TestSpecHashFields: what is installed into a release changes the hash,
// what only changes routing and handling does not.
func TestSpecHashFields(t *testing.T) {
	ref := mustDecode(t, full)
	tests := []struct {
		name    string
		edit    func(s *Service)
		changes bool
	}{
		{"sha", func(s *Service) { s.SHA = strings.Repeat("a", 40) }, true},
		{"artifact url", func(s *Service) { s.Artifact.URL = "https://example.com/x" }, true},
		{"artifact sha256", func(s *Service) { s.Artifact.SHA256 = strings.Repeat("b", 64) }, true},
		{"port", func(s *Service) { s.Port = 9090 }, true},
		{"command", func(s *Service) { s.Command = []string{"/usr/local/bin/hello"} }, true},
		{"command order", func(s *Service) { s.Command = []string{"/usr/local/bin/hello", "", "-v"} }, true},
		{"env value", func(s *Service) { s.Env = map[string]string{"GREETING": "hey", "COUNT": "3", "DEBUG": "false"} }, true},
		{"env removed", func(s *Service) { s.Env = nil }, true},
		{"env_file digest", func(s *Service) { s.EnvFileDigest = strings.Repeat("c", 64) }, true},
		{"user", func(s *Service) { s.User = "www" }, true},
		{"template", func(s *Service) { s.Template = "14.2-RELEASE" }, true},
		{"allow", func(s *Service) { s.Allow = []string{"raw_sockets"} }, true},
		{"allow order", func(s *Service) { s.Allow = []string{"mount.nullfs", "raw_sockets"} }, false},
		{"hostnames", func(s *Service) { s.Hostnames = []string{"other.example.com"} }, false},
		{"health", func(s *Service) { s.Health = DefaultHealth() }, false},
		{"drain", func(s *Service) { s.Drain = time.Minute }, false},
		{"retain", func(s *Service) { s.Retain = 7 }, false},
		{"hosts", func(s *Service) { s.Hosts = nil }, false},
		{"file", func(s *Service) { s.File = "elsewhere/hello.yml" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustDecode(t, full)
			tt.edit(s)
			if changed := s.SpecHash() != ref.SpecHash(); changed != tt.changes {
				t.Errorf("changing %s changes SpecHash: %v, want %v", tt.name, changed, tt.changes)
			}
		})
	}
}

// TestSpecHashEmptyEnv: an empty env or allow is the same as none.
func TestSpecHashEmptyEnv(t *testing.T) {
	want := mustDecode(t, base).SpecHash()
	for _, extra := range []string{"env: {}\n", "allow: []\n"} {
		if got := mustDecode(t, base+extra).SpecHash(); got != want {
			t.Errorf("with %q: SpecHash = %s, want %s", extra, got, want)
		}
	}
}

func TestReleaseName(t *testing.T) {
	for _, in := range []string{base, full, strings.Replace(base, "service: hello", "service: a_"+strings.Repeat("b", 30), 1),
		strings.Replace(base, "4b825dc642cb6eb9a060e54bf8d69288fbee4904", strings.Repeat("0123456789abcdef", 4), 1)} {
		s := mustDecode(t, in)
		name := s.ReleaseName()
		if err := release.ValidName(name); err != nil {
			t.Errorf("release.ValidName(%q): %v", name, err)
		}
		if want := s.Service + "_" + s.SHA[:12] + "_" + s.SpecHash()[:6]; name != want {
			t.Errorf("ReleaseName = %q, want %q", name, want)
		}
	}
}

func TestForHost(t *testing.T) {
	all := mustDecode(t, base)
	some := mustDecode(t, base+"hosts: [web1, Web2.example.com]\n")
	tests := []struct {
		s    *Service
		host string
		want bool
	}{
		{all, "web1", true},
		{all, "", true},
		{some, "web1", true},
		{some, "WEB1", true},
		{some, "web2.example.com", true},
		{some, "web2", false},
		{some, "web3", false},
		{some, "", false},
	}
	for _, tt := range tests {
		if got := tt.s.ForHost(tt.host); got != tt.want {
			t.Errorf("hosts %v: ForHost(%q) = %v, want %v", tt.s.Hosts, tt.host, got, tt.want)
		}
	}
}
