package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/jailkeeper/jailkeeper/hostsetup"
	"github.com/jailkeeper/jailkeeper/internal/command"
)

// newTemplateCmd is `jailkeeper template`, with `template create VERSION`
// and `template update NAME`.
func newTemplateCmd() *cobra.Command {
	tmpl := &cobra.Command{
		Use:   "template",
		Short: "Manage the ZFS templates releases are cloned from",
		Args:  noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return usageError{fmt.Errorf("template needs a subcommand: create or update")}
		},
	}
	create := &cobra.Command{
		Use:   "create VERSION",
		Short: "Make the template <dataset>/templates/VERSION from the release's base.txz",
		Long: `template create makes <dataset>/templates/VERSION (VERSION like 14.3-RELEASE):
base.txz from download.freebsd.org (or --url, or a local --file with its
MANIFEST beside it) is checked against the release MANIFEST's sha256 and
extracted with tar --unlink; the template's resolv.conf names the config's
jails.resolvers, or is the host's copied (refused when that names only
loopback servers, which a jail cannot reach); localtime is copied in; with
--update, freebsd-update patches it; the snapshot @base is what
releases clone. A template that releases were cloned from is never replaced:
patch it with template update (create --update on an existing template does
the same). With --dry-run it downloads, runs and writes nothing and prints
every step.`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{fmt.Errorf("template create needs exactly one VERSION, like 14.3-RELEASE")}
			}
			return nil
		},
	}
	cfgPath := configFlag(create)
	dry := create.Flags().Bool("dry-run", false, "print the commands, download and change nothing")
	url := create.Flags().String("url", "", "release directory with MANIFEST and base.txz (default https://download.freebsd.org/releases/<arch>/VERSION/)")
	file := create.Flags().String("file", "", "local base.txz to use; its MANIFEST must be in the same directory")
	arch := create.Flags().String("arch", hostsetup.ReleaseArch(), "architecture path on download.freebsd.org")
	update := create.Flags().Bool("update", false, "run freebsd-update on the new template (on an existing one: the same as template update)")
	resolv := create.Flags().String("resolv-conf", "/etc/resolv.conf", "the resolv.conf copied into the template when jails.resolvers is empty")
	create.RunE = func(c *cobra.Command, args []string) error {
		cfg, err := loadConfig(*cfgPath)
		if err != nil {
			return err
		}
		if *url != "" && *file != "" {
			return usageError{fmt.Errorf("--url and --file exclude each other")}
		}
		hc, err := hostConfig(cfg)
		if err != nil {
			return err
		}
		return hostsetup.TemplateCreate(c.Context(), hostsetup.TemplateConfig{
			Dataset:    cfg.Jails.Dataset,
			Root:       cfg.Jails.Root,
			Version:    args[0],
			URL:        *url,
			File:       *file,
			Arch:       *arch,
			Update:     *update,
			ResolvConf: *resolv,
			Resolvers:  cfg.Jails.Resolvers,
			Pool:       hc.Pool,
			Terminal:   isTerminal(c.OutOrStdout()),
		}, command.Exec{}, *dry, c.OutOrStdout())
	}
	tmpl.AddCommand(create, newTemplateUpdateCmd())
	return tmpl
}

// newTemplateUpdateCmd is `jailkeeper template update NAME`.
func newTemplateUpdateCmd() *cobra.Command {
	update := &cobra.Command{
		Use:   "update NAME",
		Short: "Patch the template <dataset>/templates/NAME and snapshot it",
		Long: `template update patches the template <dataset>/templates/NAME (NAME like
14.3-RELEASE, made by template create) in place: freebsd-update fetch
install on its tree, then pkg -r <tree> upgrade -y if the template has pkg.
It prints freebsd-version -u of the tree before and after, and on success
snapshots it as @<UTC time> (like @20261129T150405Z). On any failure it
rolls the template back to its newest snapshot (zfs rollback -r), so a
half-updated template is never snapshotted.

Releases depend only on a template's snapshots: running releases stay on
the snapshot they were cloned from, new releases clone the newest one.
With --dry-run it runs and writes nothing and prints every step.`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{fmt.Errorf("template update needs exactly one NAME, like 14.3-RELEASE")}
			}
			return nil
		},
	}
	cfgPath := configFlag(update)
	dry := update.Flags().Bool("dry-run", false, "print the commands, change nothing")
	update.RunE = func(c *cobra.Command, args []string) error {
		cfg, err := loadConfig(*cfgPath)
		if err != nil {
			return err
		}
		// Ctrl-C or a SIGTERM ends the update but not jailkeeper: it
		// rolls the template back before it exits.
		ctx, stop := signal.NotifyContext(c.Context(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return hostsetup.TemplateUpdate(ctx, hostsetup.TemplateUpdateConfig{
			Dataset: cfg.Jails.Dataset,
			Root:    cfg.Jails.Root,
			Name:    args[0],
		}, command.Exec{}, *dry, c.OutOrStdout())
	}
	return update
}

// isTerminal says whether w is a terminal (a character device), where
// progress is one line redrawn in place rather than a line every few
// seconds.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
