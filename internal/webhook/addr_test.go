package webhook

import (
	"net/netip"
	"testing"
)

func TestBlocked(t *testing.T) {
	for _, tc := range []struct {
		addr    string
		blocked bool
	}{
		// "This network" 0.0.0.0/8 and its edge.
		{"0.0.0.0", true},
		{"0.255.255.255", true},
		{"1.0.0.0", false},
		// Private 10/8.
		{"9.255.255.255", false},
		{"10.0.0.0", true},
		{"10.255.255.255", true},
		{"11.0.0.0", false},
		// CGNAT 100.64/10.
		{"100.63.255.255", false},
		{"100.64.0.0", true},
		{"100.127.255.255", true},
		{"100.128.0.0", false},
		// Loopback 127/8.
		{"126.255.255.255", false},
		{"127.0.0.0", true},
		{"127.0.0.1", true},
		{"127.255.255.255", true},
		{"128.0.0.0", false},
		// Link-local 169.254/16 and the metadata address.
		{"169.253.255.255", false},
		{"169.254.0.0", true},
		{"169.254.169.254", true},
		{"169.254.255.255", true},
		{"169.255.0.0", false},
		// Private 172.16/12.
		{"172.15.255.255", false},
		{"172.16.0.0", true},
		{"172.31.255.255", true},
		{"172.32.0.0", false},
		// IETF protocol assignments 192.0.0.0/24.
		{"191.255.255.255", false},
		{"192.0.0.0", true},
		{"192.0.0.255", true},
		{"192.0.1.0", false},
		// Documentation ranges are public on purpose.
		{"192.0.2.0", false},
		{"192.0.2.255", false},
		{"198.51.100.7", false},
		{"203.0.113.9", false},
		// Private 192.168/16.
		{"192.167.255.255", false},
		{"192.168.0.0", true},
		{"192.168.255.255", true},
		{"192.169.0.0", false},
		// Benchmarking 198.18/15.
		{"198.17.255.255", false},
		{"198.18.0.0", true},
		{"198.19.255.255", true},
		{"198.20.0.0", false},
		// Multicast, reserved, broadcast.
		{"223.255.255.255", false},
		{"224.0.0.0", true},
		{"239.255.255.255", true},
		{"240.0.0.0", true},
		{"255.255.255.255", true},
		// Ordinary public.
		{"8.8.8.8", false},
		{"93.184.216.34", false},

		// IPv6 basics.
		{"::", true},
		{"::1", true},
		{"::7f00:1", true},  // IPv4-compatible ::127.0.0.1
		{"::808:808", true}, // IPv4-compatible, deprecated, never public
		// IPv4-mapped: judged by the IPv4 address.
		{"::ffff:127.0.0.1", true},
		{"::ffff:10.1.2.3", true},
		{"::ffff:169.254.169.254", true},
		{"::ffff:8.8.8.8", false},
		// NAT64 64:ff9b::/96: judged by the IPv4 address.
		{"64:ff9b::7f00:1", true},
		{"64:ff9b::a9fe:a9fe", true},
		{"64:ff9b::808:808", false},
		{"64:ff9b:1::808:808", true}, // local-use NAT64 /48
		// 6to4 2002::/16: judged by bits 16–48.
		{"2002:7f00:1::1", true},
		{"2002:a00:1::1", true},
		{"2002:808:808::1", false},
		{"2002:c000:201::1", false}, // 6to4 of 192.0.2.1, documentation
		// Teredo 2001::/32 and its edge.
		{"2001::1", true},
		{"2001:0:ffff:ffff:ffff:ffff:ffff:ffff", true},
		{"2001:1::1", false},
		{"2001:2::1", true}, // benchmarking 2001:2::/48
		// Discard-only 100::/64.
		{"100::", true},
		{"100::ffff:ffff:ffff:ffff", true},
		// Unique local fc00::/7, with the AWS metadata address.
		{"fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true},
		{"fc00::", true},
		{"fd00:ec2::254", true},
		{"fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true},
		// Link-local fe80::/10, with a zone.
		{"fe80::", true},
		{"fe80::1%eth0", true},
		{"febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true},
		{"fec0::1", true}, // site-local, deprecated
		// Multicast ff00::/8.
		{"ff00::", true},
		{"ff02::1", true},
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true},
		// Global unicast 2000::/3 and its edges; documentation 2001:db8::/32 is public on purpose.
		{"1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true},
		{"2000::", false},
		{"2001:db8::1", false},
		{"2606:4700:4700::1111", false},
		{"3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false},
		{"4000::", true},
	} {
		a := netip.MustParseAddr(tc.addr)
		if got := Blocked(a); got != tc.blocked {
			t.Errorf("Blocked(%s) = %v, want %v", tc.addr, got, tc.blocked)
		}
	}
	if !Blocked(netip.Addr{}) {
		t.Error("Blocked(invalid) = false")
	}
}
