package main

import (
	"errors"
	"os/exec"

	"github.com/spf13/cobra"

	"github.com/jailkeeper/jailkeeper/caddy"
)

// newRunCaddyCmd is `jailkeeper run-caddy`: Caddy on sockets opened here.
func newRunCaddyCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "run-caddy --listen ADDR [--listen ADDR...] -- CADDY [ARGS...]",
		Short: "Run Caddy with its listening sockets opened here and handed over as fd/3, fd/4, ...",
		Long: `run-caddy opens a TCP listening socket for each --listen address and runs
CADDY with them as file descriptors 3, 4, ...; set the agent's caddy.listen
to ["fd/3"] to serve on the first. The socket then stays the same across
Caddy's config reloads, so a reload drops no queued connection. (A switch
reloads nothing: the agent writes the new upstream to a file Caddy reads on
every request, caddy.upstream_dir.) Signals are passed on to Caddy; the
exit status is Caddy's.`,
		Args: cobra.MinimumNArgs(1),
	}
	listen := c.Flags().StringArray("listen", nil, "address to listen on, e.g. :8080 (repeatable)")
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if len(*listen) == 0 {
			return usageError{errors.New("run-caddy: at least one --listen is required")}
		}
		err := caddy.RunWithListeners(*listen, args)
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return &exitError{code: max(ee.ExitCode(), 1), err: errors.New("")}
		}
		return err
	}
	return c
}
