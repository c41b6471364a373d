package main

import (
	"fmt"
	"net/netip"

	"github.com/spf13/cobra"

	"github.com/jailkeeper/jailkeeper/agent"
	"github.com/jailkeeper/jailkeeper/hostsetup"
	"github.com/jailkeeper/jailkeeper/internal/command"
)

// newHostCmd is `jailkeeper host`, with `host init` and `host shutdown`.
func newHostCmd() *cobra.Command {
	host := &cobra.Command{
		Use:   "host",
		Short: "Prepare this FreeBSD host for the jail runtime",
		Args:  noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return usageError{fmt.Errorf("host needs a subcommand: init or shutdown")}
		},
	}
	initCmd := &cobra.Command{
		Use:   "init",
		Short: "Set up lo1, the datasets and the jail.conf include (idempotent)",
		Args:  noArgs,
		Long: `host init prepares the host for the jails section of the config: the
interface as a cloned interface with its own address (rc.conf and now), the
datasets <dataset>/{media,templates,containers} mounted at <root>, and the
.include of <conf_dir>/*.conf in /etc/jail.conf. Each step checks first and
changes only what is missing. It prints every command it runs, and last the
pf NAT rule the jails need for outbound traffic. It does not set
jail_enable: the agent starts the live releases at boot, and rc.d/jail
would start retired and failed ones too.
With --dry-run it runs and writes nothing and prints every step.`,
	}
	cfgPath := configFlag(initCmd)
	dry := initCmd.Flags().Bool("dry-run", false, "print the commands and file changes, change nothing")
	initCmd.RunE = func(c *cobra.Command, _ []string) error {
		cfg, err := loadConfig(*cfgPath)
		if err != nil {
			return err
		}
		hc, err := hostConfig(cfg)
		if err != nil {
			return err
		}
		return hostsetup.HostInit(c.Context(), hc, command.Exec{}, *dry, c.OutOrStdout())
	}
	host.AddCommand(initCmd, newHostShutdownCmd())
	return host
}

// hostConfig is the jails section of the config as host init needs it.
func hostConfig(cfg *agent.Config) (hostsetup.HostConfig, error) {
	pool, err := netip.ParsePrefix(cfg.Jails.Pool)
	if err != nil {
		return hostsetup.HostConfig{}, invalid(fmt.Errorf("%s: jails.pool: %w", cfg.File, err))
	}
	return hostsetup.HostConfig{
		Dataset:   cfg.Jails.Dataset,
		Root:      cfg.Jails.Root,
		Interface: cfg.Jails.Interface,
		Pool:      pool,
		ConfDir:   cfg.Jails.ConfDir,
	}, nil
}
