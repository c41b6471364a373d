// Package zfstest gives tests a real ZFS pool: zfs-fuse (Debian package
// zfs-fuse) with a pool on a sparse file, and a compatibility wrapper first
// on PATH for the zfs(8) features that zfs-fuse lacks and jailkeeper uses
// (testdata/zfs-compat.sh lists them). It needs root and zfs-fuse; without
// them a test fails in CI and skips elsewhere (internal/testenv).
//
// Pool changes PATH with t.Setenv, so tests that use it cannot call
// t.Parallel. Test processes of several packages may use it at once: they
// share one zfs-fuse daemon, started by the first and stopped after the
// last has exited (testdata/zfs-fuse-watchdog.sh).
//
// No test hangs on a daemon that stopped answering. Before each pool,
// under a machine-wide start lock, the harness checks the daemon with
// `zfs list` bounded by a few seconds; a dead one, or a hung one (no answer
// to three such checks in a row), is killed with its watchdog, the FUSE
// mounts of this package's pools are detached (umount -l) and a new daemon
// is started. Every zpool and zfs command of the harness, and every
// command a test runs through Runner, has a deadline (CommandTimeout), and
// its failure names the command.
package zfstest
