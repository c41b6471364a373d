package jails_test

import (
	"io/fs"
	"syscall"
	"testing"
)

func fileOwner(t *testing.T, st fs.FileInfo) (uid, gid int) {
	t.Helper()
	s, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		t.Skip("no owner information on this system")
	}
	return int(s.Uid), int(s.Gid)
}
