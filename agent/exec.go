package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/jailkeeper/jailkeeper/release"
)

// ErrRootExec: `exec --root` without the operator's policy.root_exec.
var ErrRootExec = errors.New("exec --root is not allowed: the operator's policy.root_exec is false")

// Exec runs req in the service's live release (see operator.live), on the
// host against the runtime, never through the agent's listener: jexec as
// the app's user in a jail, a child process for the process runtime. Root
// is refused unless cfg.Policy.RootExec. The command's own failure comes
// back as the runtime returns it (an *exec.ExitError carries its status).
func Exec(ctx context.Context, cfg *Config, service string, req release.ExecRequest) error {
	if err := release.ValidService(service); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if req.Root && !cfg.Policy.RootExec {
		return fmt.Errorf("%s: %w", cfg.File, ErrRootExec)
	}
	op, err := newOperator(cfg)
	if err != nil {
		return err
	}
	defer op.Close()
	name, err := op.live(ctx, service)
	if err != nil {
		return err
	}
	return op.rt.Exec(ctx, name, req)
}
