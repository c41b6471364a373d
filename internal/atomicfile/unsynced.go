package atomicfile

import "io/fs"

// WriteFileUnsynced is WriteFile without the fsync: readers still see the
// old content or the new, never a part (the rename is atomic), but after
// a crash of the machine the file may hold either, or be empty. It is
// for files that are rebuilt from other state after a reboot and must be
// replaced quickly: a Caddy upstream file, written on a rollback's
// critical path, where an fsync costs more than the rest of the switch.
func WriteFileUnsynced(path string, data []byte, mode fs.FileMode) error {
	return write(path, data, mode, false)
}
