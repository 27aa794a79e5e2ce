package keyplane

import (
	"encoding/json"
	"net/netip"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) *time.Time { t := t0.Add(d); return &t }

func TestStatusPrecedence(t *testing.T) {
	cases := []struct {
		name string
		k    APIKey
		want Status
	}{
		{"active", APIKey{Enabled: true}, StatusActive},
		{"active until expiry", APIKey{Enabled: true, ExpiresAt: at(time.Second)}, StatusActive},
		{"expired at the instant", APIKey{Enabled: true, ExpiresAt: at(0)}, StatusExpired},
		{"disabled", APIKey{Enabled: false}, StatusDisabled},
		{"expired beats disabled", APIKey{Enabled: false, ExpiresAt: at(-time.Hour)}, StatusExpired},
		{"revoked beats everything", APIKey{Enabled: false, ExpiresAt: at(-time.Hour), RevokedAt: at(-2 * time.Hour)}, StatusRevoked},
	}
	for _, c := range cases {
		if got := c.k.Status(t0); got != c.want {
			t.Errorf("%s: Status = %s, want %s", c.name, got, c.want)
		}
	}
}

func TestCheck(t *testing.T) {
	base := APIKey{Enabled: true, Environment: EnvLive, Permissions: []string{"orders:read", "orders:write"}}
	withIPs := base
	withIPs.IPAllowlist = []string{"203.0.113.0/24", "2001:db8::/32", "198.51.100.7"}
	withOrigins := base
	withOrigins.AllowedOrigins = []string{"https://shop.example.com"}
	withStoredPort := base // as keys made before origins were normalised may hold them
	withStoredPort.AllowedOrigins = []string{"https://shop.example.com:443"}
	ip := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	cases := []struct {
		name   string
		k      APIKey
		secret *time.Time
		req    VerifyRequest
		want   VerifyCode
	}{
		{"valid", base, nil, VerifyRequest{}, VerifyValid},
		{"permissions held", base, nil, VerifyRequest{Permissions: []string{"orders:read", "orders:write"}}, VerifyValid},
		{"permission missing", base, nil, VerifyRequest{Permissions: []string{"orders:read", "refunds:write"}}, VerifyInsufficientPermissions},
		{"environment matches", base, nil, VerifyRequest{Environment: EnvLive}, VerifyValid},
		{"environment differs", base, nil, VerifyRequest{Environment: EnvTest}, VerifyForbidden},
		{"revoked", APIKey{RevokedAt: at(-1), Enabled: true}, nil, VerifyRequest{}, VerifyRevoked},
		{"expired", APIKey{ExpiresAt: at(-1), Enabled: true}, nil, VerifyRequest{}, VerifyExpired},
		{"disabled", APIKey{Enabled: false}, nil, VerifyRequest{}, VerifyDisabled},
		{"old value after grace", base, at(-time.Second), VerifyRequest{}, VerifyExpired},
		{"old value in grace", base, at(time.Minute), VerifyRequest{}, VerifyValid},
		{"old value of a disabled key after grace", APIKey{Enabled: false}, at(-time.Second), VerifyRequest{}, VerifyExpired},
		{"ip in v4 cidr", withIPs, nil, VerifyRequest{IP: ip("203.0.113.250")}, VerifyValid},
		{"ip exact", withIPs, nil, VerifyRequest{IP: ip("198.51.100.7")}, VerifyValid},
		{"ip v4-mapped v6 matches v4 entry", withIPs, nil, VerifyRequest{IP: ip("::ffff:203.0.113.9")}, VerifyValid},
		{"ip in v6 cidr", withIPs, nil, VerifyRequest{IP: ip("2001:db8:1::5")}, VerifyValid},
		{"ip outside", withIPs, nil, VerifyRequest{IP: ip("198.51.100.8")}, VerifyForbidden},
		{"no ip fails closed", withIPs, nil, VerifyRequest{}, VerifyForbidden},
		{"origin allowed", withOrigins, nil, VerifyRequest{Origin: "https://shop.example.com"}, VerifyValid},
		{"origin other", withOrigins, nil, VerifyRequest{Origin: "https://evil.example.com"}, VerifyForbidden},
		{"no origin fails closed", withOrigins, nil, VerifyRequest{}, VerifyForbidden},
		// Compared normalised: a caller naming the origin another way names the same origin.
		{"origin with its default port", withOrigins, nil, VerifyRequest{Origin: "https://shop.example.com:443"}, VerifyValid},
		{"origin in capitals", withOrigins, nil, VerifyRequest{Origin: "HTTPS://Shop.Example.COM"}, VerifyValid},
		{"origin with another port", withOrigins, nil, VerifyRequest{Origin: "https://shop.example.com:8443"}, VerifyForbidden},
		{"origin over http", withOrigins, nil, VerifyRequest{Origin: "http://shop.example.com"}, VerifyForbidden},
		{"a stored origin with its default port", withStoredPort, nil, VerifyRequest{Origin: "https://shop.example.com"}, VerifyValid},
		{"forbidden before permissions", withIPs, nil, VerifyRequest{IP: ip("192.0.2.1"), Permissions: []string{"x:y"}}, VerifyForbidden},
	}
	for _, c := range cases {
		k := c.k
		if got := Compile(&k).Check(t0, c.secret, &c.req); got != c.want {
			t.Errorf("%s: Check = %s, want %s", c.name, got, c.want)
		}
	}
}

func TestParseIPOrPrefix(t *testing.T) {
	good := map[string]string{
		"203.0.113.7":        "203.0.113.7/32",
		"203.0.113.0/24":     "203.0.113.0/24",
		"2001:db8::1":        "2001:db8::1/128",
		"2001:db8::/32":      "2001:db8::/32",
		"::ffff:1.2.3.4":     "1.2.3.4/32",
		"::ffff:1.2.3.0/120": "1.2.3.0/24",
		"0.0.0.0/0":          "0.0.0.0/0",
	}
	for in, want := range good {
		p, err := ParseIPOrPrefix(in)
		if err != nil || p.String() != want {
			t.Errorf("ParseIPOrPrefix(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
	for _, in := range []string{"", "300.1.1.1", "1.2.3.4/33", "10.0.0.1/8", "fe80::1%eth0", "example.com", "1.2.3", "2001:db8::/129", " 1.2.3.4", "1.2.3.4/", "::ffff:1.2.3.4/90"} {
		if p, err := ParseIPOrPrefix(in); err == nil {
			t.Errorf("ParseIPOrPrefix(%q) = %v, want an error", in, p)
		}
	}
}

func TestCatalog(t *testing.T) {
	c, err := NewCatalog([]CatalogEntry{{"orders:read", "Read orders"}, {"otp:send", "Send OTP"}}, []CatalogEntry{{"order.created", "An order"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"orders:read", "otp:send", PermAPIKeysRead} {
		if !c.HasPermission(p) {
			t.Errorf("catalog lacks %s", p)
		}
	}
	if c.HasPermission("orders:write") {
		t.Error("catalog has a permission nobody declared")
	}
	if !c.HasEventType("order.created") || !c.HasEventType(EventAPIKeyCreated) {
		t.Error("event types missing")
	}
	ps := c.Permissions()
	for i := 1; i < len(ps); i++ {
		if ps[i-1].Name >= ps[i].Name {
			t.Fatalf("permissions not sorted: %s before %s", ps[i-1].Name, ps[i].Name)
		}
	}
	for _, bad := range [][]CatalogEntry{
		{{"Orders:Read", ""}}, {{"orders", ""}}, {{"orders:read", ""}, {"orders:read", ""}}, {{PermAuditRead, "again"}}, {{"a:b c", ""}},
	} {
		if _, err := NewCatalog(bad, nil); err == nil {
			t.Errorf("NewCatalog(%v) accepted it", bad)
		}
	}
	if _, err := NewCatalog(nil, []CatalogEntry{{"order:created", ""}}); err == nil {
		t.Error("an event type with ':' was accepted")
	}
}

func TestCallerAuthorize(t *testing.T) {
	op := &Caller{Operator: true}
	if op.Authorize("ws_a", PermAPIKeysWrite) != nil {
		t.Error("operator refused")
	}
	k := &Caller{WorkspaceID: "ws_a", Permissions: []string{PermAPIKeysRead}}
	if k.Authorize("ws_a", PermAPIKeysRead) != nil {
		t.Error("own workspace, held permission refused")
	}
	if ErrorCode(k.Authorize("ws_a", PermAPIKeysWrite)) != CodeForbidden {
		t.Error("missing permission not forbidden")
	}
	if ErrorCode(k.Authorize("ws_b", PermAPIKeysRead)) != CodeNotFound {
		t.Error("another workspace must be not found, never forbidden")
	}
	if ErrorCode((&Caller{}).Authorize("", PermAPIKeysRead)) != CodeNotFound {
		t.Error("a caller with no workspace reached one")
	}
}

func BenchmarkCheck(b *testing.B) {
	k := &APIKey{Enabled: true, Environment: EnvLive, Permissions: []string{"orders:read", "orders:write"}, IPAllowlist: []string{"203.0.113.0/24"}}
	c := Compile(k)
	req := &VerifyRequest{Permissions: []string{"orders:read"}, IP: netip.MustParseAddr("203.0.113.9")}
	b.ReportAllocs()
	for b.Loop() {
		if c.Check(t0, nil, req) != VerifyValid {
			b.Fatal("not valid")
		}
	}
}

func TestNormalizeOrigin(t *testing.T) {
	for in, want := range map[string]string{
		"https://shop.example.com":      "https://shop.example.com",
		"https://Shop.Example.com/":     "https://shop.example.com",
		"HTTPS://shop.example.com:443":  "https://shop.example.com",
		"http://shop.example.com:80":    "http://shop.example.com",
		"http://shop.example.com:443":   "http://shop.example.com:443",
		"https://shop.example.com:0443": "https://shop.example.com",
		"http://localhost:3000":         "http://localhost:3000",
		"https://[2001:DB8::1]:443":     "https://[2001:db8::1]",
		"https://[2001:db8::1]:8443":    "https://[2001:db8::1]:8443",
		"https://203.0.113.7:65535":     "https://203.0.113.7:65535",
		"https://xn--caf-dma.example":   "https://xn--caf-dma.example",
	} {
		if got, ok := NormalizeOrigin(in); !ok || got != want {
			t.Errorf("NormalizeOrigin(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, bad := range []string{"", "shop.example.com", "ftp://x.example", "https://", "https://u:p@x.example", "https://x.example/path",
		"https://x.example?q", "https://x.example#f", "null", "*", "https://*.example", "https://*", "https://x.example:99999",
		"https://x.example:0", "https://x.example:", "https://x.example:-1", "https://x.example:8a", "https://x.example:123456",
		"https://[2001:db8::1", "https://[fe80::1%25eth0]", "https://[not-ip]", "https://café.example", "https://x.example\\y",
		"https://x .example", "https://x.example:443:443", "https://2001:db8::1"} {
		if got, ok := NormalizeOrigin(bad); ok {
			t.Errorf("NormalizeOrigin(%q) = %q, accepted", bad, got)
		}
	}
}

// TestCompileKeepsWhatVerificationReads: a compiled key holds every field a verification answer,
// forward auth and a management call read, and derives the key's status as the key does, whatever
// its revocation, expiry (a zero time set included) and enabled flag.
func TestCompileKeepsWhatVerificationReads(t *testing.T) {
	k := &APIKey{ID: "apk_1", WorkspaceID: "ws_1", Name: "checkout", KeyType: KeyTypeSecret, Environment: EnvLive,
		Permissions: []string{"orders:read"}, Meta: json.RawMessage(`{"plan":"pro"}`), IPAllowlist: []string{"203.0.113.0/24"},
		AllowedOrigins: []string{"https://Shop.example:443"}, RateLimit: &RateLimit{Limit: 10, WindowMs: 1000},
		Credits: &Credits{Remaining: 5}, IdentityID: "idn_1", Identity: &Identity{ID: "idn_1", ExternalID: "cus_1"},
		Enabled: true, ExpiresAt: at(time.Hour)}
	c := Compile(k)
	if c.ID != k.ID || c.WorkspaceID != k.WorkspaceID || c.Name != k.Name || c.KeyType != k.KeyType || c.Environment != k.Environment ||
		!slices.Equal(c.Permissions, k.Permissions) || string(c.Meta) != string(k.Meta) || !slices.Equal(c.IPAllowlist, k.IPAllowlist) ||
		c.RateLimit != k.RateLimit || c.Credits != k.Credits || c.IdentityID != k.IdentityID || c.Identity != k.Identity ||
		c.ExpiresAt() == nil || !c.ExpiresAt().Equal(*k.ExpiresAt) || c.Revoked() {
		t.Fatalf("compiled %+v\nfrom %+v", c, k)
	}
	if got := slices.Collect(c.Origins()); !slices.Equal(got, []string{"https://shop.example"}) {
		t.Errorf("origins %v", got)
	}
	zero := time.Time{}
	for _, exp := range []*time.Time{nil, at(-time.Second), at(time.Second), &zero} {
		for _, revoked := range []*time.Time{nil, at(-time.Hour)} {
			for _, enabled := range []bool{true, false} {
				k := &APIKey{Enabled: enabled, ExpiresAt: exp, RevokedAt: revoked}
				c := Compile(k)
				for _, now := range []time.Time{t0, t0.Add(2 * time.Second)} {
					if got, want := c.Status(now), k.Status(now); got != want {
						t.Errorf("expires %v, revoked %v, enabled %v at %v: %s, the key says %s", exp, revoked, enabled, now, got, want)
					}
				}
				if (c.ExpiresAt() == nil) != (exp == nil) || c.Revoked() != (revoked != nil) {
					t.Errorf("expires %v, revoked %v: compiled %v, %v", exp, revoked, c.ExpiresAt(), c.Revoked())
				}
			}
		}
	}
}
