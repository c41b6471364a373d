package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// capture keeps the YAML node of a field, so the decoder can tell a missing
// field (nil) from one that is present, check its type itself and report the
// line it is on. yaml.v3 resolves aliases before it calls UnmarshalYAML.
type capture struct{ n *yaml.Node }

func (c *capture) UnmarshalYAML(n *yaml.Node) error {
	c.n = n
	return nil
}

// rawManifest is the manifest as written. Strict decoding into it (yaml.v3
// KnownFields) is what rejects unknown fields; nil means "not in the file".
type rawManifest struct {
	Service   *capture     `yaml:"service"`
	SHA       *capture     `yaml:"sha"`
	Artifact  *rawArtifact `yaml:"artifact"`
	Hostnames *capture     `yaml:"hostnames"`
	Port      *capture     `yaml:"port"`
	Command   *capture     `yaml:"command"`
	Env       *capture     `yaml:"env"`
	EnvFile   *capture     `yaml:"env_file"`
	User      *capture     `yaml:"user"`
	Health    *rawHealth   `yaml:"health"`
	Drain     *capture     `yaml:"drain"`
	Retain    *capture     `yaml:"retain"`
	Hosts     *capture     `yaml:"hosts"`
	Template  *capture     `yaml:"template"`
	Allow     *capture     `yaml:"allow"`
	// The keys below are decoded by convertRollout.
	Data           *capture `yaml:"data"`
	Limits         *capture `yaml:"limits"`
	Standby        *capture `yaml:"standby"`
	Canary         *capture `yaml:"canary"`
	Migrate        *capture `yaml:"migrate"`
	MigrateTimeout *capture `yaml:"migrate_timeout"`
}

type rawArtifact struct {
	URL    *capture `yaml:"url"`
	SHA256 *capture `yaml:"sha256"`
}

type rawHealth struct {
	Path      *capture `yaml:"path"`
	Interval  *capture `yaml:"interval"`
	Timeout   *capture `yaml:"timeout"`
	Threshold *capture `yaml:"threshold"`
	Deadline  *capture `yaml:"deadline"`
	Watch     *capture `yaml:"watch"`
}

// rawTypes maps the raw struct types, as yaml.v3 names them in its
// messages, to the field path they decode and their known keys.
var rawTypes = map[string]struct {
	field string
	keys  []string
}{
	"rawManifest": {"", yamlKeys(reflect.TypeFor[rawManifest]())},
	"rawArtifact": {"artifact", yamlKeys(reflect.TypeFor[rawArtifact]())},
	"rawHealth":   {"health", yamlKeys(reflect.TypeFor[rawHealth]())},
}

func yamlKeys(t reflect.Type) []string {
	var keys []string
	for f := range t.Fields() {
		keys = append(keys, strings.Split(f.Tag.Get("yaml"), ",")[0])
	}
	return keys
}

// Decode decodes and validates one manifest. file is used in messages and
// stored in Service.File. It does not check that the service equals the file
// name, nor anything across manifests: Load does. On any problem it returns
// nil and Errors holding every problem found (errors.Is ErrInvalid).
func Decode(file string, data []byte) (*Service, error) {
	d := decode(file, data)
	if err := asError(d.errs); err != nil {
		return nil, err
	}
	return d.svc, nil
}

// decoder is the state of decoding one file.
type decoder struct {
	file  string
	svc   *Service       // nil when the file is not a mapping at all
	lines map[string]int // field path -> line of its key (or item)
	bad   map[string]bool
	errs  Errors
}

// decode does the work of Decode and keeps what Load needs for its
// cross-file checks: the partly filled Service and the line index.
func decode(file string, data []byte) *decoder {
	d := &decoder{file: file, lines: map[string]int{}, bad: map[string]bool{}}
	if len(data) > MaxFileSize {
		d.errorAt(0, "", "file is larger than %d bytes", MaxFileSize)
		return d
	}
	root := d.parse(data)
	if root == nil {
		return d
	}
	if d.index("", root) {
		// yaml.v3 decodes nothing of a mapping with a duplicate key, and
		// panics on some keys that are not strings. Those are reported;
		// decode the rest without them, so every other problem is reported
		// too. Lines come from the index.
		b, err := yaml.Marshal(root)
		if err != nil {
			d.yamlError(err)
			return d
		}
		data = b
	}

	var raw rawManifest
	if err := strictDecode(data, &raw); err != nil {
		d.yamlError(err)
	}
	d.svc = d.convert(&raw)
	check(d.svc, func(field, format string, args ...any) {
		if !d.isBad(field) {
			d.errorf(field, format, args...)
		}
	})
	return d
}

// strictDecode decodes the first document of data into v, refusing fields
// that v does not have. yaml.v3 can panic on odd input (merge keys with
// keys that are not strings); a bad commit must not take the agent down, so
// a panic becomes an error.
func strictDecode(data []byte, v any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("cannot decode this YAML: %v", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	return dec.Decode(v)
}

// parse reads the single YAML document and returns its top-level mapping,
// or nil after reporting why there is none.
func (d *decoder) parse(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	switch err := dec.Decode(&doc); {
	case errors.Is(err, io.EOF):
		d.errorAt(0, "", "file is empty; a manifest needs at least service, sha, artifact, hostnames and port")
		return nil
	case err != nil:
		d.yamlError(err)
		return nil
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		d.yamlError(err)
		return nil
	default:
		d.errorAt(next.Line, "", "more than one YAML document; a manifest file holds exactly one")
		return nil
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind == yaml.AliasNode && root.Alias != nil {
		root = root.Alias
	}
	if root.Kind != yaml.MappingNode {
		d.errorAt(root.Line, "", "a manifest must be a mapping of fields (service: ..., sha: ...), got %s", describe(root))
		return nil
	}
	return root
}

// index records the line of every key and list item under path. It reports
// duplicate keys and keys that are not strings, and removes them from the
// tree (keeping the first of duplicates); it returns whether it removed any. It does not follow aliases, so a document
// full of them costs no more than its size.
func (d *decoder) index(path string, n *yaml.Node) (removed bool) {
	switch n.Kind {
	case yaml.MappingNode:
		first := map[string]int{}
		kept := n.Content[:0]
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				d.errorAt(k.Line, path, "keys must be plain strings, got %s", describe(k))
				removed = true
				continue
			}
			f := join(path, k.Value)
			if line, dup := first[k.Value]; dup && k.Value != "<<" {
				d.errorAt(k.Line, f, "duplicate key (first set on line %d)", line)
				removed = true
				continue
			}
			kept = append(kept, k, v)
			if k.Value == "<<" { // a merge key; yaml.v3 merges it
				continue
			}
			first[k.Value] = k.Line
			d.lines[f] = k.Line
			removed = d.index(f, v) || removed
		}
		n.Content = kept
	case yaml.SequenceNode:
		for i, item := range n.Content {
			f := fmt.Sprintf("%s[%d]", path, i)
			d.lines[f] = item.Line
			removed = d.index(f, item) || removed
		}
	}
	return removed
}

// lineOr returns the indexed line of field, or line when it has none.
func (d *decoder) lineOr(field string, line int) int {
	if l, ok := d.lines[field]; ok {
		return l
	}
	return line
}

func (d *decoder) hasErrorAt(line int) bool {
	return line > 0 && slices.ContainsFunc(d.errs, func(e *Error) bool { return e.Line == line })
}

// convert builds the Service from what was written, checks the YAML type of
// every field and fills in defaults. Semantic checks are left to check.
func (d *decoder) convert(raw *rawManifest) *Service {
	s := &Service{File: d.file}
	s.Service, _ = d.str("service", raw.Service)
	s.SHA, _ = d.str("sha", raw.SHA)
	if raw.Artifact != nil {
		s.Artifact.URL, _ = d.str("artifact.url", raw.Artifact.URL)
		s.Artifact.SHA256, _ = d.str("artifact.sha256", raw.Artifact.SHA256)
	} else if !d.isBad("artifact") {
		d.errorf("artifact", "is required: a mapping with url and sha256")
	}
	s.Hostnames, _ = d.strList("hostnames", raw.Hostnames)
	if port, ok := d.integer("port", raw.Port); ok {
		if port == 0 {
			d.errorf("port", "must be between 1 and 65535, got 0")
		}
		s.Port = port
	}
	if s.Service != "" {
		s.Command = DefaultCommand(s.Service)
	} else {
		d.bad["command"] = true // the default needs the service name
	}
	if cmd, ok := d.strList("command", raw.Command); ok {
		s.Command = cmd
	}
	if env, _ := d.strMap("env", raw.Env); len(env) > 0 {
		s.Env = env
	}
	if f, ok := d.str("env_file", raw.EnvFile); ok {
		if f == "" {
			d.errorf("env_file", "must not be empty; leave env_file out when there are no secrets")
		}
		s.EnvFile = f
	}
	s.User = DefaultUser
	if u, ok := d.str("user", raw.User); ok {
		if u == "" {
			d.errorf("user", "must not be empty; leave user out for the default, %s", DefaultUser)
		}
		s.User = u
	}
	s.Health = DefaultHealth()
	if h := raw.Health; h != nil {
		if v, ok := d.str("health.path", h.Path); ok {
			s.Health.Path = v
		}
		if v, ok := d.duration("health.interval", h.Interval); ok {
			s.Health.Interval = v
		}
		if v, ok := d.duration("health.timeout", h.Timeout); ok {
			s.Health.Timeout = v
		}
		if v, ok := d.integer("health.threshold", h.Threshold); ok {
			s.Health.Threshold = v
		}
		if v, ok := d.duration("health.deadline", h.Deadline); ok {
			s.Health.Deadline = v
		}
		if v, ok := d.duration("health.watch", h.Watch); ok {
			s.Health.Watch = v
		}
	}
	s.Drain = DefaultDrain
	if v, ok := d.duration("drain", raw.Drain); ok {
		s.Drain = v
	}
	s.Retain = DefaultRetain
	if v, ok := d.integer("retain", raw.Retain); ok {
		s.Retain = v
	}
	if hosts, ok := d.strList("hosts", raw.Hosts); ok {
		if len(hosts) == 0 {
			d.errorf("hosts", "must name at least one agent host; leave hosts out to deploy on every host")
		}
		s.Hosts = hosts
	}
	if t, ok := d.str("template", raw.Template); ok {
		if t == "" {
			d.errorf("template", "must not be empty; leave template out for the agent's default")
		}
		s.Template = t
	}
	if allow, ok := d.strList("allow", raw.Allow); ok && len(allow) > 0 {
		s.Allow = allow
	}
	d.convertRollout(raw, s)
	return s
}

// str returns a scalar field's text. ok is false when the field is missing
// or not a scalar (reported).
func (d *decoder) str(field string, c *capture) (string, bool) {
	if c == nil || d.isBad(field) {
		return "", false
	}
	return d.scalar(field, c.n)
}

func (d *decoder) scalar(field string, n *yaml.Node) (string, bool) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() == "!!null" {
		d.errorAtNode(n, field, "must be a single value, got %s", describe(n))
		return "", false
	}
	return n.Value, true
}

// integer returns an integer field. ok is false when it is missing or not
// an integer (reported).
func (d *decoder) integer(field string, c *capture) (int, bool) {
	if c == nil || d.isBad(field) {
		return 0, false
	}
	var i int
	if c.n.Kind != yaml.ScalarNode || c.n.ShortTag() != "!!int" || c.n.Decode(&i) != nil {
		d.errorAtNode(c.n, field, "must be an integer, got %s", describe(c.n))
		return 0, false
	}
	return i, true
}

// duration returns a Go duration field ("1s", "1m30s", "0").
func (d *decoder) duration(field string, c *capture) (time.Duration, bool) {
	v, ok := d.str(field, c)
	if !ok {
		return 0, false
	}
	dur, err := time.ParseDuration(v)
	if err != nil {
		d.errorAtNode(c.n, field, "must be a Go duration such as 500ms, 10s or 1m30s, got %q", v)
		return 0, false
	}
	return dur, true
}

// strList returns a list of scalars. ok is false when it is missing or not
// a list of scalars (reported, per item where it can).
func (d *decoder) strList(field string, c *capture) ([]string, bool) {
	if c == nil || d.isBad(field) {
		return nil, false
	}
	if c.n.Kind != yaml.SequenceNode {
		d.errorAtNode(c.n, field, "must be a list such as [a, b], got %s", describe(c.n))
		return nil, false
	}
	list := make([]string, 0, len(c.n.Content))
	ok := true
	for i, item := range c.n.Content {
		v, good := d.scalar(fmt.Sprintf("%s[%d]", field, i), item)
		ok = ok && good
		list = append(list, v)
	}
	if !ok {
		d.bad[field] = true
	}
	return list, ok
}

// strMap returns a mapping of names to scalars.
func (d *decoder) strMap(field string, c *capture) (map[string]string, bool) {
	if c == nil || d.isBad(field) {
		return nil, false
	}
	if c.n.Kind != yaml.MappingNode {
		d.errorAtNode(c.n, field, "must be a mapping such as {NAME: value}, got %s", describe(c.n))
		return nil, false
	}
	m := make(map[string]string, len(c.n.Content)/2)
	ok := true
	for i := 0; i+1 < len(c.n.Content); i += 2 {
		k, v := c.n.Content[i], c.n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			ok = false // reported by index
			continue
		}
		f := join(field, k.Value)
		if _, dup := m[k.Value]; dup {
			ok = false // reported by index
			continue
		}
		val, good := d.scalar(f, v)
		ok = ok && good
		m[k.Value] = val
	}
	if !ok {
		d.bad[field] = true
	}
	return m, ok
}

// errorf reports a problem with field on the line of the field or, when it
// has none (it is missing), of its nearest parent that has one.
func (d *decoder) errorf(field, format string, args ...any) {
	line := 0
	for f := field; f != ""; f = parent(f) {
		if l, ok := d.lines[f]; ok {
			line = l
			break
		}
	}
	d.errorAt(line, field, format, args...)
}

func (d *decoder) errorAtNode(n *yaml.Node, field, format string, args ...any) {
	if l, ok := d.lines[field]; ok {
		d.errorAt(l, field, format, args...)
		return
	}
	d.errorAt(n.Line, field, format, args...)
}

func (d *decoder) errorAt(line int, field, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
	if field != "" {
		d.bad[field] = true
	}
}

// isBad reports whether field or one of its parents has a problem already,
// so one mistake gives one message.
func (d *decoder) isBad(field string) bool {
	for f := field; f != ""; f = parent(f) {
		if d.bad[f] {
			return true
		}
	}
	return false
}

// join appends a key to a field path.
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// parent returns the path one level up: "health" for "health.timeout",
// "hostnames" for "hostnames[1]", "" at the top.
func parent(field string) string {
	i := strings.LastIndexAny(field, ".[")
	if i < 0 {
		return ""
	}
	return field[:i]
}

// describe names what a node is, for messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		if n.ShortTag() == "!!null" {
			return "nothing (null)"
		}
		v := n.Value
		if len(v) > 40 {
			v = v[:40] + "..."
		}
		return fmt.Sprintf("%s %q", tagName(strings.TrimPrefix(n.ShortTag(), "!!")), v)
	}
	return "an empty document"
}

func tagName(tag string) string {
	switch tag {
	case "str":
		return "string"
	case "int":
		return "integer"
	case "bool":
		return "boolean"
	case "seq":
		return "list"
	case "map":
		return "mapping"
	case "null":
		return "null"
	}
	return tag
}
