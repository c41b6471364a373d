package main

import (
	"fmt"
	"io"
	"time"

	"github.com/jailkeeper/jailkeeper/agent"
	"github.com/jailkeeper/jailkeeper/internal/redact"
)

// printStandby lists, below the table, the releases kept running on
// standby for an instant rollback and when each is stopped. A line of its
// own keeps the table's columns as scripts read them.
func printStandby(w io.Writer, st agent.Status) error {
	for _, s := range st.Services {
		if s.Standby == "" {
			continue
		}
		if _, err := fmt.Fprintf(w, "standby %s: %s until %s\n", redact.Printable(s.Service), redact.Printable(s.Standby),
			s.StandbyUntil.UTC().Format(time.RFC3339)); err != nil {
			return err
		}
	}
	return nil
}
