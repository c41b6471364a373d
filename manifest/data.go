package manifest

import (
	"fmt"
	"path"
	"regexp"
	"strings"
)

// dataKeys are the keys of one data item, in the order messages list them.
var dataKeys = []string{"name", "path", "quota"}

// dataNameRE is the rule for data names: the service name rule, since a
// name becomes a ZFS dataset name component and, upper-cased, the
// DATA_<NAME> variable of the process runtime.
var dataNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)

// dataPathRE limits data paths to characters that need no quoting in the
// jail.conf mount line (an fstab(5) line, where a space separates fields).
var dataPathRE = regexp.MustCompile(`^[A-Za-z0-9._/-]+$`)

// systemDirs are the directories of a release that its base system, its
// rc.d script, its log and its env need (as the runtimes lay it out).
// A data path may not be one of them, below one, or above one: mounting
// data there would hide what the release runs on, or share between
// releases what belongs to one. /tmp and /var/tmp are scratch, never
// persistent.
var systemDirs = []string{
	"/bin", "/boot", "/dev", "/etc", "/lib", "/libexec", "/proc", "/rescue", "/sbin", "/tmp",
	"/usr/bin", "/usr/lib", "/usr/lib32", "/usr/libdata", "/usr/libexec", "/usr/sbin", "/usr/share",
	"/usr/local/bin", "/usr/local/etc", "/usr/local/lib", "/usr/local/libexec", "/usr/local/sbin",
	"/var/empty", "/var/log", "/var/run", "/var/tmp",
}

// decodeData reads the data key: a list of {name, path, quota}. An empty
// list is the same as none.
func (d *decoder) decodeData(c *capture) []Data {
	if c == nil {
		return nil
	}
	items, ok := d.nodeList("data", c.n, "[{name: uploads, path: /var/db/app, quota: 10G}]")
	if !ok || len(items) == 0 {
		return nil
	}
	out := make([]Data, len(items)) // one per item, so data[i] names it
	for i, n := range items {
		f := item("data", i)
		m, _ := d.fields(f, n, dataKeys)
		if v, ok := m["name"]; ok {
			out[i].Name, _ = d.nodeStr(f+".name", v)
		}
		if v, ok := m["path"]; ok {
			out[i].Path, _ = d.nodeStr(f+".path", v)
		}
		if v, ok := m["quota"]; ok {
			if q, ok := d.nodeSize(f+".quota", v); ok {
				if q == 0 {
					d.errorAtNode(v, f+".quota", "must not be 0; leave quota out for none")
				}
				out[i].Quota = q
			}
		}
	}
	return out
}

// checkData checks the data list of s: names and paths, each unique, no
// path inside another, none hiding the command or the migration.
func checkData(s *Service, report reporter) {
	if len(s.Data) > MaxData {
		report("data", "lists %d data sets, more than %d", len(s.Data), MaxData)
		return
	}
	names := map[string]int{}
	paths := map[int]string{} // index -> good path
	for i, dt := range s.Data {
		f := item("data", i)
		switch {
		case dt.Name == "":
			report(f+".name", "is required: the data set's name, such as uploads")
		case !dataNameRE.MatchString(dt.Name):
			report(f+".name", "must be a lowercase letter followed by up to 31 lowercase letters, digits or _ (%s), got %q", dataNameRE, dt.Name)
		default:
			if j, dup := names[dt.Name]; dup {
				report(f+".name", "%q is listed twice (also data[%d])", dt.Name, j)
			} else {
				names[dt.Name] = i
			}
		}
		if msg := DataPathProblem(dt.Path); msg != "" {
			report(f+".path", "%s", msg)
		} else {
			paths[i] = dt.Path
		}
		if dt.Quota < 0 || (dt.Quota > 0 && dt.Quota < MinSize) {
			report(f+".quota", "must be at least %s, got %d bytes", FormatSize(MinSize), dt.Quota)
		}
	}
	for i := range s.Data {
		p, ok := paths[i]
		if !ok {
			continue
		}
		for j := range i {
			q, ok := paths[j]
			switch {
			case !ok:
			case p == q:
				report(item("data", i)+".path", "%q is listed twice (also data[%d])", p, j)
			case within(p, q) || within(q, p):
				report(item("data", i)+".path", "%q and data[%d].path %q are nested; data sets are mounted side by side", p, j, q)
			}
		}
		for _, argv := range []struct {
			field string
			list  []string
		}{{"command[0]", s.Command}, {"migrate[0]", s.Migrate}} {
			if len(argv.list) > 0 && within(argv.list[0], p) {
				report(item("data", i)+".path", "%q would hide %s, %s, under the data", p, argv.field, argv.list[0])
			}
		}
	}
	for i, dt := range s.Data {
		if !dataNameRE.MatchString(dt.Name) {
			continue
		}
		if k := DataEnv(dt.Name); hasKey(s.Env, k) {
			report("env."+k, "is set by jailkeeper (the path of data[%d], %s); remove it", i, dt.Name)
		}
	}
}

func hasKey(m map[string]string, k string) bool {
	_, ok := m[k]
	return ok
}

// DataEnv is the variable that gives the app the path of the data set
// named name in the process runtime: DATA_<NAME>.
func DataEnv(name string) string { return "DATA_" + strings.ToUpper(name) }

// DataPathProblem says what is wrong with p as the mount point of a data
// set inside a release, or "" when nothing is: p is a clean absolute path
// of letters, digits, . _ - and /, at most MaxDataPath bytes, and neither
// equal to, below nor above a directory the release needs (systemDirs:
// /etc, /usr/bin, /usr/local/etc, /var/run, /var/log, /tmp, ...). /var/db/app,
// /usr/local/www/app/uploads and /srv/app are fine.
func DataPathProblem(p string) string {
	switch {
	case p == "":
		return "is required: where the data is mounted inside the release, such as /var/db/app"
	case len(p) > MaxDataPath:
		return fmt.Sprintf("must be at most %d bytes, got %d", MaxDataPath, len(p))
	case !dataPathRE.MatchString(p):
		return fmt.Sprintf("must be an absolute path of letters, digits, . _ - and /, got %q", truncate(p))
	case !path.IsAbs(p) || path.Clean(p) != p:
		return fmt.Sprintf("must be a clean absolute path such as /var/db/app, got %q", p)
	case p == "/":
		return "must not be /: the data would hide the whole release"
	}
	for _, sys := range systemDirs {
		switch {
		case within(p, sys):
			return fmt.Sprintf("%q is in %s, which the release needs; use a directory of the app's own, such as /var/db/<service>", p, sys)
		case within(sys, p):
			return fmt.Sprintf("%q would hide %s, which the release needs; use a directory of the app's own, such as /var/db/<service>", p, sys)
		}
	}
	return ""
}

// within reports whether path p is dir or below it (both clean).
func within(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+"/")
}
