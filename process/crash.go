package process

import "github.com/jailkeeper/jailkeeper/internal/crashpoint"

// Crash points of the process runtime (see internal/crashpoint), each
// after a durable step and before the next.
var (
	cpCreateReserved   = crashpoint.New("process.create.reserved")   // release.json in state creating
	cpCreateRooted     = crashpoint.New("process.create.rooted")     // root/ made or copied
	cpCreateInstalled  = crashpoint.New("process.create.installed")  // artifact in root/
	cpCreateConfigured = crashpoint.New("process.create.configured") // process.json written, still creating
	cpStartForked      = crashpoint.New("process.start.forked")      // the app runs, no pidfile yet
	cpStopSignalled    = crashpoint.New("process.stop.signalled")    // SIGTERM sent, not waited for
	cpStopGone         = crashpoint.New("process.stop.gone")         // the app exited, pidfile still there
	cpDestroyStopped   = crashpoint.New("process.destroy.stopped")   // stopped, directory still there
)
