package release

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseEnvFile(t *testing.T) {
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
		got, err := ParseEnvFile([]byte(tt.in))
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("ParseEnvFile(%q) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseEnvFile(%q): %v", tt.in, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ParseEnvFile(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
}

func TestValidEnvKey(t *testing.T) {
	for k, wantErr := range map[string]bool{
		"GREETING": false, "_x": false, "OLD_LD_": false, "ld_preload": false,
		"LD_PRELOAD": true, "LD_": true, "LD_32_LIBRARY_PATH": true, "1A": true, "A-B": true, "": true,
	} {
		if err := ValidEnvKey(k); (err != nil) != wantErr {
			t.Errorf("ValidEnvKey(%q) = %v, want error %v", k, err, wantErr)
		}
	}
}
