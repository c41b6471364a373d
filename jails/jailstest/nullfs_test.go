package jailstest_test

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/jailkeeper/jailkeeper/internal/command"
	"github.com/jailkeeper/jailkeeper/jails/jailstest"
)

// A jail.conf `mount +=` line is mounted by jail -c before the jail exists
// and unmounted by jail -r; a missing mount point, a symbolic link on the
// way or a missing source fail jail -c with jail(8)'s texts and leave
// nothing mounted or aliased.
func TestJailMountLines(t *testing.T) {
	dir := t.TempDir()
	h := jailstest.New(dir, nil)
	h.AddInterface("lo1", netip.MustParsePrefix("172.16.0.1/32"))
	root, src := filepath.Join(dir, "j"), filepath.Join(dir, "data")
	for _, d := range []string{root + "/dev", root + "/var/db/app", src} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	conf := filepath.Join(dir, "j.conf")
	write := func(mnt, source string) {
		t.Helper()
		text := "j {\n\tpath = \"" + root + "\";\n\tip4.addr = \"lo1|172.16.0.2/32\";\n\tmount.devfs;\n" +
			"\tmount += \"" + source + " " + mnt + " nullfs rw 0 0\";\n}\n"
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mounted := func() []string {
		var out []string
		for _, r := range h.Residue() {
			if len(r) > 6 && r[:6] == "mount " {
				out = append(out, r)
			}
		}
		return out
	}

	for _, tc := range []struct {
		name, mnt, src, stderr string
	}{
		{"missing mount point", root + "/var/db/other", src, "jail: j: mount: " + root + "/var/db/other: No such file or directory\n"},
		{"missing source", root + "/var/db/app", dir + "/gone",
			"mount_nullfs: " + dir + "/gone: No such file or directory\njail: j: /sbin/mount -t nullfs -o rw " + dir + "/gone " + root + "/var/db/app: failed\n"},
	} {
		write(tc.mnt, tc.src)
		_, err := h.Run(t.Context(), []string{"jail", "-f", conf, "-c", "j"}, nil)
		if got := command.Stderr(err); got != tc.stderr {
			t.Errorf("%s: stderr %q, want %q", tc.name, got, tc.stderr)
		}
		if m := mounted(); len(m) != 0 || len(h.Addrs("lo1")) != 1 {
			t.Errorf("%s: left %v, lo1 %v", tc.name, m, h.Addrs("lo1"))
		}
	}
	if err := os.Symlink("/etc", root+"/var/db/link"); err != nil {
		t.Fatal(err)
	}
	write(root+"/var/db/link", src)
	if _, err := h.Run(t.Context(), []string{"jail", "-f", conf, "-c", "j"}, nil); command.Stderr(err) != "jail: j: mount: "+root+"/var/db/link is a symbolic link\n" {
		t.Errorf("mount point through a link: %v", err)
	}

	write(root+"/var/db/app", src)
	h.MustRun(t, "jail", "-f", conf, "-c", "j")
	want := []string{"mount " + root + "/dev (devfs)", "mount " + root + "/var/db/app (nullfs)"}
	if got := mounted(); !slices.Equal(got, want) {
		t.Errorf("after jail -c: %v, want %v", got, want)
	}
	h.MustRun(t, "jail", "-f", conf, "-r", "j")
	if got := mounted(); len(got) != 0 {
		t.Errorf("after jail -r: %v", got)
	}
}
