package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jailkeeper/jailkeeper/internal/atomicfile"
	"github.com/jailkeeper/jailkeeper/reconcile"
	"github.com/jailkeeper/jailkeeper/release"
)

// SuspendFile is the file in the state dir that lists suspended services.
// It is the host's, not the deploy repo's: an incident responder freezes a
// service without a commit, and the freeze outlives an agent restart.
const SuspendFile = "suspended.json"

// MaxSuspendReason bounds the reason given with a suspend, in bytes.
const MaxSuspendReason = 512

// suspendDoc is SuspendFile's content.
type suspendDoc struct {
	Services map[string]reconcile.Suspension `json:"services"`
}

// Suspensions are the services an operator suspended, kept in SuspendFile
// and written atomically on every change. Safe for concurrent use.
type Suspensions struct {
	path string

	mu sync.Mutex
	m  map[string]reconcile.Suspension
}

// LoadSuspensions reads SuspendFile from stateDir; a missing file means
// none. A file that cannot be read or parsed is an error naming it: an
// agent that forgot a suspend would deploy what an operator froze.
func LoadSuspensions(stateDir string) (*Suspensions, error) {
	s := &Suspensions{path: filepath.Join(stateDir, SuspendFile), m: map[string]reconcile.Suspension{}}
	data, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read suspended services: %w", err)
	}
	var doc suspendDoc
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%s: %w", s.path, err)
	}
	for name, sus := range doc.Services {
		if err := release.ValidService(name); err != nil {
			return nil, fmt.Errorf("%s: services: %w", s.path, err)
		}
		s.m[name] = sus
	}
	return s, nil
}

// Get returns service's suspension, if it is suspended.
func (s *Suspensions) Get(service string) (reconcile.Suspension, bool) {
	if s == nil {
		return reconcile.Suspension{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sus, ok := s.m[service]
	return sus, ok
}

// List returns every suspended service.
func (s *Suspensions) List() map[string]reconcile.Suspension {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.m)
}

// Suspend records service as suspended since now, with reason. Suspending
// a suspended service keeps its time and replaces a reason only with a
// new non-empty one. It reports whether the service was newly suspended.
// On error nothing changed.
func (s *Suspensions) Suspend(service, reason string, now time.Time) (bool, error) {
	if err := release.ValidService(service); err != nil {
		return false, err
	}
	if err := validReason(reason); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, was := s.m[service]
	next := maps.Clone(s.m)
	sus := reconcile.Suspension{Reason: reason, Since: now.UTC().Truncate(time.Second)}
	if was {
		sus.Since = old.Since
		if reason == "" {
			sus.Reason = old.Reason
		}
	}
	next[service] = sus
	if err := s.writeLocked(next); err != nil {
		return false, err
	}
	return !was, nil
}

// Resume forgets service's suspension and reports whether it was
// suspended. On error nothing changed.
func (s *Suspensions) Resume(service string) (bool, error) {
	if err := release.ValidService(service); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[service]; !ok {
		return false, nil
	}
	next := maps.Clone(s.m)
	delete(next, service)
	return true, s.writeLocked(next)
}

// writeLocked stores m and, once stored, makes it current.
func (s *Suspensions) writeLocked(m map[string]reconcile.Suspension) error {
	data, err := json.MarshalIndent(suspendDoc{Services: m}, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(s.path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("store suspended services: %w", err)
	}
	s.m = m
	return nil
}

func validReason(r string) error {
	if len(r) > MaxSuspendReason {
		return fmt.Errorf("reason is %d bytes, more than %d", len(r), MaxSuspendReason)
	}
	if i := slices.IndexFunc([]rune(r), func(c rune) bool { return !unicode.IsPrint(c) }); i >= 0 {
		return errors.New("reason has a control character")
	}
	return nil
}

// holdFunc is what the agent tells the executor holds a service: its
// suspension and its sync windows.
func holdFunc(sus *Suspensions, ws *Windows) reconcile.HoldFunc {
	return func(service string, now time.Time) reconcile.Hold {
		var h reconcile.Hold
		if s, ok := sus.Get(service); ok {
			h.Suspended = &s
		}
		h.Window = ws.Wait(service, now)
		return h
	}
}

var suspendedDesc = prometheus.NewDesc("jailkeeper_service_suspended",
	"1 while an operator has suspended the service (jailkeeper suspend), else 0.", []string{"service"}, nil)

// suspendCollector reports jailkeeper_service_suspended: 1 for every
// suspended service, 0 for every other service of the last pass.
type suspendCollector struct{ m *Metrics }

func (c suspendCollector) Describe(ch chan<- *prometheus.Desc) { ch <- suspendedDesc }

func (c suspendCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	sus := c.m.suspensions.List()
	names := map[string]bool{}
	for _, s := range c.m.services {
		names[s.Service] = true
	}
	c.m.mu.Unlock()
	for name := range sus {
		names[name] = true
	}
	for name := range names {
		v := 0.0
		if _, ok := sus[name]; ok {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(suspendedDesc, prometheus.GaugeValue, v, name)
	}
}

// loadHolds reads the suspended services and parses the sync windows, and
// registers jailkeeper_service_suspended.
func (a *Agent) loadHolds() error {
	sus, err := LoadSuspensions(a.cfg.StateDir)
	if err != nil {
		return err
	}
	ws, err := NewWindows(a.cfg.Windows, a.now())
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrConfig, a.cfg.File, err)
	}
	a.suspend, a.windows = sus, ws
	a.metrics.mu.Lock()
	a.metrics.suspensions = sus
	a.metrics.mu.Unlock()
	return nil
}
