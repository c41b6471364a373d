package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/jailkeeper/jailkeeper/agent"
)

// newRunCmd is `jailkeeper run`: the daemon, until SIGINT or SIGTERM.
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
