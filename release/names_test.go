package release

import (
	"strings"
	"testing"
)

func TestNames(t *testing.T) {
	sha := "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
	spec := "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	n := Name("hello_api", sha, spec)
	if n != "hello_api_4b825dc642cb_9f86d0" {
		t.Fatalf("Name = %q", n)
	}
	if err := ValidName(n); err != nil {
		t.Fatal(err)
	}
	if got := ServiceOf(n); got != "hello_api" {
		t.Fatalf("ServiceOf = %q", got)
	}
	if len(Name(strings.Repeat("a", 32), sha, spec)) != MaxName {
		t.Fatal("MaxName is not the longest name")
	}
	for _, bad := range []string{"", "Hello_4b825dc642cb_9f86d0", "hello_4b825dc642c_9f86d0", "hello.x_4b825dc642cb_9f86d0", "hello_4b825dc642cb_9f86d0\n"} {
		if ValidName(bad) == nil {
			t.Errorf("ValidName(%q) = nil", bad)
		}
	}
	for _, tc := range []struct {
		name string
		fn   func(string) error
		ok   []string
		bad  []string
	}{
		{"service", ValidService, []string{"a", "hello_2", strings.Repeat("a", 32)}, []string{"", "2a", "a.b", "a-b", "A", strings.Repeat("a", 33)}},
		{"template", ValidTemplate, []string{"14.3-RELEASE", "default", "a_b"}, []string{"", "-x", "a:b", "a/b", "a@b", strings.Repeat("a", 65)}},
		{"dataset", ValidDataset, []string{"tank", "tank/jk", "zroot/jails/x:y"}, []string{"", "tank/", "/tank", "tank//a", "tank/..", "tank@s", "tank/a b", strings.Repeat("a", 256)}},
	} {
		for _, s := range tc.ok {
			if err := tc.fn(s); err != nil {
				t.Errorf("%s %q: %v", tc.name, s, err)
			}
		}
		for _, s := range tc.bad {
			if tc.fn(s) == nil {
				t.Errorf("%s %q accepted", tc.name, s)
			}
		}
	}
}
