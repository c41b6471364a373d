// Package hostsetup prepares a FreeBSD host for the jail runtime (package
// jails): HostInit is `jailkeeper host init` (the cloned interface and its
// address, the datasets, the jail.conf include) and TemplateCreate is
// `jailkeeper template create` (base.txz checked against the release's
// MANIFEST, a template dataset, a resolv.conf the jails can use, the
// @base snapshot releases are cloned from). TemplateUpdate is `jailkeeper
// template update` (freebsd-update and pkg upgrade of the template, a new
// snapshot, or a rollback to the newest one on failure). Host init and
// template create are idempotent; all three say what
// each step does and print every command that changes something before
// running it, and with a dry run run and write nothing (template create
// reads the host's resolv.conf, to refuse one the jails cannot use). The
// base.txz download and unpack report their progress: one line redrawn
// on a terminal, a line every few seconds otherwise.
//
// Commands run through a command.Runner with typed argv; downloads go
// through artifact.Download. The package returns errors and does not log;
// what it prints goes to the writer it is given.
package hostsetup
