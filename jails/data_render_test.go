package jails

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/jailkeeper/jailkeeper/internal/golden"
	"github.com/jailkeeper/jailkeeper/release"
)

// TestRenderJailConfData: each data set is a `mount +=` line, an fstab(5)
// line jail(8) mounts before the jail is created and unmounts after it is
// removed.
func TestRenderJailConfData(t *testing.T) {
	root := "/usr/local/jails/containers/" + testRelease
	c := jailConf{
		Name:        testRelease,
		Service:     "hello",
		Path:        root,
		Interface:   "lo1",
		IP:          netip.MustParseAddr("172.16.0.2"),
		ConsoleLog:  "/var/log/jail_" + testRelease + "_console.log",
		ExecTimeout: 60 * time.Second,
		StopTimeout: 30 * time.Second,
		Mounts: []nullfsMount{
			{Source: "/usr/local/jails/data/hello/uploads", Target: root + "/var/db/hello"},
			{Source: "/usr/local/jails/data/hello/cache", Target: root + "/usr/local/www/hello/cache"},
		},
	}
	golden.Assert(t, "testdata/freebsd/golden/jail-data.conf", c.render())
}

func TestCheckData(t *testing.T) {
	for _, tc := range []struct {
		data []release.Data
		bad  string // "" when fine
	}{
		{[]release.Data{{Name: "uploads", Path: "/var/db/hello"}, {Name: "db", Path: "/srv/db", Quota: 1 << 30}}, ""},
		{[]release.Data{{Name: "Uploads", Path: "/var/db/hello"}}, "not a data set name"},
		{[]release.Data{{Name: "uploads", Path: "var/db/hello"}}, "clean absolute path"},
		{[]release.Data{{Name: "uploads", Path: "/var/db/a b"}}, "clean absolute path"}, // a blank splits the fstab line
		{[]release.Data{{Name: "uploads", Path: "/var/db/../../etc"}}, "clean absolute path"},
		{[]release.Data{{Name: "uploads", Path: "/"}}, "clean absolute path"},
		{[]release.Data{{Name: "uploads", Path: "/a"}, {Name: "uploads", Path: "/b"}}, "listed twice"},
	} {
		err := checkData(tc.data)
		switch {
		case tc.bad == "" && err != nil:
			t.Errorf("checkData(%v): %v", tc.data, err)
		case tc.bad != "" && (err == nil || !strings.Contains(err.Error(), tc.bad)):
			t.Errorf("checkData(%v) = %v, want an error saying %q", tc.data, err, tc.bad)
		}
	}
}
