// Package command runs external programs with typed argv and reports a failed
// run as an *Error that carries the argv, the exit code and the stderr.
//
// Runner is the seam: the FreeBSD runtime, `host init` and `template create`
// run every command through one, so Exec runs the real programs and
// commandtest.Replay records them and answers from captured output in tests.
// No command ever goes through a shell. Quote renders an argv for people to
// read; ShellQuote renders one for a shell that will evaluate it, for the
// few files jailkeeper writes that a shell runs later (a jail's rc.d script).
package command
