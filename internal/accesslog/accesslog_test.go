package accesslog

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
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
