package manifest

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"
)

// TestPolicy (issue 9 item 6): what a manifest may ask for beyond its own
// jail needs the operator's policy; without one, the default policy
// refuses it, naming the file and the field.
func TestPolicy(t *testing.T) {
	for _, tc := range []struct {
		name   string
		extra  string
		policy Policy
		field  string // "" when the manifest passes
		msg    string
	}{
		{"default user", "", Policy{}, "", ""},
		{"jail-local allow", "allow: [set_hostname, reserved_ports]\n", Policy{}, "", ""},
		{"settime", "allow: [settime]\n", Policy{}, "allow[0]", "policy.allow"},
		{"adjtime", "allow: [raw_sockets, adjtime]\n", Policy{Allow: []string{"raw_sockets"}}, "allow[1]", "policy.allow"},
		{"routing", "allow: [routing]\n", Policy{}, "allow[0]", "routing table"},
		{"sysvipc", "allow: [sysvipc]\n", Policy{}, "allow[0]", "policy.allow"},
		{"quotas", "allow: [quotas]\n", Policy{}, "allow[0]", "policy.allow"},
		{"read_msgbuf", "allow: [read_msgbuf]\n", Policy{}, "allow[0]", "policy.allow"},
		{"mount.nullfs", "allow: [mount.nullfs]\n", Policy{Allow: []string{"mount"}}, "allow[0]", "policy.allow"},
		{"vmm", "allow: [vmm]\n", Policy{}, "allow[0]", "policy.allow"},
		{"raw_sockets", "allow: [raw_sockets]\n", Policy{}, "allow[0]", "policy.allow"},
		{"chflags", "allow: [chflags]\n", Policy{}, "allow[0]", "policy.allow"},
		{"allowed by policy", "allow: [settime, mount.nullfs]\n", Policy{Allow: []string{"settime", "mount.nullfs"}}, "", ""},
		{"root", "user: root\n", Policy{}, "user", "policy.users"},
		{"toor", "user: toor\n", Policy{}, "user", "policy.users"},
		{"root allowed", "user: root\n", Policy{Users: []string{"root"}}, "", ""},
		{"other user", "user: app\n", Policy{}, "user", "policy.users"},
		{"other user allowed", "user: app\n", Policy{Users: []string{"app"}}, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := fstest.MapFS{"hello.yaml": file(base + tc.extra)}
			_, err := LoadPolicy(fsys, ".", tc.policy)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("LoadPolicy: %v", err)
				}
				return
			}
			var e *Error
			if !errors.Is(err, ErrInvalid) || !errors.As(err, &e) {
				t.Fatalf("LoadPolicy = %v, want an *Error", err)
			}
			if e.File != "hello.yaml" || e.Field != tc.field || !strings.Contains(e.Msg, tc.msg) || e.Line == 0 {
				t.Errorf("error %q: want file hello.yaml, field %s, a line and %q in the message", e, tc.field, tc.msg)
			}
		})
	}
}

// TestCommandControlCharacters (issue 9 item 6): a newline in a command
// argument passed validate and was refused by the jail runtime at create,
// after CI was green. Control characters are refused in validation.
func TestCommandControlCharacters(t *testing.T) {
	for _, arg := range []string{"a\nb", "a\rb", "\x1b[2J", "tab\there", "\x7f"} {
		_, err := Decode("hello.yaml", []byte(base+"command: [/usr/local/bin/hello, "+quote(arg)+"]\n"))
		var e *Error
		if !errors.As(err, &e) || e.Field != "command[1]" || !strings.Contains(e.Msg, "control character") {
			t.Errorf("command argument %q: %v, want a command[1] error about control characters", arg, err)
		}
	}
}

// TestPrivilegedPortRefused (issue 9 item 6): an unprivileged app in a jail
// without allow.reserved_ports can never bind a port below 1024.
func TestPrivilegedPortRefused(t *testing.T) {
	for _, p := range []string{"80", "443", "1023"} {
		_, err := Decode("hello.yaml", []byte(strings.Replace(base, "port: 8080", "port: "+p, 1)))
		var e *Error
		if !errors.As(err, &e) || e.Field != "port" || !strings.Contains(e.Msg, "1024") {
			t.Errorf("port %s: %v, want a port error naming 1024", p, err)
		}
	}
	if _, err := Decode("hello.yaml", []byte(strings.Replace(base, "port: 8080", "port: 1024", 1))); err != nil {
		t.Errorf("port 1024: %v", err)
	}
}

func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			b.WriteString(`\x` + strings.ToUpper(string("0123456789abcdef"[r>>4])+string("0123456789abcdef"[r&15])))
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// TestPolicyValidate: the operator's policy is checked too, naming its
// fields.
func TestPolicyValidate(t *testing.T) {
	good := Policy{Allow: []string{"raw_sockets", "mount.nullfs"}, Users: []string{"www", "root"}, ArtifactHosts: []string{"http://127.0.0.1:8081/"}}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		p     Policy
		field string
	}{
		{Policy{Allow: []string{"settimes"}}, "policy.allow[0]"},
		{Policy{Users: []string{"Root"}}, "policy.users[0]"},
		{Policy{ArtifactHosts: []string{"ftp://x/"}}, "policy.artifact_hosts[0]"},
		{Policy{ArtifactHosts: []string{"http://x"}}, "policy.artifact_hosts[0]"},
	} {
		if err := tc.p.Validate(); err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%+v: %v, want an error naming %s", tc.p, err, tc.field)
		}
	}
}
