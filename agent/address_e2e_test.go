package agent_test

import (
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A stray process of an earlier run (hello v3) still serves on the address
// and port the runtime would hand out first. The new release is not marked
// failed: it gets another address and deploys, and Caddy serves it, not
// the stray.
func TestE2EStrayHoldsAddress(t *testing.T) {
	e := newEnv(t, "@every 1s")
	first := netip.MustParsePrefix(e.pool).Addr().Next().Next()
	stray := exec.Command(filepath.Join(e.bin, "hello-v3"))
	stray.Env = []string{"ADDR=" + first.String() + ":8080"}
	if err := stray.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stray.Process.Kill(); stray.Wait() })
	e.waitFor("the stray listening", 20*time.Second, func() bool { return !freePort(first.String() + ":8080") })

	e.startHello()
	e.waitFor("status converged", 20*time.Second, func() bool {
		s, ok := e.serviceStatus("hello")
		return ok && s.Converged && s.State == "live"
	})
	for _, d := range e.releaseDirs() {
		b, err := os.ReadFile(filepath.Join(e.stateDir, "releases", d, "release.json"))
		if err != nil {
			t.Fatal(err)
		}
		var r struct {
			State  string `json:"state"`
			IP     string `json:"ip"`
			Reason string `json:"reason"`
		}
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		if r.State == "failed" || r.IP == first.String() {
			t.Errorf("release %s: state %s on %s (%s); the stray holds %s", d, r.State, r.IP, r.Reason, first)
		}
	}
	if v := e.version("hello"); v != "v1" {
		t.Errorf("Caddy serves %q, want v1 (v3 is the stray)", v)
	}
	if strings.Contains(string(mustGet(t, e, "/status")), "is not running") {
		t.Errorf("status blames the release: %s", mustGet(t, e, "/status"))
	}
}
