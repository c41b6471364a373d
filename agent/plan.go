package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/jailkeeper/jailkeeper/agent/gitsource"
	"github.com/jailkeeper/jailkeeper/caddy"
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
		URL: cfg.Repo.URL, Branch: cfg.Repo.Branch, Path: cfg.Repo.Path, Dir: filepath.Join(dir, "repo"),
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
	d, err := LoadDesired(snap.FS, cfg.Policy, cfg.Host, cfg.SecretsDir(), snap.Revision, snap.Time)
	if err != nil {
		return nil, nil, err
	}
	// Only what observing needs: no artifact store, no HTTP listener.
	rt, err := newRuntime(cfg)
	if err != nil {
		return nil, nil, err
	}
	proxy, err := caddy.New(caddy.Config{Admin: cfg.Caddy.Admin, Server: cfg.Caddy.Server, Listen: cfg.Caddy.Listen})
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: caddy: %w", ErrConfig, cfg.File, err)
	}
	defer proxy.Close()
	exec := &reconcile.Executor{Runtime: rt, Proxy: proxy}
	steps, err := exec.PlanPass(ctx, *d)
	return d, steps, err
}
