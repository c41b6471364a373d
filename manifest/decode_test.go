package manifest

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// base is a valid manifest with every required field and nothing else; the
// invalid cases below edit it, so its line numbers matter.
const base = `service: hello
sha: 4b825dc642cb6eb9a060e54bf8d69288fbee4904
artifact:
  url: https://ci.example.com/hello/4b825dc6/hello.tar.gz
  sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
hostnames: [hello.example.com, www.hello.example.com]
port: 8080
`

// full sets every field of the schema.
const full = `# every field of a v1 manifest
service: hello
sha: 4b825dc642cb6eb9a060e54bf8d69288fbee4904
artifact:
  url: file:///var/cache/artifacts/hello
  sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
hostnames:
  - hello.example.com
  - www.hello.example.com
port: 8080
command: [/usr/local/bin/hello, -v, ""]
env: {GREETING: hi, COUNT: 3, DEBUG: false}
env_file: hello/prod.env
user: hello_app
health: {path: "/up?full=1", interval: 100ms, timeout: 50ms, threshold: 5, deadline: 1m30s, watch: 0s}
drain: 0
retain: 0
hosts: [web1, web2.example.com]
template: 14.3-RELEASE
allow: [raw_sockets, mount.nullfs]
`

// with returns base with old replaced by new (old must occur in base).
func with(t *testing.T, old, new string) string {
	t.Helper()
	if !strings.Contains(base, old) {
		t.Fatalf("base does not contain %q", old)
	}
	return strings.Replace(base, old, new, 1)
}

func TestDecodeFull(t *testing.T) {
	s, err := Decode("hello.yaml", []byte(full))
	if err != nil {
		t.Fatal(err)
	}
	want := &Service{
		Service: "hello",
		SHA:     "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
		Artifact: Artifact{
			URL:    "file:///var/cache/artifacts/hello",
			SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		},
		Hostnames: []string{"hello.example.com", "www.hello.example.com"},
		Port:      8080,
		Command:   []string{"/usr/local/bin/hello", "-v", ""},
		Env:       map[string]string{"GREETING": "hi", "COUNT": "3", "DEBUG": "false"},
		EnvFile:   "hello/prod.env",
		User:      "hello_app",
		Health: Health{
			Path:      "/up?full=1",
			Interval:  100 * time.Millisecond,
			Timeout:   50 * time.Millisecond,
			Threshold: 5,
			Deadline:  90 * time.Second,
			Watch:     0,
		},
		Drain:    0,
		Retain:   0,
		Hosts:    []string{"web1", "web2.example.com"},
		Template: "14.3-RELEASE",
		Allow:    []string{"raw_sockets", "mount.nullfs"},
		File:     "hello.yaml",
	}
	if diff := cmp.Diff(want, s); diff != "" {
		t.Errorf("Decode (-want +got):\n%s", diff)
	}
	if err := s.Validate(); err != nil {
		t.Errorf("Validate of a decoded manifest: %v", err)
	}
}

func TestDecodeDefaults(t *testing.T) {
	s, err := Decode("hello.yaml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	want := &Service{
		Service: "hello",
		SHA:     "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
		Artifact: Artifact{
			URL:    "https://ci.example.com/hello/4b825dc6/hello.tar.gz",
			SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		},
		Hostnames: []string{"hello.example.com", "www.hello.example.com"},
		Port:      8080,
		Command:   []string{"/usr/local/bin/hello"},
		User:      "www",
		Health: Health{
			Path:      "/up",
			Interval:  time.Second,
			Timeout:   2 * time.Second,
			Threshold: 3,
			Deadline:  60 * time.Second,
			Watch:     15 * time.Second,
		},
		Drain:  10 * time.Second,
		Retain: 2,
		File:   "hello.yaml",
	}
	if diff := cmp.Diff(want, s); diff != "" {
		t.Errorf("Decode (-want +got):\n%s", diff)
	}
}

// TestDecodePartialHealth: a health block that sets one field keeps the
// defaults of the others.
func TestDecodePartialHealth(t *testing.T) {
	s, err := Decode("hello.yaml", []byte(base+"health:\n  path: /ready\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultHealth()
	want.Path = "/ready"
	if diff := cmp.Diff(want, s.Health); diff != "" {
		t.Errorf("health (-want +got):\n%s", diff)
	}
}

// TestDecodeAliases: YAML anchors, aliases and merge keys are YAML, so they
// work, and strictness still applies to what they expand to.
func TestDecodeAliases(t *testing.T) {
	in := base + "env: &e {A: x}\nhealth: {path: &p /ready}\ncommand: [/usr/local/bin/hello, *p]\n"
	s, err := Decode("hello.yaml", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"/usr/local/bin/hello", "/ready"}, s.Command); diff != "" {
		t.Errorf("command (-want +got):\n%s", diff)
	}
}

func TestDecodeInvalid(t *testing.T) {
	const file = "services/hello.yaml"
	tests := []struct {
		name  string
		in    string
		field string // "" for a problem with the file as a whole
		line  int    // 0 when the problem has no line
		msg   string // part of the message
	}{
		{"unknown field", base + "colour: blue\n", "colour", 8, "unknown field"},
		{"unknown health field with typo", base + "health: {tmeout: 1s}\n", "health.tmeout", 8, `did you mean "timeout"`},
		{"unknown artifact field", with(t, "  sha256:", "  sha265:"), "artifact.sha265", 5, `did you mean "sha256"`},
		{"service missing", with(t, "service: hello\n", ""), "service", 0, "is required"},
		{"service uppercase", with(t, "service: hello", "service: Hello"), "service", 1, `got "Hello"`},
		{"service starts with digit", with(t, "service: hello", "service: 1hello"), "service", 1, "lowercase letter"},
		{"service too long", with(t, "service: hello", "service: "+strings.Repeat("a", 33)), "service", 1, "up to 31"},
		{"service with dash", with(t, "service: hello", "service: hel-lo"), "service", 1, `"hel-lo"`},
		{"service is a list", with(t, "service: hello", "service: [hello]"), "service", 1, "must be a single value, got a list"},
		{"sha short", with(t, "sha: 4b825dc642cb6eb9a060e54bf8d69288fbee4904", "sha: 4b825dc6"), "sha", 2, "40 or 64"},
		{"sha uppercase", with(t, "sha: 4b825dc642cb6eb9a060e54bf8d69288fbee4904", "sha: 4B825DC642CB6EB9A060E54BF8D69288FBEE4904"), "sha", 2, "lowercase hex"},
		{"sha missing", with(t, "sha: 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n", ""), "sha", 0, "is required"},
		{"artifact missing", with(t, "artifact:\n  url: https://ci.example.com/hello/4b825dc6/hello.tar.gz\n  sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n", ""), "artifact", 0, "is required"},
		{"artifact is a string", with(t, "artifact:\n  url: https://ci.example.com/hello/4b825dc6/hello.tar.gz\n  sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n", "artifact: hello.tar.gz\n"), "artifact", 3, "must be a mapping of url, sha256, got a string"},
		{"artifact url missing", with(t, "  url: https://ci.example.com/hello/4b825dc6/hello.tar.gz\n", ""), "artifact.url", 3, "is required"},
		{"artifact url ftp", with(t, "url: https://", "url: ftp://"), "artifact.url", 4, `scheme must be https, http or file, got "ftp"`},
		{"artifact url with credentials", with(t, "url: https://", "url: https://ci:secret@"), "artifact.url", 4, "credentials"},
		{"artifact url relative", with(t, "url: https://ci.example.com/hello/4b825dc6/hello.tar.gz", "url: hello.tar.gz"), "artifact.url", 4, "absolute URL"},
		{"artifact file url with host", with(t, "url: https://ci.example.com/", "url: file://ci.example.com/"), "artifact.url", 4, "no host"},
		{"artifact url without host", with(t, "url: https://ci.example.com/", "url: https:///"), "artifact.url", 4, "must name a host"},
		{"artifact sha256 short", with(t, "sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "sha256: 9f86d081"), "artifact.sha256", 5, "64 lowercase hex"},
		{"artifact sha256 missing", with(t, "  sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n", ""), "artifact.sha256", 3, "is required"},
		{"hostnames empty", with(t, "[hello.example.com, www.hello.example.com]", "[]"), "hostnames", 6, "at least one hostname"},
		{"hostnames missing", with(t, "hostnames: [hello.example.com, www.hello.example.com]\n", ""), "hostnames", 0, "at least one hostname"},
		{"hostnames is a string", with(t, "[hello.example.com, www.hello.example.com]", "hello.example.com"), "hostnames", 6, "must be a list"},
		{"hostname uppercase", with(t, "www.hello.example.com]", "WWW.hello.example.com]"), "hostnames[1]", 6, "lowercase"},
		{"hostname bad label", with(t, "www.hello.example.com]", "-www.hello.example.com]"), "hostnames[1]", 6, "must be an exact DNS name"},
		{"hostname trailing dot", with(t, "www.hello.example.com]", "www.hello.example.com.]"), "hostnames[1]", 6, "dot"},
		{"hostname twice", with(t, "www.hello.example.com]", "hello.example.com]"), "hostnames[1]", 6, "listed twice"},
		{"hostname null", with(t, "www.hello.example.com]", "~]"), "hostnames[1]", 6, "null"},
		// Issue 9 item 4: a hostname is one exact DNS name. Caddy reads *,
		// ? and {placeholders} as patterns, and a pattern route appended
		// earlier would answer another service's exact host.
		{"hostname wildcard label", with(t, "www.hello.example.com]", "'*.example.com']"), "hostnames[1]", 6, "exact DNS name"},
		{"hostname wildcard tld", with(t, "www.hello.example.com]", "'*.com']"), "hostnames[1]", 6, "exact DNS name"},
		{"hostname only wildcard", with(t, "www.hello.example.com]", "'*']"), "hostnames[1]", 6, "exact DNS name"},
		{"hostname inner wildcard", with(t, "www.hello.example.com]", "'www.*.example.com']"), "hostnames[1]", 6, "exact DNS name"},
		{"hostname question mark", with(t, "www.hello.example.com]", "'ww?.example.com']"), "hostnames[1]", 6, "exact DNS name"},
		{"hostname placeholder", with(t, "www.hello.example.com]", "'{http.request.host}']"), "hostnames[1]", 6, "exact DNS name"},
		{"hostname placeholder label", with(t, "www.hello.example.com]", "'{env.HOST}.example.com']"), "hostnames[1]", 6, "exact DNS name"},
		{"hostname with port", with(t, "www.hello.example.com]", "'www.example.com:80']"), "hostnames[1]", 6, "exact DNS name"},
		{"hostname ip", with(t, "www.hello.example.com]", "'[::1]']"), "hostnames[1]", 6, "exact DNS name"},
		{"port missing", with(t, "port: 8080\n", ""), "port", 0, "is required"},
		{"port null", with(t, "port: 8080", "port:"), "port", 7, "is required"},
		{"port too large", with(t, "port: 8080", "port: 70000"), "port", 7, "between 1 and 65535, got 70000"},
		{"port zero", with(t, "port: 8080", "port: 0"), "port", 7, "between 1 and 65535, got 0"},
		{"port quoted", with(t, "port: 8080", `port: "8080"`), "port", 7, `must be an integer, got string "8080"`},
		{"port float", with(t, "port: 8080", "port: 80.5"), "port", 7, "must be an integer"},
		{"command empty", base + "command: []\n", "command", 8, "must not be empty"},
		{"command relative", base + "command: [hello]\n", "command[0]", 8, "absolute path"},
		{"command not clean", base + "command: [/usr/local/../bin/hello]\n", "command[0]", 8, "clean absolute path"},
		{"command is a string", base + "command: /usr/local/bin/hello -v\n", "command", 8, "must be a list"},
		{"env reserved PORT", base + "env:\n  GREETING: hi\n  PORT: 9090\n", "env.PORT", 10, "set by jailkeeper"},
		{"env reserved ADDR", base + "env: {ADDR: x}\n", "env.ADDR", 8, "set by jailkeeper"},
		{"env bad name", base + "env:\n  1X: y\n", "env.1X", 9, "variable name"},
		{"env loader variable", base + "env:\n  LD_PRELOAD: /tmp/x.so\n", "env.LD_PRELOAD", 9, "LD_* variables are not allowed"},
		{"env value is a mapping", base + "env:\n  X: {a: b}\n", "env.X", 9, "must be a single value, got a mapping"},
		{"env value multi-line", base + "env:\n  X: |\n    a\n    b\n", "env.X", 9, "single line"},
		{"env value null", base + "env:\n  X:\n", "env.X", 9, "null"},
		{"env duplicate key", base + "env:\n  X: a\n  X: b\n", "env.X", 10, "duplicate key (first set on line 9)"},
		{"env is a list", base + "env: [A=b]\n", "env", 8, "must be a mapping"},
		{"env_file escapes", base + "env_file: ../hello.env\n", "env_file", 8, "secrets directory"},
		{"env_file absolute", base + "env_file: /etc/hello.env\n", "env_file", 8, "secrets directory"},
		{"env_file empty", base + "env_file: \"\"\n", "env_file", 8, "must not be empty"},
		{"user invalid", base + "user: Www\n", "user", 8, `got "Www"`},
		{"user empty", base + "user: ''\n", "user", 8, "must not be empty"},
		{"health is a list", base + "health: [/up]\n", "health", 8, "must be a mapping"},
		{"health path relative", base + "health: {path: up}\n", "health.path", 8, "must start with /"},
		{"health path with space", base + "health: {path: /u p}\n", "health.path", 8, "without spaces"},
		{"health interval too short", base + "health:\n  interval: 10ms\n", "health.interval", 9, "at least 100ms"},
		{"health interval no unit", base + "health:\n  interval: 1\n", "health.interval", 9, `Go duration such as 500ms, 10s or 1m30s, got "1"`},
		{"health interval is a list", base + "health:\n  interval: [1s]\n", "health.interval", 9, "must be a single value"},
		{"health timeout not below deadline", base + "health:\n  timeout: 5s\n  deadline: 5s\n", "health.timeout", 9, "shorter than health.deadline (5s)"},
		{"health timeout zero", base + "health:\n  timeout: 0s\n", "health.timeout", 9, "at least 10ms"},
		{"health threshold zero", base + "health:\n  threshold: 0\n", "health.threshold", 9, "between 1 and 100"},
		{"health threshold string", base + "health:\n  threshold: three\n", "health.threshold", 9, "must be an integer"},
		{"health deadline too short", base + "health:\n  interval: 10s\n  threshold: 10\n  deadline: 60s\n", "health.deadline", 11, "too short for 10 probes 10s apart"},
		{"health deadline too long", base + "health:\n  deadline: 2h\n", "health.deadline", 9, "at most 1h0m0s"},
		{"health watch negative", base + "health:\n  watch: -1s\n", "health.watch", 9, "must not be negative"},
		{"drain too long", base + "drain: 2h\n", "drain", 8, "at most 1h0m0s"},
		{"drain without unit", base + "drain: 10\n", "drain", 8, "Go duration"},
		{"retain negative", base + "retain: -1\n", "retain", 8, "between 0 and 50"},
		{"retain string", base + "retain: two\n", "retain", 8, "must be an integer"},
		{"hosts empty", base + "hosts: []\n", "hosts", 8, "at least one agent host"},
		{"hosts twice", base + "hosts: [web1, WEB1]\n", "hosts[1]", 8, "listed twice"},
		{"hosts wildcard", base + "hosts: ['*.example.com']\n", "hosts[0]", 8, "agent's host name"},
		{"template with slash", base + "template: 14.3/RELEASE\n", "template", 8, "template name"},
		{"template empty", base + "template: ''\n", "template", 8, "must not be empty"},
		{"allow unknown", base + "allow: [raw_socket]\n", "allow[0]", 8, `did you mean "raw_sockets"`},
		{"allow unknown far", base + "allow: [everything]\n", "allow[0]", 8, "not a jail(8) allow.* permission"},
		{"allow with prefix", base + "allow:\n  - mlock\n  - allow.raw_sockets\n", "allow[1]", 10, "without the allow. prefix"},
		{"allow twice", base + "allow: [mlock, mlock]\n", "allow[1]", 8, "listed twice"},
		// The second-wave keys: data, limits, standby, canary, migrate,
		// migrate_timeout and template pins.
		{"data is a mapping", base + "data: {name: a, path: /srv/a}\n", "data", 8, "must be a list such as"},
		{"data item is a string", base + "data: [uploads]\n", "data[0]", 8, "must be a mapping of name, path, quota"},
		{"data unknown key", base + "data:\n  - name: a\n    path: /srv/a\n    qouta: 1G\n", "data[0].qouta", 11, `did you mean "quota"`},
		{"data name typo", base + "data:\n  - nme: a\n    path: /srv/a\n", "data[0].nme", 9, `did you mean "name"`},
		{"data name missing", base + "data:\n  - path: /srv/a\n", "data[0].name", 9, "is required"},
		{"data name uppercase", base + "data:\n  - {name: Uploads, path: /srv/a}\n", "data[0].name", 9, `got "Uploads"`},
		{"data name twice", base + "data:\n  - {name: a, path: /srv/a}\n  - {name: a, path: /srv/b}\n", "data[1].name", 10, "listed twice (also data[0])"},
		{"data path missing", base + "data: [{name: a}]\n", "data[0].path", 8, "is required"},
		{"data path relative", base + "data: [{name: a, path: srv/a}]\n", "data[0].path", 8, "clean absolute path"},
		{"data path root", base + "data: [{name: a, path: /}]\n", "data[0].path", 8, "must not be /"},
		{"data path in etc", base + "data:\n  - name: a\n    path: /etc/app\n", "data[0].path", 10, "is in /etc, which the release needs"},
		{"data path above var/run", base + "data: [{name: a, path: /var}]\n", "data[0].path", 8, "would hide /var/empty"},
		{"data path twice", base + "data:\n  - {name: a, path: /srv/a}\n  - {name: b, path: /srv/a}\n", "data[1].path", 10, "listed twice (also data[0])"},
		{"data paths nested", base + "data:\n  - {name: a, path: /srv/a}\n  - {name: b, path: /srv/a/b}\n", "data[1].path", 10, "are nested"},
		{"data path hides command", base + "data: [{name: a, path: /usr/local/www}]\ncommand: [/usr/local/www/hello/run]\n", "data[0].path", 8, "would hide command[0]"},
		{"data quota no unit", base + "data: [{name: a, path: /srv/a, quota: 10}]\n", "data[0].quota", 8, "at least 1M, got 10 bytes"},
		{"data quota fraction", base + "data: [{name: a, path: /srv/a, quota: 1.5G}]\n", "data[0].quota", 8, `size such as 512M or 10G, got "1.5G"`},
		{"data quota zero", base + "data: [{name: a, path: /srv/a, quota: 0}]\n", "data[0].quota", 8, "leave quota out"},
		{"data env clash", base + "data: [{name: up, path: /srv/a}]\nenv: {DATA_UP: x}\n", "env.DATA_UP", 9, "is set by jailkeeper"},
		{"limits is a list", base + "limits: [512M]\n", "limits", 8, "must be a mapping of memory, pcpu, maxproc, openfiles, disk"},
		{"limits unknown key", base + "limits:\n  mem: 512M\n", "limits.mem", 9, "unknown field"},
		{"limits typo", base + "limits:\n  memroy: 512M\n", "limits.memroy", 9, `did you mean "memory"`},
		{"limits memory unit", base + "limits:\n  memory: 512 MB\n", "limits.memory", 9, `size such as 512M or 10G, got "512 MB"`},
		{"limits memory too small", base + "limits: {memory: 512}\n", "limits.memory", 8, "write a unit"},
		{"limits memory too large", base + "limits: {memory: 9E}\n", "limits.memory", 8, "too large"},
		{"limits memory zero", base + "limits: {memory: 0}\n", "limits.memory", 8, "leave it out for no limit"},
		{"limits pcpu too large", base + "limits: {pcpu: 200000}\n", "limits.pcpu", 8, "between 1 and 102400 percent of one CPU core"},
		{"limits pcpu percent sign", base + "limits: {pcpu: 50%}\n", "limits.pcpu", 8, "must be an integer"},
		{"limits maxproc negative", base + "limits: {maxproc: -1}\n", "limits.maxproc", 8, "between 1 and 99999"},
		{"limits openfiles string", base + "limits: {openfiles: many}\n", "limits.openfiles", 8, "must be an integer"},
		{"limits disk list", base + "limits: {disk: [5G]}\n", "limits.disk", 8, "must be a size"},
		{"standby negative", base + "standby: -1m\n", "standby", 8, "must not be negative"},
		{"standby no unit", base + "standby: 15\n", "standby", 8, "Go duration"},
		{"standby too long", base + "standby: 48h\n", "standby", 8, "at most 24h0m0s"},
		{"canary is a list", base + "canary: [10, 50]\n", "canary", 8, "must be a mapping of steps, interval, max_failures"},
		{"canary without steps", base + "canary: {interval: 1m}\n", "canary.steps", 8, "is required"},
		{"canary step 100", base + "canary: {steps: [50, 100]}\n", "canary.steps[1]", 8, "between 1 and 99"},
		{"canary steps decrease", base + "canary:\n  steps:\n    - 50\n    - 10\n", "canary.steps[1]", 11, "larger than the step before it (50)"},
		{"canary steps repeat", base + "canary: {steps: [10, 10]}\n", "canary.steps[1]", 8, "larger than the step before it"},
		{"canary step string", base + "canary: {steps: [10%]}\n", "canary.steps[0]", 8, "must be an integer"},
		{"canary interval short", base + "canary: {steps: [10], interval: 100ms}\n", "canary.interval", 8, "at least 1s"},
		{"canary max_failures zero", base + "canary: {steps: [10], max_failures: 0}\n", "canary.max_failures", 8, "between 1 and"},
		{"canary unknown key", base + "canary: {steps: [10], weight: 5}\n", "canary.weight", 8, "unknown field"},
		{"canary steps empty", base + "canary: {steps: []}\n", "canary.steps", 8, "is required"},
		{"canary step 0", base + "canary: {steps: [0, 10]}\n", "canary.steps[0]", 8, "between 1 and 99"},
		{"canary interval long", base + "canary: {steps: [10], interval: 2h}\n", "canary.interval", 8, "at most 1h0m0s"},
		{"canary max_failures huge", base + "canary: {steps: [10], max_failures: 2000000}\n", "canary.max_failures", 8, "between 1 and 1000000"},
		{"migrate empty", base + "migrate: []\n", "migrate", 8, "must not be empty"},
		{"migrate relative", base + "migrate: [hello, migrate]\n", "migrate[0]", 8, "clean absolute path"},
		{"migrate newline", base + "migrate: [/usr/local/bin/hello, \"a\\nb\"]\n", "migrate[1]", 8, "control character"},
		{"migrate is a string", base + "migrate: /usr/local/bin/hello migrate\n", "migrate", 8, "must be a list"},
		{"migrate_timeout without migrate", base + "migrate_timeout: 5m\n", "migrate_timeout", 8, "there is none"},
		{"migrate_timeout zero", base + "migrate: [/usr/local/bin/hello]\nmigrate_timeout: 0s\n", "migrate_timeout", 9, "at least 1s"},
		{"migrate_timeout too long", base + "migrate: [/usr/local/bin/hello]\nmigrate_timeout: 48h\n", "migrate_timeout", 9, "at most 24h0m0s"},
		{"template pin empty", base + "template: 14.3-RELEASE@\n", "template", 8, "must name a snapshot after @"},
		{"template pin bad snapshot", base + "template: 14.3-RELEASE@a/b\n", "template", 8, "the snapshot after @"},
		{"template pin twice", base + "template: 14.3-RELEASE@a@b\n", "template", 8, "the snapshot after @"},
		{"template pin without name", base + "template: \"@base\"\n", "template", 8, "names no template"},
		{"duplicate top-level key", base + "port: 8081\n", "port", 8, "duplicate key (first set on line 7)"},
		{"duplicate health key", base + "health:\n  path: /a\n  path: /b\n", "health.path", 10, "duplicate key (first set on line 9)"},
		{"two documents", base + "---\nservice: other\n", "", 8, "more than one YAML document"},
		{"not a mapping", "- service: hello\n", "", 1, "must be a mapping of fields"},
		{"unclosed flow mapping", base + "env: {A: b\n", "", 8, "did not find expected ',' or '}'"},
		{"list item in a mapping", base + "- c\n", "", 8, "did not find expected key"},
		{"bad indentation", "service: hello\n  sha: x\n", "", 2, "mapping values are not allowed"},
		{"empty file", "", "", 0, "file is empty"},
		{"only a comment", "# nothing here\n", "", 0, "file is empty"},
		{"tab indentation", "service: hello\n\tsha: x\n", "", 2, "tab character"},
		{"non-string key", base + "[a]: b\n", "", 8, "keys must be plain strings"},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		if seen[tt.name] {
			t.Fatalf("duplicate case name %q", tt.name)
		}
		seen[tt.name] = true
		t.Run(tt.name, func(t *testing.T) {
			s, err := Decode(file, []byte(tt.in))
			if err == nil {
				t.Fatalf("Decode succeeded, want an error in %q: %+v", tt.field, s)
			}
			if s != nil {
				t.Errorf("Decode returned a Service with the error %v", err)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("errors.Is(%v, ErrInvalid) = false", err)
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error %T is not Errors: %v", err, err)
			}
			// One mistake, one message: follow-on problems are suppressed.
			if len(errs) != 1 {
				t.Errorf("got %d problems, want 1:\n%v", len(errs), err)
			}
			e := errs[0]
			prefix := file + ":"
			if tt.line > 0 {
				prefix += fmt.Sprint(tt.line) + ":"
			}
			prefix += " "
			if tt.field != "" {
				prefix += tt.field + ": "
			}
			if !strings.HasPrefix(e.Error(), prefix) || e.Field != tt.field || e.File != file {
				t.Errorf("problem = %q, want it to start with %q", e.Error(), prefix)
			}
			if tt.line > 0 && e.Line != tt.line {
				t.Errorf("line = %d, want %d", e.Line, tt.line)
			}
			if !strings.Contains(e.Msg, tt.msg) {
				t.Errorf("message %q does not contain %q", e.Msg, tt.msg)
			}
			if !strings.Contains(err.Error(), prefix) {
				t.Errorf("Error() = %q does not contain %q", err.Error(), prefix)
			}
			var one *Error
			if !errors.As(err, &one) || one != e {
				t.Errorf("errors.As(*Error) did not find the problem")
			}
		})
	}
	if len(tests) < 30 {
		t.Errorf("only %d invalid manifests; the issue asks for at least 30", len(tests))
	}
}

// TestDecodeAllProblems: every problem of a file is reported, not the first.
func TestDecodeAllProblems(t *testing.T) {
	in := `service: Hello
sha: abc
artifact: {url: "ftp://x/y", sha256: 123}
hostnames: [A.example.com]
port: 0
colour: blue
health: {interval: 1ms, timeout: 1h}
`
	_, err := Decode("hello.yaml", []byte(in))
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Decode: %v, want Errors", err)
	}
	var got []string
	for _, e := range errs {
		got = append(got, fmt.Sprintf("%d %s", e.Line, e.Field))
	}
	want := []string{
		"1 service",
		"2 sha",
		"3 artifact.sha256",
		"3 artifact.url",
		"4 hostnames[0]",
		"5 port",
		"6 colour",
		"7 health.interval",
		"7 health.timeout",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("problems (-want +got):\n%s\n%v", diff, err)
	}
}

func TestValidateZero(t *testing.T) {
	err := (&Service{File: "x.yaml"}).Validate()
	var errs Errors
	if !errors.As(err, &errs) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("Validate(zero) = %v, want Errors", err)
	}
	fields := map[string]bool{}
	for _, e := range errs {
		fields[e.Field] = true
		if e.File != "x.yaml" || e.Line != 0 {
			t.Errorf("problem %q: want file x.yaml and no line", e)
		}
	}
	for _, f := range []string{"service", "sha", "artifact.url", "artifact.sha256", "hostnames", "port", "command", "user", "health.path", "health.interval"} {
		if !fields[f] {
			t.Errorf("Validate(zero) does not report %s:\n%v", f, err)
		}
	}
}

func TestErrorFormat(t *testing.T) {
	tests := []struct {
		e    Error
		want string
	}{
		{Error{File: "a.yaml", Line: 3, Field: "port", Msg: "bad"}, "a.yaml:3: port: bad"},
		{Error{File: "a.yaml", Field: "port", Msg: "bad"}, "a.yaml: port: bad"},
		{Error{File: "a.yaml", Line: 1, Msg: "bad"}, "a.yaml:1: bad"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
	errs := Errors{&tests[0].e, &tests[1].e}
	if got, want := errs.Error(), "a.yaml:3: port: bad\na.yaml: port: bad"; got != want {
		t.Errorf("Errors.Error() = %q, want %q", got, want)
	}
}

func TestDecodeTooLarge(t *testing.T) {
	in := base + "# " + strings.Repeat("x", MaxFileSize) + "\n"
	_, err := Decode("big.yaml", []byte(in))
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "big.yaml: file is larger than") {
		t.Errorf("Decode(big) = %v, want a size error", err)
	}
}
