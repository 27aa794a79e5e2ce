package webhook

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestCheckURL(t *testing.T) {
	prod := URLPolicy{}
	dev := URLPolicy{AllowHTTP: true}
	private := URLPolicy{AllowHTTP: true, AllowPrivate: true}
	long := "https://example.com/" + strings.Repeat("a", 2049-len("https://example.com/"))
	for _, tc := range []struct {
		policy URLPolicy
		raw    string
		want   string // "" for accepted, else the exact message
	}{
		{prod, "https://hooks.example.com/in", ""},
		{prod, "HTTPS://hooks.example.com/in?x=1", ""},
		{prod, "https://hooks.example.com:8443/in", ""},
		{prod, "https://93.184.216.34/in", ""},
		{prod, "https://[2606:4700:4700::1111]/in", ""},
		{prod, "https://203.0.113.7/", ""}, // documentation range counts as public
		{prod, "http://hooks.example.com/in", "must be an absolute https:// URL"},
		{dev, "http://hooks.example.com/in", ""},
		{dev, "ftp://hooks.example.com/in", "must be an absolute http:// or https:// URL"},
		{prod, "/relative/path", "must be an absolute https:// URL"},
		{prod, "hooks.example.com/in", "must be an absolute https:// URL"},
		{prod, "https:hooks.example.com", "must be an absolute https:// URL"},
		{prod, "https://exa mple.com/", "must be an absolute https:// URL"},
		{prod, "", "must be an absolute https:// URL"},
		{prod, "https:///in", "must include a host name"},
		{prod, "https://:443/in", "must include a host name"},
		{prod, "https://user:pass@hooks.example.com/", "must not contain credentials"},
		{prod, "https://user@hooks.example.com/", "must not contain credentials"},
		{prod, long, "must be at most 2048 bytes"},
		{prod, long[:2048], ""},
		// Stored and dialled percent-encoded: 1000 × "é" is 2000 bytes raw, 6000 encoded.
		{prod, "https://hooks.example.com/" + strings.Repeat("é", 1000), "must be at most 2048 bytes once percent-encoded"},
		// net/http would dial these in IDNA form (the second is 127.0.0.1), not as checked here.
		{prod, "https://bücher.example/", "must write its host name in ASCII (an internationalized name in its xn-- form)"},
		{prod, "https://１２７。０。０。１/", "must write its host name in ASCII (an internationalized name in its xn-- form)"},
		{prod, "https://b%C3%BCcher.example/", "must write its host name in ASCII (an internationalized name in its xn-- form)"},
		{prod, "https://xn--bcher-kva.example/", ""},
		// url.Parse takes these hosts; CheckHost stripped the bracket and judged "0".
		{prod, "https://0]/", "must have a host name of letters, digits, hyphens and dots, or an IP address"},
		{prod, "https://]", "must have a host name of letters, digits, hyphens and dots, or an IP address"},
		{prod, "https://a!b/", "must have a host name of letters, digits, hyphens and dots, or an IP address"},
		{prod, "https://_dmarc.example.com/", ""},
		{private, "http://[::%25]]/", "must have a host name of letters, digits, hyphens and dots, or an IP address"},
		{private, "http://[fe80::1%25eth0]:8080/", ""},
		{prod, "https://hooks.example.com/in#frag", "must not contain a fragment"},
		{prod, "https://hooks.example.com/in#", "must not contain a fragment"},
		{prod, "https://hooks.example.com:0/", "must have a port between 1 and 65535"},
		{prod, "https://hooks.example.com:65536/", "must have a port between 1 and 65535"},
		{prod, "https://hooks.example.com:65535/", ""},
		{prod, "https://hooks.example.com:1/", ""},
		{prod, "https://10.0.0.5/", privateMsg},
		{prod, "https://192.168.1.1:8443/", privateMsg},
		{prod, "https://127.0.0.1/", privateMsg},
		{prod, "https://169.254.169.254/latest/meta-data/", privateMsg},
		{prod, "https://[fd00:ec2::254]/", privateMsg},
		{prod, "https://[::1]/", privateMsg},
		{prod, "https://[::ffff:127.0.0.1]/", privateMsg},
		{prod, "https://[fe80::1%25eth0]/", privateMsg},
		{prod, "https://0.0.0.0/", privateMsg},
		// Not IP literals to netip: host names, judged by what they resolve to (TestCheckHostNumericNames).
		{prod, "https://2130706433/", ""},
		{prod, "https://0x7f.0.0.1/", ""},
		{prod, "https://0177.0.0.1/", ""},
		{prod, "https://127.1/", ""},
		{prod, "https://localhost/", "must not point to localhost"},
		{prod, "https://LOCALHOST./", "must not point to localhost"},
		{prod, "https://foo.localhost:8080/", "must not point to localhost"},
		{prod, "https://localhost.example.com/", ""},
		{private, "http://127.0.0.1:8080/", ""},
		{private, "http://localhost:8080/", ""},
		{private, "https://[::1]/", ""},
		{private, "http://10.0.0.5/", ""},
		{URLPolicy{AllowPrivate: true}, "http://127.0.0.1/", "must be an absolute https:// URL"},
	} {
		u, err := tc.policy.CheckURL(tc.raw)
		if tc.want == "" {
			if err != nil || u == nil {
				t.Errorf("%+v CheckURL(%.60q) = %v, want accepted", tc.policy, tc.raw, err)
			}
			continue
		}
		var ue *URLError
		if !errors.As(err, &ue) || ue.Msg != tc.want {
			t.Errorf("%+v CheckURL(%.60q) = %v, want %q", tc.policy, tc.raw, err, tc.want)
		}
		if err != nil && (strings.HasSuffix(err.Error(), ".") || u != nil) {
			t.Errorf("CheckURL(%.60q): message %q ends with a period or URL returned", tc.raw, err)
		}
	}
}

// A caller may declare either a URLError or a *URLError as the errors.As target.
func TestURLErrorAs(t *testing.T) {
	_, err := URLPolicy{}.CheckURL("http://x")
	var v URLError
	if !errors.As(err, &v) || v.Msg == "" {
		t.Fatalf("errors.As(value target) failed for %v", err)
	}
	var p *URLError
	if !errors.As(err, &p) || p.Msg != v.Msg {
		t.Fatalf("errors.As(pointer target) failed for %v", err)
	}
}

// mapLookup resolves names from a fixed table, as a stand-in for DNS.
func mapLookup(m map[string][]string) LookupFunc {
	return func(_ context.Context, host string) ([]netip.Addr, error) {
		var out []netip.Addr
		for _, s := range m[host] {
			out = append(out, netip.MustParseAddr(s))
		}
		if out == nil {
			return nil, errors.New("no such host")
		}
		return out, nil
	}
}

func TestCheckHost(t *testing.T) {
	lookup := mapLookup(map[string][]string{
		"public.test":   {"93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"},
		"private.test":  {"10.1.2.3"},
		"mixed.test":    {"93.184.216.34", "127.0.0.1"},
		"mixed6.test":   {"2606:4700:4700::1111", "fd00:ec2::254"},
		"mapped.test":   {"::ffff:169.254.169.254"},
		"docs.test":     {"192.0.2.10"},
		"empty.test":    nil,
		"metadata.test": {"169.254.169.254"},
	})
	empty := func(context.Context, string) ([]netip.Addr, error) { return nil, nil }
	ctx := context.Background()
	// What a name resolves to, or that it does not, is for the server's log (Detail) only: the
	// tenant's message (Msg) is the same for every such refusal, so that it cannot map the
	// deployment's network through keyplane's resolver.
	for _, tc := range []struct {
		policy URLPolicy
		lookup LookupFunc
		host   string
		want   string // "" accepted, else the message
		detail string // a substring of Detail
	}{
		{URLPolicy{}, lookup, "public.test", "", ""},
		{URLPolicy{}, lookup, "docs.test", "", ""},
		{URLPolicy{}, lookup, "private.test", HostMsg, "private.test resolves to the blocked address 10.1.2.3"},
		{URLPolicy{}, lookup, "mixed.test", HostMsg, "resolves to the blocked address 127.0.0.1"},
		{URLPolicy{}, lookup, "mixed6.test", HostMsg, "resolves to the blocked address fd00:ec2::254"},
		{URLPolicy{}, lookup, "mapped.test", HostMsg, "resolves to the blocked address 169.254.169.254"},
		{URLPolicy{}, lookup, "metadata.test", HostMsg, "169.254.169.254"},
		{URLPolicy{}, lookup, "nowhere.test", HostMsg, "nowhere.test could not be resolved: no such host"},
		{URLPolicy{}, empty, "public.test", HostMsg, "could not be resolved: no addresses"},
		{URLPolicy{}, lookup, "127.0.0.1", privateMsg, ""}, // the tenant's own literal: nothing resolved
		{URLPolicy{}, lookup, "[::1]", privateMsg, ""},
		{URLPolicy{}, lookup, "93.184.216.34", "", ""},
		{URLPolicy{}, lookup, "localhost", "must not point to localhost", ""},
		{URLPolicy{AllowPrivate: true}, lookup, "mixed.test", "", ""},
		{URLPolicy{AllowPrivate: true}, lookup, "127.0.0.1", "", ""},
		{URLPolicy{AllowPrivate: true}, lookup, "nowhere.test", "could not be resolved", "no such host"},
	} {
		err := tc.policy.CheckHost(ctx, tc.lookup, tc.host)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%+v CheckHost(%q) = %v, want nil", tc.policy, tc.host, err)
			}
			continue
		}
		var ue *URLError
		if !errors.As(err, &ue) || ue.Msg != tc.want || !strings.Contains(ue.Detail, tc.detail) {
			t.Errorf("%+v CheckHost(%q) = %v (detail %q), want a URLError %q (detail with %q)", tc.policy, tc.host, err, ue.Detail, tc.want, tc.detail)
		}
		if tc.detail != "" && (strings.Contains(ue.Msg, tc.host) || strings.Contains(err.Error(), "resolves") || strings.Contains(err.Error(), "no such")) {
			t.Errorf("CheckHost(%q): the tenant's message names the resolver's answer: %q", tc.host, err)
		}
	}
}

// Numeric spellings of 127.0.0.1 pass CheckURL as host names. They are refused by the lookup path,
// whatever the resolver makes of them: glibc's getaddrinfo (inet_aton) turns them into 127.0.0.1,
// while Go's own resolver asks DNS and finds nothing. Both answers come from tables: a test must not
// ask a DNS server, which is off the machine.
func TestCheckHostNumericNames(t *testing.T) {
	asInetAton := mapLookup(map[string][]string{
		"2130706433": {"127.0.0.1"},
		"0x7f.0.0.1": {"127.0.0.1"},
		"0177.0.0.1": {"127.0.0.1"},
		"127.1":      {"127.0.0.1"},
	})
	for _, host := range []string{"2130706433", "0x7f.0.0.1", "0177.0.0.1", "127.1"} {
		u, err := URLPolicy{}.CheckURL("https://" + host + "/")
		if err != nil {
			t.Fatalf("CheckURL(%s): %v", host, err)
		}
		if err := (URLPolicy{}).CheckHost(context.Background(), asInetAton, u.Hostname()); err == nil ||
			!strings.Contains(Detail(err), "resolves to the blocked address 127.0.0.1") {
			t.Errorf("CheckHost(%s) with an inet_aton resolver = %v, want refused as private", host, err)
		}
		if err := (URLPolicy{}).CheckHost(context.Background(), mapLookup(nil), u.Hostname()); err == nil {
			t.Errorf("CheckHost(%s) with a resolver that finds nothing accepted it", host)
		}
	}
}
