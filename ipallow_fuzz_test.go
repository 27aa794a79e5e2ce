package keyplane

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// refContains says whether a falls inside p by comparing bits, without netip.Prefix.Contains: the
// matching rule of ipAllowlist written plainly. An IPv4-mapped address is its IPv4 address (the
// verification endpoints unmap what they are given), an address never matches a prefix of the other
// family, and a zoned address matches nothing.
func refContains(p netip.Prefix, a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || a.Zone() != "" || a.BitLen() != p.Addr().BitLen() {
		return false
	}
	x, y := a.AsSlice(), p.Addr().AsSlice()
	for i := range p.Bits() {
		mask := byte(0x80) >> (i % 8)
		if x[i/8]&mask != y[i/8]&mask {
			return false
		}
	}
	return true
}

// withHostBits returns the address of p whose host bits are taken from bits (repeated as needed):
// some address inside p, chosen by the fuzzer.
func withHostBits(p netip.Prefix, bits []byte) netip.Addr {
	b := p.Addr().AsSlice()
	if len(bits) == 0 {
		bits = []byte{0xff}
	}
	for i := p.Bits(); i < len(b)*8; i++ {
		mask := byte(0x80) >> (i % 8)
		if bits[(i/8)%len(bits)]&mask != 0 {
			b[i/8] |= mask
		} else {
			b[i/8] &^= mask
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// storedForm is how the service writes an accepted entry: the prefix, or the bare address of a
// single-address prefix.
func storedForm(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// FuzzIPAllowlist parses an ipAllowlist entry and checks what an accepted one means: refusals are
// invalid_request errors; an accepted prefix is canonical (masked, no zone, IPv4 never written as
// mapped IPv6) and survives being stored (parse, String, parse); a key allow-listed to it lets in its
// first address and any address inside chosen by the fuzzer (IPv4 ones in their mapped spelling too;
// IPv4-mapped ones inside an IPv6 prefix are IPv4 clients, which only IPv4 entries let in), exactly
// the addresses refContains says, and nothing just outside it or without an address.
func FuzzIPAllowlist(f *testing.F) {
	for _, s := range []struct {
		entry, ip string
		host      []byte
	}{
		{"203.0.113.0/24", "203.0.113.9", []byte{0x55}},
		{"203.0.113.7", "::ffff:203.0.113.7", nil},
		{"2001:db8::/32", "2001:db8::1", []byte{0x01, 0x80}},
		{"2001:db8::1", "2001:db8::1%eth0", nil},
		{"0.0.0.0/0", "::ffff:0.0.0.0", nil},
		{"::/0", "::ffff:1.2.3.4", nil},
		{"::/80", "::ffff:1.2.3.4", []byte{0xff}},
		{"::ffff:0.0.0.0/96", "1.2.3.4", nil},
		{"::ffff:1.2.3.0/120", "1.2.3.200", nil},
		{"::ffff:1.2.3.4/90", "1.2.3.4", nil},
		{"::ffff:1.2.3.4", "1.2.3.4", nil},
		{"::ffff:1.2.3.4/128", "::ffff:1.2.3.4", nil},
		{"fe80::1%eth0", "fe80::1", nil},
		{"fe80::%25eth0/64", "fe80::1", nil},
		{"fe80::/10", "fe80::1%eth0", nil},
		{"10.0.0.1/8", "10.0.0.1", nil},
		{"1.2.3.4/032", "1.2.3.4", nil},
		{"1.2.3.4/+32", "1.2.3.4", nil},
		{"1.2.3.4/-0", "1.2.3.4", nil},
		{"1.2.3.4/33", "1.2.3.4", nil},
		{"01.2.3.4", "1.2.3.4", nil},
		{"1.2.3.4 ", "1.2.3.4", nil},
		{"１.２.３.４", "1.2.3.4", nil},
		{"1.2.3.4\x00", "1.2.3.4", nil},
		{"", "", nil},
		{"::", "::", nil},
		{"::/128", "::", nil},
		{"255.255.255.255/32", "255.255.255.255", nil},
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/1", "ffff::1", nil},
		{"8000::/1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", []byte{0xff}},
		{"1.2.3.4/99999999999999999999", "1.2.3.4", nil},
		{strings.Repeat("1", 10000), "1.1.1.1", nil},
		{"2001:db8::/32", "2001:0db8:0000:0000:0000:0000:0000:0001", nil},
		{"2001:db8:0:0:0:0:0:0/32", "2001:db8::", nil},
		{"64:ff9b::/96", "64:ff9b::7f00:1", nil},
	} {
		f.Add(s.entry, s.ip, s.host)
	}
	now := t0
	f.Fuzz(func(t *testing.T, entry, ip string, host []byte) {
		p, err := ParseIPOrPrefix(entry)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Code != CodeInvalidRequest {
				t.Fatalf("ParseIPOrPrefix(%q): %v is not an invalid_request error", entry, err)
			}
			return
		}
		if !p.IsValid() || p.Masked() != p || p.Addr().Zone() != "" || p.Addr().Is4In6() {
			t.Fatalf("ParseIPOrPrefix(%q) = %v: not a canonical prefix", entry, p)
		}
		for _, s := range []string{storedForm(p), p.String()} {
			if q, err := ParseIPOrPrefix(s); err != nil || q != p {
				t.Fatalf("ParseIPOrPrefix(%q) = %v, but its written form %q parses as %v, %v", entry, p, s, q, err)
			}
		}

		k := Compile(&APIKey{ID: "apk_1", Enabled: true, Environment: EnvLive, IPAllowlist: []string{storedForm(p)}})
		allows := func(a netip.Addr) bool {
			return k.Check(now, nil, &VerifyRequest{IP: a}) == VerifyValid
		}
		if allows(netip.Addr{}) {
			t.Fatalf("a key allow-listed to %v is VALID without an ip", p)
		}
		if !allows(p.Addr()) {
			t.Fatalf("a key allow-listed to %q (%v) refuses its first address", entry, p)
		}
		for _, a := range []netip.Addr{withHostBits(p, host), withHostBits(p, []byte{0xff})} {
			// An IPv6 prefix that covers IPv4-mapped space (::/0, ::/80) does not let in IPv4
			// clients: they are judged by IPv4 entries only.
			if got, want := allows(a), !a.Is4In6(); got != want {
				t.Fatalf("a key allow-listed to %q (%v), verified from %v inside it: VALID=%v, want %v", entry, p, a, got, want)
			}
			if a.Is4() && !allows(netip.AddrFrom16(a.As16())) {
				t.Fatalf("a key allow-listed to %q (%v) refuses %v written as IPv4-mapped IPv6", entry, p, a)
			}
		}
		if p.Bits() > 0 {
			first, last := p.Addr(), withHostBits(p, []byte{0xff})
			for _, a := range []netip.Addr{first.Prev(), last.Next()} {
				if a.IsValid() && allows(a) {
					t.Fatalf("a key allow-listed to %q (%v) lets in %v, outside it", entry, p, a)
				}
			}
		}
		if a, err := netip.ParseAddr(ip); err == nil {
			if got, want := allows(a), refContains(p, a); got != want {
				t.Fatalf("a key allow-listed to %q (%v), verified from %v: VALID=%v, want %v", entry, p, a, got, want)
			}
		}
	})
}
