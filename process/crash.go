package process

import (
	"context"
	"fmt"
	"path/filepath"
	"syscall"
	"time"

	"github.com/jailkeeper/jailkeeper/internal/crashpoint"
	"github.com/jailkeeper/jailkeeper/release"
)

// Crash points of the process runtime (see internal/crashpoint), each
// after a durable step and before the next.
var (
	cpCreateReserved   = crashpoint.New("process.create.reserved")   // release.json in state creating
	cpCreateRooted     = crashpoint.New("process.create.rooted")     // root/ made or copied
	cpCreateInstalled  = crashpoint.New("process.create.installed")  // artifact in root/
	cpCreateConfigured = crashpoint.New("process.create.configured") // process.json written, still creating
	cpStartForked      = crashpoint.New("process.start.forked")      // the app runs, no pidfile yet
	cpStopSignalled    = crashpoint.New("process.stop.signalled")    // SIGTERM sent, not waited for
	cpStopGone         = crashpoint.New("process.stop.gone")         // the app exited, pidfile still there
	cpDestroyStopped   = crashpoint.New("process.destroy.stopped")   // stopped, directory still there
	cpDestroyDataset   = crashpoint.New("process.destroy.dataset")   // ZFS mode: clone destroyed, directory still there
)

// killStrays kills the strays of release r (see strays), each with its
// process group, and waits until they are gone (at most 10s). None of
// them ever got traffic: a pidfile is written before Start returns, and
// only a started release is switched to.
func (p *Runtime) killStrays(ctx context.Context, name string, r release.Release) error {
	root := filepath.Join(p.dir(name), rootDir)
	pids := scanStrays(root, r.Addr())
	if len(pids) == 0 {
		return nil
	}
	for _, pid := range pids {
		signalGroup(pid, syscall.SIGKILL)
		_ = sysKill(pid, syscall.SIGKILL) // one that left its group
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(scanStrays(root, r.Addr())) > 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v of an interrupted start survived SIGKILL", pids)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}
