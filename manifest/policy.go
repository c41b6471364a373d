package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Policy is the operator's policy (the agent config's policy key): what a
// manifest may ask for beyond its own jail. The zero Policy is the default,
// and it denies: no allow.* permission with an effect outside the jail, no
// run-as user but DefaultUser, no artifact host exempt from the agent's
// address checks, no `exec --root`. LoadPolicy checks manifests against it,
// for `jailkeeper validate` and the agent alike.
type Policy struct {
	// Allow lists the host-wide allow.* permissions (HostWideAllow)
	// manifests may ask for, without the "allow." prefix. "mount" covers
	// allow.mount only; each allow.mount.<fs> is listed on its own.
	Allow []string `yaml:"allow" json:"allow,omitempty"`
	// Users lists the run-as users manifests may name besides
	// DefaultUser, which is always allowed. root (and toor, uid 0 too)
	// must be listed to be used.
	Users []string `yaml:"users" json:"users,omitempty"`
	// ArtifactHosts lists URL prefixes ("http://127.0.0.1:8081/") that
	// artifacts may be downloaded from although they are loopback,
	// link-local or private addresses. Enforced by the agent's artifact
	// store.
	ArtifactHosts []string `yaml:"artifact_hosts" json:"artifact_hosts,omitempty"`
	// RootExec allows `jailkeeper exec --root`.
	RootExec bool `yaml:"root_exec" json:"root_exec,omitempty"`
}

// hostWide are the allow.* permissions of jail(8) whose effect reaches
// beyond the jail, each with what it reaches (for messages and
// docs/security.md). The others (set_hostname, reserved_ports, suser,
// unprivileged_proc_debug) act inside the jail only and need no policy.
var hostWide = map[string]string{
	"adjtime":         "adjusts the host's clock (adjtime(2))",
	"chflags":         "sets system file flags, also on file systems shared with the host",
	"extattr":         "writes system-namespace extended attributes, also on file systems shared with the host",
	"mlock":           "wires physical memory of the host (mlock(2))",
	"mount":           "mounts file systems",
	"mount.devfs":     "mounts devfs: host devices",
	"mount.fdescfs":   "mounts fdescfs",
	"mount.fusefs":    "mounts fusefs: a kernel file system driven from the jail",
	"mount.linprocfs": "mounts linprocfs",
	"mount.linsysfs":  "mounts linsysfs",
	"mount.nullfs":    "mounts nullfs: host directories",
	"mount.procfs":    "mounts procfs",
	"mount.tmpfs":     "mounts tmpfs: host memory",
	"mount.zfs":       "mounts ZFS datasets of the host's pools",
	"nfsd":            "runs nfsd and mountd: exports file systems",
	"quotas":          "administers quotas, also on file systems shared with the host",
	"raw_sockets":     "creates raw sockets: crafted packets, spoofed source addresses",
	"read_msgbuf":     "reads the kernel message buffer of the host",
	"routing":         "changes the host's routing table",
	"settime":         "sets the host's clock",
	"socket_af":       "uses protocol families that are not jail-aware",
	"sysvipc":         "shares the host's System V IPC objects",
	"vmm":             "uses vmm(4), the hypervisor",
}

// HostWideAllow returns, sorted, the allow.* permissions that need the
// operator's policy.
func HostWideAllow() []string {
	var out []string
	for k := range hostWide {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// rootUsers have uid 0 in a FreeBSD base system (master.passwd).
var rootUsers = map[string]bool{"root": true, "toor": true}

// Validate checks the policy itself; every error names its field
// (policy.allow[0], ...).
func (p Policy) Validate() error {
	var errs []error
	for i, a := range p.Allow {
		if !knownAllow(a) {
			errs = append(errs, fmt.Errorf("policy.allow[%d]: %q is not a jail(8) allow.* permission", i, a))
		}
	}
	for i, u := range p.Users {
		if !userRE.MatchString(u) {
			errs = append(errs, fmt.Errorf("policy.users[%d]: %q is not a user name (%s)", i, u, userRE))
		}
	}
	for i, h := range p.ArtifactHosts {
		u, err := url.Parse(h)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || !strings.HasSuffix(u.Path, "/") || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			errs = append(errs, fmt.Errorf("policy.artifact_hosts[%d]: want a URL prefix such as http://127.0.0.1:8081/ (http or https, a host, a path ending in /)", i))
		}
	}
	return errors.Join(errs...)
}

// check reports what of s the policy does not allow.
func (p Policy) check(s *Service, report reporter) {
	for i, a := range s.Allow {
		what, wide := hostWide[a]
		if wide && !slices.Contains(p.Allow, a) {
			report(fmt.Sprintf("allow[%d]", i), "allow.%s %s; it needs the operator's policy.allow in the agent config", a, what)
		}
	}
	if u := s.User; u != DefaultUser && !slices.Contains(p.Users, u) {
		if rootUsers[u] {
			report("user", "%q runs the app with uid 0; it needs policy.users: [%s] in the agent config", u, u)
		} else {
			report("user", "%q is not %s nor listed in the operator's policy.users", u, DefaultUser)
		}
	}
}

// ErrNoPolicy: DecodePolicy found no top-level policy key.
var ErrNoPolicy = errors.New("no policy key")

// DecodePolicy reads the top-level policy key of a YAML file (the agent's
// config, or a file holding only that key), strictly, and validates it.
// Other top-level keys are ignored. file names the file in errors.
func DecodePolicy(file string, data []byte) (Policy, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return Policy{}, fmt.Errorf("%s: %w", file, err)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	var node *yaml.Node
	if root.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(root.Content); i += 2 {
			if root.Content[i].Value == "policy" {
				node = root.Content[i+1]
			}
		}
	}
	if node == nil {
		return Policy{}, fmt.Errorf("%s: %w", file, ErrNoPolicy)
	}
	b, err := yaml.Marshal(node)
	if err != nil {
		return Policy{}, fmt.Errorf("%s: policy: %w", file, err)
	}
	var p Policy
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil && !errors.Is(err, io.EOF) {
		return Policy{}, fmt.Errorf("%s: policy: %w", file, err)
	}
	if err := p.Validate(); err != nil {
		return Policy{}, fmt.Errorf("%s: %w", file, err)
	}
	return p, nil
}
