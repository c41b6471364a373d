// Package crashpoint names the places in a deploy where a test may kill
// the agent, so a test can prove that every step is safe to die in.
//
// A package declares its points once, as package-level variables, and
// calls Hit at the boundary the point names, typically after a durable
// write and before the next:
//
//	var cpCloned = crashpoint.New("process.create.cloned")
//	...
//	cpCloned.Hit()
//
// Names read <component>.<step>.<what is done>. Points lists every point
// the binary holds, so a sweep can kill at each in turn and know when it
// missed one.
//
// In production Hit does nothing: it reads one atomic value. A process
// whose environment sets JAILKEEPER_CRASH_AT (read once, at the first Hit)
// to a point's name sends itself SIGKILL when it reaches that point: no
// deferred function runs, no file is closed, as when an operator or the
// OOM killer kills the agent. The variable is for tests only; nothing
// documents it to operators.
//
// In-process tests cannot SIGKILL themselves: Arm replaces the action
// with one of theirs (Die panics with a Crash value the test recovers, so
// the goroutine unwinds as if it died and the test builds a new runtime
// over the same host state). Deferred functions do run then; a test of
// what deferred cleanup must not be relied on uses a child process.
package crashpoint
