package redact

import (
	"strings"
	"testing"
	"unicode"
)

func TestURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://user:pa55word@git.example.com/ops/deploy.git", "https://REDACTED@git.example.com/ops/deploy.git"},
		{"https://ghp_T0KEN@github.com/ops/deploy.git", "https://REDACTED@github.com/ops/deploy.git"},
		{"https://hooks.example.com/x?token=T0KEN&a=b", "https://hooks.example.com/x?REDACTED"},
		{"https://ci.example.com/a.tar.gz#T0KEN", "https://ci.example.com/a.tar.gz#REDACTED"},
		{"http://127.0.0.1:8081/hello", "http://127.0.0.1:8081/hello"},
		{"ssh://git@git.example.com/ops/deploy.git", "ssh://git@git.example.com/ops/deploy.git"},
		{"ssh://git:pa55word@git.example.com/d.git", "ssh://git:REDACTED@git.example.com/d.git"},
		{"file:///srv/deploy.git", "file:///srv/deploy.git"},
		{"git@github.com:ops/deploy.git", "REDACTED@github.com:ops/deploy.git"},
		{"T0KEN@github.com:ops/deploy.git?x=1", "REDACTED@github.com:ops/deploy.git?REDACTED"},
		{"http://us%zzer:pa55word@host/", "http://REDACTED@host/"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := URL(tt.in); got != tt.want {
			t.Errorf("URL(%q) = %q, want %q", tt.in, got, tt.want)
		}
		for _, sec := range []string{"pa55word", "T0KEN", "us%zzer"} {
			if strings.Contains(URL(tt.in), sec) {
				t.Errorf("URL(%q) = %q keeps %q", tt.in, URL(tt.in), sec)
			}
		}
	}
}

func TestText(t *testing.T) {
	in := `post https://u:pa55word@h/x?token=T0KEN: Get "https://u:***@h/x?token=T0KEN/info/refs?service=git-upload-pack": refused`
	got := Text(in)
	for _, sec := range []string{"pa55word", "T0KEN", "u:"} {
		if strings.Contains(got, sec) {
			t.Errorf("Text = %q keeps %q", got, sec)
		}
	}
	if want := `post https://REDACTED@h/x?REDACTED: Get "https://REDACTED@h/x?REDACTED": refused`; got != want {
		t.Errorf("Text =\n%q, want\n%q", got, want)
	}
	if s := "no url here: a:b@c"; Text(s) != s {
		t.Errorf("Text changed %q", s)
	}
}

func TestPrintable(t *testing.T) {
	tests := []struct{ in, want string }{
		{"503 \x1b]0;owned\x07\x1b[2J\x1b[31mdown\x7f\u009b31m", "503 ]0;owned[2J[31mdown31m"},
		{"a\nb\tc\r", "a b c "},
		{"héllo wörld ✓ 日本", "héllo wörld ✓ 日本"},
		{"abc\u202edcba", "abcdcba"},
		{"bad \xff byte", "bad \ufffd byte"},
		{"", ""},
	}
	for _, tt := range tests {
		got := Printable(tt.in)
		if got != tt.want {
			t.Errorf("Printable(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if strings.ContainsFunc(got, unicode.IsControl) {
			t.Errorf("Printable(%q) = %q keeps a control character", tt.in, got)
		}
	}
}

func FuzzPrintable(f *testing.F) {
	f.Add("\x1b[31mred\x1b[0m")
	f.Add("\u009b\u202e\xff")
	f.Fuzz(func(t *testing.T, s string) {
		got := Printable(s)
		if strings.ContainsFunc(got, func(r rune) bool { return unicode.IsControl(r) || bidi(r) }) {
			t.Errorf("Printable(%q) = %q keeps a control character", s, got)
		}
	})
}
