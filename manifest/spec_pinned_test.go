package manifest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSpecHashPinned pins the spec hash of manifests written before the
// second-wave keys (data, limits, standby, canary, migrate, template pins).
// A new key absent, or at its default, must leave every one of these
// hashes as it is: a changed hash renames the release on every host and
// redeploys it when the agent alone is upgraded. The values were computed
// with the schema before those keys existed.
func TestSpecHashPinned(t *testing.T) {
	withDigest := func() func(*Service) {
		return func(s *Service) { s.EnvFileDigest = strings.Repeat("c", 64) }
	}
	tests := []struct {
		name string
		in   string
		edit func(*Service)
		want string
	}{
		{"base", base, nil, "aa1cada048780be031721215a12d2d2aaa9f7715b9db30e813beeed7a37a700a"},
		{"full", full, nil, "bc2aff5bdb0f422754a54f2535d08c7bdf4272748c209d8a8c631545bb88d89b"},
		{"template", base + "template: 14.3-RELEASE\n", nil, "7f0f42f2b15b180a5fc1856c2034d4a4efbcb2658038c3296e057d907db2d963"},
		{"allow", base + "allow: [raw_sockets, mlock]\n", nil, "2dd5060b5a3cd3c790b9302009debdeb62e9c889ce5c66bf96e0660eea0d3c0a"},
		{"command env user", base + "command: [/usr/local/bin/hello, serve]\nenv: {A: b}\nuser: hello_app\n", nil, "2b994aad0a7e13cdac7160a9858550132ff3be3a58b21f63269dfa9a70b7c0c0"},
		{"handling only", base + "health: {path: /ready, watch: 0s}\ndrain: 0s\nretain: 5\nhosts: [web1]\n", nil, "aa1cada048780be031721215a12d2d2aaa9f7715b9db30e813beeed7a37a700a"},
		{"sha256 app commit", strings.Replace(base, "4b825dc642cb6eb9a060e54bf8d69288fbee4904", strings.Repeat("0123456789abcdef", 4), 1), nil, "655767ba8ee3dd08acd8c37969466430e0335a6bba961550c1709d0b838efdcf"},
		{"env_file digest", base + "env_file: hello.env\n", withDigest(), "ea988601dad8bd6b560a3e0ac753c8d40251c4687b9ddc98cccfd046b4e8bb86"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustDecode(t, tt.in)
			if tt.edit != nil {
				tt.edit(s)
			}
			if got := s.SpecHash(); got != tt.want {
				t.Errorf("SpecHash = %s, want %s: this renames existing releases", got, tt.want)
			}
		})
	}
}

// TestSpecHashPinnedExample pins the release names of the example deploy
// repo, the manifests operators copy.
func TestSpecHashPinnedExample(t *testing.T) {
	want := map[string]string{
		"goodbye.yaml": "goodbye_4b825dc642cb_86edf4",
		"hello.yaml":   "hello_4b825dc642cb_a4d2b7",
	}
	files, err := filepath.Glob(filepath.Join("..", "deploy-repo-example", "services", "*.yaml"))
	if err != nil || len(files) != len(want) {
		t.Fatalf("example manifests: %v %v, want %d", files, err, len(want))
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s, err := Decode(filepath.Base(f), b)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.ReleaseName(); got != want[filepath.Base(f)] {
			t.Errorf("%s: ReleaseName = %s, want %s", f, got, want[filepath.Base(f)])
		}
	}
}
