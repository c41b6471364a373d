package jails

import "github.com/jailkeeper/jailkeeper/internal/crashpoint"

// Crash points of the FreeBSD runtime (see internal/crashpoint), each
// after a durable step and before the next.
var (
	cpCreateCloned     = crashpoint.New("jails.create.cloned")     // dataset cloned, state creating
	cpCreateInstalled  = crashpoint.New("jails.create.installed")  // artifact, rc.d and env in the jail
	cpCreateConfigured = crashpoint.New("jails.create.configured") // jail.conf written, still creating
	cpStartCreated     = crashpoint.New("jails.start.created")     // jail -c done, not checked
	cpStopRemoved      = crashpoint.New("jails.stop.removed")      // jail -r done, not checked
	cpDestroyStopped   = crashpoint.New("jails.destroy.stopped")   // jail gone, dataset there
	cpDestroyUnmounted = crashpoint.New("jails.destroy.unmounted") // nothing mounted below the root
	cpDestroyDataset   = crashpoint.New("jails.destroy.dataset")   // dataset destroyed, conf and log there
)
