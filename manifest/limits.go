package manifest

import "gopkg.in/yaml.v3"

// limitKeys are the keys of limits, in the order messages list them.
var limitKeys = []string{"memory", "pcpu", "maxproc", "openfiles", "disk"}

// decodeLimits reads the limits key. `limits: {}` is the same as none.
func (d *decoder) decodeLimits(c *capture) Limits {
	var l Limits
	if c == nil {
		return l
	}
	m, _ := d.fields("limits", c.n, limitKeys)
	size := func(key string, dst *int64) {
		if v, ok := m[key]; ok {
			if n, ok := d.nodeSize("limits."+key, v); ok {
				d.notZero("limits."+key, v, n)
				*dst = n
			}
		}
	}
	count := func(key string, dst *int) {
		if v, ok := m[key]; ok {
			if n, ok := d.nodeInt("limits."+key, v); ok {
				d.notZero("limits."+key, v, int64(n))
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

// checkLimits checks the units and bounds of each limit that is set.
func checkLimits(l Limits, report reporter) {
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
	checkSize("limits.memory", l.Memory)
	checkCount("limits.pcpu", l.PCPU, MaxPCPU, "percent of one CPU core (200 is two cores)")
	checkCount("limits.maxproc", l.MaxProc, MaxMaxProc, "processes")
	checkCount("limits.openfiles", l.OpenFiles, MaxOpenFiles, "open files")
	checkSize("limits.disk", l.Disk)
}
