package agent

import (
	"fmt"

	"github.com/jailkeeper/jailkeeper/jails"
	"github.com/jailkeeper/jailkeeper/process"
	"github.com/jailkeeper/jailkeeper/reconcile"
)

// Wire-up checks: both runtimes satisfy reconcile's interface, and the
// process runtime tells why a release's app died (a jail's app dies inside
// a jail that stays up: jail -c failing is a Start error).
var (
	_ reconcile.Runtime = (*jails.FreeBSD)(nil)
	_ reconcile.Runtime = (*process.Runtime)(nil)
	_ reconcile.Exiter  = (*process.Runtime)(nil)

	_ reconcile.Templates = (*jails.FreeBSD)(nil)
)

// newJailRuntime builds the FreeBSD jail runtime from cfg.Jails; it runs
// jail(8), jls, ifconfig and zfs for real.
func newJailRuntime(cfg *Config) (reconcile.Runtime, error) {
	pool, err := parsePrefix(cfg, "jails.pool", cfg.Jails.Pool)
	if err != nil {
		return nil, err
	}
	rt, err := jails.NewFreeBSD(jails.FreeBSDConfig{
		Dataset:   cfg.Jails.Dataset,
		Root:      cfg.Jails.Root,
		Template:  cfg.Jails.Template,
		Interface: cfg.Jails.Interface,
		ConfDir:   cfg.Jails.ConfDir,
		Pool:      pool,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %s: jails: %w", ErrConfig, cfg.File, err)
	}
	return rt, nil
}
