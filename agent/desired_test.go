package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jailkeeper/jailkeeper/manifest"
)

const secretManifest = `service: hello
sha: 4b825dc642cb6eb9a060e54bf8d69288fbee4904
artifact: {url: "https://ci.example.com/hello", sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}
hostnames: [hello.example.com]
port: 8080
env_file: hello.env
hosts: [web1]
`

func TestLoadDesiredHashesSecretsAndFiltersHosts(t *testing.T) {
	secrets := t.TempDir()
	fsys := fstest.MapFS{"hello.yaml": {Data: []byte(secretManifest)}}
	write := func(v string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(secrets, "hello.env"), []byte("TOKEN="+v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("one")
	d1, err := LoadDesired(fsys, manifest.Policy{}, "web1", secrets, "rev", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	write("two")
	d2, err := LoadDesired(fsys, manifest.Policy{}, "web1", secrets, "rev", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(d1.Services) != 1 || len(d2.Services) != 1 {
		t.Fatalf("services: %d, %d", len(d1.Services), len(d2.Services))
	}
	if d1.Services[0].ReleaseName() == d2.Services[0].ReleaseName() {
		t.Error("rotating the secret kept the release name; it must roll out")
	}
	if sameSpecs(d1, d2) {
		t.Error("sameSpecs missed the rotated secret")
	}
	if strings.Contains(d2.Services[0].EnvFileDigest, "two") {
		t.Error("the digest holds the secret")
	}

	other, err := LoadDesired(fsys, manifest.Policy{}, "web2", secrets, "rev", time.Time{})
	if err != nil || len(other.Services) != 0 {
		t.Errorf("host web2: %v, %d services; want none", err, len(other.Services))
	}

	os.Remove(filepath.Join(secrets, "hello.env"))
	_, err = LoadDesired(fsys, manifest.Policy{}, "web1", secrets, "rev", time.Time{})
	if err == nil || !strings.Contains(err.Error(), "hello.yaml") || !strings.Contains(err.Error(), "env_file") {
		t.Errorf("missing secret: err = %v, want one naming hello.yaml and env_file", err)
	}
}
