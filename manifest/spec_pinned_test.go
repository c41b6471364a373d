package manifest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

// TestSpecHashSecondWave: data, limits, migrate and a template pin change
// what runs, so they change the hash; standby, canary and migrate_timeout
// change only how a release is handled, so they do not. Units, order of
// data sets and spelling do not matter.
func TestSpecHashSecondWave(t *testing.T) {
	ref := mustDecode(t, base+second)
	tests := []struct {
		name    string
		edit    func(s *Service)
		changes bool
	}{
		{"data removed", func(s *Service) { s.Data = nil }, true},
		{"data name", func(s *Service) { s.Data[0].Name = "files" }, true},
		{"data path", func(s *Service) { s.Data[0].Path = "/var/db/other" }, true},
		{"data quota", func(s *Service) { s.Data[0].Quota = 20 << 30 }, true},
		{"data quota removed", func(s *Service) { s.Data[0].Quota = 0 }, true},
		{"data order", func(s *Service) { s.Data[0], s.Data[1] = s.Data[1], s.Data[0] }, false},
		{"limits removed", func(s *Service) { s.Limits = Limits{} }, true},
		{"limits memory", func(s *Service) { s.Limits.Memory = 1 << 30 }, true},
		{"limits pcpu", func(s *Service) { s.Limits.PCPU = 100 }, true},
		{"limits maxproc", func(s *Service) { s.Limits.MaxProc = 100 }, true},
		{"limits openfiles", func(s *Service) { s.Limits.OpenFiles = 1024 }, true},
		{"limits disk", func(s *Service) { s.Limits.Disk = 0 }, true},
		{"migrate", func(s *Service) { s.Migrate = []string{"/usr/local/bin/hello", "migrate"} }, true},
		{"migrate removed", func(s *Service) { s.Migrate = nil }, true},
		{"template snapshot", func(s *Service) { s.TemplateSnapshot = "base-20261201-000000" }, true},
		{"template snapshot removed", func(s *Service) { s.TemplateSnapshot = "" }, true},
		{"standby", func(s *Service) { d := time.Duration(0); s.Standby = &d }, false},
		{"standby removed", func(s *Service) { s.Standby = nil }, false},
		{"canary", func(s *Service) { s.Canary.Steps = []int{1, 2, 3}; s.Canary.Interval = time.Hour }, false},
		{"canary removed", func(s *Service) { s.Canary = nil }, false},
		{"migrate_timeout", func(s *Service) { s.MigrateTimeout = time.Hour }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustDecode(t, base+second)
			tt.edit(s)
			if changed := s.SpecHash() != ref.SpecHash(); changed != tt.changes {
				t.Errorf("changing %s changes SpecHash: %v, want %v", tt.name, changed, tt.changes)
			}
		})
	}
}

// TestSpecHashAsAbsent: a second-wave key written at its default, or
// empty, hashes as if it were absent, and so does every key that does not
// change what runs; the hash of base stays the pinned one.
func TestSpecHashAsAbsent(t *testing.T) {
	const want = "aa1cada048780be031721215a12d2d2aaa9f7715b9db30e813beeed7a37a700a" // base, pinned above
	for _, extra := range []string{
		"data: []\n",
		"limits: {}\n",
		"standby: 15m\n",
		"standby: 0s\n",
		"canary: {steps: [10, 50], interval: 2m, max_failures: 5}\n",
		"data: []\nlimits: {}\nstandby: 1h\n",
	} {
		if got := mustDecode(t, base+extra).SpecHash(); got != want {
			t.Errorf("base + %q: SpecHash = %s, want %s", extra, got, want)
		}
	}
	// A pin to @base is where every release was cloned from before pins
	// existed: the same release as no pin.
	plain := mustDecode(t, base+"template: 14.3-RELEASE\n").SpecHash()
	if got := mustDecode(t, base+"template: 14.3-RELEASE@base\n").SpecHash(); got != plain {
		t.Errorf("template 14.3-RELEASE@base: SpecHash = %s, want %s as for 14.3-RELEASE", got, plain)
	}
	if got := mustDecode(t, base+"template: 14.3-RELEASE@base-20261129-150405\n").SpecHash(); got == plain {
		t.Errorf("template 14.3-RELEASE@base-20261129-150405 hashes as 14.3-RELEASE")
	}
	// migrate_timeout is handling: with migrate, any timeout hashes alike.
	m := base + "migrate: [/usr/local/bin/hello, migrate]\n"
	if a, b := mustDecode(t, m).SpecHash(), mustDecode(t, m+"migrate_timeout: 1h\n").SpecHash(); a != b {
		t.Errorf("migrate_timeout changes SpecHash: %s, %s", a, b)
	}
}

// TestSpecHashSecondWaveFormatting: units and YAML forms do not change the
// hash.
func TestSpecHashSecondWaveFormatting(t *testing.T) {
	want := mustDecode(t, base+second).SpecHash()
	variants := []string{
		strings.NewReplacer("10G", "10240M", "512M", "536870912", "5GiB", "5g").Replace(second),
		`migrate_timeout: 1m
migrate:
  - /usr/local/bin/hello
  - migrate
  - --to
  - latest
canary: {steps: [5], interval: 1s, max_failures: 1}
standby: 0s
limits:
  disk: 5120MB
  openfiles: 4096
  maxproc: 200
  pcpu: 50
  memory: 512m
data:
  - path: /usr/local/www/hello/cache
    name: cache
  - {quota: 10GB, path: /var/db/hello, name: uploads}
template: "14.3-RELEASE@base-20261129-150405"
`,
	}
	for i, v := range variants {
		if got := mustDecode(t, base+v).SpecHash(); got != want {
			t.Errorf("variant %d: SpecHash = %s, want %s", i, got, want)
		}
	}
}

// TestSpecHashSecondWaveGolden pins the encoding of the new keys, as
// TestSpecHashGolden does for the old ones. The value is
// printf '%s' '{"v":1,"sha":"4b825dc642cb6eb9a060e54bf8d69288fbee4904","artifact_url":"https://ci.example.com/hello/4b825dc6/hello.tar.gz","artifact_sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","port":8080,"command":["/usr/local/bin/hello"],"user":"www","template":"14.3-RELEASE","template_snapshot":"base-20261129-150405","data":[{"name":"cache","path":"/usr/local/www/hello/cache"},{"name":"uploads","path":"/var/db/hello","quota":10737418240}],"limits":{"memory":536870912,"pcpu":50,"maxproc":200,"openfiles":4096,"disk":5368709120},"migrate":["/usr/local/bin/hello","migrate","--to","latest"]}' | sha256sum
func TestSpecHashSecondWaveGolden(t *testing.T) {
	const want = "a5b317183c901a7ac11f114d72d0a01d39b6c73d59d821bd45f45de02ccd6ad6"
	if got := mustDecode(t, base+second).SpecHash(); got != want {
		t.Errorf("SpecHash(base+second) = %s, want %s", got, want)
	}
}
