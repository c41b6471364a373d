package main

import (
	"fmt"
	"net/http"

	"github.com/spf13/cobra"
)

// newSyncCmd is `jailkeeper sync`: asks the running agent for a pass now.
func newSyncCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "sync",
		Short: "Ask the running agent for a pass now",
		Args:  cobra.NoArgs,
	}
	cfgPath := configFlag(c)
	addr := c.Flags().String("addr", "", "agent listen address (default: listen from the config)")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		base, err := daemonURL(*cfgPath, *addr)
		if err != nil {
			return err
		}
		body, err := httpDo(cmd.Context(), http.MethodPost, base+"/sync")
		if err != nil {
			return err
		}
		fmt.Fprint(cmd.OutOrStdout(), string(body))
		return nil
	}
	return c
}
