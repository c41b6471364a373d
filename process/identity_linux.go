package process

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// identity returns "<boot id>:<start time>" for pid and whether it is
// alive (not a zombie). The start time, in clock ticks since boot (field 22 of
// /proc/<pid>/stat, see proc(5)), tells a process from a later one that
// reuses its PID during this boot; the boot id (random per boot,
// /proc/sys/kernel/random/boot_id, see random(4)) tells it from one of an
// earlier boot that had the same PID and started in the same tick. A missing
// process is an error wrapping fs.ErrNotExist.
func identity(pid int) (id string, alive bool, err error) {
	boot, err := bootID()
	if err != nil {
		return "", false, err
	}
	b, err := readProcStat(pid)
	if err != nil {
		// ESRCH: the process exited between open and read of its stat.
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			return "", false, fs.ErrNotExist
		}
		return "", false, err
	}
	start, alive, err := parseStat(b)
	if err != nil {
		return "", false, err
	}
	return boot + ":" + start, alive, nil
}

// bootID reads this boot's id once.
var bootID = sync.OnceValues(func() (string, error) {
	const p = "/proc/sys/kernel/random/boot_id"
	b, err := os.ReadFile(p)
	if err != nil {
		// %v: a missing file must not read as a missing process.
		return "", fmt.Errorf("read boot id: %v", err)
	}
	id := strings.TrimSpace(string(b))
	if id == "" || strings.ContainsAny(id, ": \t\n") {
		return "", fmt.Errorf("read boot id: unexpected %s %q", p, b)
	}
	return id, nil
})

// parseStat reads state and starttime from a /proc/<pid>/stat line:
// "pid (comm) state ppid ...", where comm may hold spaces and parentheses.
func parseStat(b []byte) (start string, alive bool, err error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return "", false, fmt.Errorf("malformed /proc stat %q", b)
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3 (state), so field n is f[n-3].
	if len(f) < 22-3+1 {
		return "", false, fmt.Errorf("malformed /proc stat %q", b)
	}
	state := f[0]
	alive = !bytes.Equal(state, []byte("Z")) && !bytes.Equal(state, []byte("X"))
	return string(f[22-3]), alive, nil
}

// readProcStat reads /proc/<pid>/stat with open, read and close, and no
// more: List reads it for every running release on every pass (issue 11),
// and os.ReadFile adds an fstat and a read. The line is far shorter than
// the buffer (proc(5): 52 numeric fields and a comm of at most 64 bytes);
// a longer one is read on.
func readProcStat(pid int) ([]byte, error) {
	path := "/proc/" + strconv.Itoa(pid) + "/stat"
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer syscall.Close(fd)
	buf := make([]byte, 0, 1024)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := syscall.Read(fd, buf[len(buf):cap(buf)])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}
