package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jailkeeper/jailkeeper/internal/atomicfile"
	"github.com/jailkeeper/jailkeeper/process"
	"github.com/jailkeeper/jailkeeper/reconcile"
)

var (
	_ reconcile.Templates = (*process.Runtime)(nil)
)

// RebaseConfig bounds a template rebase (agent config rebase): when a
// template gets a newer snapshot, every service on it rolls to a release
// on that snapshot, at most MaxParallel at once.
type RebaseConfig struct {
	// MaxParallel is how many services of a template roll at once;
	// default 1, at most 64.
	MaxParallel int `yaml:"max_parallel"`
	// PauseOnFailure stops the rebase at its first failing service; the
	// failed service keeps its old release live. Default true.
	PauseOnFailure *bool `yaml:"pause_on_failure"`
}

// DefaultRebaseMaxParallel is rebase.max_parallel when the config sets none.
const DefaultRebaseMaxParallel = 1

// Options returns the executor's rebase options, defaults applied.
func (r RebaseConfig) Options() reconcile.RebaseOptions {
	o := reconcile.RebaseOptions{MaxParallel: r.MaxParallel, PauseOnFailure: true}
	if o.MaxParallel == 0 {
		o.MaxParallel = DefaultRebaseMaxParallel
	}
	if r.PauseOnFailure != nil {
		o.PauseOnFailure = *r.PauseOnFailure
	}
	return o
}

// validate checks rebase; bad reports a field's error.
func (r RebaseConfig) validate(bad func(field, format string, args ...any)) {
	if n := r.MaxParallel; n < 0 || n > 64 {
		bad("rebase.max_parallel", "%d is not between 1 and 64 (services rolled to a new template snapshot at once)", n)
	}
}

// RebaseFile is the file in the state dir that records when an operator
// last resumed a paused rebase (`jailkeeper rebase resume`): failures of
// releases before that time pause nothing. Like suspended.json it is the
// host's, and outlives a restart.
const RebaseFile = "rebase.json"

// rebaseDoc is RebaseFile's content.
type rebaseDoc struct {
	ResumedAt time.Time `json:"resumed_at"`
}

// RebaseResume is the stored time of the last resume. Safe for
// concurrent use.
type RebaseResume struct {
	path string

	mu sync.Mutex
	at time.Time
}

// LoadRebaseResume reads RebaseFile from stateDir; a missing file means
// never resumed. A file that cannot be read or parsed is an error naming
// it.
func LoadRebaseResume(stateDir string) (*RebaseResume, error) {
	r := &RebaseResume{path: filepath.Join(stateDir, RebaseFile)}
	data, err := os.ReadFile(r.path)
	if errors.Is(err, os.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read rebase state: %w", err)
	}
	var doc rebaseDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", r.path, err)
	}
	r.at = doc.ResumedAt
	return r, nil
}

// At returns when rebases were last resumed; zero for never.
func (r *RebaseResume) At() time.Time {
	if r == nil {
		return time.Time{}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.at
}

// Resume stores now as the resume time. On error nothing changed.
func (r *RebaseResume) Resume(now time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	data, err := json.Marshal(rebaseDoc{ResumedAt: now.UTC()})
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(r.path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("store rebase state: %w", err)
	}
	r.at = now.UTC()
	return nil
}

// RebaseReply is the control socket's answer to POST /rebase/resume: the
// templates as the last pass left them.
type RebaseReply struct {
	ResumedAt time.Time                `json:"resumed_at"`
	Templates []reconcile.RebaseStatus `json:"templates,omitempty"`
}

// handleRebaseResume serves POST /rebase/resume on the control socket:
// failures of releases on a template's newest snapshot so far pause its
// rebase no longer, and a pass runs at once. A failed service is tried
// again once its backoff has passed.
func (a *Agent) handleRebaseResume(w http.ResponseWriter, _ *http.Request) {
	now := a.now()
	if err := a.rebaseResume.Resume(now); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	a.log.Info("rebase resumed")
	a.Trigger()
	writeJSON(w, RebaseReply{ResumedAt: now.UTC(), Templates: a.Status().Rebase})
}

// loadRebase reads RebaseFile.
func (a *Agent) loadRebase() error {
	r, err := LoadRebaseResume(a.cfg.StateDir)
	if err != nil {
		return err
	}
	a.rebaseResume = r
	return nil
}

var (
	rebaseServicesDesc = prometheus.NewDesc("jailkeeper_rebase_services",
		"Services on a template by where their rebase is: current (on the newest snapshot), rolling, pending, held (suspend or sync window), failed.",
		[]string{"template", "state"}, nil)
	rebasePausedDesc = prometheus.NewDesc("jailkeeper_rebase_paused",
		"1 while a failure has paused the template's rebase (rebase.pause_on_failure), else 0.", []string{"template"}, nil)
	templateSnapshotDesc = prometheus.NewDesc("jailkeeper_template_snapshot_info",
		"1 for each template's newest snapshot, the one new releases are cloned from.", []string{"template", "snapshot"}, nil)
)

// rebaseStates are the values of jailkeeper_rebase_services's state label.
var rebaseStates = []string{"current", "rolling", "pending", "held", "failed"}

// rebaseCollector reports the rebase of each template of the last pass.
type rebaseCollector struct{ m *Metrics }

func (c rebaseCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- rebaseServicesDesc
	ch <- rebasePausedDesc
	ch <- templateSnapshotDesc
}

func (c rebaseCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	tmpls := c.m.rebase
	c.m.mu.Unlock()
	for _, t := range tmpls {
		counts := []int{t.Current, t.Rolling, t.Pending, t.Held, t.Failed}
		for i, s := range rebaseStates {
			ch <- prometheus.MustNewConstMetric(rebaseServicesDesc, prometheus.GaugeValue, float64(counts[i]), t.Template, s)
		}
		paused := 0.0
		if t.Paused {
			paused = 1
		}
		ch <- prometheus.MustNewConstMetric(rebasePausedDesc, prometheus.GaugeValue, paused, t.Template)
		if t.Snapshot != "" {
			ch <- prometheus.MustNewConstMetric(templateSnapshotDesc, prometheus.GaugeValue, 1, t.Template, t.Snapshot)
		}
	}
}

// planRebase is what a pass of the daemon would decide about rebases
// (reconcile.PlanRebase), for `jailkeeper plan`: the resume time from the
// state dir, the holds from obs.
func planRebase(ctx context.Context, cfg *Config, rt reconcile.Runtime, d reconcile.Desired, obs reconcile.Observed) (reconcile.RebasePlan, error) {
	resume, err := LoadRebaseResume(cfg.StateDir)
	if err != nil {
		return reconcile.RebasePlan{}, err
	}
	in := reconcile.RebaseInput{
		Options:   cfg.Rebase.Options(),
		ResumedAt: resume.At(),
		Gate: func(svc string) (string, bool) {
			return obs.Holds[svc].Blocks(reconcile.ChangeRebase)
		},
	}
	return reconcile.PlanRebase(d, obs, reconcile.ObserveTemplates(ctx, rt, d), in), nil
}
