package manifest

import (
	"path"
	"regexp"
	"strings"
	"time"
)

// canaryKeys are the keys of canary, in the order messages list them.
var canaryKeys = []string{"steps", "interval", "max_failures"}

// snapshotRE is the rule for a pinned template snapshot: what `template
// create` and `template update` name them (base, base-20261129-150405)
// and what else OpenZFS accepts in a snapshot name component (letters,
// digits, . _ : -; module/zcommon/zfs_namecheck.c), less the space.
var snapshotRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$`)

// convertRollout reads the keys that say how a release runs beyond its
// command (data, limits, migrate) and how it is rolled out (standby,
// canary), and splits a template pin. It runs after convert has filled
// in the rest of s.
func (d *decoder) convertRollout(raw *rawManifest, s *Service) {
	s.Data = d.decodeData(raw.Data)
	s.Limits = d.decodeLimits("limits", raw.Limits)
	if v, ok := d.duration("standby", raw.Standby); ok {
		s.Standby = &v
	}
	if raw.Canary != nil {
		s.Canary = d.decodeCanary(raw.Canary)
	}
	if m, ok := d.strList("migrate", raw.Migrate); ok {
		if len(m) == 0 {
			d.errorf("migrate", "must not be empty; leave migrate out when there is no migration")
		}
		s.Migrate = m
	}
	if raw.Migrate != nil {
		s.MigrateTimeout = DefaultMigrateTimeout
	}
	if v, ok := d.duration("migrate_timeout", raw.MigrateTimeout); ok {
		if raw.Migrate == nil {
			d.errorf("migrate_timeout", "bounds the migrate command, and there is none; remove it or add migrate")
		}
		s.MigrateTimeout = v
	}
	if name, snap, pinned := strings.Cut(s.Template, "@"); pinned && !d.isBad("template") {
		if snap == "" {
			d.errorf("template", "must name a snapshot after @ (NAME@SNAPSHOT), or leave out the @ for the newest, got %q", s.Template)
		}
		s.Template, s.TemplateSnapshot = name, snap
	}
}

// decodeCanary reads the canary key; missing fields take their defaults.
func (d *decoder) decodeCanary(c *capture) *Canary {
	cn := &Canary{Interval: DefaultCanaryInterval, MaxFailures: DefaultCanaryMaxFailures}
	m, _ := d.fields("canary", c.n, canaryKeys)
	if v, ok := m["steps"]; ok {
		if items, ok := d.nodeList("canary.steps", v, "[10, 50]"); ok {
			cn.Steps = make([]int, len(items))
			for i, n := range items {
				cn.Steps[i], _ = d.nodeInt(item("canary.steps", i), n)
			}
		}
	}
	if v, ok := m["interval"]; ok {
		if dur, ok := d.nodeDuration("canary.interval", v); ok {
			cn.Interval = dur
		}
	}
	if v, ok := m["max_failures"]; ok {
		if n, ok := d.nodeInt("canary.max_failures", v); ok {
			cn.MaxFailures = n
		}
	}
	return cn
}

// checkRollout checks standby, canary, migrate and the template pin.
func checkRollout(s *Service, report reporter) {
	if s.Standby != nil {
		checkDuration("standby", *s.Standby, 0, MaxStandby, report)
	}
	if c := s.Canary; c != nil {
		checkCanary(c, report)
	}
	if s.Migrate != nil {
		checkArgv("migrate", s.Migrate, "must not be empty; leave migrate out when there is no migration", report)
		checkDuration("migrate_timeout", s.MigrateTimeout, MinMigrateTimeout, MaxMigrateTimeout, report)
	}
	if snap := s.TemplateSnapshot; snap != "" {
		switch {
		case s.Template == "":
			report("template", "pins snapshot %q but names no template (NAME@SNAPSHOT)", snap)
		case !snapshotRE.MatchString(snap):
			report("template", "the snapshot after @ must be letters, digits, . _ : - (up to 64, such as base or base-20261129-150405), got %q", snap)
		}
	}
}

func checkCanary(c *Canary, report reporter) {
	if len(c.Steps) == 0 {
		report("canary.steps", "is required: the percentages of requests the new release gets, step by step, such as [10, 50]")
	}
	prev := 0
	for i, st := range c.Steps {
		f := item("canary.steps", i)
		switch {
		case st < 1 || st > 99:
			report(f, "must be a percentage between 1 and 99 (after the last step the new release gets 100), got %d", st)
		case st <= prev:
			report(f, "must be larger than the step before it (%d): steps only increase, got %d", prev, st)
		}
		prev = max(prev, st)
	}
	checkDuration("canary.interval", c.Interval, MinCanaryInterval, MaxCanaryInterval, report)
	if c.MaxFailures < 1 || c.MaxFailures > MaxCanaryFailures {
		report("canary.max_failures", "must be between 1 and %d failures, got %d", MaxCanaryFailures, c.MaxFailures)
	}
}

// checkArgv checks a command line: not empty, no control characters, the
// program a clean absolute path inside the release.
func checkArgv(field string, argv []string, empty string, report reporter) {
	if len(argv) == 0 {
		report(field, "%s", empty)
		return
	}
	for i, arg := range argv {
		if strings.ContainsFunc(arg, isControl) {
			// A newline would end the argument in the rc.d script and
			// the jail conf the jail runtime writes: it refuses them at
			// create, long after CI. Refuse them here.
			report(item(field, i), "must not contain a control character (newline, tab, escape, NUL, ...)")
		}
	}
	if p := argv[0]; !isCleanAbs(p) {
		report(field+"[0]", "must be a clean absolute path inside the release, such as /usr/local/bin/app, got %q", p)
	}
}

func isCleanAbs(p string) bool { return path.IsAbs(p) && path.Clean(p) == p }

// TemplateRef is the template as a manifest writes it: NAME, or
// NAME@SNAPSHOT when a snapshot is pinned.
func (s *Service) TemplateRef() string {
	if s.TemplateSnapshot == "" {
		return s.Template
	}
	return s.Template + "@" + s.TemplateSnapshot
}

// StandbyOr returns the manifest's standby, or def (the agent's default)
// when the manifest does not set one.
func (s *Service) StandbyOr(def time.Duration) time.Duration {
	if s.Standby == nil {
		return def
	}
	return *s.Standby
}
