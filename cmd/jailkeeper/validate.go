package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/jailkeeper/jailkeeper/manifest"
)

// newValidateCmd is `jailkeeper validate DIR`, for a deploy repo's CI.
func newValidateCmd() *cobra.Command {
	var policyFile string
	cmd := &cobra.Command{
		Use:   "validate [--policy FILE] DIR",
		Short: "Check the manifests of a deploy repo (for its CI)",
		Long: `Validate decodes and checks every *.yaml and *.yml manifest in DIR, the
manifest directory of a deploy repo checkout, as the agent would, and checks
them against each other (service equals file name, hostnames unique).

Manifests are checked against the operator's policy (the agent config's
policy key: which host-wide allow.* permissions and which run-as users
besides www manifests may use). --policy FILE reads the policy key of FILE,
the agent's config or a file that holds only that key; without it the
default policy applies, which allows none of them.

Valid: exit 0, one line per service on stdout: service, app sha (12),
release name, hostnames. Invalid: exit 2, one line per problem on stderr:
file:line: field: message. Files that are not manifests are ignored; env_file
secrets live on the hosts and are not read, so a release name shown for a
service with env_file is the one before the agent adds the secret's hash.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{fmt.Errorf("validate takes one directory, the deploy repo's manifest directory; got %d arguments", len(args))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runValidate(cmd, args[0], policyFile)
		},
	}
	cmd.Flags().StringVar(&policyFile, "policy", "", "read the operator's policy from the policy key of this YAML file (the agent config)")
	return cmd
}

func runValidate(cmd *cobra.Command, dir, policyFile string) error {
	var policy manifest.Policy
	if policyFile != "" {
		data, err := os.ReadFile(policyFile)
		if err != nil {
			return invalid(fmt.Errorf("validate --policy: %w", err))
		}
		if policy, err = manifest.DecodePolicy(policyFile, data); err != nil {
			return invalid(fmt.Errorf("validate --policy: %w", err))
		}
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		if err == nil {
			err = errors.New("not a directory")
		}
		return invalid(fmt.Errorf("validate %s: %w", dir, err))
	}
	svcs, err := manifest.LoadPolicy(os.DirFS(dir), ".", policy)
	var errs manifest.Errors
	switch {
	case errors.As(err, &errs):
		for _, e := range errs {
			e.File = filepath.Join(dir, filepath.FromSlash(e.File))
			fmt.Fprintln(cmd.ErrOrStderr(), e)
		}
		// Every problem is printed; the exit code says the rest.
		return invalid(errors.New(""))
	case errors.Is(err, fs.ErrNotExist):
		return invalid(fmt.Errorf("validate %s: %w", dir, err))
	case err != nil:
		return fmt.Errorf("validate %s: %w", dir, err)
	}
	if len(svcs) == 0 {
		fmt.Fprintf(cmd.ErrOrStderr(), "jailkeeper: no manifests (*.yaml, *.yml) in %s\n", dir)
		return nil
	}
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	for _, s := range svcs {
		release := s.ReleaseName()
		if s.EnvFile != "" {
			release += " (+env_file)"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", s.Service, s.SHA[:12], release, strings.Join(s.Hostnames, ","))
	}
	return w.Flush()
}
