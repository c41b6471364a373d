package manifest

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"
)

// second sets every key of the second wave (DESIGN "Manifest v1": data,
// limits, standby, canary, migrate, migrate_timeout, a template pin); it
// is appended to base.
const second = `template: 14.3-RELEASE@base-20261129-150405
data:
  - {name: uploads, path: /var/db/hello, quota: 10G}
  - name: cache
    path: /usr/local/www/hello/cache
limits: {memory: 512M, pcpu: 50, maxproc: 200, openfiles: 4096, disk: 5GiB}
standby: 15m
canary: {steps: [10, 50], interval: 2m, max_failures: 5}
migrate: [/usr/local/bin/hello, migrate, --to, latest]
migrate_timeout: 10m
`

func TestDecodeSecondWave(t *testing.T) {
	s := mustDecode(t, base+second)
	standby := 15 * time.Minute
	want := Service{
		Template:         "14.3-RELEASE",
		TemplateSnapshot: "base-20261129-150405",
		Data: []Data{
			{Name: "uploads", Path: "/var/db/hello", Quota: 10 << 30},
			{Name: "cache", Path: "/usr/local/www/hello/cache"},
		},
		Limits:         Limits{Memory: 512 << 20, PCPU: 50, MaxProc: 200, OpenFiles: 4096, Disk: 5 << 30},
		Standby:        &standby,
		Canary:         &Canary{Steps: []int{10, 50}, Interval: 2 * time.Minute, MaxFailures: 5},
		Migrate:        []string{"/usr/local/bin/hello", "migrate", "--to", "latest"},
		MigrateTimeout: 10 * time.Minute,
	}
	got := Service{
		Template: s.Template, TemplateSnapshot: s.TemplateSnapshot, Data: s.Data, Limits: s.Limits,
		Standby: s.Standby, Canary: s.Canary, Migrate: s.Migrate, MigrateTimeout: s.MigrateTimeout,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Decode (-want +got):\n%s", diff)
	}
	if err := s.Validate(); err != nil {
		t.Errorf("Validate of a decoded manifest: %v", err)
	}
	if got, want := s.TemplateRef(), "14.3-RELEASE@base-20261129-150405"; got != want {
		t.Errorf("TemplateRef = %q, want %q", got, want)
	}
	if got := s.StandbyOr(time.Hour); got != standby {
		t.Errorf("StandbyOr = %s, want %s", got, standby)
	}
}

// TestDecodeSecondWaveDefaults: what each new key means when it is left
// out, or written at its default or empty.
func TestDecodeSecondWaveDefaults(t *testing.T) {
	s := mustDecode(t, base)
	if s.Data != nil || !s.Limits.IsZero() || s.Standby != nil || s.Canary != nil || s.Migrate != nil || s.MigrateTimeout != 0 || s.TemplateSnapshot != "" {
		t.Errorf("base: second-wave fields set: %+v", s)
	}
	if got := s.StandbyOr(7 * time.Minute); got != 7*time.Minute {
		t.Errorf("StandbyOr without standby = %s, want the agent's default", got)
	}

	s = mustDecode(t, base+"standby: 0s\n")
	if s.Standby == nil || *s.Standby != 0 || s.StandbyOr(time.Hour) != 0 {
		t.Errorf("standby: 0s = %v, want set to 0 (off), not the default", s.Standby)
	}

	s = mustDecode(t, base+"data: []\nlimits: {}\n")
	if s.Data != nil || !s.Limits.IsZero() {
		t.Errorf("empty data and limits = %+v %+v, want none", s.Data, s.Limits)
	}

	s = mustDecode(t, base+"migrate: [/usr/local/bin/hello, migrate]\n")
	if s.MigrateTimeout != DefaultMigrateTimeout {
		t.Errorf("migrate_timeout = %s, want the default %s", s.MigrateTimeout, DefaultMigrateTimeout)
	}

	s = mustDecode(t, base+"canary: {steps: [25]}\n")
	if diff := cmp.Diff(&Canary{Steps: []int{25}, Interval: DefaultCanaryInterval, MaxFailures: DefaultCanaryMaxFailures}, s.Canary); diff != "" {
		t.Errorf("canary defaults (-want +got):\n%s", diff)
	}

	s = mustDecode(t, base+"template: 14.3-RELEASE@base\n")
	if s.Template != "14.3-RELEASE" || s.TemplateSnapshot != "base" {
		t.Errorf("template pin = %q @ %q, want 14.3-RELEASE @ base", s.Template, s.TemplateSnapshot)
	}
}

// TestDecodeSecondWaveForms: YAML forms that mean the same decode alike.
func TestDecodeSecondWaveForms(t *testing.T) {
	tests := []struct {
		name string
		a, b string
	}{
		{"size units", "limits: {memory: 512M, disk: 5G}\n", "limits: {memory: 512mb, disk: 5120MiB}\n"},
		{"size in bytes", "limits: {memory: 1G}\n", "limits: {memory: 1073741824}\n"},
		{"quoted size", "data: [{name: a, path: /srv/a, quota: 1G}]\n", "data: [{name: a, path: /srv/a, quota: \"1024M\"}]\n"},
		{"block and flow", "data: [{name: a, path: /srv/a}]\n", "data:\n  - name: a\n    path: /srv/a\n"},
		{"merge key", "data: [{name: a, path: /srv/a}]\n", "data: [{<<: {path: /srv/a, name: z}, name: a}]\n"},
		{"anchors", "canary: {steps: [10, 50]}\nlimits: {pcpu: 10}\n", "canary: {steps: [&s 10, 50]}\nlimits: {pcpu: *s}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := mustDecode(t, base+tt.a), mustDecode(t, base+tt.b)
			if diff := cmp.Diff(a, b); diff != "" {
				t.Errorf("(-a +b):\n%s", diff)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"0", 0},
		{"4096", 4096},
		{"512B", 512},
		{"1K", 1 << 10},
		{"1k", 1 << 10},
		{"512M", 512 << 20},
		{"512MB", 512 << 20},
		{"512MiB", 512 << 20},
		{"512mib", 512 << 20},
		{"10G", 10 << 30},
		{"2T", 2 << 40},
		{"1P", 1 << 50},
		{"7E", 7 << 60},
		{"9223372036854775807", 1<<63 - 1},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v, want %d", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{"", "G", "1.5G", "-1G", "1 G", "10X", "10Z", "1BB", "1iB", "1GiBs", "8E", "9223372036854775808", "99999999999999999999G", "0x10", " 1G"} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
		}
	}
}

func TestFormatSize(t *testing.T) {
	tests := []struct {
		in   int64
		want string
	}{
		{0, "0"}, {1, "1"}, {1536, "1536"}, {3072, "3K"}, {512 << 20, "512M"}, {10 << 30, "10G"}, {1<<63 - 1, "9223372036854775807"}, {7 << 60, "7E"},
	}
	for _, tt := range tests {
		if got := FormatSize(tt.in); got != tt.want {
			t.Errorf("FormatSize(%d) = %q, want %q", tt.in, got, tt.want)
		}
		if back, err := ParseSize(FormatSize(tt.in)); err != nil || back != tt.in {
			t.Errorf("ParseSize(FormatSize(%d)) = %d, %v", tt.in, back, err)
		}
	}
}

func TestDataPathProblem(t *testing.T) {
	for _, p := range []string{"/var/db/hello", "/usr/local/www/hello/uploads", "/srv/hello", "/home/hello", "/data", "/var/db", "/usr/home/app", "/var/spool/app", "/opt/app"} {
		if msg := DataPathProblem(p); msg != "" {
			t.Errorf("DataPathProblem(%q) = %q, want none", p, msg)
		}
	}
	tests := []struct{ in, msg string }{
		{"", "is required"},
		{"var/db/x", "clean absolute path"},
		{"/var/db/../x", "clean absolute path"},
		{"/var/db/x/", "clean absolute path"},
		{"/", "must not be /"},
		{"/var/db/my data", "letters, digits"},
		{"/var/db/x\n", "letters, digits"},
		{"/etc", "which the release needs"},
		{"/etc/app", `is in /etc`},
		{"/tmp", "is in /tmp"},
		{"/var/run/app", "is in /var/run"},
		{"/var/log", "is in /var/log"},
		{"/usr/local/etc/app", "is in /usr/local/etc"},
		{"/usr/local/bin", "is in /usr/local/bin"},
		{"/usr", "would hide /usr/bin"},
		{"/usr/local", "would hide /usr/local/bin"},
		{"/var", "would hide /var/empty"},
		{"/" + strings.Repeat("a", MaxDataPath), "at most"},
	}
	for _, tt := range tests {
		if msg := DataPathProblem(tt.in); !strings.Contains(msg, tt.msg) {
			t.Errorf("DataPathProblem(%q) = %q, want it to contain %q", tt.in, msg, tt.msg)
		}
	}
}

// TestDecodeLimits: the agent config's defaults.limits takes a manifest's
// units and bounds, and its problems name the file, line and field.
func TestDecodeLimits(t *testing.T) {
	limitsNode := func(t *testing.T, in string) *yaml.Node {
		t.Helper()
		var doc struct {
			Defaults struct {
				Limits yaml.Node `yaml:"limits"`
			} `yaml:"defaults"`
		}
		if err := yaml.Unmarshal([]byte(in), &doc); err != nil {
			t.Fatal(err)
		}
		return &doc.Defaults.Limits
	}
	l, err := DecodeLimits("jailkeeper.yaml", "defaults.limits", limitsNode(t, "defaults:\n  limits: {memory: 1G, pcpu: 100, disk: 20G}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Limits{Memory: 1 << 30, PCPU: 100, Disk: 20 << 30}, l); diff != "" {
		t.Errorf("DecodeLimits (-want +got):\n%s", diff)
	}

	_, err = DecodeLimits("jailkeeper.yaml", "defaults.limits", limitsNode(t, "defaults:\n  limits:\n    memory: 1.5G\n    pcpu: 0\n    maxprocs: 10\n"))
	var errs Errors
	if !errors.As(err, &errs) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("DecodeLimits = %v, want Errors", err)
	}
	var got []string
	for _, e := range errs {
		got = append(got, fmt.Sprintf("%s:%d %s", e.File, e.Line, e.Field))
	}
	want := []string{"jailkeeper.yaml:3 defaults.limits.memory", "jailkeeper.yaml:4 defaults.limits.pcpu", "jailkeeper.yaml:5 defaults.limits.maxprocs"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("problems (-want +got):\n%s\n%v", diff, err)
	}
}

// TestDecodeMergeBomb: merge keys that refer to the same mappings over
// and over cost once per mapping, not once per path through them.
func TestDecodeMergeBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString(base + "x0: &m0 {path: /srv/a}\n")
	for i := 1; i <= 8; i++ {
		fmt.Fprintf(&b, "x%d: &m%d {<<: [", i, i)
		for j := range 50 {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*m%d", i-1)
		}
		b.WriteString("]}\n")
	}
	b.WriteString("data: [{<<: *m8, name: a}]\n")
	_, err := Decode("hello.yaml", []byte(b.String()))
	// The x keys are unknown fields; data itself decodes.
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Decode = %v, want Errors", err)
	}
	for _, e := range errs {
		if !strings.HasPrefix(e.Field, "x") {
			t.Errorf("problem %q, want only the unknown x keys", e)
		}
	}
}
