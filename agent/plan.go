package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/jailkeeper/jailkeeper/agent/gitsource"
	"github.com/jailkeeper/jailkeeper/caddy"
	"github.com/jailkeeper/jailkeeper/reconcile"
)

// PlanOnce fetches the deploy repo into a temporary clone (so it never
// touches the daemon's), observes the host and returns what a pass would do.
// It changes nothing.
//
// Part of what a pass decides lives only in the running daemon's memory: a
// deploy still in flight, a failed create backing off, a stalled spec. Plan
// asks the daemon for it at cfg.Listen (GET /status), so that it prints
// what the daemon then does. When no daemon answers, it plans without, and
// says so on warn: a daemon started next would begin with an empty memory
// too, so the plan holds for it.
func PlanOnce(ctx context.Context, cfg *Config, warn io.Writer) (*reconcile.Desired, []reconcile.Step, error) {
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
	cfg.applyDefaults(d)
	d.DefaultStandby = cfg.Defaults.StandbyOrDefault()
	// Only what observing needs: no artifact store, no HTTP listener.
	rt, err := newRuntime(cfg)
	if err != nil {
		return nil, nil, err
	}
	proxy, err := caddy.New(cfg.Caddy.client())
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: caddy: %w", ErrConfig, cfg.File, err)
	}
	defer proxy.Close()
	mem, err := daemonMemory(ctx, cfg.Listen)
	if err != nil {
		fmt.Fprintf(warn, "note: %v; planning without the daemon's memory (deploys in flight, failed creates)\n", err)
	}
	obs, err := reconcile.NewExecutor(reconcile.Options{Runtime: rt, Proxy: proxy}).Observe(ctx)
	if err != nil {
		return d, nil, err
	}
	obs.Memory = mem
	now := time.Now()
	if obs.Holds, err = planHolds(cfg, *d, obs, now); err != nil {
		return d, nil, err
	}
	rp, err := planRebase(ctx, cfg, rt, *d, obs)
	if err != nil {
		return d, nil, err
	}
	steps, err := reconcile.Plan(rp.Desired, obs, now)
	return d, rp.Annotate(steps), err
}

// daemonMemory reads the executor's memory from the agent listening on
// listen.
func daemonMemory(ctx context.Context, listen string) (reconcile.Memory, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return reconcile.Memory{}, fmt.Errorf("listen %q: %w", listen, err)
	}
	// A wildcard listen address is reached through loopback.
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	url := "http://" + net.JoinHostPort(host, port) + "/status"
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return reconcile.Memory{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return reconcile.Memory{}, fmt.Errorf("no agent answers at %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return reconcile.Memory{}, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	var st Status
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&st); err != nil {
		return reconcile.Memory{}, fmt.Errorf("GET %s: decode: %w", url, err)
	}
	return st.Memory, nil
}
