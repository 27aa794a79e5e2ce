package webhook

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// refBlocked is Blocked written again with prefix tables instead of byte arithmetic, so that the
// fuzzer can compare the two.
var (
	refBlocked4 = prefixes("0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
		"172.16.0.0/12", "192.0.0.0/24", "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4")
	refBlocked6 = prefixes("2001::/32", "2001:2::/48")
	refPublic6  = netip.MustParsePrefix("2000::/3")
	refNAT64    = netip.MustParsePrefix("64:ff9b::/96")
	ref6to4     = netip.MustParsePrefix("2002::/16")
)

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func refBlocked(a netip.Addr) bool {
	if !a.IsValid() {
		return true
	}
	a = a.WithZone("").Unmap()
	in := func(ps []netip.Prefix) bool {
		for _, p := range ps {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	if a.Is4() {
		return in(refBlocked4)
	}
	b := a.As16()
	switch {
	case refNAT64.Contains(a):
		return refBlocked(netip.AddrFrom4([4]byte(b[12:16])))
	case ref6to4.Contains(a):
		return refBlocked(netip.AddrFrom4([4]byte(b[2:6])))
	case !refPublic6.Contains(a):
		return true
	}
	return in(refBlocked6)
}

// FuzzBlocked compares Blocked with refBlocked on every address of 4 or 16 bytes (with an optional
// zone), and checks that an IPv4 address and its IPv4-mapped spelling are judged alike.
func FuzzBlocked(f *testing.F) {
	for _, s := range []string{"127.0.0.1", "169.254.169.254", "10.1.2.3", "100.64.0.1", "100.128.0.1",
		"172.31.255.255", "172.32.0.0", "192.0.0.8", "192.0.2.1", "198.19.0.1", "198.20.0.1", "224.0.0.1",
		"255.255.255.255", "0.0.0.0", "93.184.216.34", "::", "::1", "::ffff:127.0.0.1", "::127.0.0.1",
		"64:ff9b::7f00:1", "64:ff9b::5db8:d822", "64:ff9b:1::1", "2002:7f00:1::", "2002:5db8:d822::1",
		"2001::1", "2001:2::1", "2001:3::1", "2001:db8::1", "fe80::1", "fc00::1", "fd00:ec2::254", "ff02::1",
		"2606:4700:4700::1111", "3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "4000::1", "100::1"} {
		a := netip.MustParseAddr(s)
		f.Add(a.AsSlice(), "")
	}
	f.Add(netip.MustParseAddr("fe80::1").AsSlice(), "eth0")
	f.Add(netip.MustParseAddr("2001:db8::1").AsSlice(), "eth0")
	f.Add([]byte{}, "")
	f.Add([]byte{1, 2, 3}, "")
	f.Fuzz(func(t *testing.T, b []byte, zone string) {
		a, ok := netip.AddrFromSlice(b)
		if ok && a.Is6() {
			a = a.WithZone(zone)
		}
		if got, want := Blocked(a), refBlocked(a); got != want {
			t.Fatalf("Blocked(%v) = %v, want %v", a, got, want)
		}
		if a.Is4() {
			if m := netip.AddrFrom16(a.As16()); Blocked(m) != Blocked(a) {
				t.Fatalf("Blocked(%v) = %v but Blocked(%v) = %v", a, Blocked(a), m, Blocked(m))
			}
		}
	})
}

// errNoNetwork stops every connection the fuzzed client would open, just before connect(2).
var errNoNetwork = errors.New("fuzz: no network")

// dialProbe is a Client whose resolver answers one address for every name and whose connections
// stop just before connect(2), recording the names it was asked and the addresses it would have
// connected to.
type dialProbe struct {
	c *Client

	mu       sync.Mutex
	asked    []string
	dialled  []string
	pastGate []netip.Addr // addresses that got past dialContext's check but that control refused
}

func newDialProbe(p URLPolicy, answer netip.Addr) *dialProbe {
	d := &dialProbe{}
	lookup := func(_ context.Context, host string) ([]netip.Addr, error) {
		d.mu.Lock()
		d.asked = append(d.asked, host)
		d.mu.Unlock()
		return []netip.Addr{answer}, nil
	}
	d.c = NewClient(ClientOptions{Policy: p, Lookup: lookup})
	d.c.dialer.Control = func(network, address string, rc syscall.RawConn) error {
		err := d.c.control(network, address, rc)
		d.mu.Lock()
		defer d.mu.Unlock()
		d.dialled = append(d.dialled, address)
		if err != nil {
			if ap, perr := netip.ParseAddrPort(address); perr == nil {
				d.pastGate = append(d.pastGate, ap.Addr())
			}
			return err
		}
		return errNoNetwork
	}
	return d
}

// FuzzWebhookURL checks an endpoint URL the way keyplane uses one: CheckURL at creation, CheckHost on
// its host with a resolver that answers the fuzzer's address, then a delivery by the Client to the
// URL as stored (u.String()) with the same resolver, stopped before it connects. It asserts:
//   - a refusal is a *URLError with a message, and nothing panics;
//   - the stored form of an accepted URL is accepted again, naming the same scheme, host and port
//     (deliveries check it again: a stored URL that fails its own check never delivers);
//   - under the production policy no accepted URL names a blocked IP literal or localhost, and
//     neither check lets a blocked address through;
//   - creation and delivery judge the same host: the name the delivery resolves is the one CheckHost
//     resolved, a delivery refuses a blocked address exactly when CheckHost would have, and no
//     blocked address ever reaches the dialer's last-resort check in control.
func FuzzWebhookURL(f *testing.F) {
	for _, s := range []struct {
		raw, answer string
		http, priv  bool
	}{
		{"https://hooks.example.com/in", "93.184.216.34", false, false},
		{"https://hooks.example.com/in", "127.0.0.1", false, false},
		{"https://hooks.example.com/in", "::ffff:10.0.0.1", false, false},
		{"https://hooks.example.com:8443/in?x=1", "2606:4700:4700::1111", false, false},
		{"http://hooks.example.com/in", "93.184.216.34", true, false},
		{"http://localhost:8080/", "127.0.0.1", true, true},
		{"https://localhost./", "93.184.216.34", false, false},
		{"https://LOCALHOST/", "93.184.216.34", false, false},
		{"https://a.localhost/", "93.184.216.34", false, false},
		{"https://127.0.0.1/", "93.184.216.34", false, false},
		{"https://127.1/", "93.184.216.34", false, false},
		{"https://2130706433/", "127.0.0.1", false, false},
		{"https://0x7f.0.0.1/", "127.0.0.1", false, false},
		{"https://0177.0.0.1/", "127.0.0.1", false, false},
		{"https://127.0.0.1./", "93.184.216.34", false, false},
		{"https://[::1]/", "93.184.216.34", false, false},
		{"https://[::ffff:127.0.0.1]/", "93.184.216.34", false, false},
		{"https://[::ffff:7f00:1]/", "93.184.216.34", false, false},
		{"https://[64:ff9b::7f00:1]/", "93.184.216.34", false, false},
		{"https://[fe80::1%25eth0]/", "93.184.216.34", false, false},
		{"https://[2001:db8::1%25eth0]:443/", "93.184.216.34", false, false},
		{"https://[2606:4700:4700::1111]/in", "93.184.216.34", false, false},
		{"https://169.254.169.254/latest/meta-data/", "93.184.216.34", false, false},
		{"https://[fd00:ec2::254]/", "93.184.216.34", false, false},
		{"https://user:pass@hooks.example.com/", "93.184.216.34", false, false},
		{"https://hooks.example.com/#frag", "93.184.216.34", false, false},
		{"https://hooks.example.com/#", "93.184.216.34", false, false},
		{"https://hooks.example.com:0/", "93.184.216.34", false, false},
		{"https://hooks.example.com:65536/", "93.184.216.34", false, false},
		{"https://hooks.example.com:/", "93.184.216.34", false, false},
		{"https://hooks.example.com:00443/", "93.184.216.34", false, false},
		{"https:hooks.example.com", "93.184.216.34", false, false},
		{"//hooks.example.com/", "93.184.216.34", false, false},
		{"https:///path", "93.184.216.34", false, false},
		{"https://hooks.example.com\x00.evil/", "93.184.216.34", false, false},
		{"https://hooks.example.com%00/", "93.184.216.34", false, false},
		{"https://bücher.example/", "93.184.216.34", false, false},
		{"https://１２７.０.０.１/", "93.184.216.34", false, false},
		{"https://127。0。0。1/", "93.184.216.34", false, false},
		{"https://hooks.example.com/" + strings.Repeat("é", 1000), "93.184.216.34", false, false},
		{"https://hooks.example.com/" + strings.Repeat("a", 2100), "93.184.216.34", false, false},
		{"https://hooks.example.com/a b", "93.184.216.34", false, false},
		{"https://hooks.example.com/%zz", "93.184.216.34", false, false},
		{"", "", false, false},
		{"\t https://hooks.example.com/", "93.184.216.34", false, false},
		{"https://]", "93.184.216.34", false, false},
		{"https://a!b'c/", "93.184.216.34", false, false},
	} {
		f.Add(s.raw, s.answer, s.http, s.priv)
	}
	f.Fuzz(func(t *testing.T, raw, answer string, allowHTTP, allowPrivate bool) {
		p := URLPolicy{AllowHTTP: allowHTTP, AllowPrivate: allowPrivate}
		u, err := p.CheckURL(raw)
		if err != nil {
			var ue *URLError
			if !errors.As(err, &ue) || ue.Msg == "" {
				t.Fatalf("CheckURL(%q): %v (%T) is not a *URLError with a message", raw, err, err)
			}
			return
		}
		stored := u.String()
		u2, err := p.CheckURL(stored)
		if err != nil {
			t.Fatalf("CheckURL(%.300q) accepted it, but refuses its stored form %.300q: %v", raw, stored, err)
		}
		if u2.Scheme != u.Scheme || u2.Hostname() != u.Hostname() || u2.Port() != u.Port() {
			t.Fatalf("CheckURL(%q): stored form %q names %s://%s:%s, not %s://%s:%s", raw, stored,
				u2.Scheme, u2.Hostname(), u2.Port(), u.Scheme, u.Hostname(), u.Port())
		}
		host := u.Hostname()
		if !allowPrivate {
			if a, err := netip.ParseAddr(host); err == nil && Blocked(a) {
				t.Fatalf("CheckURL(%q) accepts the blocked address %v", raw, a)
			}
			if n := strings.TrimSuffix(strings.ToLower(host), "."); n == "localhost" || strings.HasSuffix(n, ".localhost") {
				t.Fatalf("CheckURL(%q) accepts the localhost name %q", raw, host)
			}
		}

		ans, err := netip.ParseAddr(answer)
		if err != nil {
			ans = netip.MustParseAddr("93.184.216.34")
		}
		probe := newDialProbe(p, ans)
		defer probe.c.Close()
		hostErr := p.CheckHost(context.Background(), func(context.Context, string) ([]netip.Addr, error) {
			return []netip.Addr{ans}, nil
		}, host)
		if hostErr != nil {
			var ue *URLError
			if !errors.As(hostErr, &ue) {
				t.Fatalf("CheckHost(%q): %v (%T) is not a *URLError", host, hostErr, hostErr)
			}
		}
		res := probe.c.Post(context.Background(), stored, nil, []byte(`{}`))
		var refused *refusedError
		refusedAtDial := errors.As(res.Err, &refused)
		switch {
		case res.Err == nil:
			t.Fatalf("Post(%q) answered %d without a network", stored, res.StatusCode)
		case refusedAtDial, errors.Is(res.Err, errNoNetwork):
		case hostErr == nil:
			// Only what passed both checks is ever stored and delivered to ("https://]" passes
			// CheckURL, but CheckHost finds no host in it).
			t.Fatalf("Post(%q) of a URL CheckURL and CheckHost accepted failed otherwise: %v", stored, res.Err)
		}
		probe.mu.Lock()
		defer probe.mu.Unlock()
		if len(probe.pastGate) > 0 {
			t.Fatalf("Post(%q): dialContext let the blocked %v through to control", stored, probe.pastGate)
		}
		for _, asked := range probe.asked {
			if !strings.EqualFold(asked, host) {
				t.Fatalf("URL %q: CheckHost resolves %q but the delivery resolves %q", raw, host, asked)
			}
		}
		if allowPrivate {
			if refusedAtDial {
				t.Fatalf("Post(%q) refused an address under a policy that allows private ones: %v", stored, res.Err)
			}
			return
		}
		if hostErr == nil && refusedAtDial {
			t.Fatalf("URL %q: CheckHost accepts host %q (resolving to %v) but the delivery refuses it: %v", raw, host, ans, res.Err)
		}
		if hostErr != nil && strings.Contains(hostErr.Error(), privateMsg) && !refusedAtDial {
			t.Fatalf("URL %q: CheckHost refuses host %q (%v) but the delivery dialled %v", raw, host, hostErr, probe.dialled)
		}
		for _, d := range probe.dialled {
			if ap, err := netip.ParseAddrPort(d); err != nil || Blocked(ap.Addr()) {
				t.Fatalf("Post(%q) dialled %q", stored, d)
			}
		}
	})
}
