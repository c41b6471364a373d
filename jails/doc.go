// Package jails is the FreeBSD jail runtime: FreeBSD runs each release in
// a jail on a ZFS clone of a template (DESIGN.md, "Runtimes"). It drives
// jail(8) with one jail.conf(5) file per release, reads jls(8), gives each
// release a /32 address from a pool on a cloned interface (lo1), installs
// an rc.d script, its rc.conf.d variables, a newsyslog entry and the
// environment into the clone, and keeps each release's state in the
// jailkeeper:* user properties of its dataset. It keeps no state of its
// own.
//
// The files: runtime.go (FreeBSDConfig, NewFreeBSD), datasets.go (the ZFS
// it needs), state.go (releases from dataset properties and jls), create.go,
// lifecycle.go (start, stop, destroy), net.go (addresses and aliases),
// install.go and render.go (what goes into a jail), parse.go (jls, ifconfig
// and mount output), logs.go and exec.go (`jailkeeper logs` and `exec`: the
// app log read through an os.Root, jexec). testdata/freebsd/ holds the captured FreeBSD output
// the tests replay, each with its source. limits.go turns a release's
// limits into rctl(8) rules and the clone's ZFS quota; order.go lists the
// running releases in start order, for `jailkeeper host shutdown`.
//
// The package returns errors and does not log. Every external command gets
// typed argv through a command.Runner, except the interactive jexec of
// Exec, whose argv one function builds and which goes through
// FreeBSDConfig.Attach.
package jails
