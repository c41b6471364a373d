// Package hostsetup prepares a FreeBSD host for the jail runtime (package
// jails): HostInit is `jailkeeper host init` (the cloned interface and its
// address, the datasets, the jail.conf include) and TemplateCreate is
// `jailkeeper template create` (base.txz checked against the release's
// MANIFEST, a template dataset, the @base snapshot releases are cloned
// from). Both are idempotent, print every command that changes something
// before running it, and with a dry run run, read and write nothing.
//
// Commands run through a command.Runner with typed argv; downloads go
// through artifact.Download. The package returns errors and does not log;
// what it prints goes to the writer it is given.
package hostsetup
