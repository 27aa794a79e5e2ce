package api_test

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/keyplane/keyplane/internal/api"
)

// TestStrictTransport: HSTS goes with every answer to a request that came over TLS, directly or
// through a trusted proxy's X-Forwarded-Proto; never over plain HTTP, nor on an untrusted peer's word.
func TestStrictTransport(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNotFound) })
	trusting := api.New(api.Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/32")}}).StrictTransport(ok)
	none := api.New(api.Options{}).StrictTransport(ok)
	cases := []struct {
		name  string
		h     http.Handler
		peer  string
		tls   bool
		proto string
		want  bool
	}{
		{"plain HTTP", trusting, "10.0.0.9:4000", false, "", false},
		{"TLS, directly", none, "10.0.0.9:4000", true, "", true},
		{"TLS, directly, with a lying header", none, "10.0.0.9:4000", true, "http", true},
		{"a trusted proxy says https", trusting, "10.0.0.1:4000", false, "HTTPS", true},
		{"a trusted proxy says http", trusting, "10.0.0.1:4000", false, "http", false},
		{"an untrusted peer says https", trusting, "10.0.0.9:4000", false, "https", false},
		{"no proxy is trusted", none, "127.0.0.1:4000", false, "https", false},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "/v1/api-keys", nil)
		r.RemoteAddr = c.peer
		if c.tls {
			r.TLS = &tls.ConnectionState{}
		}
		if c.proto != "" {
			r.Header.Set("X-Forwarded-Proto", c.proto)
		}
		rec := httptest.NewRecorder()
		c.h.ServeHTTP(rec, r)
		got := rec.Header().Get("Strict-Transport-Security")
		if (got == api.HSTS) != c.want || (!c.want && got != "") {
			t.Errorf("%s: Strict-Transport-Security %q, want it: %v", c.name, got, c.want)
		}
	}
	if api.HSTS != "max-age=63072000; includeSubDomains" {
		t.Errorf("HSTS is %q", api.HSTS)
	}
}
