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
# stops that child by its pid and waits for it. A test process that starts
# meanwhile blocks on its shared lock until the daemon is gone, and then
# starts a new one.
lease=$1
log=$2
zfs_fuse=$3
"$zfs_fuse" --no-daemon --no-kstat-mount >>"$log" 2>&1 &
pid=$!
exec 9<"$lease"
flock -x 9
kill -TERM "$pid" 2>/dev/null
wait "$pid"
echo "zfs-fuse-watchdog: stopped zfs-fuse $pid" >>"$log"
