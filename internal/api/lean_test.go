package api_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/accesslog"
	"github.com/keyplane/keyplane/internal/api"
	"github.com/keyplane/keyplane/internal/metrics"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/service/servicetest"
	"github.com/keyplane/keyplane/internal/verify"
)

// panickyLog is a request log that panics on the entry of one key: a bug deep in a verification.
type panickyLog struct{ keyID atomic.Value }

func (p *panickyLog) Log(e keyplane.RequestLog) {
	if id, _ := p.keyID.Load().(string); id == e.KeyID {
		panic("request log exploded")
	}
}

// leanChain is serve's handler chain around the API (access log, HSTS, Lean, HTTP metrics for the
// rest), with a verify root key, an admin root key and two keys: one that verifies, one whose log
// entry panics.
type leanChain struct {
	h                     http.Handler
	m                     *metrics.Metrics
	logs                  *bytes.Buffer
	verifyRoot, adminRoot string
	good, bad             string
	ws                    string
}

func newLeanChain(t testing.TB) *leanChain {
	t.Helper()
	db := servicetest.OpenDB(t, "sqlite")
	ver, err := verify.New(db.Lookups(), verify.Options{KeyPrefix: "kp"})
	if err != nil {
		t.Fatal(err)
	}
	svc := db.Service(t, service.Options{Forget: ver.Forget})
	ctx, sys := context.Background(), keyplane.System("test")
	c := &leanChain{m: metrics.New(), logs: &bytes.Buffer{}}
	if _, c.verifyRoot, err = svc.CreateRootKey(ctx, sys, "v", []string{keyplane.ScopeVerify}); err != nil {
		t.Fatal(err)
	}
	if _, c.adminRoot, err = svc.CreateRootKey(ctx, sys, "a", []string{keyplane.ScopeAdmin}); err != nil {
		t.Fatal(err)
	}
	w, err := svc.CreateWorkspace(ctx, sys, service.WorkspaceInput{Name: "W", Slug: "w"})
	if err != nil {
		t.Fatal(err)
	}
	c.ws = w.ID
	_, c.good, err = svc.CreateAPIKey(ctx, sys, w.ID, service.CreateKeyInput{Name: "good", KeyType: keyplane.KeyTypeSecret})
	if err != nil {
		t.Fatal(err)
	}
	bad, badValue, err := svc.CreateAPIKey(ctx, sys, w.ID, service.CreateKeyInput{Name: "bad", KeyType: keyplane.KeyTypeSecret})
	if err != nil {
		t.Fatal(err)
	}
	c.bad = badValue
	rl := &panickyLog{}
	rl.keyID.Store(bad.ID)
	log := slog.New(slog.NewTextHandler(c.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	srv := api.New(api.Options{Service: svc, Verifier: ver, Logger: log, RequestLog: rl, Observe: c.m.Verification})
	c.h = accesslog.Wrap(log, srv.StrictTransport(srv.Lean(c.m.Middleware(srv))), srv.Panic)
	return c
}

func (c *leanChain) do(method, path, auth, body string, hdr map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if auth != "" {
		r.Header.Set("Authorization", "Bearer "+auth)
	}
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	if hdr["tls"] != "" {
		r.Header.Del("tls")
		r.TLS = &tls.ConnectionState{}
	}
	rec := httptest.NewRecorder()
	c.h.ServeHTTP(rec, r)
	return rec
}

func (c *leanChain) scrape(t *testing.T) string {
	t.Helper()
	rec := httptest.NewRecorder()
	c.m.Handler("").ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}

type errorAnswer struct {
	Success bool `json:"success"`
	Error   struct {
		Code      string `json:"code"`
		RequestID string `json:"requestId"`
	} `json:"error"`
}

func decodeError(t *testing.T, rec *httptest.ResponseRecorder) errorAnswer {
	t.Helper()
	var a errorAnswer
	if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil {
		t.Fatalf("not an envelope: %q", rec.Body.String())
	}
	return a
}

// TestLeanVerification: POST /v1/verify and forward auth, served past the generic middleware, still
// echo request ids, answer panics with a 500 envelope, access-log refusals and failures, send HSTS,
// hold the body limit and answer errors in the envelope; the verification metrics count them, and the
// generic HTTP metrics count every other route.
func TestLeanVerification(t *testing.T) {
	c := newLeanChain(t)

	rec := c.do("POST", "/v1/verify", c.verifyRoot, `{"key":"`+c.good+`"}`, map[string]string{"X-Request-Id": "trace-1", "tls": "1"})
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"code":"VALID"`) {
		t.Fatalf("verify: %d %s", rec.Code, rec.Body)
	}
	if got := rec.Header().Get("X-Request-Id"); got != "trace-1" {
		t.Errorf("X-Request-Id %q, want trace-1", got)
	}
	if got := rec.Header().Get("Strict-Transport-Security"); got != api.HSTS {
		t.Errorf("HSTS over TLS: %q", got)
	}
	if strings.Contains(c.logs.String(), "http request") {
		t.Errorf("an answered verification logged at info: %s", c.logs)
	}

	// A refusal of the caller: 401 in the envelope with the request id, and an access log line.
	rec = c.do("POST", "/v1/verify", "kp_root_"+strings.Repeat("A", 40), `{"key":"`+c.good+`"}`, nil)
	a := decodeError(t, rec)
	if rec.Code != 401 || a.Error.Code != "unauthorized" || a.Error.RequestID == "" || a.Error.RequestID != rec.Header().Get("X-Request-Id") {
		t.Errorf("unknown root key: %d %s (X-Request-Id %q)", rec.Code, rec.Body, rec.Header().Get("X-Request-Id"))
	}
	if !strings.Contains(c.logs.String(), "http request") || !strings.Contains(c.logs.String(), "status=401") || !strings.Contains(c.logs.String(), "path=/v1/verify") {
		t.Errorf("the refusal is not in the access log: %s", c.logs)
	}
	// The other credentials answer as authenticate does.
	for _, cr := range []struct{ auth, code string }{{c.adminRoot, "forbidden"}, {c.good, "forbidden"}, {"", "unauthorized"}, {"nonsense", "unauthorized"}} {
		if rec := c.do("POST", "/v1/verify", cr.auth, `{"key":"`+c.good+`"}`, nil); decodeError(t, rec).Error.Code != cr.code {
			t.Errorf("verify with %.12q…: %d %s, want %s", cr.auth, rec.Code, rec.Body, cr.code)
		}
	}

	// The body limit and the envelope of a bad request.
	rec = c.do("POST", "/v1/verify", c.verifyRoot, `{"key":"`+strings.Repeat("A", 70<<10)+`"}`, nil)
	if rec.Code != 413 || decodeError(t, rec).Error.Code != "payload_too_large" {
		t.Errorf("a 70 KiB body: %d %s", rec.Code, rec.Body)
	}
	if rec := c.do("POST", "/v1/verify", c.verifyRoot, `{"key":1}`, nil); rec.Code != 400 || decodeError(t, rec).Error.Code != "invalid_request" {
		t.Errorf("a bad body: %d %s", rec.Code, rec.Body)
	}
	if rec := c.do("GET", "/v1/verify", c.verifyRoot, "", nil); rec.Code != 405 {
		t.Errorf("GET /v1/verify: %d %s", rec.Code, rec.Body)
	}

	// A panic while verifying: 500 in the envelope, with the request id, and the panic logged.
	c.logs.Reset()
	rec = c.do("POST", "/v1/verify", c.verifyRoot, `{"key":"`+c.bad+`"}`, map[string]string{"X-Request-Id": "trace-2"})
	a = decodeError(t, rec)
	if rec.Code != 500 || a.Error.Code != "internal" || a.Error.RequestID != "trace-2" {
		t.Errorf("a panic: %d %s", rec.Code, rec.Body)
	}
	if !strings.Contains(c.logs.String(), "request log exploded") || !strings.Contains(c.logs.String(), "status=500") {
		t.Errorf("the panic is not logged: %s", c.logs)
	}

	// Forward auth takes the same lean route.
	rec = c.do("GET", "/v1/auth/orders/1", "", "", map[string]string{"X-Keyplane-Root-Key": c.verifyRoot, "X-API-Key": c.good})
	if rec.Code != 200 || rec.Header().Get("X-Request-Id") == "" {
		t.Errorf("forward auth: %d %s", rec.Code, rec.Body)
	}
	for _, p := range []string{"/v1/auth", "/v1/auth/", "/v1/auth/orders/"} {
		if rec := c.do("GET", p, "", "", map[string]string{"X-Keyplane-Root-Key": c.verifyRoot, "X-API-Key": c.good}); rec.Code != 200 {
			t.Errorf("forward auth on %s: %d %s", p, rec.Code, rec.Body)
		}
	}
	// A path ServeMux would clean is still redirected, as before.
	if rec := c.do("GET", "/v1/auth/a/../b", "", "", map[string]string{"X-Keyplane-Root-Key": c.verifyRoot, "X-API-Key": c.good}); rec.Code != http.StatusTemporaryRedirect || rec.Header().Get("Location") != "/v1/auth/b" {
		t.Errorf("forward auth on an unclean path: %d to %q, want ServeMux's 307 to /v1/auth/b", rec.Code, rec.Header().Get("Location"))
	}

	// A management call, for the generic metrics.
	if rec := c.do("GET", "/v1/api-keys", c.adminRoot, "", map[string]string{"X-Workspace-Id": c.ws}); rec.Code != 200 {
		t.Errorf("list keys: %d %s", rec.Code, rec.Body)
	}

	body := c.scrape(t)
	for _, want := range []string{
		// The key whose log entry panicked was counted before the panic.
		`keyplane_verifications_total{code="VALID",source="verify"} 2`,
		`keyplane_verifications_total{code="VALID",source="auth"} 4`,
		`keyplane_http_requests_total{method="GET",route="GET /v1/api-keys",status="200"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(body, `route="POST /v1/verify"`) || strings.Contains(body, `route="/v1/auth/",status="200"`) {
		t.Errorf("the generic HTTP metrics counted a verification:\n%s", body)
	}
}

// TestLeanVerificationAllocations: the lean route's allocations per verification, counted so that one
// added by mistake shows; the budget is what the route needed when written (see docs/performance.md).
func TestLeanVerificationAllocations(t *testing.T) {
	if raceDetector {
		t.Skip("the race detector allocates")
	}
	c := newLeanChain(t)
	verify, w := c.verifyAgain("trace-3")
	verify() // fills the cache
	allocs := testing.AllocsPerRun(200, verify)
	if w.code != 200 {
		t.Fatalf("status %d", w.code)
	}
	t.Logf("%.0f allocations a verification", allocs)
	if allocs > leanAllocs {
		t.Errorf("%.0f allocations a verification, want at most %d", allocs, leanAllocs)
	}
}

// leanAllocs: the request context (one value for the id, start and status writer), its request copy,
// the X-Request-Id header, the body limit reader, the decoded request and its key string.
const leanAllocs = 6

// verifyAgain returns a function that verifies the good key through the chain, reusing one request
// and one writer (so that only the chain's own allocations count), and the writer. An empty rid sends
// no X-Request-Id.
func (c *leanChain) verifyAgain(rid string) (func(), *discard) {
	body := `{"key":"` + c.good + `"}`
	r := httptest.NewRequest("POST", "/v1/verify", nil)
	r.Header.Set("Authorization", "Bearer "+c.verifyRoot)
	r.Header.Set("Content-Type", "application/json")
	if rid != "" {
		r.Header.Set("X-Request-Id", rid)
	}
	w := &discard{h: http.Header{}}
	rd := strings.NewReader(body)
	return func() {
		rd.Reset(body)
		r.Body = readCloser{rd}
		clear(w.h)
		c.h.ServeHTTP(w, r)
	}, w
}

type readCloser struct{ *strings.Reader }

func (readCloser) Close() error { return nil }

type discard struct {
	h    http.Header
	code int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) WriteHeader(code int)        { d.code = code }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }

// BenchmarkVerifyChain is one verification through serve's handler chain, in process, without the
// network or net/http's server: the work of the chain and the route alone. It sends no request id,
// so the chain makes one.
func BenchmarkVerifyChain(b *testing.B) {
	verify, w := newLeanChain(b).verifyAgain("")
	b.ReportAllocs()
	for b.Loop() {
		verify()
	}
	if w.code != 200 {
		b.Fatalf("status %d", w.code)
	}
}
