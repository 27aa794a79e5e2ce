package accesslog

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/keyplane/keyplane/internal/keyformat"
)

// TestLevels: answered verifications are logged at debug, everything else at info.
func TestLevels(t *testing.T) {
	cases := []struct {
		path   string
		status int
		info   bool
	}{
		{"/v1/verify", 200, false},
		{"/v1/verify/signature", 200, false},
		{"/v1/verify/jwt", 200, false},
		{"/v1/auth", 200, false},
		{"/v1/auth/orders/1", 200, false},
		{"/v1/verify", 401, true},
		{"/v1/verify", 429, true},
		{"/v1/auth", 403, true},
		{"/v1/verify", 503, true},
		{"/v1/verifyx", 200, true},
		{"/v1/api-keys", 200, true},
		{"/login", 200, true},
	}
	for _, c := range cases {
		for _, lvl := range []slog.Level{slog.LevelInfo, slog.LevelDebug} {
			var buf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: lvl}))
			h := Wrap(log, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(c.status) }), nil)
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", c.path, nil))
			logged := strings.Contains(buf.String(), "http request") && strings.Contains(buf.String(), "path="+c.path)
			if want := c.info || lvl == slog.LevelDebug; logged != want {
				t.Errorf("%s %d at level %s: logged %v, want %v: %q", c.path, c.status, lvl, logged, want, buf.String())
			}
		}
	}
}

// TestCredentialRequestID: a key value sent as X-Request-Id would be kept in the access log, in error
// bodies and in the audit trail's requestId, where it can never be removed; it is treated as absent.
func TestCredentialRequestID(t *testing.T) {
	for _, sent := range []string{
		keyformat.Generate("kp", "sk", "live"),
		keyformat.Generate("acme2", "pk", "test"),
		keyformat.GenerateRoot("kp"),
		"x" + keyformat.Generate("kp", "sk", "test"),
	} {
		var logs bytes.Buffer
		var seen string
		h := Wrap(slog.New(slog.NewTextHandler(&logs, nil)), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen = RequestID(r.Context())
		}), nil)
		rec := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "/v1/api-keys", nil)
		r.Header.Set("X-Request-Id", sent)
		h.ServeHTTP(rec, r)
		got := rec.Header().Get("X-Request-Id")
		if got != seen || !strings.HasPrefix(got, "req_") {
			t.Errorf("X-Request-Id %q: answered %q, context %q; want a new req_ id in both", sent, got, seen)
		}
		if strings.Contains(logs.String(), sent) || strings.Contains(logs.String(), sent[len(sent)-38:]) {
			t.Errorf("X-Request-Id %q: the access log holds it: %s", sent, logs.String())
		}
	}
	// A sane id of the caller's own is kept.
	h := Wrap(slog.New(slog.DiscardHandler), http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), nil)
	rec := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/v1/api-keys", nil)
	r.Header.Set("X-Request-Id", "trace_kp_sk_1234.abc-DEF")
	h.ServeHTTP(rec, r)
	if got := rec.Header().Get("X-Request-Id"); got != "trace_kp_sk_1234.abc-DEF" {
		t.Errorf("a sane request id of the caller's: answered %q", got)
	}
}
