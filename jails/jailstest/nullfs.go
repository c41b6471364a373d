package jailstest

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// jailMount is one `mount` line at jail -c, before devfs (jail.c
// startcommands: IP__IP4_IFADDR, IP_MOUNT, ..., IP_MOUNT_DEVFS), as
// command.c runs it (DERIVED: usr.sbin/jail/command.c, IP_MOUNT): the
// line split on blanks into device, mount point, type and options;
// check_path refuses a mount point that is not absolute ("NAME: mount:
// PATH: not an absolute pathname"), a missing component below the jail's
// path ("NAME: mount: PATH: No such file or directory", strerror) and a
// symbolic link there ("NAME: mount: PATH is a symbolic link"); then
// `/sbin/mount -t TYPE -o OPTS DEVICE MOUNTPOINT` runs, and when it fails
// jail(8) adds "NAME: COMMAND: failed" as for the REAL ifconfig failure
// (errors.md). mount_nullfs's own text for a missing source is
// "mount_nullfs: SOURCE: No such file or directory" (DERIVED:
// sbin/mount_nullfs/mount_nullfs.c, err(EX_USAGE, "%s", source) after
// checkpath). Only nullfs is modelled.
func (h *Host) jailMount(argv []string, name, jailPath, line string) (string, result) {
	f := strings.Fields(line)
	if len(f) < 3 {
		return "", fail("jail: " + name + ": mount: " + line + ": missing information\n")
	}
	dev, mnt, fstype := f[0], f[1], f[2]
	opts := "rw"
	if len(f) > 3 {
		opts = f[3]
	}
	if fstype != "nullfs" {
		return "", unsupported(argv, "mount type "+fstype)
	}
	if !strings.HasPrefix(mnt, "/") {
		return "", fail("jail: " + name + ": mount: " + mnt + ": not an absolute pathname\n")
	}
	if rest, ok := strings.CutPrefix(mnt, jailPath+"/"); ok {
		cur := jailPath
		for c := range strings.SplitSeq(rest, "/") {
			cur += "/" + c
			fi, err := os.Lstat(cur)
			if err != nil {
				return "", fail("jail: " + name + ": mount: " + cur + ": No such file or directory\n")
			}
			if fi.Mode()&os.ModeSymlink != 0 {
				return "", fail("jail: " + name + ": mount: " + cur + " is a symbolic link\n")
			}
		}
	}
	if fi, err := os.Stat(dev); err != nil || !fi.IsDir() || !h.inside(dev) {
		return "", fail("mount_nullfs: " + dev + ": No such file or directory\n" +
			"jail: " + name + ": /sbin/mount -t nullfs -o " + opts + " " + dev + " " + mnt + ": failed\n")
	}
	h.mounts = append(h.mounts, Mount{Device: filepath.Clean(dev), Path: filepath.Clean(mnt), FSType: "nullfs"})
	return filepath.Clean(mnt), ok("")
}

// unmountNullfs removes the nullfs mount at mnt, if any.
func (h *Host) unmountNullfs(mnt string) {
	h.mounts = slices.DeleteFunc(h.mounts, func(m Mount) bool { return m.Path == mnt && m.FSType == "nullfs" })
}
