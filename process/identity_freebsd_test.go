package process

import (
	"encoding/binary"
	"os"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestProcessParseKinfoRefuses: parseKinfo refuses what is not the
// 64-bit kinfo_proc of the PID asked for, rather than read a wrong start.
func TestProcessParseKinfoRefuses(t *testing.T) {
	real, err := unix.SysctlRaw("kern.proc.pid", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if _, alive, err := parseKinfo(real, os.Getpid()); err != nil || !alive {
		t.Fatalf("own kinfo_proc: alive %v, %v", alive, err)
	}
	short := real[:768] // the size of an i386 kinfo_proc
	otherSize := append([]byte(nil), real...)
	binary.NativeEndian.PutUint32(otherSize[kinfoOffStructsz:], 792)
	for name, b := range map[string][]byte{"short": short, "other ki_structsize": otherSize} {
		if _, _, err := parseKinfo(b, os.Getpid()); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
	if _, _, err := parseKinfo(real, os.Getpid()+1); err == nil {
		t.Error("kinfo_proc of another pid parsed")
	}
}

// TestProcessIdentityIsUptime: the identity is the start in microseconds
// since boot, so it lies between 0 and the current uptime.
func TestProcessIdentityIsUptime(t *testing.T) {
	id, _, err := identity(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	start, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		t.Fatalf("identity %q is not a number: %v", id, err)
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_UPTIME, &ts); err != nil {
		t.Fatal(err)
	}
	uptime := time.Duration(ts.Nano()) / time.Microsecond
	if start <= 0 || start > int64(uptime) {
		t.Errorf("start %dµs after boot, uptime %dµs", start, uptime)
	}
}
