package agent_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/internal/testenv"
	"github.com/jailkeeper/jailkeeper/release"
)

var (
	dataAppOnce sync.Once
	dataAppDir  string
	dataAppErr  error
)

// dataApp builds testdata/dataapp in versions v1 and v2 once per run and
// returns the directory holding dataapp-v1 and dataapp-v2.
func dataApp(t *testing.T) string {
	t.Helper()
	dataAppOnce.Do(func() {
		dataAppDir, dataAppErr = os.MkdirTemp("", "jailkeeper-e2e-dataapp-")
		if dataAppErr != nil {
			return
		}
		for _, v := range []string{"v1", "v2"} {
			cmd := exec.Command("go", "build", "-ldflags", "-X main.version="+v, "-o", filepath.Join(dataAppDir, "dataapp-"+v), "./agent/testdata/dataapp")
			cmd.Dir = testenv.RepoRoot(t)
			if out, err := cmd.CombinedOutput(); err != nil {
				dataAppErr = fmt.Errorf("build dataapp %s: %v\n%s", v, err, out)
				return
			}
		}
	})
	if dataAppErr != nil {
		t.Fatal(dataAppErr)
	}
	return dataAppDir
}

// notesManifest deploys dataapp version as service notes, with one data
// set, notes, mounted at /var/db/notes (the process runtime passes its
// directory as DATA_NOTES).
func (e *env) notesManifest(version string) string {
	e.t.Helper()
	p := filepath.Join(e.dir, "artifacts", "dataapp-"+version)
	if _, err := os.Stat(p); err != nil {
		if err := os.Link(filepath.Join(dataApp(e.t), "dataapp-"+version), p); err != nil {
			e.t.Fatal(err)
		}
	}
	sum := fileSum(e.t, p)
	sha := sha256.Sum256([]byte("notes" + version))
	return fmt.Sprintf(`service: notes
sha: %s
artifact: {url: %q, sha256: %s}
hostnames: [notes.example.com]
port: 8080
command: [/usr/local/bin/dataapp]
health: {path: /up, interval: 100ms, timeout: 1s, threshold: 2, deadline: 15s, watch: 500ms}
drain: 500ms
retain: 2
data: [{name: notes, path: /var/db/notes}]
`, hex.EncodeToString(sha[:20]), "file://"+p, sum)
}

// note sends method /notes/key (with body for PUT) to the notes service
// through Caddy and returns the status and body.
func (e *env) note(method, key, body string) (int, string) {
	e.t.Helper()
	req, err := http.NewRequest(method, "http://"+e.caddy.HTTPAddr+"/notes/"+key, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Host = "notes.example.com"
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		e.t.Fatalf("%s /notes/%s: %v", method, key, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// jailkeeperExit runs the jailkeeper binary with the env's config and returns
// its exit code and output.
func (e *env) jailkeeperExit(args ...string) (int, string) {
	e.t.Helper()
	cmd := exec.Command(filepath.Join(e.bin, "jailkeeper"), append(args, "--config", e.cfgPath)...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	case err != nil:
		e.t.Fatalf("jailkeeper %s: %v", strings.Join(args, " "), err)
	}
	return 0, string(out)
}

// TestE2EDataSurvives: a service's data outlives its releases. What v1
// wrote, v2 reads, and what v2 wrote, v1 reads again after a git revert;
// both see the same directory. Removing the manifest prunes the releases
// and keeps the data, which status lists as orphaned; only `jailkeeper data
// destroy notes notes --yes` removes it, and not while a release is left.
func TestE2EDataSurvives(t *testing.T) {
	e := newEnv(t, "@every 1h")
	e.commit("add hello and notes", map[string]string{
		"services/hello.yaml": e.helloManifest("hello", "v1", ""), // pruning every service is refused
		"services/notes.yaml": e.notesManifest("v1"),
	})
	e.runAgent()
	e.waitVersion("notes", "v1", 60*time.Second)
	dir := filepath.Join(e.stateDir, "releases", "data", "notes", "notes")
	if code, got := e.note(http.MethodPut, "greeting", "written by v1"); code != http.StatusNoContent {
		t.Fatalf("PUT through v1: %d %q", code, got)
	}
	_, dirV1, _ := e.through(http.DefaultClient, "notes", "/dir")

	e.commit("notes v2", map[string]string{"services/notes.yaml": e.notesManifest("v2")})
	e.sync()
	e.waitVersion("notes", "v2", 60*time.Second)
	if code, got := e.note(http.MethodGet, "greeting", ""); code != 200 || got != "written by v1" {
		t.Errorf("v2 reads %d %q, want what v1 wrote", code, got)
	}
	if code, got := e.note(http.MethodPut, "second", "written by v2"); code != http.StatusNoContent {
		t.Fatalf("PUT through v2: %d %q", code, got)
	}
	_, dirV2, _ := e.through(http.DefaultClient, "notes", "/dir")
	if dirV1 != dir || dirV2 != dir {
		t.Errorf("DATA_NOTES of v1 %q and v2 %q, want both %q", dirV1, dirV2, dir)
	}

	// Roll back: git revert brings the retained v1 back; it reads both.
	e.waitFor("v1 retired", 30*time.Second, func() bool { return e.helloProcesses() == 2 })
	e.git(e.work, "revert", "--no-edit", "HEAD")
	e.git(e.work, "push", "-q", "origin", "main")
	e.sync()
	e.waitVersion("notes", "v1", 60*time.Second)
	for key, want := range map[string]string{"greeting": "written by v1", "second": "written by v2"} {
		if code, got := e.note(http.MethodGet, key, ""); code != 200 || got != want {
			t.Errorf("after the rollback, v1 reads %s: %d %q, want %q", key, code, got, want)
		}
	}

	// data destroy is refused while the service has releases.
	if code, out := e.jailkeeperExit("data", "destroy", "notes", "notes", "--yes"); code != 1 || !strings.Contains(out, "still has releases") {
		t.Errorf("data destroy of a live service: exit %d %q, want 1 and a refusal", code, out)
	}

	// Prune notes: its releases go, its data stays, and status says so.
	e.commit("remove notes", map[string]string{"services/notes.yaml": ""})
	e.sync()
	e.waitFor("notes pruned", 30*time.Second, func() bool {
		return !slices.ContainsFunc(e.releaseDirs(), func(d string) bool { return strings.HasPrefix(d, "notes_") })
	})
	for key, want := range map[string]string{"greeting": "written by v1", "second": "written by v2"} {
		if b, err := os.ReadFile(filepath.Join(dir, key)); err != nil || string(b) != want {
			t.Errorf("after the prune, %s holds %q (%v), want %q", key, b, err, want)
		}
	}
	orphan := release.DataSet{Service: "notes", Name: "notes", Where: dir}
	e.waitFor("status to list the orphaned data", 10*time.Second, func() bool {
		return slices.Contains(e.status().OrphanedData, orphan)
	})
	if code, out := e.jailkeeperExit("status", "--addr", e.listen); code != 0 || !strings.Contains(out, "jailkeeper data destroy notes notes --yes") {
		t.Errorf("jailkeeper status: exit %d:\n%s", code, out)
	}
	if code, out := e.jailkeeperExit("data", "list"); code != 0 || !strings.Contains(out, dir) {
		t.Errorf("jailkeeper data list: exit %d:\n%s", code, out)
	}

	// Only data destroy removes it, with --yes.
	if code, out := e.jailkeeperExit("data", "destroy", "notes", "notes"); code != 2 {
		t.Errorf("data destroy without --yes: exit %d %q, want 2", code, out)
	}
	if code, out := e.jailkeeperExit("data", "destroy", "notes", "notes", "--yes"); code != 0 {
		t.Fatalf("data destroy: exit %d %q", code, out)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("data after data destroy: %v", err)
	}
	e.sync()
	e.waitFor("status to drop the destroyed data", 10*time.Second, func() bool {
		return len(e.status().OrphanedData) == 0
	})
	if v := e.version("hello"); v != "v1" {
		t.Errorf("hello serves %q, want v1 throughout", v)
	}
}
