package process

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
)

// strays returns the live processes that run a release but that no pidfile
// names: an agent killed between the fork and the pidfile's write leaves
// one, holding the release's address. A stray is a process whose working
// directory is root and whose environment holds ADDR=addr, both as Start
// sets them (proc(5): /proc/<pid>/cwd, /proc/<pid>/environ); an operator's
// shell in the release root has no such ADDR. Processes that cannot be read
// (gone meanwhile, another user's) are skipped.
func strays(root, addr string) []int {
	want := []byte("ADDR=" + addr)
	procs, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range procs {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 1 || pid == os.Getpid() {
			continue
		}
		dir := filepath.Join("/proc", e.Name())
		if cwd, err := os.Readlink(filepath.Join(dir, "cwd")); err != nil || cwd != root {
			continue
		}
		env, err := os.ReadFile(filepath.Join(dir, "environ"))
		if err != nil {
			continue
		}
		for _, kv := range bytes.Split(env, []byte{0}) {
			if bytes.Equal(kv, want) {
				out = append(out, pid)
				break
			}
		}
	}
	return out
}
