package jailstest

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Layout is a host prepared for the jail runtime: what `jailkeeper host
// init` and `jailkeeper template create` leave behind.
type Layout struct {
	Dataset   string       // zroot/jails; its pool is created
	Root      string       // Dataset's mountpoint, below the Host's directory
	Interface string       // lo1
	Own       netip.Prefix // the interface's own address, 172.16.0.1/32
	Templates []string     // template names, each with one snapshot @base
	Now       func() time.Time
}

// Passwd is the jail template's /etc/passwd: FreeBSD's own entries for
// root and www (etc/master.passwd in freebsd-src).
const Passwd = "root:*:0:0:Charlie &:/root:/bin/sh\nwww:*:80:80:World Wide Web Owner:/nonexistent:/usr/sbin/nologin\n"

// Prepared returns a Host in dir laid out as l says: the interface with
// its own address, the datasets Dataset (mounted at Root), Dataset/media,
// Dataset/templates and Dataset/containers, made with the zfs commands
// host init runs, and each template holding what a release needs from the
// base system (/etc/passwd, /etc/rc.d/cron, /dev, /var/run, /var/log),
// snapshotted as @base.
func Prepared(t testing.TB, dir string, l Layout) *Host {
	t.Helper()
	h := New(dir, l.Now)
	h.AddPool(strings.Split(l.Dataset, "/")[0])
	h.AddInterface(l.Interface, l.Own)
	h.MustRun(t, "zfs", "create", "-o", "mountpoint="+l.Root, l.Dataset)
	for _, c := range []string{"media", "templates", "containers"} {
		h.MustRun(t, "zfs", "create", l.Dataset+"/"+c)
	}
	for _, name := range l.Templates {
		AddTemplate(t, h, l.Dataset+"/templates/"+name, "base")
	}
	return h
}

// AddTemplate creates the template dataset ds with the files a release
// needs from the base system and snapshots it as ds@snap.
func AddTemplate(t testing.TB, h *Host, ds, snap string) {
	t.Helper()
	h.MustRun(t, "zfs", "create", ds)
	d, _ := h.Dataset(ds)
	files := map[string]string{"etc/passwd": Passwd, "etc/rc.d/cron": "#!/bin/sh\n"}
	for _, dir := range []string{"dev", "etc/rc.d", "var/run", "var/log", "tmp"} {
		if err := os.MkdirAll(filepath.Join(d.Mountpoint, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for p, s := range files {
		if err := os.WriteFile(filepath.Join(d.Mountpoint, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h.MustRun(t, "zfs", "snapshot", ds+"@"+snap)
}
