package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/jailkeeper/jailkeeper/agent/gitsource"
	"github.com/jailkeeper/jailkeeper/artifact"
	"github.com/jailkeeper/jailkeeper/caddy"
	"github.com/jailkeeper/jailkeeper/internal/cloexec"
	"github.com/jailkeeper/jailkeeper/internal/redact"
	"github.com/jailkeeper/jailkeeper/manifest"
	"github.com/jailkeeper/jailkeeper/process"
	"github.com/jailkeeper/jailkeeper/reconcile"
	"github.com/jailkeeper/jailkeeper/release"
)

// Agent is the daemon. New wires it from a Config; Run drives it.
type Agent struct {
	cfg     *Config
	log     *slog.Logger
	source  *gitsource.Source
	proxy   *passProxy
	exec    *reconcile.Executor
	rt      reconcile.Runtime // the executor's, for the data /status lists
	metrics *Metrics
	notify  *Notifier // nil without notify.url
	store   *artifact.Store
	now     func() time.Time
	suspend *Suspensions
	windows *Windows
	// rebaseResume is when an operator last resumed a paused rebase.
	rebaseResume *RebaseResume

	trigger chan struct{}
	http    httpLimits    // the listener's limits; zero fields mean defaults
	minPoll time.Duration // between two polls of the deploy repo
	// listening, when set, is told the HTTP address once it listens.
	listening func(addr string)

	mu        sync.Mutex
	desired   *reconcile.Desired // last valid desired state; nil before the first
	status    Status
	sourceErr string            // the deploy repo could not be read or was invalid
	passErr   string            // the last pass was refused or could not observe
	logged    map[string]string // last error logged per kind, see logChange
	seq       uint64            // Seq of the last loaded desired state
	passes    int
	asked     ask // the first trigger since the last poll began

	loads loadCache // what the last polls parsed and hashed
}

// Status is the body of GET /status.
type Status struct {
	Revision string                    `json:"revision"`
	Error    string                    `json:"error,omitempty"`
	Services []reconcile.ServiceStatus `json:"services"`
	// Memory is what the executor remembers now and the host does not
	// show (deploys in flight, failed creates in backoff, stalled specs):
	// `jailkeeper plan` plans with it.
	Memory reconcile.Memory `json:"memory,omitzero"`
	// Rebase is each template's newest snapshot and where the rebase of
	// its services is (rolling, pending, paused and why).
	Rebase []reconcile.RebaseStatus `json:"rebase,omitempty"`
	// OrphanedData are the data sets of services no manifest names any
	// more (pruned, or moved to other hosts): kept until `jailkeeper data
	// destroy SERVICE NAME --yes`.
	OrphanedData []release.DataSet `json:"orphaned_data,omitempty"`
}

// New builds the agent's parts from cfg. It changes nothing on the host.
func New(cfg *Config, log *slog.Logger) (*Agent, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Agent{cfg: cfg, log: log, now: time.Now, trigger: make(chan struct{}, 1)}
	src, err := gitsource.New(gitsource.Config{
		URL: cfg.Repo.URL, Branch: cfg.Repo.Branch, Path: cfg.Repo.Path,
		Dir:    filepath.Join(cfg.StateDir, "repo"),
		SSHKey: cfg.Repo.SSHKey, KnownHosts: cfg.Repo.KnownHosts,
		TokenFile: cfg.Repo.TokenFile, VerifyKeyring: cfg.Repo.VerifyKeyring,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrConfig, cfg.File, err)
	}
	a.source = src
	store, err := artifact.NewStore(filepath.Join(cfg.StateDir, "artifacts"), artifact.Options{
		FileRoot:        cfg.Artifacts.FileRoot,
		AllowedPrefixes: cfg.Policy.ArtifactHosts,
	})
	if err != nil {
		return nil, err
	}
	rt, err := newRuntime(cfg)
	if err != nil {
		return nil, err
	}
	proxy, err := caddy.New(cfg.Caddy.client())
	if err != nil {
		return nil, fmt.Errorf("%w: %s: caddy: %w", ErrConfig, cfg.File, err)
	}
	a.proxy = &passProxy{Client: proxy}
	a.store = store
	a.rt = rt
	a.metrics = NewMetrics()
	a.notify = NewNotifier(cfg.Notify, log)
	if err := a.loadHolds(); err != nil {
		return nil, err
	}
	if err := a.loadRebase(); err != nil {
		return nil, err
	}
	a.exec = reconcile.NewExecutor(reconcile.Options{
		Runtime:    rt,
		Proxy:      a.proxy,
		Prober:     NewHTTPProber(),
		Fetcher:    store,
		Log:        log,
		Parallel:   cfg.Parallel,
		SecretsDir: cfg.SecretsDir(),
		Events:     a.event,
		Phases:     a.metrics.phase,
		// A deploy that outlived its pass has ended: a pass reports it.
		Kick: func() { a.triggerBy(triggerRetry) },
		Hold: holdFunc(a.suspend, a.windows),

		Rebase:          cfg.Rebase.Options(),
		RebaseResumedAt: a.rebaseResume.At,
	})
	a.metrics.watchCanaries(a.exec.Memory)
	return a, nil
}

// Executor exposes the reconcile executor, for `plan`.
func (a *Agent) Executor() *reconcile.Executor { return a.exec }

// Metrics exposes the agent's metrics.
func (a *Agent) Metrics() *Metrics { return a.metrics }

// DefaultMinPoll is the least time between two polls of the deploy repo,
// however many passes are asked for.
const DefaultMinPoll = time.Second

// Status returns the status after the last pass, with the executor's
// memory as it is now.
func (a *Agent) Status() Status {
	var mem reconcile.Memory
	if a.exec != nil {
		mem = a.exec.Memory()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.status
	st.Memory = mem
	var errs []string
	for _, e := range []string{a.sourceErr, a.passErr} {
		if e != "" {
			errs = append(errs, e)
		}
	}
	// What git and artifact servers and apps wrote (a reason phrase, a
	// remote's message) is shown: no secrets, no terminal escapes.
	st.Error = redact.Shown(strings.Join(errs, "; "))
	st.Services = slices.Clone(st.Services)
	showCanaries(st.Services, mem)
	for i := range st.Services {
		st.Services[i].Message = redact.Shown(st.Services[i].Message)
	}
	return st
}

// Ready reports whether a pass has completed.
func (a *Agent) Ready() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.passes > 0
}

// Run locks the state dir, serves HTTP, and runs passes on the poll schedule
// and on triggers until ctx is done. It leaves the releases running.
// Descriptors the process inherited are marked close-on-exec first, so no
// release holds one (internal/cloexec).
func (a *Agent) Run(ctx context.Context) error {
	cloexec.Inherited()
	if err := os.MkdirAll(a.cfg.StateDir, 0o750); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	unlock, err := lockDir(a.cfg.StateDir)
	if err != nil {
		return err
	}
	defer unlock()
	defer a.proxy.Close()

	srv, err := a.serve(ctx)
	if err != nil {
		return err
	}
	defer srv.close()
	if a.cfg.ControlSocket != "" {
		ctl, err := a.serveControl(ctx)
		if err != nil {
			return err
		}
		defer ctl.close()
	}
	defer a.notify.start(a.cfg.Notify.Timeout)()

	sched := cron.New()
	if _, err := sched.AddFunc(a.cfg.Repo.Poll, a.Trigger); err != nil {
		return fmt.Errorf("%w: %s: repo.poll: %w", ErrConfig, a.cfg.File, err)
	}
	sched.Start()
	defer sched.Stop()

	if a.listening != nil {
		a.listening(srv.addr)
	}
	a.log.Info("agent started", "repo", redact.URL(a.cfg.Repo.URL), "runtime", a.cfg.Runtime, "listen", srv.addr)
	a.triggerBy(triggerStart)
	minPoll := a.minPoll
	if minPoll <= 0 {
		minPoll = DefaultMinPoll
	}
	// The loop never waits for the network: a poll runs in its own
	// goroutine (bounded by repo timeouts and the manifest limits), and
	// so does a pass. Triggers (the schedule, POST /sync, webhooks) only
	// ask: a trigger during a poll is remembered and polls again
	// afterwards, and the deploy repo is polled at most once per minPoll
	// however many ask (issue 9: a client looping on POST /sync made a
	// poll of the remote per request). A state polled during a pass
	// preempts what it makes pointless and runs when the pass ends.
	var (
		passDone chan struct{}           // nil: no pass running
		polled   chan *reconcile.Desired // nil: no poll running
		pending  bool                    // a trigger wants a poll
		next     *reconcile.Desired      // polled, waiting for a pass
		lastPoll time.Time               // zero before the first poll
		wait     <-chan time.Time        // fires when the next poll is allowed
	)
	for {
		if pending && polled == nil && wait == nil {
			if since := a.now().Sub(lastPoll); !lastPoll.IsZero() && since < minPoll {
				wait = time.After(minPoll - since)
			} else {
				pending = false
				lastPoll = a.now()
				ch := make(chan *reconcile.Desired, 1)
				polled = ch
				asked := a.takeAsked()
				go func() { ch <- stamped(a.poll(ctx), asked, a.now()) }()
			}
		}
		if next != nil && passDone == nil {
			d := *next
			next = nil
			done := make(chan struct{})
			passDone = done
			go func() {
				defer close(done)
				a.pass(ctx, d)
			}()
		}
		select {
		case <-ctx.Done():
			if polled != nil {
				<-polled
			}
			if passDone != nil {
				<-passDone
			}
			a.exec.Wait() // deploys that outlived their pass end with ctx
			a.log.Info("agent stopped; releases keep running")
			return nil
		case <-a.trigger:
			pending = true
		case d := <-polled:
			polled = nil
			if d != nil {
				if passDone != nil {
					// A newer commit cancels the deploys it makes
					// pointless, and the pass stops waiting for the
					// others (a slow create): they go on while the next
					// pass starts.
					a.exec.Preempt(*d)
				}
				next = d
			}
		case <-passDone:
			passDone = nil
		case <-wait:
			wait = nil
		}
	}
}

// poll fetches the deploy repo and returns the desired state to converge to:
// the newest valid one. An invalid or unverifiable head leaves the last valid
// state in effect.
func (a *Agent) poll(ctx context.Context) *reconcile.Desired {
	snap, pollErr := a.source.Poll(ctx)
	a.metrics.sourceFetched(snap, pollErr, a.now())
	if pollErr != nil {
		a.logChange("poll", "poll deploy repo", pollErr)
	}
	if snap.FS == nil {
		a.setError(errText("deploy repo", pollErr))
		return a.lastDesired()
	}
	// Loaded on every poll, not only when the revision moved: the env files
	// live on the host, and a rotated secret must roll out.
	d, loadErr := a.load(snap)
	if loadErr != nil {
		msg := fmt.Sprintf("revision %s: %v", short(snap.Revision), loadErr)
		if pollErr != nil {
			msg = errText("deploy repo", pollErr) + "; " + msg
		}
		a.setError(msg)
		a.logChange("load", "invalid deploy repo revision; keeping the last valid one", loadErr, "revision", snap.Revision)
		return a.lastDesired()
	}
	a.logChange("load", "", nil)
	if pollErr == nil {
		a.logChange("poll", "", nil)
	}
	a.setError(errText("deploy repo", pollErr))
	a.mu.Lock()
	prev := a.desired
	a.seq++
	d.Seq = a.seq // orders this state against passes and preemptions
	a.desired = d
	a.mu.Unlock()
	if prev == nil || prev.Revision != d.Revision {
		a.log.Info("new revision", "revision", d.Revision)
	} else if !sameEnvFiles(prev, d) {
		a.log.Info("env file changed", "revision", d.Revision)
	}
	return d
}

func errText(what string, err error) string {
	if err == nil {
		return ""
	}
	return what + ": " + err.Error()
}

// sameSpecs reports whether two desired states ask for the same releases.
func sameSpecs(a, b *reconcile.Desired) bool {
	if len(a.Services) != len(b.Services) {
		return false
	}
	for i := range a.Services {
		if a.Services[i].SpecHash() != b.Services[i].SpecHash() {
			return false
		}
	}
	return true
}

// logChange logs err under key only when it differs from the last one
// logged there, and a recovery once: a failure that lasts is one line, not
// one per pass.
func (a *Agent) logChange(key, msg string, err error, attrs ...any) {
	text := ""
	if err != nil {
		// Library errors quote URLs, tokens and all.
		text = redact.Text(err.Error())
	}
	a.mu.Lock()
	if a.logged == nil {
		a.logged = map[string]string{}
	}
	last := a.logged[key]
	a.logged[key] = text
	a.mu.Unlock()
	switch {
	case text == last:
	case err != nil:
		a.log.Warn(msg, append(attrs, "err", text)...)
	default:
		a.log.Info("recovered", append(attrs, "what", key)...)
	}
}

func short(rev string) string { return rev[:min(len(rev), 12)] }

func (a *Agent) lastDesired() *reconcile.Desired {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.desired
}

func (a *Agent) setError(msg string) {
	a.mu.Lock()
	a.sourceErr = msg
	a.mu.Unlock()
}

// load turns a snapshot into the desired state for this host, as
// LoadDesired does, without parsing again a revision's manifests or
// reading an unchanged env file (loadCache).
func (a *Agent) load(snap gitsource.Snapshot) (*reconcile.Desired, error) {
	d, err := a.loads.load(snap, a.cfg.Policy, a.cfg.Host, a.cfg.SecretsDir())
	a.cfg.applyDefaults(d)
	if d != nil {
		d.DefaultStandby = a.cfg.Defaults.StandbyOrDefault()
	}
	return d, err
}

// LoadDesired reads the manifests in fsys, checked against the operator's
// policy (manifest.LoadPolicy, as `jailkeeper validate --policy` does),
// keeps those for host, and hashes their env files from secretsDir into the
// spec. Env files come from secretsDir only, never from the deploy repo.
func LoadDesired(fsys fs.FS, policy manifest.Policy, host, secretsDir, revision string, commitTime time.Time) (*reconcile.Desired, error) {
	svcs, err := manifest.LoadPolicy(fsys, ".", policy)
	if err != nil {
		return nil, err
	}
	d := &reconcile.Desired{Revision: revision, CommitTime: commitTime}
	var errs []error
	for _, s := range svcs {
		if !s.ForHost(host) {
			continue
		}
		if s.EnvFile != "" {
			data, err := os.ReadFile(filepath.Join(secretsDir, s.EnvFile))
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: env_file: %w", s.File, err))
				continue
			}
			sum := sha256.Sum256(data)
			s.EnvFileDigest = hex.EncodeToString(sum[:])
		}
		d.Services = append(d.Services, s)
	}
	return d, errors.Join(errs...)
}

// pass runs one reconcile pass and records its outcome.
func (a *Agent) pass(ctx context.Context, d reconcile.Desired) {
	start := a.now()
	// Re-assert jailkeeper's server first: Caddy may have restarted without
	// --resume or re-read a Caddyfile. A no-op when all is in place.
	idleHost := len(a.exec.Memory().InFlight) == 0 // no step can move a route before the pass observes
	a.logChange("ensure", "caddy: ensure server", a.proxy.ensure(ctx, idleHost))
	a.metrics.desired(d)
	res, err := a.exec.Pass(ctx, d)
	a.proxy.forget()
	a.metrics.passDone(res, err, a.now().Sub(start))
	a.logChange("pass", "pass finished with errors", err)
	a.pruneCache(d)
	orphans, oerr := orphanedData(ctx, a.rt, d)
	a.logChange("data", "list data", oerr)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.passes++
	if oerr == nil {
		a.status.OrphanedData = orphans
	}
	a.status.Revision = d.Revision
	if res.Services != nil || err == nil {
		a.status.Services = res.Services
		a.status.Rebase = res.Rebase
	}
	a.passErr = ""
	switch {
	case errors.Is(err, reconcile.ErrPruneAll):
		a.passErr = fmt.Sprintf("revision %s: %v", short(d.Revision), err)
	case err != nil && res.Services == nil:
		// The pass could not even observe the host (Caddy or jls down).
		a.passErr = err.Error()
	}
}

// pruneCache bounds the artifact cache after a pass: the artifacts the
// desired manifests name stay (a release on disk has its artifact
// installed and needs nothing from the cache), the rest is bounded by
// artifacts.cache_max, least recently used first. It runs in the pass's
// goroutine, so no Fetch of this agent races it.
func (a *Agent) pruneCache(d reconcile.Desired) {
	if a.store == nil {
		return
	}
	keep := map[string]bool{}
	for _, s := range d.Services {
		keep[strings.ToLower(s.Artifact.SHA256)] = true
	}
	res, err := a.store.Prune(keep, a.cfg.Artifacts.CacheMaxBytes)
	a.logChange("prune", "prune artifact cache", err)
	if len(res.Removed) > 0 {
		a.log.Info("artifact cache pruned", "removed", len(res.Removed), "freed_bytes", res.Freed, "kept_bytes", res.Kept)
	}
}

// event logs a state change once, counts it and forwards it.
func (a *Agent) event(ev reconcile.Event) {
	a.metrics.event(ev)
	ev.Reason = redact.Shown(ev.Reason) // logged and sent on
	attrs := []any{"event", string(ev.Kind), "service", ev.Service}
	if ev.Release != "" {
		attrs = append(attrs, "release", ev.Release)
	}
	if ev.SHA != "" {
		attrs = append(attrs, "sha", ev.SHA)
	}
	if ev.Reason != "" {
		attrs = append(attrs, "reason", ev.Reason)
	}
	if ev.Duration > 0 {
		attrs = append(attrs, "duration", ev.Duration.Round(time.Millisecond).String())
	}
	if ev.Percent > 0 {
		attrs = append(attrs, "canary_step", ev.CanaryStep, "percent", ev.Percent)
	}
	level := slog.LevelInfo
	if ev.Kind == reconcile.EventFailed || ev.Kind == reconcile.EventReverted || ev.Kind == reconcile.EventCanaryAborted {
		level = slog.LevelWarn
	}
	a.log.Log(context.Background(), level, "deploy event", attrs...)
	a.notify.Notify(ev)
}

func newRuntime(cfg *Config) (reconcile.Runtime, error) {
	switch cfg.Runtime {
	case "process":
		pool, err := parsePrefix(cfg, "process.pool", cfg.Process.Pool)
		if err != nil {
			return nil, err
		}
		return process.New(process.Config{
			Root:         cfg.Process.Root,
			Template:     cfg.Process.Template,
			Pool:         pool,
			Dataset:      cfg.Process.Dataset,
			TemplateName: cfg.Process.TemplateName,
		})
	case "jail":
		return newJailRuntime(cfg)
	}
	return nil, fmt.Errorf("%w: %s: runtime: %q", ErrConfig, cfg.File, cfg.Runtime)
}
