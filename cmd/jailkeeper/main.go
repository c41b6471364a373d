package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/jailkeeper/jailkeeper/agent"
)

// Exit codes: 0 ok, 1 failure, 2 bad usage or invalid input.
const (
	exitFailure = 1
	exitInvalid = 2
)

// exitError carries the exit code a command wants.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// invalid marks err as bad input (exit 2).
func invalid(err error) error { return &exitError{code: exitInvalid, err: err} }

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	root := newRootCmd()
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil && ee.err.Error() != "" {
			fmt.Fprintln(os.Stderr, "jailkeeper:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(os.Stderr, "jailkeeper:", err)
	if isUsage(err) {
		return exitInvalid
	}
	return exitFailure
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "jailkeeper",
		Short:         "GitOps agent for FreeBSD jails behind Caddy",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		newVersionCmd(),
		newValidateCmd(),
		newRunCmd(),
		newPlanCmd(),
		newStatusCmd(),
		newLogsCmd(),
		newExecCmd(),
		newDataCmd(),
		newSyncCmd(),
		newSuspendCmd(),
		newResumeCmd(),
		newRebaseCmd(),
		newRunCaddyCmd(),
		newHostCmd(),
		newTemplateCmd(),
	)
	usageArgs(root)
	return root
}

// usageArgs makes every argument-count error a usage error (exit 2).
func usageArgs(c *cobra.Command) {
	if check := c.Args; check != nil {
		c.Args = func(cmd *cobra.Command, args []string) error {
			if err := check(cmd, args); err != nil {
				return usageError{err}
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		usageArgs(sub)
	}
}

// usageError marks a flag or argument error (exit 2).
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

func isUsage(err error) bool {
	var u usageError
	// cobra's own "unknown command" error has no type of its own.
	return errors.As(err, &u) || errors.Is(err, errUsage) || strings.HasPrefix(err.Error(), "unknown command ")
}

var errUsage = errors.New("usage")

// configFlag adds --config (-c), the agent config file, to c.
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

// noArgs is cobra.NoArgs as a usage error (exit 2).
func noArgs(c *cobra.Command, args []string) error {
	if err := cobra.NoArgs(c, args); err != nil {
		return usageError{err}
	}
	return nil
}
