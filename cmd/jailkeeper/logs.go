package main

import (
	"errors"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/jailkeeper/jailkeeper/agent"
)

// newLogsCmd is `jailkeeper logs SERVICE`: the app log of the live release,
// read on the host from the runtime.
func newLogsCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "logs SERVICE [-f] [--release R] [-n N]",
		Short: "Print a service's app log (live release, or a named one); -f follows it across switches",
		Long: `Logs prints the app log of the service's live release, read on the host
straight from the runtime (run it as root, beside the agent; the agent's
HTTP listener is not involved). The live release is the one Caddy routes the
service to; when Caddy does not answer, the one whose stored state is live.

--release R reads release R instead, whatever its state: a failed release is
kept for its logs. -n N prints the last N lines (default 10) first. -f keeps
printing what is appended, survives newsyslog's rotation and truncation, and
when another release becomes live prints "==> now following RELEASE" and
continues with that release's log (not with --release).

Jails: the log is /var/log/<service>.log inside the release's jail (what
daemon(8) -o writes), opened through the jail's root so that a link planted
in the jail cannot point the host's root at a host file. Process runtime:
the release directory's log file. --console (jails only) reads the jail's
console log instead, /var/log/jail_<release>_console.log on the host: what
/etc/rc and /etc/rc.shutdown printed.`,
		Args: cobra.ExactArgs(1),
	}
	cfgPath := configFlag(c)
	var opts agent.LogsOptions
	c.Flags().BoolVarP(&opts.Follow, "follow", "f", false, "keep printing new lines; follow the service to a new live release")
	c.Flags().StringVar(&opts.Release, "release", "", "read this release's log instead of the live one's")
	c.Flags().IntVarP(&opts.Lines, "lines", "n", 10, "print the last N lines first")
	c.Flags().BoolVar(&opts.Console, "console", false, "jails: read the jail's console log (/etc/rc's output) instead of the app log")
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if opts.Lines < 0 {
			return usageError{errors.New("--lines: must not be negative")}
		}
		cfg, err := loadConfig(*cfgPath)
		if err != nil {
			return err
		}
		opts.Service = args[0]
		ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		err = agent.Logs(ctx, cfg, opts, cmd.OutOrStdout())
		if errors.Is(err, agent.ErrConfig) {
			return invalid(err)
		}
		return err
	}
	return c
}
