package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/jailkeeper/jailkeeper/agent"
	"github.com/jailkeeper/jailkeeper/internal/redact"
)

// newRebaseCmd is `jailkeeper rebase resume`: a rebase that a failure
// paused (rebase.pause_on_failure) goes on.
func newRebaseCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "rebase",
		Short: "Control the roll of services to a newer template snapshot",
	}
	r := &cobra.Command{
		Use:   "resume",
		Short: "Resume paused rebases: the failed service is tried again, then the rest roll",
		Args:  cobra.NoArgs,
	}
	cfgPath := configFlag(r)
	socket := r.Flags().String("socket", "", "the agent's control socket (default: control_socket from the config)")
	r.RunE = func(cmd *cobra.Command, _ []string) error {
		path, err := controlSocket(*cfgPath, *socket)
		if err != nil {
			return err
		}
		var reply agent.RebaseReply
		if err := controlDo(cmd.Context(), path, "/rebase/resume", nil, &reply); err != nil {
			return err
		}
		fmt.Fprintln(cmd.OutOrStdout(), "rebases resumed; failures until now pause them no longer, a failed service is tried again after its backoff")
		return printRebase(cmd.OutOrStdout(), agent.Status{Rebase: reply.Templates})
	}
	c.AddCommand(r)
	return c
}

// printRebase lists, below the status table, each template that has
// services still to roll to its newest snapshot, and why a paused one is.
func printRebase(w io.Writer, st agent.Status) error {
	p := redact.Printable
	for _, t := range st.Rebase {
		var err error
		switch {
		case t.Error != "":
			_, err = fmt.Fprintf(w, "template %s: %s\n", p(t.Template), p(t.Error))
		case t.Rebasing():
			state := "rolling"
			if t.Paused {
				state = "paused"
			}
			_, err = fmt.Fprintf(w, "rebase %s@%s %s: %d current, %d rolling, %d pending, %d held, %d failed\n",
				p(t.Template), p(t.Snapshot), state, t.Current, t.Rolling, t.Pending, t.Held, t.Failed)
			if err == nil && t.Reason != "" {
				_, err = fmt.Fprintf(w, "  %s\n", p(t.Reason))
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}
