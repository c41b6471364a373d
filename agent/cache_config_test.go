package agent

import (
	"errors"
	"strings"
	"testing"
)

func TestConfigCacheMax(t *testing.T) {
	tests := []struct {
		value   string
		want    int64
		wantErr bool
	}{
		{"", 2 << 30, false},
		{"cache_max: 0", 0, false},
		{"cache_max: 500M", 500 << 20, false},
		{"cache_max: 3g", 3 << 30, false},
		{"cache_max: 1048576", 1 << 20, false},
		{"cache_max: -1", 0, true},
		{"cache_max: 2GB", 0, true},
		{"cache_max: lots", 0, true},
		{"cache_max: 99999999999T", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			c, err := ParseConfig("j.yaml", []byte("repo: {url: file:///srv/deploy.git}\nartifacts: {"+tt.value+"}\n"))
			if tt.wantErr {
				if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "artifacts.cache_max") {
					t.Errorf("ParseConfig = %v, want ErrConfig naming artifacts.cache_max", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Artifacts.CacheMaxBytes != tt.want {
				t.Errorf("cache_max %q = %d bytes, want %d", tt.value, c.Artifacts.CacheMaxBytes, tt.want)
			}
		})
	}
}
