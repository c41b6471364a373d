package manifest

import "gopkg.in/yaml.v3"

// limitKeys are the keys of limits, in the order messages list them.
var limitKeys = []string{"memory", "pcpu", "maxproc", "openfiles", "disk"}

// DecodeLimits decodes and checks a mapping of limits written as a
// manifest's limits key is, such as the agent config's defaults.limits, so
// that both take the same units and bounds. file and field (the mapping's
// dotted path, such as "defaults.limits") name the problems, which come
// back as Errors (errors.Is ErrInvalid) with lines.
func DecodeLimits(file, field string, n *yaml.Node) (Limits, error) {
	d := &decoder{file: file, lines: map[string]int{}, bad: map[string]bool{}}
	d.lines[field] = n.Line
	d.index(field, n)
	l := d.decodeLimits(field, &capture{n})
	checkLimits(field, l, func(f, format string, args ...any) {
		if !d.isBad(f) {
			d.errorf(f, format, args...)
		}
	})
	if err := asError(d.errs); err != nil {
		return Limits{}, err
	}
	return l, nil
}

// decodeLimits reads the limits mapping at field. `limits: {}` is the same
// as none.
func (d *decoder) decodeLimits(field string, c *capture) Limits {
	var l Limits
	if c == nil {
		return l
	}
	m, _ := d.fields(field, c.n, limitKeys)
	size := func(key string, dst *int64) {
		if v, ok := m[key]; ok {
			if n, ok := d.nodeSize(join(field, key), v); ok {
				d.notZero(join(field, key), v, n)
				*dst = n
			}
		}
	}
	count := func(key string, dst *int) {
		if v, ok := m[key]; ok {
			if n, ok := d.nodeInt(join(field, key), v); ok {
				d.notZero(join(field, key), v, int64(n))
				*dst = n
			}
		}
	}
	size("memory", &l.Memory)
	count("pcpu", &l.PCPU)
	count("maxproc", &l.MaxProc)
	count("openfiles", &l.OpenFiles)
	size("disk", &l.Disk)
	return l
}

// notZero reports a limit written as 0: the zero value means "no limit",
// which is written by leaving the key out.
func (d *decoder) notZero(field string, n *yaml.Node, v int64) {
	if v == 0 {
		d.errorAtNode(n, field, "must not be 0; leave it out for no limit")
	}
}

// checkLimits checks the bounds of each limit that is set; field is where
// the limits are ("limits" in a manifest).
func checkLimits(field string, l Limits, report reporter) {
	checkSize := func(field string, v int64) {
		if v != 0 && v < MinSize {
			report(field, "must be at least %s, got %d bytes; write a unit, such as 512M", FormatSize(MinSize), v)
		}
	}
	checkCount := func(field string, v, hi int, unit string) {
		if v < 0 || v > hi {
			report(field, "must be between 1 and %d %s, got %d", hi, unit, v)
		}
	}
	checkSize(join(field, "memory"), l.Memory)
	checkCount(join(field, "pcpu"), l.PCPU, MaxPCPU, "percent of one CPU core (200 is two cores)")
	checkCount(join(field, "maxproc"), l.MaxProc, MaxMaxProc, "processes")
	checkCount(join(field, "openfiles"), l.OpenFiles, MaxOpenFiles, "open files")
	checkSize(join(field, "disk"), l.Disk)
}
