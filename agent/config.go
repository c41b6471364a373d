package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"gopkg.in/yaml.v3"

	"github.com/jailkeeper/jailkeeper/caddy"
	"github.com/jailkeeper/jailkeeper/manifest"
	"github.com/jailkeeper/jailkeeper/process"
	"github.com/jailkeeper/jailkeeper/release"
)

// DefaultConfigPath is where `run` looks without --config.
const DefaultConfigPath = "/usr/local/etc/jailkeeper/jailkeeper.yaml"

// ErrConfig marks an invalid agent config; the message names file and field.
var ErrConfig = errors.New("invalid config")

// Config is the agent's configuration (DESIGN.md "Agent config").
type Config struct {
	Repo     RepoConfig    `yaml:"repo"`
	Host     string        `yaml:"host"`
	Runtime  string        `yaml:"runtime"`
	StateDir string        `yaml:"state_dir"`
	Jails    JailsConfig   `yaml:"jails"`
	Process  ProcessConfig `yaml:"process"`
	Caddy    CaddyConfig   `yaml:"caddy"`
	// Artifacts limits where artifacts may come from.
	Artifacts ArtifactsConfig `yaml:"artifacts"`
	Listen    string          `yaml:"listen"`
	// WebhookSecretFile holds the shared secret of POST /hooks/git.
	WebhookSecretFile string `yaml:"webhook_secret_file"`
	// Parallel is how many creates and starts run at once; gates and
	// watches hold no slot.
	Parallel int          `yaml:"parallel"`
	Notify   NotifyConfig `yaml:"notify"`
	// Policy is what manifests may ask for beyond their own jail; the
	// zero value denies (manifest.Policy).
	Policy manifest.Policy `yaml:"policy"`
	// Defaults apply to manifests that do not say (defaults.go).
	Defaults DefaultsConfig `yaml:"defaults"`
	// ControlSocket is the unix socket `jailkeeper suspend` and `resume`
	// reach the agent on (default DefaultControlSocket), mode 0600.
	ControlSocket string `yaml:"control_socket"`
	// Windows are the sync windows (WindowConfig).
	Windows []WindowConfig `yaml:"windows"`
	// Rebase bounds the roll of services to a newer template snapshot.
	Rebase RebaseConfig `yaml:"rebase"`

	// Dir is the directory of the config file; secrets live in Dir/secrets.
	Dir string `yaml:"-"`
	// File is the config file's path, for messages.
	File string `yaml:"-"`
}

// RepoConfig says where the deploy repo is and how to reach it.
type RepoConfig struct {
	URL           string `yaml:"url"`
	Branch        string `yaml:"branch"`
	Path          string `yaml:"path"`
	Poll          string `yaml:"poll"`
	SSHKey        string `yaml:"ssh_key"`
	KnownHosts    string `yaml:"known_hosts"`
	TokenFile     string `yaml:"token_file"`
	VerifyKeyring string `yaml:"verify_keyring"`
}

// JailsConfig configures the FreeBSD jail runtime.
type JailsConfig struct {
	Dataset   string `yaml:"dataset"`
	Root      string `yaml:"root"`
	Template  string `yaml:"template"`
	Interface string `yaml:"interface"`
	Pool      string `yaml:"pool"`
	ConfDir   string `yaml:"conf_dir"`
	// Resolvers are the DNS servers `template create` writes into the
	// template's /etc/resolv.conf instead of copying the host's. Needed
	// when the host's resolv.conf names only loopback servers
	// (local_unbound): inside a jail 127.0.0.1 is the jail's own address
	// (prison_remote_ip4, sys/netinet/in_jail.c), where nothing answers.
	// IP addresses, none of them loopback or unspecified.
	Resolvers []string `yaml:"resolvers"`
}

// validResolver checks one entry of jails.resolvers.
func validResolver(s string) error {
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		return fmt.Errorf("%q is not an IP address", s)
	case a.Zone() != "":
		return fmt.Errorf("%q has a zone, which a jail's resolv.conf cannot use", s)
	case a.IsLoopback() || a.Unmap().IsLoopback():
		return fmt.Errorf("%s is a loopback address: inside a jail it is the jail's own address, where no DNS server answers", s)
	case a.IsUnspecified():
		return fmt.Errorf("%s is the unspecified address", s)
	}
	return nil
}

// ProcessConfig configures the process runtime (process.Config).
type ProcessConfig struct {
	// Root holds one directory per release (default <state_dir>/releases).
	Root string `yaml:"root"`
	// Pool is the loopback prefix release addresses come from (default
	// 127.77.0.0/16).
	Pool string `yaml:"pool"`
	// Template is a directory copied into each new release root. Copy mode
	// only: not together with Dataset.
	Template string `yaml:"template"`
	// Dataset (tank/jailkeeper), when set, makes each release root a ZFS
	// clone of the newest snapshot of <dataset>/templates/<template>, named
	// <dataset>/releases/<release> and mounted at <root>/<release>/root.
	// Empty (the default): release roots are directories.
	Dataset string `yaml:"dataset"`
	// TemplateName is the template, below <dataset>/templates, of a
	// manifest that names none (default "default"). Used with Dataset only.
	TemplateName string `yaml:"template_name"`
}

// ArtifactsConfig limits artifact sources.
type ArtifactsConfig struct {
	// FileRoot is the only directory file:// artifact URLs may read from;
	// empty refuses file:// URLs (a deploy-repo writer must not be able to
	// read host files through them).
	FileRoot string `yaml:"file_root"`
	// CacheMax bounds the cached artifacts that no current manifest names
	// ("2G", "500M", bytes); least recently used go first. Default 2G; 0
	// keeps only what the manifests name.
	CacheMax string `yaml:"cache_max"`
	// CacheMaxBytes is CacheMax parsed.
	CacheMaxBytes int64 `yaml:"-"`
}

// CaddyConfig says how to reach Caddy's admin API and what jailkeeper owns.
type CaddyConfig struct {
	Admin  string   `yaml:"admin"`
	Server string   `yaml:"server"`
	Listen []string `yaml:"listen"`
	// UpstreamDir holds one file per service with its live upstream,
	// which Caddy reads on every request: a switch is a file rename, not
	// a config reload (caddy.Config.UpstreamDir). Caddy must be able to
	// read it. Default <state_dir>/upstreams.
	UpstreamDir string `yaml:"upstream_dir"`
}

// client is the caddy package's Config for c.
func (c CaddyConfig) client() caddy.Config {
	return caddy.Config{Admin: c.Admin, Server: c.Server, Listen: c.Listen, UpstreamDir: c.UpstreamDir}
}

// NotifyConfig is the optional outgoing webhook for deploy events.
type NotifyConfig struct {
	URL     string        `yaml:"url"`
	Timeout time.Duration `yaml:"timeout"`
	Retries int           `yaml:"retries"`
}

// LoadConfig reads, decodes strictly, defaults and validates the config file.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return ParseConfig(path, data)
}

// ParseConfig decodes data as the config file path. Unknown fields are
// errors; every error names the file and the field.
func ParseConfig(path string, data []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		var root yaml.Node
		_ = yaml.Unmarshal(data, &root)
		return nil, fmt.Errorf("%w: %s: %s", ErrConfig, path, yamlMessage(err, &root))
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	c.File = path
	c.Dir = filepath.Dir(abs)
	var root yaml.Node
	_ = yaml.Unmarshal(data, &root)
	c.setDefaults()
	if c.Notify.Retries == 0 && !hasYAMLKey(&root, "notify", "retries") {
		c.Notify.Retries = 3 // unset; an explicit 0 turns retries off
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// yamlMessage rewrites yaml.v3's "line N: ..." messages to name the field
// at that line as well.
func yamlMessage(err error, root *yaml.Node) string {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return strings.TrimPrefix(err.Error(), "yaml: ")
	}
	msgs := make([]string, len(te.Errors))
	for i, m := range te.Errors {
		msgs[i] = m
		var line int
		if strings.Contains(m, " not found in type ") {
			continue // names the unknown field already
		}
		if _, err := fmt.Sscanf(m, "line %d:", &line); err == nil {
			if f := fieldAt(root, line, ""); f != "" {
				msgs[i] = f + ": " + m
			}
		}
	}
	return strings.Join(msgs, "; ")
}

// hasYAMLKey reports whether the document sets the nested key path.
func hasYAMLKey(n *yaml.Node, path ...string) bool {
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	for _, k := range path {
		if n.Kind != yaml.MappingNode {
			return false
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				next = n.Content[i+1]
			}
		}
		if next == nil {
			return false
		}
		n = next
	}
	return true
}

// fieldAt returns the dotted path of the key whose value starts at line.
func fieldAt(n *yaml.Node, line int, prefix string) string {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if f := fieldAt(c, line, prefix); f != "" {
				return f
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			path := k.Value
			if prefix != "" {
				path = prefix + "." + k.Value
			}
			if f := fieldAt(v, line, path); f != "" {
				return f
			}
			if k.Line == line || v.Line == line {
				return path
			}
		}
	}
	return ""
}

func (c *Config) setDefaults() {
	if c.Repo.Branch == "" {
		c.Repo.Branch = "main"
	}
	if c.Repo.Path == "" {
		c.Repo.Path = "services"
	}
	if c.Repo.Poll == "" {
		c.Repo.Poll = "@every 30s"
	}
	if c.Host == "" {
		// The short name: FreeBSD's hostname is usually a FQDN, manifests'
		// hosts lists name machines.
		h, _ := os.Hostname()
		c.Host, _, _ = strings.Cut(h, ".")
	}
	if c.Runtime == "" {
		c.Runtime = "process"
		if runtime.GOOS == "freebsd" {
			c.Runtime = "jail"
		}
	}
	if c.StateDir == "" {
		c.StateDir = "/var/db/jailkeeper"
	}
	j := &c.Jails
	def(&j.Dataset, "zroot/jails")
	def(&j.Root, "/usr/local/jails")
	def(&j.Template, "14.3-RELEASE")
	def(&j.Interface, "lo1")
	def(&j.Pool, "172.16.0.0/12")
	def(&j.ConfDir, "/etc/jail.conf.d")
	def(&c.Process.Root, filepath.Join(c.StateDir, "releases"))
	def(&c.Process.Pool, "127.77.0.0/16")
	def(&c.Process.TemplateName, process.DefaultTemplateName)
	def(&c.Caddy.Admin, "unix//var/run/caddy/admin.sock")
	def(&c.Caddy.Server, "jailkeeper")
	if len(c.Caddy.Listen) == 0 {
		c.Caddy.Listen = []string{":8080"}
	}
	def(&c.Caddy.UpstreamDir, filepath.Join(c.StateDir, "upstreams"))
	def(&c.Listen, "127.0.0.1:9180")
	if c.Parallel == 0 {
		c.Parallel = 4
	}
	if c.Notify.Timeout == 0 {
		c.Notify.Timeout = 5 * time.Second
	}
	def(&c.Artifacts.CacheMax, "2G")
	def(&c.ControlSocket, DefaultControlSocket)
}

// parseBytes reads a size: a whole number of bytes, or one with a K, M, G
// or T suffix (powers of 1024).
func parseBytes(s string) (int64, error) {
	num, unit := s, int64(1)
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'K', 'k':
			num, unit = s[:n-1], 1<<10
		case 'M', 'm':
			num, unit = s[:n-1], 1<<20
		case 'G', 'g':
			num, unit = s[:n-1], 1<<30
		case 'T', 't':
			num, unit = s[:n-1], 1<<40
		}
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v < 0 || v > (1<<62)/unit {
		return 0, fmt.Errorf("%q is not a size such as 2G, 500M or a number of bytes", s)
	}
	return v * unit, nil
}

func def(s *string, v string) {
	if *s == "" {
		*s = v
	}
}

func (c *Config) validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s: %s: %s", ErrConfig, c.File, field, fmt.Sprintf(format, args...)))
	}
	if c.Repo.URL == "" {
		bad("repo.url", "is required")
	}
	if _, err := cron.ParseStandard(c.Repo.Poll); err != nil {
		bad("repo.poll", "%v", err)
	}
	switch c.Runtime {
	case "jail", "process":
	default:
		bad("runtime", "%q is not jail or process", c.Runtime)
	}
	if !filepath.IsAbs(c.StateDir) {
		bad("state_dir", "%q is not an absolute path", c.StateDir)
	}
	if d := c.Caddy.UpstreamDir; !filepath.IsAbs(d) || filepath.Clean(d) != d || strings.ContainsAny(d, "{}\\") {
		bad("caddy.upstream_dir", "%q is not an absolute, clean path without '{', '}' or '\\'", d)
	}
	if _, err := netip.ParsePrefix(c.Jails.Pool); err != nil {
		bad("jails.pool", "%v", err)
	}
	for i, r := range c.Jails.Resolvers {
		if err := validResolver(r); err != nil {
			bad(fmt.Sprintf("jails.resolvers[%d]", i), "%v", err)
		}
	}
	if p, err := netip.ParsePrefix(c.Process.Pool); err != nil {
		bad("process.pool", "%v", err)
	} else if !p.Addr().IsLoopback() {
		bad("process.pool", "%s is not a loopback prefix", p)
	}
	if d := c.Process.Dataset; d != "" {
		if err := release.ValidDataset(d); err != nil {
			bad("process.dataset", "%v", err)
		}
		if c.Process.Template != "" {
			bad("process.template", "a template directory is for copy mode; with process.dataset the template is <dataset>/templates/<template_name>")
		}
	}
	if err := release.ValidTemplate(c.Process.TemplateName); err != nil {
		bad("process.template_name", "%v", err)
	}
	if _, port, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen", "%v", err)
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		bad("listen", "port %q is not a number from 0 to 65535", port)
	}
	if r := c.Artifacts.FileRoot; r != "" && !filepath.IsAbs(r) {
		bad("artifacts.file_root", "%q is not an absolute path", r)
	}
	if n, err := parseBytes(c.Artifacts.CacheMax); err != nil {
		bad("artifacts.cache_max", "%v", err)
	} else {
		c.Artifacts.CacheMaxBytes = n
	}
	if c.Parallel < 1 || c.Parallel > 64 {
		bad("parallel", "%d is not between 1 and 64", c.Parallel)
	}
	if err := c.Policy.Validate(); err != nil {
		for _, e := range strings.Split(err.Error(), "\n") {
			field, msg, _ := strings.Cut(e, ": ")
			bad(field, "%s", msg)
		}
	}
	errs = append(errs, c.validateDefaults()...)
	for _, e := range c.holdErrors() {
		bad(e.field, "%s", e.msg)
	}
	if c.Notify.Retries < 0 {
		bad("notify.retries", "must not be negative")
	}
	c.Defaults.validate(bad)
	c.Rebase.validate(bad)
	if u := c.Notify.URL; u != "" && !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		bad("notify.url", "%q is not an http(s) URL", u)
	}
	return errors.Join(errs...)
}

// SecretsDir is where env_file secrets are read from.
func (c *Config) SecretsDir() string { return filepath.Join(c.Dir, "secrets") }
