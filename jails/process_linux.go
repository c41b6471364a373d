package jails

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
)

// processIdentity returns the start time of pid since boot (field 22 of
// /proc/<pid>/stat, see proc(5)), which tells a process from a later one that
// reuses its PID, and whether it is alive (not a zombie). A missing process is
// an error wrapping fs.ErrNotExist.
func processIdentity(pid int) (id string, alive bool, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", false, fs.ErrNotExist
		}
		return "", false, err
	}
	return processParseStat(b)
}

// processParseStat reads state and starttime from a /proc/<pid>/stat line:
// "pid (comm) state ppid ...", where comm may hold spaces and parentheses.
func processParseStat(b []byte) (id string, alive bool, err error) {
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
