package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/jailkeeper/jailkeeper/agent"
	"github.com/jailkeeper/jailkeeper/internal/redact"
)

// newStatusCmd is `jailkeeper status`: the running agent's last pass.
func newStatusCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "status",
		Short: "Show each service's desired and live release (asks the running agent)",
		Args:  cobra.NoArgs,
	}
	cfgPath := configFlag(c)
	addr := c.Flags().String("addr", "", "agent listen address (default: listen from the config)")
	output := c.Flags().StringP("output", "o", "table", "table or json")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		if *output != "table" && *output != "json" {
			return usageError{fmt.Errorf("--output: %q is not table or json", *output)}
		}
		base, err := daemonURL(*cfgPath, *addr)
		if err != nil {
			return err
		}
		body, err := httpDo(cmd.Context(), http.MethodGet, base+"/status")
		if err != nil {
			return err
		}
		if *output == "json" {
			_, err := cmd.OutOrStdout().Write(body)
			return err
		}
		var st agent.Status
		if err := json.Unmarshal(body, &st); err != nil {
			return fmt.Errorf("decode status: %w", err)
		}
		return printStatus(cmd.OutOrStdout(), st)
	}
	return c
}

// printStatus prints st as a table. Every field goes through
// redact.Printable: the agent may be older than this binary, or not an
// agent at all, and a terminal must never receive an escape from it.
func printStatus(w io.Writer, st agent.Status) error {
	p := redact.Printable
	fmt.Fprintf(w, "revision %s\n", p(st.Revision))
	if st.Error != "" {
		fmt.Fprintf(w, "error: %s\n", p(st.Error))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tDESIRED\tLIVE\tRELEASE\tCONVERGED\tSTATE\tMESSAGE")
	for _, s := range st.Services {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%s\t%s\n", p(s.Service), p(short(s.DesiredSHA)), p(short(s.LiveSHA)),
			p(s.LiveRelease), s.Converged, p(s.State), p(s.Message))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if err := printStandby(w, st); err != nil {
		return err
	}
	if err := printRebase(w, st); err != nil {
		return err
	}
	return printOrphanedData(w, st.OrphanedData)
}

func short(sha string) string {
	if sha == "" {
		return "-"
	}
	return sha[:min(12, len(sha))]
}
