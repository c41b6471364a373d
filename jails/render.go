package jails

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/jailkeeper/jailkeeper/internal/command"
	"github.com/jailkeeper/jailkeeper/release"
)

// Paths inside a FreeBSD release's jail. The rc.d script, its environment,
// log, pidfiles and newsyslog entry are named after the rc name (see
// rcName).
const (
	jailRCDir        = "/usr/local/etc/rc.d"
	jailEnvDir       = "/usr/local/etc/jailkeeper"
	jailNewsyslogDir = "/usr/local/etc/newsyslog.conf.d" // newsyslog.conf's second <include>
	jailRCConfD      = "/etc/rc.conf.d"                  // load_rc_config NAME reads rc.conf.d/NAME
	jailPasswd       = "/etc/passwd"
)

// jailConf is what a release's jail.conf(5) file says.
type jailConf struct {
	Name        string
	Service     string
	Path        string // the jail's root on the host
	Interface   string
	IP          netip.Addr
	ConsoleLog  string
	ExecTimeout time.Duration
	StopTimeout time.Duration
	Allow       []string // without "allow."
	Mounts      []nullfsMount
}

// hostname is the release name with '_' turned into '-': underscores are
// not valid in host names (RFC 952) and some programs refuse them.
func jailHostname(release string) string { return strings.ReplaceAll(release, "_", "-") }

// render writes the jail definition. Every value is a double-quoted
// jail.conf string, in which jail(8) expands $variables and backslash
// escapes (jail.conf(5), "String format", "Variables"): jailConfQuote escapes
// them. exec.start/exec.stop are the base system's rc scripts, as in
// jail.conf(5)'s example; ip4.addr "IF|ADDR/32" makes jail(8) add the alias
// on start and remove it on stop (usr.sbin/jail/command.c). Only the
// allow.* parameters the manifest asks for are granted: the ones the kernel
// grants by default are turned off explicitly (see jailDefaultAllow).
func (c jailConf) render() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Release %s of service %s, written by jailkeeper.\n", c.Name, c.Service)
	b.WriteString("# Do not edit: jailkeeper replaces or removes this file.\n")
	fmt.Fprintf(&b, "%s {\n", c.Name)
	param := func(k, v string) { fmt.Fprintf(&b, "\t%s = %s;\n", k, jailConfQuote(v)) }
	flag := func(k string) { fmt.Fprintf(&b, "\t%s;\n", k) }
	param("path", c.Path)
	param("host.hostname", jailHostname(c.Name))
	param("interface", c.Interface)
	param("ip4.addr", c.Interface+"|"+c.IP.String()+"/32")
	param("exec.start", "/bin/sh /etc/rc")
	param("exec.stop", "/bin/sh /etc/rc.shutdown jail")
	param("exec.consolelog", c.ConsoleLog)
	flag("exec.clean")
	flag("mount.devfs")
	// Persistent data: jail.conf(5) appends to a list parameter with +=,
	// and jail(8) mounts each `mount` line, an fstab(5) line, before the
	// jail is created and unmounts it after the jail is removed.
	for _, m := range c.Mounts {
		fmt.Fprintf(&b, "\tmount += %s;\n", jailConfQuote(m.fstab()))
	}
	param("exec.timeout", fmt.Sprint(int(c.ExecTimeout.Round(time.Second)/time.Second)))
	param("stop.timeout", fmt.Sprint(int(c.StopTimeout.Round(time.Second)/time.Second)))
	allow := slices.Clone(c.Allow)
	for _, d := range jailDefaultAllow {
		if !slices.Contains(c.Allow, d) {
			allow = append(allow, "no"+d)
		}
	}
	slices.Sort(allow)
	for _, a := range slices.Compact(allow) {
		flag("allow." + a)
	}
	b.WriteString("}\n")
	return b.Bytes()
}

// jailDefaultAllow are the allow.* permissions a new jail has unless its
// parameters turn them off: sys/kern/kern_jail.c creates a jail with
// pr_allow = JAIL_DEFAULT_ALLOW & parent's, and JAIL_DEFAULT_ALLOW is
// PR_ALLOW_SET_HOSTNAME | PR_ALLOW_RESERVED_PORTS | PR_ALLOW_UNPRIV_DEBUG |
// PR_ALLOW_SUSER. jail(8) only says that set_hostname and reserved_ports
// default to on. A release gets allow.no<name> for each of these unless the
// manifest asks for it (the names are kern_jail.c's pr_flag_allow table:
// "allow.noset_hostname", "allow.noreserved_ports",
// "allow.nounprivileged_proc_debug"; jail(8): a boolean parameter is set
// "by the name alone with or without a no prefix").
//
// allow.suser stays on, on purpose: it is the jail's
// security.bsd.suser_enabled (jail(8)), and without it the jail's root has
// no privilege, so /etc/rc could not start anything and daemon(8) -u could
// not drop to the app's user (daemon.c's restrict_process calls
// setusercontext(3), which needs root to change uid and groups). The app
// itself never runs as root.
var jailDefaultAllow = []string{"set_hostname", "reserved_ports", "unprivileged_proc_debug"}

// jailConfQuote makes s a double-quoted jail.conf string that jail(8) reads
// back as s.
func jailConfQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `\$`, "\n", `\n`, "\t", `\t`)
	return `"` + r.Replace(s) + `"`
}

// rcScript is the rc.d(8) script that runs a release's app in its jail.
type rcScript struct {
	RCName  string // rc.d name: PROVIDE, rcvar prefix, file names
	Service string
	Release string
	User    string
	Command []string // as the jail sees it
}

func (s rcScript) pidfile() string      { return "/var/run/" + s.RCName + ".pid" }
func (s rcScript) childPidfile() string { return "/var/run/" + s.RCName + "_child.pid" }
func (s rcScript) logfile() string      { return "/var/log/" + s.RCName + ".log" }
func (s rcScript) envFile() string      { return jailEnvDir + "/" + s.RCName + ".env" }
func (s rcScript) path() string         { return jailRCDir + "/" + s.RCName }
func (s rcScript) rcConfPath() string   { return jailRCConfD + "/" + s.RCName }
func (s rcScript) newsyslogPath() string {
	return jailNewsyslogDir + "/" + s.RCName + ".conf"
}

// envLoader is the script daemon(8)'s child runs as the app's user, after
// -u dropped root, with the env file as $0 and the app's argv as "$@":
// every assignment of the file is exported (set -a), then the shell
// replaces itself with the app, so the app keeps the child's pid (-p). The
// environment, secrets and all, is never read by a root shell: rc.subr
// evaluates "$command $rc_flags $command_args" as root (its _run_rc_doit),
// and a file sourced there could set rc_flags, PATH or any other variable
// of that shell. sh(1): "sh -c string [name [argument ...]]" sets $0 to
// name and the positional parameters to the arguments; "." reads the file
// in the current shell, and a non-interactive shell exits when it cannot.
const envLoader = `set -a; . "$0"; set +a; exec "$@"`

// daemonArgv is the daemon(8) command line (man page of 14.x, and
// usr.sbin/daemon/daemon.c): -f detaches stdin/stdout/stderr (output then
// goes to -o only); -r restarts the app one second after it exits; -P is the
// supervisor's pidfile, the process rc.subr stops (SIGTERM, which daemon
// forwards to the app) and newsyslog signals; -p the app's own pidfile;
// -u drops privileges in the child only (restrict_process: setusercontext
// with LOGIN_SETALL, so the child has the user's uid, primary group from
// the jail's passwd and its other groups), and the supervisor (root) can
// reopen the log; -H reopens the -o file on SIGHUP; -t titles the
// supervisor "daemon: NAME[pid]", which rc.subr's check_pidfile matches
// against command=/usr/sbin/daemon. The child's command follows, daemon's
// getopt string starting with '+' so that its options stop there:
// /bin/sh running envLoader, which reads the env file as the app's user
// and execs the app's command.
func (s rcScript) daemonArgv() []string {
	return append([]string{
		"-f", "-r",
		"-P", s.pidfile(),
		"-p", s.childPidfile(),
		"-u", s.User,
		"-H", "-o", s.logfile(),
		"-t", s.RCName,
		"/bin/sh", "-c", envLoader, s.envFile(),
	}, s.Command...)
}

// render writes the script. rc.subr's run_rc_command builds
// `_doit="... $command $rc_flags $command_args"` and runs it with
// `eval "$@"` (_run_rc_doit in libexec/rc/rc.subr), so command_args holds
// each word quoted for evaluation (command.ShellQuote), and the whole is
// quoted once more for the assignment. A word ShellQuote refuses (a
// newline) is an error.
func (s rcScript) render() ([]byte, error) {
	args, err := command.ShellQuote(s.daemonArgv())
	if err != nil {
		return nil, fmt.Errorf("rc.d script: command: %w", err)
	}
	args, _ = command.ShellQuote([]string{args}) // no newline left to refuse
	var b bytes.Buffer
	n := s.RCName
	fmt.Fprintf(&b, `#!/bin/sh
#
# PROVIDE: %[1]s
# REQUIRE: LOGIN NETWORKING
# KEYWORD: shutdown
#
# Service %[2]s, release %[3]s.
# Written by jailkeeper before the jail first started; a new release gets a
# new jail, so do not edit this one.
#
# daemon(8) supervises the app: -P is daemon's own pidfile, which rc.subr
# stops and newsyslog signals, -p the app's; -r restarts the app when it
# exits; -u drops privileges for the app only; -o appends its output to the
# log and -H reopens the log on SIGHUP, after newsyslog rotated it.
#
# The app's environment, secrets included, is in
# %[6]s (owner root, group of %[8]s, mode 0640).
# Only daemon's child reads it, as %[8]s after -u dropped root: /bin/sh
# exports every assignment in it and execs the app. No root shell here
# reads it.

. /etc/rc.subr

name=%[1]s
rcvar=%[1]s_enable
desc="jailkeeper service %[2]s"

load_rc_config $name

: ${%[1]s_enable:=NO}

pidfile=%[4]s
command=/usr/sbin/daemon
# daemon's arguments; command_args holds them quoted for rc.subr's eval:
#   %[7]s
command_args=%[5]s

run_rc_command "$1"
`, n, s.Service, s.Release, command.QuoteWord(s.pidfile()),
		args, s.envFile(), command.Quote(s.daemonArgv()), s.User)
	return b.Bytes(), nil
}

// newsyslogLine is the newsyslog.conf(5) entry for the app's log: kept 7
// days, rotated daily at midnight, bzip2'd (J), and on rotation SIGHUP goes
// to the pid in daemon's -P pidfile (the default signal), so daemon -H
// reopens the file. root owns it: the supervisor, which writes it, stays
// root. Field layout as in FreeBSD's own /etc/newsyslog.conf.
func (s rcScript) newsyslogLine() []byte {
	return fmt.Appendf(nil,
		"# logfilename\t\t[owner:group]\tmode\tcount\tsize\twhen\tflags\t[/pid_file] [sig_num]\n"+
			"%s\troot:wheel\t600\t7\t*\t@T00\tJ\t%s\n", s.logfile(), s.pidfile())
}

// rcConf is the service's rc.conf(5) file, /etc/rc.conf.d/<rcname>:
// rc.subr's load_rc_config sources /etc/rc.conf.d/$name (and then
// /usr/local/etc/rc.conf.d/$name) after /etc/rc.conf, so this enables the
// service even over an rc.conf from the artifact. The text is fixed: the
// variable name is the rc name (a service name, which ValidName limits to
// [a-z0-9_]), the value a constant.
func (s rcScript) rcConf() []byte {
	return fmt.Appendf(nil, "# Release %s of service %s, written by jailkeeper.\n%s_enable=\"YES\"\n",
		s.Release, s.Service, s.RCName)
}

// syslogdRCConf is /etc/rc.conf.d/syslogd: syslogd without network
// sockets (-ss, syslogd(8)), as a jail that only logs locally wants.
func syslogdRCConf() []byte {
	return []byte("# Written by jailkeeper: the jail logs locally only.\nsyslogd_flags=\"-ss\"\n")
}

// sendmailRCConf is /etc/rc.conf.d/sendmail: no sendmail in the jail.
// defaults/rc.conf starts a localhost-only submission daemon
// (sendmail_submit_enable="YES") in every jail, which no release uses;
// its "localhost" is the jail's own address there (prison_local_ip4 in
// sys/netinet/in_jail.c rewrites 127.0.0.1), so at best it listens on the
// release's address. rc.d/sendmail runs load_rc_config sendmail, which
// sources this file after /etc/rc.conf (libexec/rc/rc.subr), and turns
// sendmail_enable="NONE" into NO for sendmail_enable,
// sendmail_submit_enable, sendmail_outbound_enable and
// sendmail_msp_queue_enable (libexec/rc/rc.d/sendmail).
func sendmailRCConf() []byte {
	return []byte("# Written by jailkeeper: the release runs no mail daemon.\nsendmail_enable=\"NONE\"\n")
}

// renderJailEnv writes env as sh(1) assignments, one per line, sorted by key,
// each value single-quoted so that sourcing the file never runs anything.
// The rc.d script's envLoader sources it as the app's user.
func renderJailEnv(service, user string, env map[string]string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Environment of service %s, secrets included. Written by jailkeeper;\n", service)
	fmt.Fprintf(&b, "# owned by root, readable by the group of %s; read as %s just before the app starts.\n", user, user)
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "%s='%s'\n", k, strings.ReplaceAll(env[k], "'", `'\''`))
	}
	return b.Bytes()
}

// readJailEnvFile reads a secrets file in the format the process runtime
// reads too (release.ParseEnvFile: KEY=VALUE lines, values literal). Errors
// name the line, never a value.
func readJailEnvFile(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	kvs, err := release.ParseEnvFile(b)
	if err != nil {
		return nil, fmt.Errorf("env file %s: %w", path, err)
	}
	env := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return env, nil
}
