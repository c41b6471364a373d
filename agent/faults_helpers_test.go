package agent_test

import (
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/jailkeeper/jailkeeper/process"
)

// processRuntime opens the process runtime on e's state dir, as the agent
// does, to read what it lists.
func (e *env) processRuntime(t *testing.T) *process.Runtime {
	t.Helper()
	rt, err := process.New(process.Config{Root: filepath.Join(e.stateDir, "releases"), Pool: netip.MustParsePrefix(e.pool)})
	if err != nil {
		t.Fatal(err)
	}
	return rt
}
