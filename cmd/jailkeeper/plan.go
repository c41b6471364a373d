package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/jailkeeper/jailkeeper/agent"
	"github.com/jailkeeper/jailkeeper/manifest"
	"github.com/jailkeeper/jailkeeper/reconcile"
)

// newPlanCmd is `jailkeeper plan`: one pass planned and printed, nothing run.
func newPlanCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "plan",
		Short: "Print what a pass would do now; changes nothing",
		Args:  cobra.NoArgs,
	}
	cfgPath := configFlag(c)
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := loadConfig(*cfgPath)
		if err != nil {
			return err
		}
		d, steps, err := agent.PlanOnce(cmd.Context(), cfg, cmd.ErrOrStderr())
		if d != nil {
			fmt.Fprintf(cmd.OutOrStdout(), "revision %s\n", d.Revision)
		}
		for _, s := range steps {
			fmt.Fprintln(cmd.OutOrStdout(), s.String())
		}
		if errors.Is(err, agent.ErrConfig) || errors.Is(err, reconcile.ErrPruneAll) || errors.Is(err, manifest.ErrInvalid) {
			return invalid(err)
		}
		return err
	}
	return c
}
