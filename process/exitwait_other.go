//go:build !linux

package process

// awaitExit returns at once: the reaper's Wait does the waiting (in a
// thread of its own; see the Linux version).
func awaitExit(int) {}
