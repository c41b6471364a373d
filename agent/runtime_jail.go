package agent

import (
	"errors"

	"github.com/jailkeeper/jailkeeper/reconcile"
)

// newJailRuntime builds the FreeBSD jail runtime from cfg.Jails.
func newJailRuntime(cfg *Config) (reconcile.Runtime, error) {
	return nil, errors.New("runtime jail: the FreeBSD runtime is not wired into the agent yet")
}
