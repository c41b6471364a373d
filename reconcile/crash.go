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
