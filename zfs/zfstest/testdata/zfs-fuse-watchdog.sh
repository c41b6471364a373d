#!/bin/sh
# zfs-fuse watchdog for zfstest.Pool. Test infrastructure only.
# Usage: sh zfs-fuse-watchdog.sh LEASE LOG ZFS_FUSE
#
# Only one zfs-fuse daemon can run on a machine (zfs and zpool talk to it
# over /var/run/zfs/zfs_socket), and the test processes of several packages
# share it. Each test process holds a shared flock(2) on LEASE from its
# first Pool call until it exits (the kernel drops it even on a crash).
# This script starts zfs-fuse as its own child, then waits for an exclusive
# lock on LEASE, which it gets once every such process is gone, and then
# stops that child and waits for it. A test process that starts meanwhile
# blocks on its shared lock until the daemon is gone, and then starts a new
# one.
#
# zfstest runs this script in a session of its own (setsid), so the
# signals below go to its process group only: this shell and its zfs-fuse.
# A pid is never signalled by number, so one reused after zfs-fuse died by
# itself is never hit. zfstest kills the whole group (SIGKILL) when the
# daemon stops answering.
lease=$1
log=$2
zfs_fuse=$3
"$zfs_fuse" --no-daemon --no-kstat-mount >>"$log" 2>&1 &
pid=$!
exec 9<"$lease"
flock -x 9
trap '' TERM
kill -TERM 0
# A stopped zfs-fuse acts on SIGTERM only once it is continued.
kill -CONT 0
# Wait at most 10s; the shell reaps its child while it waits for sleep.
i=0
while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
echo "zfs-fuse-watchdog: stopped zfs-fuse $pid" >>"$log"
# Whatever is left in the group, this shell included.
kill -KILL 0
