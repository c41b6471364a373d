package hostsetup

import (
	"net/netip"
	"testing"
)

func TestIfconfigGives(t *testing.T) {
	own := netip.MustParsePrefix("172.16.0.1/32")
	for v, want := range map[string]bool{
		"inet 172.16.0.1/32":                      true,
		"172.16.0.1/32":                           true,
		"inet 172.16.0.1 netmask 0xffffffff":      true,
		"inet 172.16.0.1 netmask 255.255.255.255": true,
		"inet 172.16.0.1/24":                      false,
		"inet 172.16.0.1":                         false, // classful default mask
		"inet 172.16.0.2/32":                      false,
		"inet 172.16.0.1/32 up":                   false,
		"DHCP":                                    false,
		"":                                        false,
	} {
		if got := ifconfigGives(v, own); got != want {
			t.Errorf("ifconfigGives(%q) = %v, want %v", v, got, want)
		}
	}
}
