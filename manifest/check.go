package manifest

import (
	"fmt"
	"io/fs"
	"net/url"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/jailkeeper/jailkeeper/release"
)

var (
	shaRE     = regexp.MustCompile(`^(?:[0-9a-f]{40}|[0-9a-f]{64})$`)
	sha256RE  = regexp.MustCompile(`^[0-9a-f]{64}$`)
	envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	userRE    = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
)

// reservedEnv are set by jailkeeper for every release.
var reservedEnv = map[string]string{
	"PORT": "the manifest's port",
	"HOST": "the release's address",
	"ADDR": "address:port the app must listen on",
}

// reporter receives one problem with a field.
type reporter func(field, format string, args ...any)

// Validate checks a Service as Decode would after defaults: it is what a
// Service built in code must pass. It reports every problem as Errors
// without lines (errors.Is ErrInvalid). It does not check the file name or
// other services; Load does. Hosts that is empty but not nil is an error
// (nil means every host).
func (s *Service) Validate() error {
	var errs Errors
	check(s, func(field, format string, args ...any) {
		errs = append(errs, &Error{File: s.File, Field: field, Msg: fmt.Sprintf(format, args...)})
	})
	return asError(errs)
}

// check runs the semantic rules on a decoded Service with defaults applied.
func check(s *Service, report reporter) {
	switch {
	case s.Service == "":
		report("service", "is required: the service name, equal to the file name")
	case release.ValidService(s.Service) != nil:
		report("service", "must be a lowercase letter followed by up to 31 lowercase letters, digits or _ (%s), got %q", release.ServicePattern, s.Service)
	}
	switch {
	case s.SHA == "":
		report("sha", "is required: the app's commit, 40 or 64 hex digits")
	case !shaRE.MatchString(s.SHA):
		report("sha", "must be a full commit id of 40 or 64 lowercase hex digits, got %q", s.SHA)
	}
	checkURL(s.Artifact.URL, report)
	switch {
	case s.Artifact.SHA256 == "":
		report("artifact.sha256", "is required: the artifact's sha256 checksum, 64 hex digits")
	case !sha256RE.MatchString(s.Artifact.SHA256):
		report("artifact.sha256", "must be 64 lowercase hex digits (sha256sum of the artifact), got %q", s.Artifact.SHA256)
	}
	checkHostnames(s.Hostnames, report)
	switch {
	case s.Port == 0:
		report("port", "is required: the TCP port the app listens on inside its release (1-65535)")
	case s.Port < 1 || s.Port > 65535:
		report("port", "must be between 1 and 65535, got %d", s.Port)
	case s.Port < MinPort:
		// The app runs as a user other than root, in a jail without
		// allow.reserved_ports: it could never bind the port.
		report("port", "must be at least %d: an app that does not run as root cannot bind a privileged port; Caddy serves 80 and 443, got %d", MinPort, s.Port)
	}
	checkCommand(s.Command, report)
	checkEnv(s.Env, report)
	if s.EnvFile != "" && (!fs.ValidPath(s.EnvFile) || s.EnvFile == "." || strings.Contains(s.EnvFile, `\`)) {
		report("env_file", "must be a relative path inside the agent's secrets directory (<config dir>/secrets/), without .. or a leading /, got %q", s.EnvFile)
	}
	if !userRE.MatchString(s.User) {
		report("user", "must be a user name of up to 32 lowercase letters, digits, _ or - (%s), got %q", userRE, s.User)
	}
	checkHealth(s.Health, report)
	checkDuration("drain", s.Drain, 0, MaxDrain, report)
	if s.Retain < 0 || s.Retain > MaxRetain {
		report("retain", "must be between 0 and %d, got %d", MaxRetain, s.Retain)
	}
	checkHosts(s.Hosts, report)
	if s.Template != "" && release.ValidTemplate(s.Template) != nil {
		report("template", "must be a template name such as 14.3-RELEASE (letters, digits, . _ -, up to 64), optionally followed by @SNAPSHOT, got %q", s.Template)
	}
	checkAllow(s.Allow, report)
	checkData(s, report)
	checkLimits("limits", s.Limits, report)
	checkRollout(s, report)
}

func checkURL(raw string, report reporter) {
	const f = "artifact.url"
	if raw == "" {
		report(f, "is required: where the agent downloads the artifact (https, http or file URL)")
		return
	}
	u, err := url.Parse(raw)
	if err != nil {
		report(f, "is not a valid URL: %v", unwrapURLError(err))
		return
	}
	switch u.Scheme {
	case "https", "http":
		if u.Host == "" {
			report(f, "must name a host, got %q", raw)
			return
		}
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			report(f, "a file URL takes an absolute path and no host (file:///path/to/artifact), got %q", raw)
			return
		}
		if u.Path == "" || !path.IsAbs(u.Path) || strings.HasSuffix(u.Path, "/") {
			report(f, "a file URL must name a file by absolute path (file:///path/to/artifact), got %q", raw)
			return
		}
	case "":
		report(f, "must be an absolute URL with scheme https, http or file, got %q", raw)
		return
	default:
		report(f, "scheme must be https, http or file, got %q", u.Scheme)
		return
	}
	if u.User != nil {
		report(f, "must not contain credentials (user:password@); the deploy repo is no place for secrets")
		return
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		report(f, "must not contain a #fragment, got %q", raw)
	}
}

func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

func checkHostnames(hosts []string, report reporter) {
	if len(hosts) == 0 {
		report("hostnames", "at least one hostname is required: the names Caddy routes to this service")
		return
	}
	first := map[string]int{}
	for i, h := range hosts {
		f := fmt.Sprintf("hostnames[%d]", i)
		if msg := hostnameProblem(h); msg != "" {
			report(f, "%s", msg)
			continue
		}
		if j, dup := first[h]; dup {
			report(f, "%q is listed twice (also hostnames[%d])", h, j)
			continue
		}
		first[h] = i
	}
}

// hostnameProblem says what is wrong with a hostname Caddy is to route, or
// "" when it is an exact lowercase DNS name (release.ValidHostname: no
// wildcards, no placeholders).
func hostnameProblem(h string) string {
	if err := release.ValidHostname(h); err != nil {
		if len(h) > 64 {
			h = h[:64] + "..."
		}
		return fmt.Sprintf("%v, got %q", err, h)
	}
	return ""
}

func checkCommand(cmd []string, report reporter) {
	checkArgv("command", cmd, "must not be empty; leave command out for /usr/local/bin/<service>", report)
}

func checkEnv(env map[string]string, report reporter) {
	for k, v := range env {
		f := "env." + k
		if !envNameRE.MatchString(k) {
			report(f, "must be a variable name: letters, digits and _, not starting with a digit")
			continue
		}
		if what, ok := reservedEnv[k]; ok {
			report(f, "is set by jailkeeper (%s); remove it", what)
			continue
		}
		if strings.HasPrefix(k, "LD_") {
			// Dynamic-loader variables reach whatever the service runs
			// under (daemon(8) in a jail) before the app itself.
			report(f, "LD_* variables are not allowed: they change how every program in the release is loaded")
			continue
		}
		if strings.ContainsAny(v, "\x00\n\r") {
			report(f, "must be a single line without NUL; put multi-line values in env_file")
		}
	}
}

func checkHealth(h Health, report reporter) {
	switch {
	case h.Path == "":
		report("health.path", "must not be empty; leave it out for %s", DefaultHealthPath)
	case !strings.HasPrefix(h.Path, "/"):
		report("health.path", "must start with /, got %q", h.Path)
	case strings.ContainsAny(h.Path, " #\x00\r\n\t"):
		report("health.path", "must be a URL path (and query) without spaces or #, got %q", h.Path)
	default:
		if _, err := url.ParseRequestURI(h.Path); err != nil {
			report("health.path", "must be a URL path (and query), got %q: %v", h.Path, unwrapURLError(err))
		}
	}
	okInterval := checkDuration("health.interval", h.Interval, MinHealthInterval, MaxHealthInterval, report)
	okTimeout := checkDuration("health.timeout", h.Timeout, MinHealthTimeout, MaxHealthTimeout, report)
	okThreshold := true
	if h.Threshold < 1 || h.Threshold > MaxHealthThreshold {
		report("health.threshold", "must be between 1 and %d consecutive successes, got %d", MaxHealthThreshold, h.Threshold)
		okThreshold = false
	}
	if !checkDuration("health.deadline", h.Deadline, MinHealthInterval, MaxHealthDeadline, report) {
		return
	}
	if okTimeout && h.Timeout >= h.Deadline {
		report("health.timeout", "must be shorter than health.deadline (%s), got %s", h.Deadline, h.Timeout)
	}
	if okInterval && okThreshold {
		if need := time.Duration(h.Threshold-1) * h.Interval; need >= h.Deadline {
			report("health.deadline", "is too short for %d probes %s apart: must be longer than %s, got %s",
				h.Threshold, h.Interval, need, h.Deadline)
		}
	}
	checkDuration("health.watch", h.Watch, 0, MaxHealthWatch, report)
}

// checkDuration reports d outside [lo, hi] and returns whether it is inside.
func checkDuration(field string, d, lo, hi time.Duration, report reporter) bool {
	switch {
	case d < 0:
		report(field, "must not be negative, got %s", d)
	case d < lo:
		report(field, "must be at least %s, got %s", lo, d)
	case d > hi:
		report(field, "must be at most %s, got %s", hi, d)
	default:
		return true
	}
	return false
}

func checkHosts(hosts []string, report reporter) {
	if hosts == nil {
		return
	}
	if len(hosts) == 0 {
		report("hosts", "must name at least one agent host; leave hosts out to deploy on every host")
		return
	}
	first := map[string]int{}
	for i, h := range hosts {
		f := fmt.Sprintf("hosts[%d]", i)
		l := strings.ToLower(h)
		if msg := hostnameProblem(l); msg != "" {
			report(f, "must be an agent's host name (its host: setting, by default its hostname), got %q", h)
			continue
		}
		if j, dup := first[l]; dup {
			report(f, "%q is listed twice (also hosts[%d])", h, j)
			continue
		}
		first[l] = i
	}
}

func checkAllow(allow []string, report reporter) {
	first := map[string]int{}
	for i, a := range allow {
		f := fmt.Sprintf("allow[%d]", i)
		switch name, cut := strings.CutPrefix(a, "allow."); {
		case cut && knownAllow(name):
			report(f, "write %q without the allow. prefix", name)
			continue
		case !knownAllow(a):
			if s := suggest(a, allowParams); s != "" {
				report(f, "%q is not a jail(8) allow.* permission; did you mean %q?", a, s)
			} else {
				report(f, "%q is not a jail(8) allow.* permission; known: %s", a, strings.Join(allowParams, ", "))
			}
			continue
		}
		if j, dup := first[a]; dup {
			report(f, "%q is listed twice (also allow[%d])", a, j)
			continue
		}
		first[a] = i
	}
}

// isControl reports whether r is an ASCII control character (C0 or DEL)
// or a C1 control.
func isControl(r rune) bool { return r < 0x20 || (r >= 0x7f && r < 0xa0) }
