package agent_test

import "path/filepath"

// control is the agent's control socket in this env.
func (e *env) control() string { return filepath.Join(e.dir, "ctl.sock") }
