package release

import (
	"fmt"
	"regexp"
	"strings"
)

// labelRE is one DNS label (RFC 1123): letters, digits and '-', 1 to 63
// long, not starting or ending with '-'. Lowercase only: Caddy's host
// matcher compares case-insensitively, so two spellings of one name would
// be two keys here and one host there.
var labelRE = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$`)

// MaxHostname is the longest DNS name, in its text form without the
// trailing dot (RFC 1035 section 2.3.4).
const MaxHostname = 253

// ValidHostname reports whether h is a hostname a service may be routed
// by: one exact, lowercase DNS name without a trailing dot, port or
// brackets. Caddy's host matcher treats "*" labels as wildcards and expands
// {placeholders} at request time; a route with such a pattern would answer
// hosts that belong to another service, and then the order of the routes
// would decide who answers. Nothing that Caddy could read as a pattern
// passes. The error says what is wrong without quoting h.
func ValidHostname(h string) error {
	switch {
	case h == "":
		return fmt.Errorf("is empty")
	case len(h) > MaxHostname:
		return fmt.Errorf("is longer than %d characters", MaxHostname)
	case strings.ContainsAny(h, "*?{}[]"):
		return fmt.Errorf("must be an exact DNS name: no wildcards (*, ?) or placeholders ({...}); list every name the service answers")
	case strings.HasSuffix(h, "."):
		return fmt.Errorf("must not end with a dot")
	case h != strings.ToLower(h):
		return fmt.Errorf("must be lowercase (DNS names are case-insensitive)")
	}
	for l := range strings.SplitSeq(h, ".") {
		if !labelRE.MatchString(l) {
			return fmt.Errorf("must be an exact DNS name: labels of a-z, 0-9 and -, 1-63 long, not starting or ending with -")
		}
	}
	return nil
}
