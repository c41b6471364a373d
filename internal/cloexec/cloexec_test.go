//go:build linux

package cloexec

import (
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
)

// A descriptor inherited without close-on-exec reaches a child until
// Inherited marks it.
func TestInheritedNotPassedOn(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	fd := w.Fd()
	// As a descriptor inherited from flock(1) is: not close-on-exec.
	if _, _, errno := syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_SETFD, 0); errno != 0 {
		t.Fatal(errno)
	}
	childSees := func() bool {
		t.Helper()
		err := exec.Command("sh", "-c", "test -e /proc/self/fd/"+strconv.Itoa(int(fd))).Run()
		if _, ok := err.(*exec.ExitError); err != nil && !ok {
			t.Fatal(err)
		}
		return err == nil
	}
	if !childSees() {
		t.Fatalf("a child does not see descriptor %d before Inherited: the test cannot tell", fd)
	}
	Inherited()
	if childSees() {
		t.Errorf("a child still sees descriptor %d after Inherited", fd)
	}
	// stdin, stdout and stderr stay inheritable.
	for i := 0; i <= 2; i++ {
		flags, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(i), syscall.F_GETFD, 0)
		if errno == 0 && flags&syscall.FD_CLOEXEC != 0 {
			t.Errorf("descriptor %d marked close-on-exec", i)
		}
	}
}
