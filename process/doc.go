// Package process is the process runtime: it runs each release as a
// detached process bound to its own loopback address. The demo, the tests
// and hosts without jails use it; on FreeBSD the jail runtime (package
// jails) is the default.
//
// A release is the directory <Root>/<name>/ holding root/ (the release root:
// a copy of the template directory, or in ZFS mode the mountpoint of a clone
// of the template dataset, with the artifact installed), release.json (the
// release.Release fields, replaced atomically), process.json (command and
// env), env (the env_file's lines, mode 0600), pid and log. The command is
// started in its own session with its working directory in root/,
// command[0] taken relative to root/, stdout and stderr appended to log.
// Releases keep running when the agent exits; a new Runtime on the same
// Root finds them again. In both modes release.json is the only record of
// a release's state: a clone carries jailkeeper:managed=yes,
// jailkeeper:service and, with a disk limit, its quota, nothing else.
//
// There is no isolation: the command runs as the agent's user (Spec.User is
// ignored) and sees the host's file system. Use the jail runtime for that.
// Of a release's limits only the rlimits apply, on Linux (limits_linux.go).
//
// A release's process is known by its PID and an identity read from the
// system when it starts: on Linux the boot id and the start time in
// /proc/<pid>/stat, on FreeBSD the start time after boot from the
// kern.proc.pid sysctl (identity_*.go). A live process whose identity
// differs (its PID was reused, after an exit nobody saw or a reboot) is not
// the release's: it does not count as running and is never signalled.
// Elsewhere New fails.
//
// The files: runtime.go (Config, New), lifecycle.go (create, start, stop,
// destroy), store.go (release.json and the addresses it records), zfs.go
// (ZFS mode), copytree.go (copy mode), identity_<os>.go, and logs.go and
// exec.go (`jailkeeper logs` and `exec`: the log file, a command run in a
// release with its environment).
//
// The package returns errors and does not log.
package process
