package main

import (
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/jailkeeper/jailkeeper/agent"
	"github.com/jailkeeper/jailkeeper/release"
)

// newExecCmd is `jailkeeper exec SERVICE -- CMD...`: a command in the live
// release, run on the host against the runtime.
func newExecCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "exec SERVICE [--root] -- CMD [ARG...]",
		Short: "Run a command in a service's live release (as the app's user)",
		Long: `Exec runs CMD in the service's live release with this terminal's stdin,
stdout and stderr, and exits with its exit status. It runs on the host,
straight against the runtime (as root, beside the agent), never through the
agent's HTTP listener. The live release is found as for logs.

Jails: jexec -U <app user> <release> CMD..., in the jail's /, with a clean
environment (PATH, TERM and the user's login class; none of this command's
own). --root runs it as the jail's root instead, and only when the agent
config's policy.root_exec is true.

Process runtime: CMD runs as a child of this command, in the release root,
with the release's environment (PATH, the manifest's env, PORT, HOST, ADDR).
There is no isolation: it runs as the user that runs jailkeeper and sees the
host's files. --root is refused.`,
		Args: cobra.MinimumNArgs(2),
	}
	cfgPath := configFlag(c)
	root := c.Flags().Bool("root", false, "run as the jail's root (needs policy.root_exec: true)")
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if n := cmd.ArgsLenAtDash(); n != 1 {
			return usageError{errors.New("usage: jailkeeper exec SERVICE -- CMD [ARG...]")}
		}
		cfg, err := loadConfig(*cfgPath)
		if err != nil {
			return err
		}
		// Interrupts from the terminal reach the command too (same process
		// group): it decides, jailkeeper waits for it. A handler, not
		// signal.Ignore: an ignored signal stays ignored in the child.
		signal.Notify(make(chan os.Signal, 1), os.Interrupt, syscall.SIGQUIT)
		err = agent.Exec(cmd.Context(), cfg, args[0], release.ExecRequest{
			Argv: args[1:], Root: *root,
			Stdin: cmd.InOrStdin(), Stdout: cmd.OutOrStdout(), Stderr: cmd.ErrOrStderr(),
		})
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			code := ee.ExitCode()
			if code <= 0 {
				code = exitFailure
			}
			return &exitError{code: code, err: errors.New("")}
		case errors.Is(err, agent.ErrConfig), errors.Is(err, agent.ErrRootExec):
			return invalid(err)
		}
		return err
	}
	return c
}
