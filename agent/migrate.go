package agent

import (
	"github.com/jailkeeper/jailkeeper/jails"
	"github.com/jailkeeper/jailkeeper/process"
	"github.com/jailkeeper/jailkeeper/reconcile"
)

// Wire-up checks: both runtimes run manifests' migrate commands.
var (
	_ reconcile.Migrator = (*jails.FreeBSD)(nil)
	_ reconcile.Migrator = (*process.Runtime)(nil)
)
