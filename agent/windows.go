package agent

import (
	"fmt"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/jailkeeper/jailkeeper/reconcile"
)

// WindowConfig is one sync window (agent config `windows`): from each
// activation of Schedule, for Duration, a deny window keeps new deploys of
// the matching services waiting; allow windows are the only times they
// may deploy. Rollbacks to a retained release go through either.
type WindowConfig struct {
	// Kind is deny or allow.
	Kind string `yaml:"kind"`
	// Schedule is a cron expression (5 fields, or a descriptor such as
	// @daily) in the host's time zone unless it starts with CRON_TZ=.
	Schedule string `yaml:"schedule"`
	// Duration is how long each activation lasts ("8h").
	Duration string `yaml:"duration"`
	// Services are path.Match globs of service names; empty means all.
	Services []string `yaml:"services"`
}

// window is a WindowConfig parsed.
type window struct {
	deny     bool
	sched    cron.Schedule
	dur      time.Duration
	services []string
	desc     string // as status and plan print it
}

// maxWindowSteps bounds the search for a window's end or opening: a deny
// window that always overlaps its next activation ("* * * * *" for 1h)
// never ends, and the search says so instead of looping.
const maxWindowSteps = 1000

// parseWindow checks one entry of windows; errors name the field.
func parseWindow(w WindowConfig, now time.Time) (window, []fieldError) {
	var errs []fieldError
	bad := func(field, format string, args ...any) {
		errs = append(errs, fieldError{field, fmt.Sprintf(format, args...)})
	}
	out := window{services: w.Services}
	switch w.Kind {
	case "deny":
		out.deny = true
	case "allow":
	default:
		bad("kind", "%q is not deny or allow", w.Kind)
	}
	switch sched, err := cron.ParseStandard(w.Schedule); {
	case w.Schedule == "":
		bad("schedule", "is required: a cron expression such as \"0 9 * * 1-5\"")
	case err != nil:
		bad("schedule", "%v", err)
	default:
		if _, ok := sched.(cron.ConstantDelaySchedule); ok {
			bad("schedule", "%q counts from whenever it is asked, not from a time of day; use a cron expression", w.Schedule)
		} else if sched.Next(now).IsZero() {
			bad("schedule", "%q never activates", w.Schedule)
		}
		out.sched = sched
	}
	if d, err := time.ParseDuration(w.Duration); w.Duration == "" {
		bad("duration", "is required: how long each window lasts, such as 1h")
	} else if err != nil || d <= 0 {
		bad("duration", "%q is not a positive duration such as 30m or 8h", w.Duration)
	} else {
		out.dur = d
	}
	for i, g := range w.Services {
		if _, err := path.Match(g, ""); err != nil || g == "" {
			bad(fmt.Sprintf("services[%d]", i), "%q is not a glob of service names", g)
		}
	}
	out.desc = fmt.Sprintf("%s %q for %s", w.Kind, w.Schedule, out.dur)
	return out, errs
}

// fieldError is a problem with one field of a config entry.
type fieldError struct{ field, msg string }

func (w window) matches(service string) bool {
	if len(w.services) == 0 {
		return true
	}
	for _, g := range w.services {
		if ok, _ := path.Match(g, service); ok {
			return true
		}
	}
	return false
}

// activeAt returns the activation whose window holds t, if one does:
// the first activation after t-dur, when it is not after t.
func (w window) activeAt(t time.Time) (time.Time, bool) {
	s := w.sched.Next(t.Add(-w.dur))
	return s, !s.IsZero() && !s.After(t)
}

// endAfter returns when the window active at t ends, later activations
// that overlap or touch it included; zero when it does not end within
// maxWindowSteps activations.
func (w window) endAfter(t time.Time) time.Time {
	s, ok := w.activeAt(t)
	if !ok {
		return t
	}
	end := s.Add(w.dur)
	for range maxWindowSteps {
		n := w.sched.Next(s)
		if n.IsZero() || n.After(end) {
			return end
		}
		s = n
		if e := n.Add(w.dur); e.After(end) {
			end = e
		}
	}
	return time.Time{}
}

// Windows answers, for a service and a time, whether its sync windows
// hold changes and until when. Safe for concurrent use.
type Windows struct {
	windows []window

	mu    sync.Mutex
	at    time.Time                        // the time cache holds answers for
	cache map[string]*reconcile.WindowWait // by the set of windows that match
}

// NewWindows parses cfgs, which Config.validate has checked; now is for
// the check that a schedule ever activates.
func NewWindows(cfgs []WindowConfig, now time.Time) (*Windows, error) {
	ws := &Windows{}
	for i, c := range cfgs {
		w, errs := parseWindow(c, now)
		if len(errs) > 0 {
			return nil, fmt.Errorf("windows[%d].%s: %s", i, errs[0].field, errs[0].msg)
		}
		ws.windows = append(ws.windows, w)
	}
	return ws, nil
}

// Wait returns the window that holds changes of service at now, with the
// time its windows next let one through; nil when none holds. Inside a
// deny window, or (when allow windows name the service) outside all of
// them, it holds; the opening is the first time neither is so.
func (ws *Windows) Wait(service string, now time.Time) *reconcile.WindowWait {
	if ws == nil || len(ws.windows) == 0 {
		return nil
	}
	var deny, allow []window
	var key strings.Builder
	for i, w := range ws.windows {
		if !w.matches(service) {
			continue
		}
		fmt.Fprintf(&key, "%d,", i)
		if w.deny {
			deny = append(deny, w)
		} else {
			allow = append(allow, w)
		}
	}
	if len(deny) == 0 && len(allow) == 0 {
		return nil
	}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if !ws.at.Equal(now) {
		ws.at, ws.cache = now, map[string]*reconcile.WindowWait{}
	}
	if w, ok := ws.cache[key.String()]; ok {
		return w
	}
	w := waitFor(deny, allow, now)
	ws.cache[key.String()] = w
	return w
}

// waitFor finds the first time from now that no deny window holds and,
// when there are allow windows, one of them does.
func waitFor(deny, allow []window, now time.Time) *reconcile.WindowWait {
	t, why := now, ""
	for range maxWindowSteps {
		if w, ok := activeWindow(deny, t); ok {
			if why == "" {
				why = w.desc
			}
			end := w.endAfter(t)
			if end.IsZero() {
				return &reconcile.WindowWait{Window: why}
			}
			t = end
			continue
		}
		if _, ok := activeWindow(allow, t); len(allow) > 0 && !ok {
			if why == "" {
				why = "outside " + describe(allow)
			}
			var next time.Time
			for _, w := range allow {
				// The first activation at or after t.
				if n := w.sched.Next(t.Add(-time.Nanosecond)); !n.IsZero() && (next.IsZero() || n.Before(next)) {
					next = n
				}
			}
			if next.IsZero() {
				return &reconcile.WindowWait{Window: why}
			}
			t = next
			continue
		}
		if t.Equal(now) {
			return nil
		}
		return &reconcile.WindowWait{Until: t, Window: why}
	}
	return &reconcile.WindowWait{Window: why}
}

func activeWindow(ws []window, t time.Time) (window, bool) {
	for _, w := range ws {
		if _, ok := w.activeAt(t); ok {
			return w, true
		}
	}
	return window{}, false
}

func describe(ws []window) string {
	parts := make([]string, len(ws))
	for i, w := range ws {
		parts[i] = w.desc
	}
	return strings.Join(parts, ", ")
}

// holdErrors checks control_socket and windows.
func (c *Config) holdErrors() []fieldError {
	var errs []fieldError
	if err := checkControlSocket(c.ControlSocket); err != nil {
		errs = append(errs, fieldError{"control_socket", err.Error()})
	}
	now := time.Now()
	for i, w := range c.Windows {
		_, werrs := parseWindow(w, now)
		for _, e := range werrs {
			errs = append(errs, fieldError{fmt.Sprintf("windows[%d].%s", i, e.field), e.msg})
		}
	}
	return errs
}

// planHolds is what holds each service for `jailkeeper plan`: the
// suspensions the daemon stored in the state dir and the config's
// windows, as the daemon sees them.
func planHolds(cfg *Config, d reconcile.Desired, obs reconcile.Observed, now time.Time) (map[string]reconcile.Hold, error) {
	sus, err := LoadSuspensions(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	ws, err := NewWindows(cfg.Windows, now)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrConfig, cfg.File, err)
	}
	return reconcile.Holds(holdFunc(sus, ws), d, obs, now), nil
}
