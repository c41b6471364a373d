// Package jailstest is a stateful fake of the FreeBSD host the jail
// runtime drives, for tests on machines without FreeBSD.
//
// Host is a command.Runner that keeps jails, interface addresses, mounts
// and ZFS datasets (with user properties, snapshots, clones, mountpoints
// and busy flags) as state, and answers jls(8), jail(8), ifconfig(8),
// mount(8), umount(8) and zfs(8) in the formats of the outputs captured on
// real FreeBSD hosts (jails/testdata/freebsd, FACTS.md and errors.md
// there), refusing what the real host refuses with the real error text.
// Unlike commandtest.Replay it remembers: a jail started by one runtime
// value is listed to the next, an alias left by a crash makes `jail -c`
// fail, a busy dataset resists `zfs destroy`. That is what the runtime
// conformance suite (release/runtimetest) and crash tests need.
//
// Files are real: a mounted dataset is a directory below the Host's
// directory, a snapshot keeps a copy of its dataset's files, a clone gets
// them. Nothing outside that directory is ever written or removed.
//
// Where jailkeeper calls a form of a command that the fake does not know,
// the fake fails it with a message that starts with "jailstest:" and exit
// status 2: such a text never comes from a real host, so a test that sees
// it is using the fake beyond what it models, not finding a bug.
//
// For crash tests: a new runtime value over the same Host is the agent
// after a restart; a Fault with After set is the agent killed (or its
// answer lost) after a command acted; AddJail and AddInterface put a
// stranger's jail or a leftover alias on the host; SetDying keeps removed
// jails dying; SetBusy makes a dataset resist zfs destroy; Residue says
// what is left; Calls and Transcript say what ran.
//
// ZFS: the Host answers every command of the zfs package's Client, so a
// runtime under test takes zfs.New(host) as its jails.Datasets
// (WithDestroyBackoff(0, 0): busy retries need no real wait).
//
// Provenance: every output and error text cites its source in a comment:
// REAL (a captured output), DERIVED (built from the FreeBSD or OpenZFS
// source code named there), as FACTS.md labels them.
package jailstest
