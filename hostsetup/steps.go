package hostsetup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/jailkeeper/jailkeeper/internal/command"
	"github.com/jailkeeper/jailkeeper/zfs"
)

// errDryRun is what a check "returns" in a dry run: nothing was looked at,
// so every step is shown as needed.
var errDryRun = errors.New("dry run")

// hostSteps runs (or, in a dry run, prints) the commands of host init and
// template create. Every command that changes something is printed before
// it runs; checks run silently, and in a dry run they are printed as
// comments and not run at all.
type hostSteps struct {
	ctx context.Context
	r   command.Runner
	dry bool
	out io.Writer
}

// check runs a read-only command. In a dry run it prints it and returns
// errDryRun.
func (h *hostSteps) check(argv ...string) ([]byte, error) {
	if h.dry {
		fmt.Fprintf(h.out, "# check: %s\n", command.Quote(argv))
		return nil, errDryRun
	}
	return h.r.Run(h.ctx, argv, nil)
}

// do prints argv and runs it (not in a dry run). What the command prints
// is passed on, indented.
func (h *hostSteps) do(argv ...string) error {
	fmt.Fprintln(h.out, command.Quote(argv))
	if h.dry {
		return nil
	}
	out, err := h.r.Run(h.ctx, argv, nil)
	h.passOn(out)
	return err
}

// passOn prints what a command printed, each line indented as a comment.
func (h *hostSteps) passOn(out []byte) {
	for line := range strings.Lines(string(out)) {
		fmt.Fprintf(h.out, "#   %s", line)
		if !strings.HasSuffix(line, "\n") {
			fmt.Fprintln(h.out)
		}
	}
}

func (h *hostSteps) note(format string, args ...any) {
	fmt.Fprintf(h.out, "# "+format+"\n", args...)
}

// checker is a command.Runner for read-only commands: h.check.
type checker struct{ h *hostSteps }

func (c checker) Run(_ context.Context, argv []string, _ io.Reader) ([]byte, error) {
	return c.h.check(argv...)
}

// doer is a command.Runner for commands that change something: h.do.
type doer struct{ h *hostSteps }

func (d doer) Run(_ context.Context, argv []string, _ io.Reader) ([]byte, error) {
	return nil, d.h.do(argv...)
}

// zfsCheck is the zfs client for looking (silent; not run in a dry run),
// zfsDo the one for changing (printed; only printed in a dry run). Host
// setup runs zfs through the same client as the runtimes.
func (h *hostSteps) zfsCheck() *zfs.Client { return zfs.New(checker{h}) }
func (h *hostSteps) zfsDo() *zfs.Client    { return zfs.New(doer{h}) }

// zfsExists asks `zfs list -H -o name DS` (zfs.Client.Exists). In a dry run
// it reports false.
func (h *hostSteps) zfsExists(ds string) (bool, error) {
	ok, err := h.zfsCheck().Exists(h.ctx, ds)
	if errors.Is(err, errDryRun) {
		return false, nil
	}
	return ok, err
}
