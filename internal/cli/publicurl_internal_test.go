package cli

import (
	"net"
	"testing"
)

func TestDerivedPublicURL(t *testing.T) {
	for _, c := range []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}, "http://127.0.0.1:8080"},
		{&net.TCPAddr{IP: net.IPv4zero, Port: 9000}, "http://127.0.0.1:9000"},
		{&net.TCPAddr{IP: net.IPv6unspecified, Port: 9000}, "http://127.0.0.1:9000"},
		{&net.TCPAddr{IP: net.IPv6loopback, Port: 443}, "http://[::1]:443"},
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.4"), Port: 80}, "http://192.0.2.4:80"},
	} {
		if got := derivedPublicURL(c.addr); got != c.want {
			t.Errorf("derivedPublicURL(%v) = %q, want %q", c.addr, got, c.want)
		}
	}
}
