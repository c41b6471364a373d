package atomicfile

import (
	"io/fs"
	"os"
	"path/filepath"
)

// WriteFile replaces path with data, atomically: a temporary file in path's
// directory gets data and mode (exactly, whatever the umask), is synced and
// closed, then renamed to path. A symbolic link at path is replaced, not
// followed. On error path is unchanged and the temporary file is removed.
// The directory itself is not synced. Safe for concurrent use on different
// paths; concurrent writes of one path leave one of the writes.
func WriteFile(path string, data []byte, mode fs.FileMode) error {
	return write(path, data, mode, true)
}

// write is WriteFile, with the fsync when sync is set.
func write(path string, data []byte, mode fs.FileMode, sync bool) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Chmod(mode); err != nil {
		return err
	}
	if sync {
		if err := f.Sync(); err != nil {
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
