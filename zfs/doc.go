// Package zfs manages the ZFS datasets jailkeeper keeps its releases on:
// create, snapshot and destroy through github.com/mistifyio/go-zfs/v3;
// clone and set properties with zfs run directly, because go-zfs's clone
// always passes -p and its set takes one property (see Clone, SetProps);
// and an inventory of every dataset under a root with its jailkeeper:* user
// properties, read with one `zfs get` call.
//
// State lives in ZFS user properties (zfsprops(7), "User Properties"); only a
// property whose source is local counts, so a child that inherits
// jailkeeper:state from its parent is not mistaken for a release.
//
// Every command is the `zfs` found on PATH, run with typed argv. A failed
// command returns an *Error carrying argv, exit code and stderr, which also
// matches the sentinels ErrNotFound, ErrExists, ErrBusy and ErrDependents
// (errors.Is) when stderr says so. The package returns errors and never logs.
//
// The functions are safe for concurrent use; ZFS itself serialises changes
// to one dataset. go-zfs takes no context: where a command runs through it,
// ctx is checked before the command starts (and between retries) but cannot
// interrupt a running zfs process. Commands this package runs itself use
// exec.CommandContext.
package zfs
