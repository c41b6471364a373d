// Package redact makes text safe to show: in logs, in the agent's /status,
// in notify events and on an operator's terminal.
//
// URL and Text hide what a URL may carry as a secret (userinfo, query,
// fragment); Printable removes the control characters that text written by
// an app or a remote side (a health answer's reason phrase, a git or
// artifact server's error) may hold, so that it cannot move the cursor,
// retitle a window or hide what follows on a terminal.
package redact

import (
	"net/url"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Hidden stands in for what was removed.
const Hidden = "REDACTED"

// URL returns raw with its secrets hidden: the password, the user name of
// every scheme but ssh (an https user name is often a token; ssh's "git" is
// none), the query and the fragment. Scheme, host, port and path stay, so
// the message still says where. Text that does not parse as a URL keeps
// nothing before an "@" and nothing after a "?". Safe for any input.
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" {
		return fallback(raw)
	}
	if u.User != nil {
		if name := u.User.Username(); u.Scheme == "ssh" && name != "" {
			if _, hasPw := u.User.Password(); hasPw {
				u.User = url.UserPassword(name, Hidden)
			} else {
				u.User = url.User(name)
			}
		} else {
			u.User = url.User(Hidden)
		}
	}
	if u.RawQuery != "" || u.ForceQuery {
		u.RawQuery = Hidden
		u.ForceQuery = false
	}
	if u.Fragment != "" {
		u.Fragment = Hidden
		u.RawFragment = ""
	}
	return u.String()
}

func fallback(raw string) string {
	if i := strings.IndexAny(raw, "?#"); i >= 0 {
		raw = raw[:i+1] + Hidden
	}
	if i := strings.LastIndex(raw, "@"); i >= 0 {
		scheme := ""
		if j := strings.Index(raw, "://"); j >= 0 && j < i {
			scheme = raw[:j+3]
		}
		raw = scheme + Hidden + raw[i:]
	}
	return raw
}

// urlRE finds URLs in free text: a scheme, "://", and everything up to a
// space or a quote.
var urlRE = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://[^\s"'<>` + "`" + `]+`)

// Text returns s with every URL in it passed through URL: error messages
// of libraries (net/http's *url.Error, go-git's) quote the URL they were
// given, query and all.
func Text(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	return urlRE.ReplaceAllStringFunc(s, func(m string) string {
		// Punctuation that ends a sentence or a clause ends the URL.
		trimmed := strings.TrimRight(m, ":,.;)")
		return URL(trimmed) + m[len(trimmed):]
	})
}

// Printable returns s without control characters: C0 (ESC, BEL, ...), DEL,
// C1 and the bidirectional overrides that reorder what a terminal shows.
// A line break or tab becomes a space, so that joined messages stay
// apart; an invalid UTF-8 byte becomes U+FFFD. Printable Unicode is kept.
func Printable(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) || bidi(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		switch {
		case r == '\n' || r == '\t' || r == '\r':
			b.WriteByte(' ')
		case unicode.IsControl(r) || bidi(r):
		default:
			b.WriteRune(r) // RuneError is written as U+FFFD
		}
	}
	return b.String()
}

// bidi reports the explicit directional embeddings, overrides and
// isolates (U+202A..U+202E, U+2066..U+2069).
func bidi(r rune) bool {
	return (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069)
}

// Shown is Printable(Text(s)): the form of any text from elsewhere that is
// about to be shown.
func Shown(s string) string { return Printable(Text(s)) }
