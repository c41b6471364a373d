package process

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/jailkeeper/jailkeeper/release"
)

// OpenLog opens the release's log (see Log) for reading, as `jailkeeper
// logs` does. A log not written yet is an error wrapping fs.ErrNotExist.
// The release directory is the runtime's own, written by nothing the
// release runs but its command's output, so no path inside it is taken
// from the release.
func (p *Runtime) OpenLog(ctx context.Context, name string) (*os.File, error) {
	if err := release.ValidName(name); err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(p.dir(name), logFile))
	if err != nil {
		return nil, fmt.Errorf("log of %s: %w", name, err)
	}
	return f, nil
}
