package agent_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestE2EArtifactCacheBounded: the artifact cache keeps what the current
// manifests name and bounds the rest by artifacts.cache_max (issue 9, item
// 12: it was never pruned). With cache_max 0, an upgrade leaves only the
// new artifact; a revert to the retained release still needs no download.
func TestE2EArtifactCacheBounded(t *testing.T) {
	e := newEnv(t, "@every 1h")
	cfg, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	bounded := strings.Replace(string(cfg), "artifacts: {file_root: ", "artifacts: {cache_max: 0, file_root: ", 1)
	if bounded == string(cfg) {
		t.Fatal("the test config has no artifacts line to change")
	}
	if err := os.WriteFile(e.cfgPath, []byte(bounded), 0o644); err != nil {
		t.Fatal(err)
	}
	e.startHello()
	cache := func() []string {
		ents, _ := os.ReadDir(filepath.Join(e.stateDir, "artifacts"))
		var names []string
		for _, en := range ents {
			names = append(names, en.Name())
		}
		return names
	}
	_, v1 := e.artifact("v1")
	_, v2 := e.artifact("v2")
	e.waitFor("v1 cached", 30*time.Second, func() bool { c := cache(); return len(c) == 1 && c[0] == v1 })

	e.commit("hello v2", map[string]string{"services/hello.yaml": e.helloManifest("hello", "v2", "")})
	e.sync()
	e.waitVersion("hello", "v2", 60*time.Second)
	e.waitFor("only v2 cached", 60*time.Second, func() bool { c := cache(); return len(c) == 1 && c[0] == v2 })

	dirs := len(e.releaseDirs())
	e.git(e.work, "revert", "--no-edit", "HEAD")
	e.git(e.work, "push", "-q", "origin", "main")
	e.sync()
	e.waitVersion("hello", "v1", 60*time.Second)
	if got := len(e.releaseDirs()); got != dirs {
		t.Errorf("release dirs %d -> %d: the revert created a release", dirs, got)
	}
}
