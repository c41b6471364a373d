package main

import (
	"github.com/spf13/cobra"

	"github.com/jailkeeper/jailkeeper/agent"
)

// newHostShutdownCmd is `jailkeeper host shutdown`.
func newHostShutdownCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "shutdown",
		Short: "Stop every running release, newest first (run by rc.d/jailkeeper_shutdown)",
		Args:  noArgs,
		Long: `host shutdown stops every running release in the reverse of the order they
started, one at a time, through the runtime: with jails, jail -r, whose
exec.stop runs /etc/rc.shutdown inside the jail, then the removal of the
release's rctl rules. The rc.d script jailkeeper_shutdown runs it when the
host shuts down; 'service jailkeeper stop' stops only the agent and leaves
the releases serving. It refuses to run while the agent runs (the agent
would start them again), and changes no release's state: the agent starts
the live releases again at boot.`,
	}
	cfgPath := configFlag(c)
	c.RunE = func(c *cobra.Command, _ []string) error {
		cfg, err := loadConfig(*cfgPath)
		if err != nil {
			return err
		}
		return agent.Shutdown(c.Context(), cfg, c.OutOrStdout())
	}
	return c
}
