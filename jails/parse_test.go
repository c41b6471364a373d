package jails_test

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jailkeeper/jailkeeper/jails"
)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "freebsd", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

func TestParseJLS(t *testing.T) {
	kleene := []jails.Jail{{JID: 83, Name: "83", Path: "/zroot/kleene_basejail", State: "ACTIVE", IPv4: addrs("172.17.0.1", "172.17.0.2")}}
	tests := []struct {
		fixture string
		want    []jails.Jail
	}{
		// REAL, with the author's wrap and the trailing "\n}".
		{"jls-libxo-json-v.kleene.raw.txt", kleene},
		{"jls-libxo-json-v.json", kleene},
		// REAL, one line, three jails with IPv6.
		{"jls-libxo-json-v.3jails.json", []jails.Jail{
			{JID: 2, Name: "git7", Hostname: "git7", Path: "/usr/local/bastille/jails/git7/root", State: "ACTIVE", IPv4: addrs("172.16.20.98")},
			{JID: 105, Name: "sto2", Hostname: "sto2", Path: "/usr/local/bastille/jails/sto2/root", State: "ACTIVE", IPv4: addrs("172.16.20.112"), IPv6: addrs("2001:470:e8af:20::532")},
			{JID: 116, Name: "git6", Hostname: "git6", Path: "/usr/local/bastille/jails/git6/root", State: "ACTIVE", IPv4: addrs("172.16.20.99"), IPv6: addrs("2001:470:e8af:20::577")},
		}},
		{"jls-libxo-json-empty.txt", []jails.Jail{}},
		// The default shape: no name, no state, only the first IPv4.
		{"jls-libxo-json-default.DERIVED.json", []jails.Jail{
			{JID: 1, Hostname: "web", Path: "/usr/local/jails/web", IPv4: addrs("172.16.0.2")},
			{JID: 2, Hostname: "db", Path: "/usr/local/jails/db"},
		}},
		// Parameter mode: every value a string, addresses as ip4.addr.
		{"jls-libxo-json-j-params.DERIVED.json", []jails.Jail{
			{JID: 1, Name: "web", Hostname: "web", Path: "/usr/local/jails/web", IPv4: addrs("172.16.0.2", "172.16.0.3")},
		}},
		// Version 1 put IPv6 addresses into ipv4_addrs.
		{"jls-libxo-json-v1.libioc-2017.json", []jails.Jail{
			{JID: 1, Name: "irc", Hostname: "irc", Path: "/usr/jails/irc", State: "ACTIVE", IPv4: addrs("10.0.0.2"), IPv6: addrs("2a03:b0c0:3:d0::3a4d:c002")},
		}},
		{"jls-v-release-dying.DERIVED.json", []jails.Jail{
			{JID: 7, Name: "hello_4b825dc642cb_1a2b3c", Hostname: "hello-4b825dc642cb-1a2b3c", Path: "/usr/local/jails/containers/hello_4b825dc642cb_1a2b3c", State: "DYING", IPv4: addrs("172.16.0.2")},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			got, err := jails.ParseJLS(bytes.NewReader(fixture(t, tt.fixture)))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	if js, err := jails.ParseJLS(bytes.NewReader(fixture(t, "jls-libxo-json-v.json"))); err != nil || js[0].Dying() {
		t.Errorf("ACTIVE jail: %v, Dying %v", err, js[0].Dying())
	}
	// 15.x test expectations: one envelope per line, parameter mode.
	for line := range strings.Lines(string(fixture(t, "jls-libxo-json-params.fbsd15-test.txt"))) {
		if _, err := jails.ParseJLS(strings.NewReader(line)); err != nil {
			t.Errorf("%q: %v", line, err)
		}
	}
}

func TestParseJLSRejects(t *testing.T) {
	for _, in := range []string{
		"",
		`jls: jail "x" not found`,
		`{"__version": "3", "jail-information": {"jail": []}}`,
		`{"jail-information": {"jail": []}}`,
		`{"__version": "2"}`,
		`{"__version": "2", "jail-information": {"jail": [{"jid":"x"}]}}`,
		`{"__version": "2", "jail-information": {"jail": [{"jid":1,"state":"GONE"}]}}`,
		`{"__version": "2", "jail-information": {"jail": [{"jid":1,"ipv4_addrs":["nope"]}]}}`,
		// What a failing jls may leave on stdout: half an envelope.
		`{"__version": "2", "jail-information": {"jail": [`,
	} {
		if _, err := jails.ParseJLS(strings.NewReader(in)); !errors.Is(err, jails.ErrParse) {
			t.Errorf("ParseJLS(%q) = %v, want ErrParse", in, err)
		}
	}
}

func FuzzParseJLS(f *testing.F) {
	for _, name := range []string{
		"jls-libxo-json-v.kleene.raw.txt", "jls-libxo-json-v.json", "jls-libxo-json-v.3jails.json",
		"jls-libxo-json-empty.txt", "jls-libxo-json-default.DERIVED.json", "jls-libxo-json-j-params.DERIVED.json",
		"jls-libxo-json-v1.libioc-2017.json", "jls-v-release-dying.DERIVED.json",
	} {
		f.Add(fixture(f, name))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		js, err := jails.ParseJLS(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, jails.ErrParse) {
				t.Fatalf("error %v is not ErrParse", err)
			}
			return
		}
		for _, j := range js {
			if j.State != "" && j.State != "ACTIVE" && j.State != "DYING" {
				t.Fatalf("state %q accepted", j.State)
			}
			for _, a := range j.IPv4 {
				if !a.Is4() {
					t.Fatalf("IPv4 list holds %s", a)
				}
			}
			for _, a := range j.IPv6 {
				if a.Is4() || a.Is4In6() {
					t.Fatalf("IPv6 list holds %s", a)
				}
			}
		}
	})
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func TestParseIfconfig(t *testing.T) {
	tests := []struct {
		fixture string
		want    []jails.IfAddr
	}{
		{"ifconfig-lo1-14.0.txt", []jails.IfAddr{
			{Interface: "lo1", Prefix: pfx("127.0.2.1/32")}, {Interface: "lo1", Prefix: pfx("127.0.2.2/32")}, {Interface: "lo1", Prefix: pfx("127.0.2.3/32")},
		}},
		{"ifconfig-lo1-12.1.txt", []jails.IfAddr{{Interface: "lo1", Prefix: pfx("172.31.255.17/32")}}},
		// Spaces instead of TABs, /29 then /32s.
		{"ifconfig-lo1-pre12-multialias.txt", []jails.IfAddr{
			{Interface: "lo1", Prefix: pfx("192.168.0.1/29")}, {Interface: "lo1", Prefix: pfx("192.168.0.2/32")},
			{Interface: "lo1", Prefix: pfx("192.168.0.3/32")}, {Interface: "lo1", Prefix: pfx("192.168.0.4/32")},
			{Interface: "lo1", Prefix: pfx("192.168.0.5/32")}, {Interface: "lo1", Prefix: pfx("192.168.0.6/32")},
			{Interface: "lo1", Prefix: pfx("192.168.0.7/32")}, {Interface: "lo1", Prefix: pfx("192.168.0.8/32")},
			{Interface: "lo1", Prefix: pfx("192.168.0.9/32")},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			got, err := jails.ParseIfconfig(bytes.NewReader(fixture(t, tt.fixture)))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	// The renamed interface keeps kernel order (not sorted).
	got, err := jails.ParseIfconfig(bytes.NewReader(fixture(t, "ifconfig-bastille0-14.1.partial.txt")))
	if err != nil || len(got) != 11 || got[2].Prefix != pfx("10.13.0.10/32") || got[0].Interface != "bastille0" {
		t.Errorf("bastille0: %v %v", got, err)
	}
	// Several interfaces, and the -f inet:cidr form.
	two := string(fixture(t, "ifconfig-lo1-12.1.txt")) + "em0: flags=8863<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST> metric 0 mtu 1500\n\tinet 192.0.2.10/24 broadcast 192.0.2.255\n"
	got, err = jails.ParseIfconfig(strings.NewReader(two))
	if err != nil || len(got) != 2 || got[1] != (jails.IfAddr{Interface: "em0", Prefix: pfx("192.0.2.10/24")}) {
		t.Errorf("two interfaces: %v %v", got, err)
	}
	for _, bad := range []string{"\tinet 10.0.0.1 netmask 0xffffffff\n", "lo1: flags=8049<UP>\n\tinet 10.0.0.300 netmask 0xffffffff\n", "lo1: x\n\tinet 10.0.0.1 netmask ffff\n"} {
		if _, err := jails.ParseIfconfig(strings.NewReader(bad)); !errors.Is(err, jails.ErrParse) {
			t.Errorf("ParseIfconfig(%q) = %v, want ErrParse", bad, err)
		}
	}
}

func FuzzParseIfconfig(f *testing.F) {
	for _, name := range []string{"ifconfig-lo1-14.0.txt", "ifconfig-lo1-12.1.txt", "ifconfig-lo1-pre12-multialias.txt", "ifconfig-bastille0-14.1.partial.txt"} {
		f.Add(fixture(f, name))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		as, err := jails.ParseIfconfig(bytes.NewReader(b))
		if err != nil && !errors.Is(err, jails.ErrParse) {
			t.Fatalf("error %v is not ErrParse", err)
		}
		for _, a := range as {
			if a.Interface == "" || !a.Prefix.IsValid() {
				t.Fatalf("bad address %+v", a)
			}
		}
	})
}

func TestParseMounts(t *testing.T) {
	in := strings.ReplaceAll(string(fixture(t, "mount-p-libxo.DERIVED.json")), "@ROOT@", "/j/c/r")
	got, err := jails.ParseMounts(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 7 || got[4] != (jails.Mount{Device: "/var/cache/pkg", Path: "/j/c/r/var/cache/pkg", FSType: "nullfs"}) {
		t.Errorf("got %+v", got)
	}
	plain := `{"mount": {"mounted": [{"special":"devfs","node":"/a b/dev","fstype":"devfs"}]}}`
	if got, err := jails.ParseMounts(strings.NewReader(plain)); err != nil || got[0].Path != "/a b/dev" {
		t.Errorf("mounted list: %v %v", got, err)
	}
	for _, bad := range []string{"", "{}", `{"mount": {"fstab": [{"mntpoint":"relative"}]}}`} {
		if _, err := jails.ParseMounts(strings.NewReader(bad)); !errors.Is(err, jails.ErrParse) {
			t.Errorf("ParseMounts(%q) = %v, want ErrParse", bad, err)
		}
	}
}
