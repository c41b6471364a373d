package agent

import (
	"context"
	"fmt"
	"os"

	"github.com/jailkeeper/jailkeeper/agent/gitsource"
	"github.com/jailkeeper/jailkeeper/reconcile"
)

// PlanOnce fetches the deploy repo into a temporary clone (so it never
// touches the daemon's), observes the host and returns what a pass would do.
// It changes nothing.
func PlanOnce(ctx context.Context, cfg *Config) (*reconcile.Desired, []reconcile.Step, error) {
	dir, err := os.MkdirTemp("", "jailkeeper-plan-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(dir)
	src, err := gitsource.New(gitsource.Config{
		URL: cfg.Repo.URL, Branch: cfg.Repo.Branch, Path: cfg.Repo.Path, Dir: dir,
		SSHKey: cfg.Repo.SSHKey, KnownHosts: cfg.Repo.KnownHosts,
		TokenFile: cfg.Repo.TokenFile, VerifyKeyring: cfg.Repo.VerifyKeyring,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: %w", ErrConfig, cfg.File, err)
	}
	snap, err := src.Poll(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("deploy repo: %w", err)
	}
	d, err := LoadDesired(snap.FS, cfg.Host, cfg.SecretsDir(), snap.Revision, snap.Time)
	if err != nil {
		return nil, nil, err
	}
	a, err := New(cfg, nil)
	if err != nil {
		return nil, nil, err
	}
	defer a.proxy.Close()
	steps, err := a.exec.PlanPass(ctx, *d)
	return d, steps, err
}
