package webhook

import "net/netip"

// Blocked reports whether a webhook must not be delivered to a: anything that is not an ordinary public
// unicast address, because a webhook URL is chosen by a user and would otherwise let them make the
// service reach its own network (server-side request forgery). An invalid address is blocked.
//
// The documentation ranges 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 and 2001:db8::/32 are
// deliberately NOT blocked: they are never routed, so allowing them costs nothing, and tests across the
// project use them to stand for "some public address".
func Blocked(a netip.Addr) bool {
	if !a.IsValid() {
		return true
	}
	if a.Is4() || a.Is4In6() {
		// An IPv4-mapped address (::ffff:a.b.c.d) reaches the IPv4 host, so it is judged as that host.
		return blocked4(a.Unmap().As4())
	}
	return blocked6(a.As16())
}

func blocked4(b [4]byte) bool {
	switch {
	case b[0] == 0: // "this network" 0.0.0.0/8, including the unspecified address
		return true
	case b[0] == 10: // private 10.0.0.0/8
		return true
	case b[0] == 100 && b[1]&0xc0 == 64: // carrier-grade NAT 100.64.0.0/10
		return true
	case b[0] == 127: // loopback 127.0.0.0/8
		return true
	case b[0] == 169 && b[1] == 254: // link-local 169.254.0.0/16, home of cloud metadata 169.254.169.254
		return true
	case b[0] == 172 && b[1]&0xf0 == 16: // private 172.16.0.0/12
		return true
	case b[0] == 192 && b[1] == 0 && b[2] == 0: // IETF protocol assignments 192.0.0.0/24
		return true
	case b[0] == 192 && b[1] == 168: // private 192.168.0.0/16
		return true
	case b[0] == 198 && b[1]&0xfe == 18: // benchmarking 198.18.0.0/15
		return true
	case b[0] >= 224: // multicast 224.0.0.0/4, reserved 240.0.0.0/4 and broadcast 255.255.255.255
		return true
	}
	return false
}

func blocked6(b [16]byte) bool {
	// Translation prefixes carry an IPv4 address that the packet ends up at; judge that address, so
	// that 64:ff9b::7f00:1 (127.0.0.1 via NAT64) is refused while NAT64 to a public host works.
	if [12]byte(b[:12]) == [12]byte{0x00, 0x64, 0xff, 0x9b} { // NAT64 64:ff9b::/96
		return blocked4([4]byte(b[12:16]))
	}
	if b[0] == 0x20 && b[1] == 0x02 { // 6to4 2002::/16, IPv4 address in bits 16–48
		return blocked4([4]byte(b[2:6]))
	}
	// Every public IPv6 unicast address is in 2000::/3. Refusing all else covers, without a list that
	// could miss one, the unspecified ::, loopback ::1, IPv4-compatible ::/96, discard-only 100::/64,
	// local-use NAT64 64:ff9b:1::/48 (its embedding depends on a site's prefix length), unique local
	// fc00::/7 (with AWS metadata fd00:ec2::254), site-local fec0::/10, link-local fe80::/10 and
	// multicast ff00::/8.
	if b[0]&0xe0 != 0x20 {
		return true
	}
	if [4]byte(b[:4]) == [4]byte{0x20, 0x01, 0x00, 0x00} { // Teredo 2001::/32 tunnels to hosts it hides
		return true
	}
	if [6]byte(b[:6]) == [6]byte{0x20, 0x01, 0x00, 0x02, 0x00, 0x00} { // benchmarking 2001:2::/48
		return true
	}
	return false
}
