package hostsetup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/jailkeeper/jailkeeper/internal/command"
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
	for line := range strings.Lines(string(out)) {
		fmt.Fprintf(h.out, "#   %s", line)
		if !strings.HasSuffix(line, "\n") {
			fmt.Fprintln(h.out)
		}
	}
	return err
}

func (h *hostSteps) note(format string, args ...any) {
	fmt.Fprintf(h.out, "# "+format+"\n", args...)
}

// sysrc sets an rc.conf(5) variable unless `sysrc -c` says it already has
// that value (for name+=value: already lists it). sysrc -c exits 0 when no
// change is needed and prints nothing without -v (sysrc(8)).
func (h *hostSteps) sysrc(assign string) error {
	if _, err := h.check("sysrc", "-c", assign); err == nil {
		h.note("ok: %s", assign)
		return nil
	} else if !h.dry {
		if _, ok := command.ExitCode(err); !ok {
			return err
		}
	}
	return h.do("sysrc", assign)
}

// zfsExists asks `zfs list -H -o name DS`: exit 0 if it exists, exit 1 with
// "dataset does not exist" if not (jails/testdata/freebsd/FACTS.md §3, REAL). Only the exit status
// and stderr are used. In a dry run it reports false.
func (h *hostSteps) zfsExists(ds string) (bool, error) {
	_, err := h.check("zfs", "list", "-H", "-o", "name", ds)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, errDryRun):
		return false, nil
	case strings.Contains(command.Stderr(err), "dataset does not exist"):
		return false, nil
	}
	return false, err
}
