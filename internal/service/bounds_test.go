package service

import (
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
)

// TestCheckBounds: the edges of "at least as bounded as the calling key" (TestKeyBounds in
// internal/e2e holds the API end to end).
func TestCheckBounds(t *testing.T) {
	hour := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	later, sooner := hour.Add(time.Microsecond), hour.Add(-time.Hour)
	caller := &keyplane.Caller{Actor: keyplane.Actor{Type: keyplane.ActorAPIKey, ID: "apk_c"}, Environment: keyplane.EnvLive,
		ExpiresAt: &hour, IPAllowlist: []string{"10.0.0.0/8", "::1", "2001:db8::/32"}, RateLimit: &keyplane.RateLimit{Limit: 10, WindowMs: 1000}}
	ok := keyplane.APIKey{ExpiresAt: &hour, IPAllowlist: []string{"10.1.0.0/16"}, RateLimit: &keyplane.RateLimit{Limit: 10, WindowMs: 1000}}
	for _, c := range []struct {
		name  string
		edit  func(k *keyplane.APIKey)
		field string // "" allowed
	}{
		{"the same bounds", func(*keyplane.APIKey) {}, ""},
		{"sooner, narrower, slower", func(k *keyplane.APIKey) {
			k.ExpiresAt, k.IPAllowlist, k.RateLimit = &sooner, []string{"10.1.2.3", "::1", "2001:db8:1::/48"}, &keyplane.RateLimit{Limit: 1, WindowMs: 60000}
		}, ""},
		{"the caller's whole prefix", func(k *keyplane.APIKey) { k.IPAllowlist = []string{"10.0.0.0/8"} }, ""},
		{"no expiry", func(k *keyplane.APIKey) { k.ExpiresAt = nil }, "expiresAt"},
		{"a microsecond later", func(k *keyplane.APIKey) { k.ExpiresAt = &later }, "expiresAt"},
		{"no allow-list", func(k *keyplane.APIKey) { k.IPAllowlist = nil }, "ipAllowlist"},
		{"a wider prefix", func(k *keyplane.APIKey) { k.IPAllowlist = []string{"10.0.0.0/7"} }, "ipAllowlist"},
		{"everything", func(k *keyplane.APIKey) { k.IPAllowlist = []string{"0.0.0.0/0"} }, "ipAllowlist"},
		{"all of IPv6", func(k *keyplane.APIKey) { k.IPAllowlist = []string{"::/0"} }, "ipAllowlist"},
		{"an IPv6 prefix holding ::1", func(k *keyplane.APIKey) { k.IPAllowlist = []string{"::/127"} }, "ipAllowlist"},
		{"one address outside", func(k *keyplane.APIKey) { k.IPAllowlist = []string{"10.0.0.1", "11.0.0.1"} }, "ipAllowlist"},
		{"an entry that does not parse", func(k *keyplane.APIKey) { k.IPAllowlist = []string{"10.0.0.1/33"} }, "ipAllowlist"},
		{"no rate limit", func(k *keyplane.APIKey) { k.RateLimit = nil }, "rateLimit"},
		{"a higher limit", func(k *keyplane.APIKey) { k.RateLimit = &keyplane.RateLimit{Limit: 11, WindowMs: 1000} }, "rateLimit"},
		{"a shorter window", func(k *keyplane.APIKey) { k.RateLimit = &keyplane.RateLimit{Limit: 1, WindowMs: 999} }, "rateLimit"},
	} {
		k := ok
		c.edit(&k)
		err := checkBounds(caller, &k, "the new key")
		switch {
		case c.field == "" && err != nil:
			t.Errorf("%s: refused: %v", c.name, err)
		case c.field != "" && (keyplane.ErrorCode(err) != keyplane.CodeForbidden || !strings.HasPrefix(err.Error(), c.field+":") && !strings.Contains(err.Error(), c.field+":")):
			t.Errorf("%s: %v, want forbidden naming %s", c.name, err, c.field)
		}
	}
	// Unbounded callers, and callers that are not keys, are not bounded by these rules.
	free := keyplane.APIKey{}
	for name, c := range map[string]*keyplane.Caller{
		"a key without bounds": {Actor: keyplane.Actor{Type: keyplane.ActorAPIKey, ID: "apk_f"}, Environment: keyplane.EnvLive},
		"a person":             {Actor: keyplane.Actor{Type: keyplane.ActorUser, ID: "usr_x"}, ExpiresAt: &hour, IPAllowlist: []string{"10.0.0.1"}},
		"the operator":         keyplane.System("test"),
	} {
		if err := checkBounds(c, &free, "the new key"); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
