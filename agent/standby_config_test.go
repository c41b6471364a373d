package agent

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestConfigDefaultsStandby(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       time.Duration
		err        string
	}{
		{"unset", "", DefaultStandby, ""},
		{"duration", "defaults: {standby: 2m}\n", 2 * time.Minute, ""},
		{"off as 0", "defaults: {standby: 0}\n", 0, ""},
		{"off as 0s", "defaults: {standby: 0s}\n", 0, ""},
		{"negative", "defaults: {standby: -1s}\n", 0, "defaults.standby: -1s is not between 0s and 24h0m0s"},
		{"too long", "defaults: {standby: 25h}\n", 0, "defaults.standby: 25h0m0s is not between"},
		{"not a duration", "defaults: {standby: soon}\n", 0, `defaults.standby: must be a Go duration such as 15m, or 0 to turn standby off, got "soon"`},
		{"unknown key", "defaults: {standbye: 1m}\n", 0, "standbye"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig("/etc/jk.yaml", []byte("repo: {url: file:///srv/deploy.git}\nruntime: process\n"+tc.yaml))
			if tc.err != "" {
				if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want ErrConfig containing %q", err, tc.err)
				}
				if !strings.Contains(err.Error(), "/etc/jk.yaml") {
					t.Errorf("err %v does not name the file", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Defaults.StandbyOrDefault(); got != tc.want {
				t.Errorf("standby = %s, want %s", got, tc.want)
			}
		})
	}
}
