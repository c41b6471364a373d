package jails

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestProcessParseEnv(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr string
	}{
		{"", nil, ""},
		{"A=1\n\n# c\n  # indented comment\nB=x=y\r\nexport C= spaced \nD=", []string{"A=1", "B=x=y", "C= spaced ", "D="}, ""},
		{"A=1\nsecret-without-equals\n", nil, "line 2: want KEY=VALUE"},
		{"1A=x", nil, "line 1: invalid variable name"},
		{"A=x\x00y", nil, "line 1: NUL in value"},
		{"A=1\nLD_PRELOAD=/tmp/evil.so", nil, "line 2: variable LD_PRELOAD: LD_* variables are not allowed: they change how every program is loaded"},
		{"export LD_LIBRARY_PATH=/tmp", nil, "line 1: variable LD_LIBRARY_PATH: LD_* variables are not allowed: they change how every program is loaded"},
		{"ld_preload=lower case is no loader variable\nOLD_X=1", []string{"ld_preload=lower case is no loader variable", "OLD_X=1"}, ""},
	}
	for _, tt := range tests {
		got, err := processParseEnv([]byte(tt.in))
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("processParseEnv(%q) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("processParseEnv(%q): %v", tt.in, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("processParseEnv(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
}

func TestProcessCheckEnvKey(t *testing.T) {
	for k, wantErr := range map[string]bool{
		"GREETING": false, "_x": false, "OLD_LD_": false, "ld_preload": false,
		"LD_PRELOAD": true, "LD_": true, "LD_32_LIBRARY_PATH": true, "1A": true, "A-B": true, "": true,
	} {
		if err := processCheckEnvKey(k); (err != nil) != wantErr {
			t.Errorf("processCheckEnvKey(%q) = %v, want error %v", k, err, wantErr)
		}
	}
}

func TestProcessPickAddr(t *testing.T) {
	a := netip.MustParseAddr
	tests := []struct {
		pool string
		used []string
		want string
	}{
		{"127.77.0.0/16", nil, "127.77.0.2"},
		{"127.77.0.0/16", []string{"127.77.0.2", "127.77.0.4"}, "127.77.0.3"},
		{"127.77.0.0/16", []string{"127.77.0.2", "127.77.0.3"}, "127.77.0.4"},
		{"127.77.0.0/30", []string{"127.77.0.2"}, "127.77.0.3"},
		{"127.77.0.0/30", []string{"127.77.0.2", "127.77.0.3"}, ""},
		{"127.255.255.252/30", []string{"127.255.255.254"}, "127.255.255.255"},
		{"255.255.255.252/30", []string{"255.255.255.254", "255.255.255.255"}, ""},
	}
	for _, tt := range tests {
		used := map[netip.Addr]bool{}
		for _, u := range tt.used {
			used[a(u)] = true
		}
		got, err := processPickAddr(netip.MustParsePrefix(tt.pool), used)
		if tt.want == "" {
			if !errors.Is(err, ErrProcessPoolExhausted) {
				t.Errorf("processPickAddr(%s, %v) = %v, %v; want ErrProcessPoolExhausted", tt.pool, tt.used, got, err)
			}
			continue
		}
		if err != nil || got != a(tt.want) {
			t.Errorf("processPickAddr(%s, %v) = %v, %v; want %s", tt.pool, tt.used, got, err, tt.want)
		}
	}
}
