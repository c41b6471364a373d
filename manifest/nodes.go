package manifest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// This file decodes the values of nested keys (data, limits, canary) from
// their YAML nodes, as decode.go does for the top-level ones from
// captures: every problem is reported with its field and line.

// resolve follows an alias to the node it names.
func resolve(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

// fields returns the keys of the mapping n, found at field, with their
// value nodes. Merge keys (`<<`) merge as YAML says: a key written in the
// mapping wins over a merged one, and an earlier merge over a later one.
// A node that is not a mapping and keys that are not in known are
// reported (with a suggestion for a likely typo); ok is false then.
func (d *decoder) fields(field string, n *yaml.Node, known []string) (map[string]*yaml.Node, bool) {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		d.errorAtNode(n, field, "must be a mapping of %s, got %s", strings.Join(known, ", "), describe(n))
		return nil, false
	}
	out := map[string]*yaml.Node{}
	ok := true
	// A mapping merged twice adds nothing the first time did not; walking
	// it again would let aliases make the work exponential, or loop.
	seen := map[*yaml.Node]bool{}
	var walk func(m *yaml.Node)
	walk = func(m *yaml.Node) {
		if seen[m] {
			return
		}
		seen[m] = true
		var merges []*yaml.Node
		for i := 0; i+1 < len(m.Content); i += 2 {
			k, v := m.Content[i], m.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				ok = false // index reported it
				continue
			}
			if k.Value == "<<" {
				merges = append(merges, resolve(v))
				continue
			}
			if _, set := out[k.Value]; set {
				continue
			}
			f := join(field, k.Value)
			if !slices.Contains(known, k.Value) {
				ok = false
				d.unknownField(d.lineOr(f, k.Line), field, k.Value, known)
				continue
			}
			out[k.Value] = v
		}
		for _, mv := range merges {
			var maps []*yaml.Node
			switch mv.Kind {
			case yaml.MappingNode:
				maps = []*yaml.Node{mv}
			case yaml.SequenceNode:
				for _, item := range mv.Content {
					maps = append(maps, resolve(item))
				}
			}
			for _, mm := range maps {
				if mm.Kind != yaml.MappingNode {
					d.errorAtNode(mm, field, "a merge key (<<) must merge a mapping, got %s", describe(mm))
					ok = false
					continue
				}
				walk(mm)
			}
		}
	}
	walk(n)
	return out, ok
}

// unknownField reports key, which is not one of the known keys of the
// mapping at field.
func (d *decoder) unknownField(line int, field, key string, known []string) {
	f := join(field, key)
	s := suggest(key, known)
	if s == "" {
		d.errorAt(line, f, "unknown field; known fields here: %s", strings.Join(known, ", "))
		return
	}
	d.errorAt(line, f, "unknown field; did you mean %q?", s)
	if sf := join(field, s); d.lines[sf] == 0 {
		d.bad[sf] = true // the typo is why it is missing
	}
}

// nodeStr returns the text of a scalar node; ok is false (reported) when
// it is not a single value.
func (d *decoder) nodeStr(field string, n *yaml.Node) (string, bool) {
	if d.isBad(field) {
		return "", false
	}
	return d.scalar(field, n)
}

// nodeInt returns an integer node.
func (d *decoder) nodeInt(field string, n *yaml.Node) (int, bool) {
	if d.isBad(field) {
		return 0, false
	}
	n = resolve(n)
	var i int
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&i) != nil {
		d.errorAtNode(n, field, "must be an integer, got %s", describe(n))
		return 0, false
	}
	return i, true
}

// nodeDuration returns a Go duration node ("1s", "1m30s", "0").
func (d *decoder) nodeDuration(field string, n *yaml.Node) (time.Duration, bool) {
	v, ok := d.nodeStr(field, n)
	if !ok {
		return 0, false
	}
	dur, err := time.ParseDuration(v)
	if err != nil {
		d.errorAtNode(n, field, "must be a Go duration such as 500ms, 10s or 1m30s, got %q", v)
		return 0, false
	}
	return dur, true
}

// nodeSize returns a size in bytes: an integer, or a string such as 512M
// (ParseSize).
func (d *decoder) nodeSize(field string, n *yaml.Node) (int64, bool) {
	if d.isBad(field) {
		return 0, false
	}
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!int" && n.ShortTag() != "!!str") {
		d.errorAtNode(n, field, "must be a size such as 512M or 10G, got %s", describe(n))
		return 0, false
	}
	v, err := ParseSize(n.Value)
	switch {
	case errors.Is(err, errSize):
		d.errorAtNode(n, field, "must be a size such as 512M or 10G, got %q: a whole number of bytes, optionally with a K, M, G, T, P or E suffix (powers of 1024)", truncate(n.Value))
		return 0, false
	case err != nil:
		d.errorAtNode(n, field, "must be a size such as 512M or 10G: %v", err)
		return 0, false
	}
	return v, true
}

// nodeList returns the items of a list node.
func (d *decoder) nodeList(field string, n *yaml.Node, want string) ([]*yaml.Node, bool) {
	if d.isBad(field) {
		return nil, false
	}
	n = resolve(n)
	if n.Kind != yaml.SequenceNode {
		d.errorAtNode(n, field, "must be a list such as %s, got %s", want, describe(n))
		return nil, false
	}
	return n.Content, true
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// item is the field path of the i-th item of a list field.
func item(field string, i int) string { return fmt.Sprintf("%s[%d]", field, i) }
