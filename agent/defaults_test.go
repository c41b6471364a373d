package agent

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jailkeeper/jailkeeper/manifest"
)

func TestConfigDefaultLimits(t *testing.T) {
	c, err := ParseConfig("/etc/jk.yaml", []byte("repo: {url: x}\ndefaults:\n  limits: {memory: 1G, pcpu: 100, maxproc: 300, openfiles: 8192, disk: 20G}\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := manifest.Limits{Memory: 1 << 30, PCPU: 100, MaxProc: 300, OpenFiles: 8192, Disk: 20 << 30}
	if diff := cmp.Diff(want, c.DefaultLimits()); diff != "" {
		t.Errorf("defaults.limits (-want +got):\n%s", diff)
	}
	none, err := ParseConfig("/etc/jk.yaml", []byte("repo: {url: x}\n"))
	if err != nil || !none.DefaultLimits().IsZero() {
		t.Errorf("no defaults: %+v %v", none.DefaultLimits(), err)
	}
}

// TestConfigDefaultLimitsInvalid: defaults.limits takes a manifest's
// units and bounds, and each problem names the file, the line and the
// field.
func TestConfigDefaultLimitsInvalid(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"unit with a space", "defaults:\n  limits: {memory: 512 MB}\n", `/etc/jk.yaml:3: defaults.limits.memory: must be a size such as 512M or 10G, got "512 MB"`},
		{"bytes without a unit", "defaults:\n  limits: {disk: 5}\n", "/etc/jk.yaml:3: defaults.limits.disk: must be at least 1M"},
		{"percent sign", "defaults:\n  limits:\n    pcpu: 50%\n", "/etc/jk.yaml:4: defaults.limits.pcpu: must be an integer"},
		{"zero", "defaults:\n  limits: {openfiles: 0}\n", "defaults.limits.openfiles: must not be 0; leave it out for no limit"},
		{"unknown key", "defaults:\n  limits: {memroy: 1G}\n", `defaults.limits.memroy: unknown field; did you mean "memory"`},
		{"a list", "defaults:\n  limits: [1G]\n", "defaults.limits: must be a mapping"},
		{"unknown defaults key", "defaults:\n  limit: {memory: 1G}\n", "limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig("/etc/jk.yaml", []byte("repo: {url: x}\n"+tc.in))
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want ErrConfig with %q", err, tc.want)
			}
		})
	}
}

// TestApplyDefaultLimits: defaults.limits goes to the manifests that set
// no limits, whole, and becomes part of their spec; a manifest with limits
// of its own keeps exactly those.
func TestApplyDefaultLimits(t *testing.T) {
	base := "sha: 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n" +
		"artifact: {url: \"https://ci.example.com/a\", sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}\nport: 8080\n"
	fsys := fstest.MapFS{
		"plain.yaml": {Data: []byte("service: plain\nhostnames: [plain.example.com]\n" + base)},
		"empty.yaml": {Data: []byte("service: empty\nhostnames: [empty.example.com]\nlimits: {}\n" + base)},
		"own.yaml":   {Data: []byte("service: own\nhostnames: [own.example.com]\nlimits: {memory: 256M}\n" + base)},
	}
	c, err := ParseConfig("/etc/jk.yaml", []byte("repo: {url: x}\ndefaults: {limits: {memory: 1G, openfiles: 4096}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	load := func() map[string]manifest.Service {
		d, err := LoadDesired(fsys, manifest.Policy{}, "web1", t.TempDir(), "rev", time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		c.applyDefaults(d)
		m := map[string]manifest.Service{}
		for _, s := range d.Services {
			m[s.Service] = s
		}
		return m
	}
	got := load()
	def := manifest.Limits{Memory: 1 << 30, OpenFiles: 4096}
	for svc, want := range map[string]manifest.Limits{"plain": def, "empty": def, "own": {Memory: 256 << 20}} {
		if got[svc].Limits != want {
			t.Errorf("%s: limits %+v, want %+v", svc, got[svc].Limits, want)
		}
	}
	plain := got["plain"]
	before := plain.ReleaseName()
	c.Defaults.limits = manifest.Limits{}
	again := load()["plain"]
	if again.ReleaseName() == before {
		t.Error("the defaulted limits are not part of the release name: changing them would not roll out")
	}
}
