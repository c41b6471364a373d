package main

import (
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/jailkeeper/jailkeeper/agent"
	"github.com/jailkeeper/jailkeeper/internal/redact"
	"github.com/jailkeeper/jailkeeper/release"
)

// newDataCmd is `jailkeeper data`: the persistent data sets on this host,
// which outlive releases and services.
func newDataCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "data",
		Short: "List or destroy persistent data (manifest key data)",
		Long: `A service's data sets (manifest key data) outlive its releases, and its
manifest: pruning a service never destroys them. These commands run on the
host, straight against the runtime (as root, beside the agent), never through
the agent's HTTP listener. jailkeeper status lists the orphaned ones, whose
service no manifest names any more.`,
	}
	c.AddCommand(newDataListCmd(), newDataDestroyCmd())
	return c
}

func newDataListCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "list",
		Short: "List the data sets on this host, with or without a manifest",
		Args:  cobra.NoArgs,
	}
	cfgPath := configFlag(c)
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := loadConfig(*cfgPath)
		if err != nil {
			return err
		}
		sets, err := agent.DataList(cmd.Context(), cfg)
		if errors.Is(err, agent.ErrConfig) {
			return invalid(err)
		}
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "SERVICE\tNAME\tWHERE")
		for _, s := range sets {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Service, s.Name, redact.Printable(s.Where))
		}
		return tw.Flush()
	}
	return c
}

func newDataDestroyCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "destroy SERVICE NAME --yes",
		Short: "Destroy a service's data set and its snapshots, for good",
		Long: `Destroy removes the data set NAME of SERVICE and every snapshot of it:
on FreeBSD zfs destroy -r <dataset>/data/SERVICE/NAME, with the process
runtime <root>/data/SERVICE/NAME. There is no undo, so --yes is required.

It is refused while the service has any release on this host, running or
kept for rollback: remove the service's manifest from the deploy repo, let
the agent prune it, then destroy its data.`,
		Args: cobra.ExactArgs(2),
	}
	cfgPath := configFlag(c)
	yes := c.Flags().Bool("yes", false, "really destroy the data and its snapshots")
	c.RunE = func(cmd *cobra.Command, args []string) error {
		service, name := args[0], args[1]
		if err := release.ValidService(service); err != nil {
			return usageError{err}
		}
		if err := release.ValidDataName(name); err != nil {
			return usageError{err}
		}
		if !*yes {
			return usageError{fmt.Errorf("data destroy removes %s's data set %s and all its snapshots for good: add --yes", service, name)}
		}
		cfg, err := loadConfig(*cfgPath)
		if err != nil {
			return err
		}
		err = agent.DataDestroy(cmd.Context(), cfg, service, name)
		switch {
		case errors.Is(err, agent.ErrConfig):
			return invalid(err)
		case errors.Is(err, release.ErrNotFound):
			return fmt.Errorf("%s has no data set %s on this host: %w", service, name, err)
		case err != nil:
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "destroyed data %s/%s\n", service, name)
		return nil
	}
	return c
}

// printOrphanedData is the part of `status` that lists the data sets of
// services no manifest names, with the command that removes each.
func printOrphanedData(w io.Writer, sets []release.DataSet) error {
	if len(sets) == 0 {
		return nil
	}
	p := redact.Printable
	fmt.Fprintln(w, "\norphaned data (no manifest names the service; kept until destroyed):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tNAME\tWHERE\tREMOVE WITH")
	for _, s := range sets {
		fmt.Fprintf(tw, "%s\t%s\t%s\tjailkeeper data destroy %s %s --yes\n", p(s.Service), p(s.Name), p(s.Where), p(s.Service), p(s.Name))
	}
	return tw.Flush()
}
