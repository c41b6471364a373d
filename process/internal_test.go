package process

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/jailkeeper/jailkeeper/release"
)

func TestPickAddr(t *testing.T) {
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
		got, err := pickAddr(netip.MustParsePrefix(tt.pool), func(a netip.Addr) bool { return !used[a] })
		if tt.want == "" {
			if !errors.Is(err, release.ErrPoolExhausted) {
				t.Errorf("pickAddr(%s, %v) = %v, %v; want release.ErrPoolExhausted", tt.pool, tt.used, got, err)
			}
			continue
		}
		if err != nil || got != a(tt.want) {
			t.Errorf("pickAddr(%s, %v) = %v, %v; want %s", tt.pool, tt.used, got, err, tt.want)
		}
	}
}
