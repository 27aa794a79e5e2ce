package client_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyplane/keyplane/client"
)

// protected is a handler behind the middleware: it answers the caller's key id from the context.
func protected() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res, ok := client.FromContext(r.Context())
		if !ok {
			io.WriteString(w, "no result")
			return
		}
		io.WriteString(w, res.KeyID)
	})
}

// hit serves one request through h with the key in Authorization: Bearer ("" for none).
func hit(h http.Handler, key string, mod ...func(*http.Request)) *httptest.ResponseRecorder {
	r := httptest.NewRequest("GET", "/orders", nil)
	r.RemoteAddr = "127.0.0.1:5555"
	if key != "" {
		r.Header.Set("Authorization", "Bearer "+key)
	}
	for _, m := range mod {
		m(r)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

type refusal struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func expect(t *testing.T, w *httptest.ResponseRecorder, status int, code string) {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status %d, want %d: %s", w.Code, status, w.Body)
	}
	if code == "" {
		return
	}
	var r refusal
	if err := json.Unmarshal(w.Body.Bytes(), &r); err != nil || r.Error.Code != code || r.Error.Message == "" {
		t.Fatalf("body %s, want error code %s", w.Body, code)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
}

func TestMiddleware(t *testing.T) {
	ctx := context.Background()
	w, _ := newWorkspace(t, "mw")
	good := mustKey(t, w, client.CreateAPIKeyRequest{Name: "Good", KeyType: client.KeyTypeSecret, Permissions: []string{"orders:read"}})
	bare := mustKey(t, w, client.CreateAPIKeyRequest{Name: "Bare", KeyType: client.KeyTypeSecret})
	limited := mustKey(t, w, client.CreateAPIKeyRequest{Name: "Limited", KeyType: client.KeyTypeSecret, Permissions: []string{"orders:read"},
		RateLimit: &client.RateLimit{Limit: 3, WindowMs: 60000}})
	fenced := mustKey(t, w, client.CreateAPIKeyRequest{Name: "Fenced", KeyType: client.KeyTypeSecret, Permissions: []string{"orders:read"},
		IPAllowlist: []string{"203.0.113.0/24"}})

	cnt := newCounting()
	v := newVerifier(shared.Verify, client.WithHTTPClient(cnt.client()))
	h := v.Middleware(client.MiddlewareOptions{Permissions: []string{"orders:read"}})(protected())

	t.Run("valid key reaches the handler with its result", func(t *testing.T) {
		res := hit(h, good.KeyValue)
		expect(t, res, 200, "")
		if res.Body.String() != good.ID {
			t.Errorf("handler saw %q, want %s", res.Body, good.ID)
		}
		res = hit(h, "", func(r *http.Request) { r.Header.Set("X-API-Key", good.KeyValue) })
		expect(t, res, 200, "")
	})

	t.Run("401 without a key or with a bad one", func(t *testing.T) {
		res := hit(h, "")
		expect(t, res, 401, "unauthorized")
		if res.Header().Get("WWW-Authenticate") == "" {
			t.Error("no WWW-Authenticate")
		}
		expect(t, hit(h, "", func(r *http.Request) { r.Header.Set("Authorization", "Basic abc") }), 401, "unauthorized")
		expect(t, hit(h, "kp_sk_live_doesnotexist"), 401, "unauthorized")
		expect(t, hit(h, strings.Repeat("k", 4096)), 401, "unauthorized")
	})

	t.Run("403 without the permission", func(t *testing.T) {
		expect(t, hit(h, bare.KeyValue), 403, "forbidden")
	})

	t.Run("403 from outside the allowlist, 200 with the ClientIP option", func(t *testing.T) {
		expect(t, hit(h, fenced.KeyValue), 403, "forbidden")
		h2 := v.Middleware(client.MiddlewareOptions{ClientIP: func(r *http.Request) string { return r.Header.Get("X-Client-IP") }})(protected())
		expect(t, hit(h2, fenced.KeyValue, func(r *http.Request) { r.Header.Set("X-Client-IP", "203.0.113.5") }), 200, "")
		expect(t, hit(h2, fenced.KeyValue, func(r *http.Request) { r.Header.Set("X-Client-IP", "198.51.100.5") }), 403, "forbidden")
	})

	t.Run("valid answers are cached", func(t *testing.T) {
		fresh := mustKey(t, w, client.CreateAPIKeyRequest{Name: "Fresh", KeyType: client.KeyTypeSecret, Permissions: []string{"orders:read"}})
		before := cnt.n.Load()
		for range 10 {
			expect(t, hit(h, fresh.KeyValue), 200, "")
		}
		if n := cnt.n.Load() - before; n != 1 {
			t.Errorf("10 requests asked keyplane %d times, want 1", n)
		}
		// The answer is per client address: another address asks again.
		expect(t, hit(h, fresh.KeyValue, func(r *http.Request) { r.RemoteAddr = "[::1]:80" }), 200, "")
		if n := cnt.n.Load() - before; n != 2 {
			t.Errorf("another address: %d requests, want 2", n)
		}
	})

	t.Run("NOT_FOUND is cached, refusals are not", func(t *testing.T) {
		before := cnt.n.Load()
		for range 3 {
			expect(t, hit(h, "kp_sk_live_alsonotthere"), 401, "unauthorized")
		}
		if n := cnt.n.Load() - before; n != 1 {
			t.Errorf("NOT_FOUND x3 asked %d times, want 1", n)
		}
		before = cnt.n.Load()
		for range 3 {
			expect(t, hit(h, bare.KeyValue), 403, "forbidden")
		}
		if n := cnt.n.Load() - before; n != 3 {
			t.Errorf("INSUFFICIENT_PERMISSIONS x3 asked %d times, want 3", n)
		}
	})

	t.Run("keys with a rate limit are never cached, and get 429", func(t *testing.T) {
		before := cnt.n.Load()
		for i := range 3 {
			expect(t, hit(h, limited.KeyValue), 200, "")
			if n := cnt.n.Load() - before; n != int64(i+1) {
				t.Fatalf("request %d of a limited key: %d calls to keyplane", i+1, n)
			}
		}
		res := hit(h, limited.KeyValue)
		expect(t, res, 429, "rate_limited")
		secs, err := strconv.Atoi(res.Header().Get("Retry-After"))
		if err != nil || secs < 1 || secs > 60 {
			t.Errorf("Retry-After %q", res.Header().Get("Retry-After"))
		}
		if n := cnt.n.Load() - before; n != 4 {
			t.Errorf("4 requests of a limited key asked keyplane %d times", n)
		}
	})

	t.Run("a revoked key is refused within the TTL", func(t *testing.T) {
		const ttl = 200 * time.Millisecond
		short := v.Middleware(client.MiddlewareOptions{CacheTTL: ttl})(protected())
		doomed := mustKey(t, w, client.CreateAPIKeyRequest{Name: "Doomed", KeyType: client.KeyTypeSecret})
		expect(t, hit(short, doomed.KeyValue), 200, "")
		if _, err := w.RevokeAPIKey(ctx, doomed.ID); err != nil {
			t.Fatal(err)
		}
		revoked := time.Now()
		time.Sleep(ttl + 20*time.Millisecond)
		res := hit(short, doomed.KeyValue)
		expect(t, res, 401, "unauthorized")
		if !strings.Contains(res.Body.String(), "revoked") {
			t.Errorf("body %s does not say revoked", res.Body)
		}
		t.Logf("refused %s after the revocation", time.Since(revoked).Round(time.Millisecond))
	})

	t.Run("no cache when CacheTTL is negative", func(t *testing.T) {
		nocache := v.Middleware(client.MiddlewareOptions{CacheTTL: -1})(protected())
		before := cnt.n.Load()
		for range 3 {
			expect(t, hit(nocache, good.KeyValue), 200, "")
		}
		if n := cnt.n.Load() - before; n != 3 {
			t.Errorf("3 requests: %d calls", n)
		}
	})

	t.Run("custom key extractor and error writer", func(t *testing.T) {
		var seen atomic.Int64
		custom := v.Middleware(client.MiddlewareOptions{
			Key: func(r *http.Request) string { return r.URL.Query().Get("api_key") },
			WriteError: func(w http.ResponseWriter, r *http.Request, status int, code, message string, res *client.VerifyResult) {
				seen.Add(1)
				w.WriteHeader(status)
				io.WriteString(w, "custom "+code)
			},
		})(protected())
		r := httptest.NewRequest("GET", "/?api_key="+good.KeyValue, nil)
		rec := httptest.NewRecorder()
		custom.ServeHTTP(rec, r)
		expect(t, rec, 200, "")
		rec = httptest.NewRecorder()
		custom.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		if rec.Code != 401 || rec.Body.String() != "custom unauthorized" || seen.Load() != 1 {
			t.Errorf("custom refusal: %d %s", rec.Code, rec.Body)
		}
	})

	t.Run("503 when keyplane is down, unless fail open", func(t *testing.T) {
		down := client.NewVerifier(deadURL(t), shared.Verify)
		var errs []error
		var mu sync.Mutex
		closed := down.Middleware(client.MiddlewareOptions{OnError: func(r *http.Request, err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() }})(protected())
		expect(t, hit(closed, good.KeyValue), 503, "unavailable")
		if len(errs) != 1 || strings.Contains(errs[0].Error(), good.KeyValue) {
			t.Errorf("OnError got %v", errs)
		}
		open := down.Middleware(client.MiddlewareOptions{FailOpen: true})(protected())
		res := hit(open, good.KeyValue)
		if res.Code != 200 || res.Body.String() != "no result" {
			t.Errorf("fail open: %d %s", res.Code, res.Body)
		}
		// A misconfigured verifier (a root key without the verify scope) never fails open.
		wrong := newVerifier(shared.Admin).Middleware(client.MiddlewareOptions{FailOpen: true})(protected())
		expect(t, hit(wrong, good.KeyValue), 503, "unavailable")
	})

	t.Run("concurrent requests", func(t *testing.T) {
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				if res := hit(h, good.KeyValue); res.Code != 200 {
					t.Errorf("concurrent: %d", res.Code)
				}
			})
		}
		wg.Wait()
	})
}

// TestMiddlewareExpiringKey: a cached answer is not served past the key's expiry.
func TestMiddlewareExpiringKey(t *testing.T) {
	w, _ := newWorkspace(t, "mwexp")
	k := mustKey(t, w, client.CreateAPIKeyRequest{Name: "Short", KeyType: client.KeyTypeSecret})
	cnt := newCounting()
	v := newVerifier(shared.Verify, client.WithHTTPClient(cnt.client()))
	h := v.Middleware(client.MiddlewareOptions{CacheTTL: time.Hour})(protected())
	exp := time.Now().Add(1500 * time.Millisecond)
	if _, err := w.UpdateAPIKey(context.Background(), k.ID, client.UpdateAPIKeyRequest{ExpiresAt: client.Some(exp)}); err != nil {
		t.Fatal(err)
	}
	expect(t, hit(h, k.KeyValue), 200, "")
	expect(t, hit(h, k.KeyValue), 200, "")
	if cnt.n.Load() != 1 {
		t.Fatalf("%d calls, want 1 (cached)", cnt.n.Load())
	}
	time.Sleep(time.Until(exp) + 50*time.Millisecond)
	expect(t, hit(h, k.KeyValue), 401, "unauthorized")
}

func TestFromContext(t *testing.T) {
	if _, ok := client.FromContext(context.Background()); ok {
		t.Error("a result in an empty context")
	}
	res := &client.VerifyResult{KeyID: "apk_x"}
	if got, ok := client.FromContext(client.NewContext(context.Background(), res)); !ok || got != res {
		t.Error("NewContext/FromContext")
	}
}
