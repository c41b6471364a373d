package manifest

import (
	"errors"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// yaml.v3's messages, as its decoder words them (yaml.v3 decode.go).
var (
	reLine    = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	reUnknown = regexp.MustCompile(`^field (.+) not found in type manifest\.(\w+)$`)
	reType    = regexp.MustCompile("^cannot unmarshal !!(\\w+)(?: `.*`)? into manifest\\.(\\w+)$")
	reDup     = regexp.MustCompile(`^mapping key .* already defined at line \d+$`)
)

// yamlError turns yaml.v3's errors into Errors with a line and a field.
func (d *decoder) yamlError(err error) {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		line, msg := splitLine(err.Error())
		d.errorAt(line, "", "%s", msg)
		return
	}
	for _, m := range te.Errors {
		line, msg := splitLine(m)
		switch {
		case reDup.MatchString(msg):
			// index has reported it, with the field.
		case reUnknown.MatchString(msg):
			sub := reUnknown.FindStringSubmatch(msg)
			rt := rawTypes[sub[2]]
			f := join(rt.field, sub[1])
			line = d.lineOr(f, line)
			if s := suggest(sub[1], rt.keys); s != "" {
				d.errorAt(line, f, "unknown field; did you mean %q?", s)
				if sf := join(rt.field, s); d.lines[sf] == 0 {
					d.bad[sf] = true // the typo is why it is missing
				}
			} else {
				d.errorAt(line, f, "unknown field; known fields here: %s", strings.Join(rt.keys, ", "))
			}
		case reType.MatchString(msg):
			sub := reType.FindStringSubmatch(msg)
			rt := rawTypes[sub[2]]
			d.errorAt(d.lineOr(rt.field, line), rt.field, "must be a mapping of %s, got a %s", strings.Join(rt.keys, ", "), tagName(sub[1]))
		case d.hasErrorAt(line):
			// Another message is about this line already, such as a
			// key that is not a string.
		default:
			d.errorAt(line, "", "%s", msg)
		}
	}
}

// splitLine takes the line number off a yaml.v3 message. yaml.v3 counts
// from 0 in its parser's messages ("did not find expected ...") and from 1
// everywhere else; the result counts from 1.
func splitLine(msg string) (int, string) {
	msg = strings.TrimPrefix(msg, "yaml: ")
	if m := reLine.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		if strings.HasPrefix(m[2], "did not find expected") {
			n++
		}
		return n, m[2]
	}
	return 0, msg
}
