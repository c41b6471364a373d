// Package zfs is jailkeeper's one ZFS client: the datasets it keeps its
// releases and templates on, and an inventory of them with their
// jailkeeper:* user properties.
//
// # One way to run zfs
//
// A Client runs every zfs command through an internal/command.Runner with
// the caller's context: command.Exec on a host, a printing runner for
// --dry-run, commandtest.Replay (or a stateful fake host) in tests. A
// failed command returns the runner's *command.Error (argv, exit status,
// stderr) unchanged in its text, and also matching, with errors.Is, the
// sentinel its stderr names: ErrNotFound, ErrExists, ErrBusy or
// ErrDependents (the texts and the libzfs sources they come from are in
// errors.go). Input refused before anything runs matches ErrInvalid. A
// context that ends kills the running command (command.Exec) and the error
// matches ctx.Err(). The package returns errors and never logs.
//
// # go-zfs
//
// github.com/mistifyio/go-zfs/v3 (v3.0.1) cannot run through a Runner: it
// runs `zfs` with exec.Command itself, takes no context and has no hook to
// replace either, and its output parsers are unexported. So no command of
// this package goes through go-zfs any more, and the package does not
// import it. What go-zfs did and what replaced it:
//   - create and snapshot ran through go-zfs, which also read each new
//     dataset back with `zfs list -Hp -o name,origin,used,...,written,
//     logicalused,usedbydataset`; Create and Snapshot now run one command
//     and read nothing back.
//   - destroy -r ran through go-zfs; Destroy runs it itself, so that a
//     busy retry loop, the context and the replay tests see it.
//   - clone never did: go-zfs's Clone always passes -p, and with -p "if the
//     target filesystem or volume already exists, the operation completes
//     successfully" (zfs-clone(8)) without cloning or setting anything, so
//     a leftover dataset would pass for a fresh clone.
//   - set never did: go-zfs's SetProperty sets one property per command,
//     and a release's state change must be one `zfs set` (see SetProps).
//
// go-zfs stays a test dependency (zfs/zfstest checks that its listing
// works on zfs-fuse through the compatibility wrapper).
//
// # The commands
//
// argv[0] is always "zfs". Flags are standard zfs(8) (zfs-create(8),
// zfs-snapshot(8), zfs-clone(8), zfs-set(8), zfs-inherit(8), zfs-get(8),
// zfs-list(8), zfs-destroy(8), zfs-rollback(8)). Property lists are sorted
// by name; K=V stands for each non-empty property (an empty value means
// "unset" everywhere in this package). The output the methods parse is
// the -H form: no header, fields separated by one TAB, one line per row.
//
//	Create(ctx, NAME, props)      zfs create [-o K=V]... NAME
//	Snapshot(ctx, DS@S)           zfs snapshot DS@S
//	Rollback(ctx, DS@S)           zfs rollback DS@S
//	Clone(ctx, SNAP, NAME, props) zfs clone [-o K=V]... SNAP NAME
//	                              zfs list -H -o mountpoint,origin NAME
//	                                -> "MOUNTPOINT\tORIGIN\n" (ORIGIN "-" when none)
//	SetProps(ctx, NAME, props)    zfs set K=V [K=V]... NAME   (when any value is non-empty)
//	                              zfs inherit K NAME          (for each empty value)
//	Destroy(ctx, NAME, retries)   zfs destroy -r NAME         (again while busy)
//	CheckDestroy(ctx, NAME)       zfs destroy -n -r NAME
//	Exists(ctx, NAME)             zfs list -H -o name NAME
//	                                -> exit 0: exists; stderr "dataset does not exist": not
//	Get(ctx, NAME, P1, P2...)     zfs get -Hp -o name,property,value,source P1,P2 NAME
//	                                -> "NAME\tP\tVALUE\tSOURCE\n" per property
//	Snapshots(ctx, DS)            zfs list -Hp -t snapshot -d 1 -s createtxg -o name,createtxg,creation DS
//	                                -> "DS@S\tTXG\tUNIXSECONDS\n" per snapshot, oldest first
//	Clones(ctx, SNAP),            zfs list -H -o name SNAP    (ErrNotFound when missing)
//	HasClones(ctx, SNAP)          zfs list -H -r -t filesystem,volume -o name,origin POOL
//	                                -> "NAME\tORIGIN\n" per dataset (ORIGIN "-" when none)
//	Inventory(ctx, ROOT)          zfs get -Hp -r -t filesystem -o name,property,value,source all ROOT
//	                                -> "NAME\tPROPERTY\tVALUE\tSOURCE\n" per property
//
// Commands whose output is not parsed (create, snapshot, rollback, clone,
// set, inherit, destroy) print nothing on success. With a dry-run runner
// that prints argv and answers empty output with exit 0, the mutating
// methods only print; of the reading ones, Exists answers true, Get,
// Snapshots, Clones and Inventory answer nothing, and Clone fails when it
// reads back.
//
// # State in properties
//
// State lives in ZFS user properties (zfsprops(7), "User Properties"); only a
// property whose source is local counts, so a child that inherits
// jailkeeper:state from its parent is not mistaken for a release. Clone sets
// a release's properties with -o, in the clone itself, and SetProps changes
// several in one `zfs set`, so neither leaves half a state change behind.
//
// # Concurrency
//
// A Client is safe for concurrent use; ZFS itself serialises changes to one
// dataset. The package-level functions (Create, Clone, ...) are the older
// API, kept as deprecated wrappers over a Client with command.Exec.
package zfs
