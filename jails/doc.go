// Package jails runs releases. Two runtimes share the Release model: FreeBSD
// runs each release in a jail on a ZFS clone (jail(8), jls, jexec), and Process
// runs it as a detached process bound to a loopback address, for the demo, the
// tests and hosts without jails.
//
// Runtimes return errors and do not log. Every external command gets typed argv.
package jails
