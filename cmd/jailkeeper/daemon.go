package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/jailkeeper/jailkeeper/agent"
	"github.com/jailkeeper/jailkeeper/internal/redact"
	"github.com/jailkeeper/jailkeeper/manifest"
	"github.com/jailkeeper/jailkeeper/reconcile"
)

func configFlag(c *cobra.Command) *string {
	return c.Flags().StringP("config", "c", agent.DefaultConfigPath, "agent config file")
}

// loadConfig reads the config; an invalid one is bad input (exit 2).
func loadConfig(path string) (*agent.Config, error) {
	cfg, err := agent.LoadConfig(path)
	if err != nil {
		return nil, invalid(err)
	}
	return cfg, nil
}

func newRunCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "run",
		Short: "Run the agent: poll the deploy repo and converge",
		Args:  cobra.NoArgs,
	}
	cfgPath := configFlag(c)
	level := c.Flags().String("log-level", "info", "debug, info, warn or error")
	format := c.Flags().String("log-format", "text", "text or json")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := loadConfig(*cfgPath)
		if err != nil {
			return err
		}
		log, err := newLogger(cmd.ErrOrStderr(), *level, *format)
		if err != nil {
			return usageError{err}
		}
		a, err := agent.New(cfg, log)
		if err != nil {
			if errors.Is(err, agent.ErrConfig) {
				return invalid(err)
			}
			return err
		}
		ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return a.Run(ctx)
	}
	return c
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: %q is not text or json", format)
}

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
		d, steps, err := agent.PlanOnce(cmd.Context(), cfg)
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

// daemonURL is the base URL of the running agent's listener.
func daemonURL(cfgPath, addr string) (string, error) {
	if addr == "" {
		cfg, err := loadConfig(cfgPath)
		if err != nil {
			return "", err
		}
		addr = cfg.Listen
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	return strings.TrimSuffix(addr, "/"), nil
}

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
	return tw.Flush()
}

func short(sha string) string {
	if sha == "" {
		return "-"
	}
	return sha[:min(12, len(sha))]
}

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

func httpDo(ctx context.Context, method, url string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("is the agent running? %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s %s: %s: %s", method, url, redact.Printable(resp.Status), redact.Printable(strings.TrimSpace(string(body))))
	}
	return body, nil
}
