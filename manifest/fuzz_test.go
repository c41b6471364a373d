package manifest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"
)

// render writes s back as a manifest, with every field spelled out.
func render(t testing.TB, s *Service) []byte {
	t.Helper()
	type health struct {
		Path      string `yaml:"path"`
		Interval  string `yaml:"interval"`
		Timeout   string `yaml:"timeout"`
		Threshold int    `yaml:"threshold"`
		Deadline  string `yaml:"deadline"`
		Watch     string `yaml:"watch"`
	}
	type manifest struct {
		Service   string            `yaml:"service"`
		SHA       string            `yaml:"sha"`
		Artifact  map[string]string `yaml:"artifact"`
		Hostnames []string          `yaml:"hostnames"`
		Port      int               `yaml:"port"`
		Command   []string          `yaml:"command"`
		Env       map[string]string `yaml:"env,omitempty"`
		EnvFile   string            `yaml:"env_file,omitempty"`
		User      string            `yaml:"user"`
		Health    health            `yaml:"health"`
		Drain     string            `yaml:"drain"`
		Retain    int               `yaml:"retain"`
		Hosts     []string          `yaml:"hosts,omitempty"`
		Template  string            `yaml:"template,omitempty"`
		Allow     []string          `yaml:"allow,omitempty"`
		Data      []map[string]any  `yaml:"data,omitempty"`
		Limits    map[string]any    `yaml:"limits,omitempty"`
		Standby   string            `yaml:"standby,omitempty"`
		Canary    map[string]any    `yaml:"canary,omitempty"`
		Migrate   []string          `yaml:"migrate,omitempty"`
		MigTime   string            `yaml:"migrate_timeout,omitempty"`
	}
	var data []map[string]any
	for _, d := range s.Data {
		item := map[string]any{"name": d.Name, "path": d.Path}
		if d.Quota != 0 {
			item["quota"] = FormatSize(d.Quota)
		}
		data = append(data, item)
	}
	limits := map[string]any{}
	for k, v := range map[string]int64{"memory": s.Limits.Memory, "disk": s.Limits.Disk} {
		if v != 0 {
			limits[k] = FormatSize(v)
		}
	}
	for k, v := range map[string]int{"pcpu": s.Limits.PCPU, "maxproc": s.Limits.MaxProc, "openfiles": s.Limits.OpenFiles} {
		if v != 0 {
			limits[k] = v
		}
	}
	var standby string
	if s.Standby != nil {
		standby = s.Standby.String()
	}
	var canary map[string]any
	if c := s.Canary; c != nil {
		canary = map[string]any{"steps": c.Steps, "interval": c.Interval.String(), "max_failures": c.MaxFailures}
	}
	var migTime string
	if s.Migrate != nil {
		migTime = s.MigrateTimeout.String()
	}
	h := s.Health
	b, err := yaml.Marshal(manifest{
		Service:   s.Service,
		SHA:       s.SHA,
		Artifact:  map[string]string{"url": s.Artifact.URL, "sha256": s.Artifact.SHA256},
		Hostnames: s.Hostnames,
		Port:      s.Port,
		Command:   s.Command,
		Env:       s.Env,
		EnvFile:   s.EnvFile,
		User:      s.User,
		Health: health{h.Path, h.Interval.String(), h.Timeout.String(), h.Threshold,
			h.Deadline.String(), h.Watch.String()},
		Drain:    s.Drain.String(),
		Retain:   s.Retain,
		Hosts:    s.Hosts,
		Template: s.TemplateRef(),
		Allow:    s.Allow,
		Data:     data,
		Limits:   limits,
		Standby:  standby,
		Canary:   canary,
		Migrate:  s.Migrate,
		MigTime:  migTime,
	})
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	return b
}

func TestRenderRoundTrip(t *testing.T) {
	for _, in := range []string{base, full} {
		s := mustDecode(t, in)
		again, err := Decode("hello.yaml", render(t, s))
		if err != nil {
			t.Fatalf("Decode(render(s)): %v\n%s", err, render(t, s))
		}
		if diff := cmp.Diff(s, again); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
	}
}

// FuzzDecode: decoding never panics; what decodes is valid, renders back to
// the same Service and has a stable SpecHash; what does not decode reports
// ErrInvalid problems that all name the file.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(base))
	f.Add([]byte(full))
	f.Add([]byte(""))
	f.Add([]byte(base + "env: &e {A: b}\nhealth: {<<: {path: /x}}\n"))
	f.Add([]byte(base + "port: 1\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("--- 1\n--- 2\n"))
	f.Add([]byte(base + second))
	f.Add([]byte(base + "data: [{<<: &d {name: a, path: /srv/a}}, {<<: *d, name: b}]\nlimits: {memory: 1073741824, pcpu: 1}\n"))
	f.Add([]byte(base + "template: 14.3-RELEASE@base\ncanary: {steps: []}\nmigrate: []\nstandby: 0s\n"))
	for _, dir := range []string{"testdata/invalid", "../deploy-repo-example/services"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.y*ml"))
		for _, p := range files {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Decode("fuzz.yaml", data)
		if err != nil {
			if s != nil {
				t.Fatalf("Decode returned a Service with error %v", err)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error is not ErrInvalid: %v", err)
			}
			var errs Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("error is not a non-empty Errors: %T %v", err, err)
			}
			for _, e := range errs {
				if e.File != "fuzz.yaml" || !strings.HasPrefix(e.Error(), "fuzz.yaml:") || e.Msg == "" {
					t.Fatalf("problem without file or message: %q", e)
				}
			}
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("decoded manifest does not validate: %v\n%s", err, data)
		}
		h := s.SpecHash()
		if h2 := s.SpecHash(); h2 != h || len(h) != 64 {
			t.Fatalf("SpecHash not stable: %s, %s", h, h2)
		}
		again, err := Decode("fuzz.yaml", render(t, s))
		if err != nil {
			t.Fatalf("rendered manifest does not decode: %v\n%s", err, render(t, s))
		}
		if diff := cmp.Diff(s, again); diff != "" {
			t.Fatalf("round trip (-want +got):\n%s", diff)
		}
		if again.SpecHash() != h {
			t.Fatalf("SpecHash changed in the round trip")
		}
	})
}
