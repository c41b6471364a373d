package zfstest

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/jailkeeper/jailkeeper/internal/command"
)

// CommandTimeout bounds each command a test runs through Runner and each
// zpool and zfs command of the harness itself: a zfs-fuse that stops
// answering fails the test with the command's name instead of hanging it
// until the test binary's timeout.
const CommandTimeout = 90 * time.Second

// Runner returns a command.Runner for tests: command.Exec, with every
// command bounded by CommandTimeout on top of the caller's context. A
// command that runs out of time is killed and fails with a *command.Error
// naming its argv and matching context.DeadlineExceeded. Commands are
// looked up on PATH when they run, so after Pool `zfs` is the wrapper.
func Runner() command.Runner { return timed{next: command.Exec{}, d: CommandTimeout} }

type timed struct {
	next command.Runner
	d    time.Duration
}

func (r timed) Run(ctx context.Context, argv []string, stdin io.Reader) ([]byte, error) {
	late := fmt.Errorf("no answer within %s", r.d)
	ctx, cancel := context.WithTimeoutCause(ctx, r.d, late)
	defer cancel()
	out, err := r.next.Run(ctx, argv, stdin)
	if err != nil && context.Cause(ctx) == late {
		err = fmt.Errorf("%w (%w)", err, late)
	}
	return out, err
}
