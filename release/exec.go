package release

import "io"

// ExecRequest is a command an operator runs in a release (`jailkeeper
// exec`): Argv is typed, never given to a shell by the runtime, and runs
// with the caller's Stdin, Stdout and Stderr. Root asks for the jail's root
// instead of the app's user; the caller checks the operator's policy
// (policy.root_exec) before it sets Root.
type ExecRequest struct {
	Argv   []string
	Root   bool
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}
