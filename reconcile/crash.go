package reconcile

import "github.com/jailkeeper/jailkeeper/internal/crashpoint"

// stepDone holds, for each deploy step, the crash point right after the
// step succeeded and before the next began: reconcile.<step>.after. A test
// that kills the agent there sees what each step left durable.
var stepDone = map[string]*crashpoint.Point{}

func init() {
	for _, s := range deploySteps {
		stepDone[s.name] = crashpoint.New("reconcile." + s.name + ".after")
	}
}

// Crash points of the failure paths, each after a durable change and
// before the next: what a kill there leaves, the next pass must finish
// without blaming a release that did nothing wrong.
var (
	cpFailMarked       = crashpoint.New("reconcile.fail.marked")       // target marked failed, still running
	cpSwitchBackMarked = crashpoint.New("reconcile.switchback.marked") // watch failed: target marked failed, still routed
	cpSwitchBackRouted = crashpoint.New("reconcile.switchback.routed") // routed back to the previous release, target running
	cpRestoreGated     = crashpoint.New("reconcile.restore.gated")     // last known-good gated, not routed yet
	cpRestoreRouted    = crashpoint.New("reconcile.restore.routed")    // last known-good routed, the step that follows not begun
	cpRollbackStarted  = crashpoint.New("reconcile.rollback.started")  // a retained release started again, not gated
	cpPruneUnrouted    = crashpoint.New("reconcile.prune.unrouted")    // a removed service's route gone, its releases there
)
