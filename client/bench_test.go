package client_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/keyplane/keyplane/client"
)

// BenchmarkMiddleware: one request through the middleware to a trivial handler. cached answers from
// the local cache; uncached asks the real keyplane server (in process, SQLite, over loopback HTTP)
// every time; baseline is the same request without the middleware.
func BenchmarkMiddleware(b *testing.B) {
	w, _ := newWorkspace(b, "bench")
	k := mustKey(b, w, client.CreateAPIKeyRequest{Name: "Bench", KeyType: client.KeyTypeSecret, Permissions: []string{"orders:read"}})
	v := client.NewVerifier(shared.URL, shared.Verify)
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, found := client.FromContext(r.Context()); !found {
			w.WriteHeader(500)
		}
	})
	run := func(b *testing.B, h http.Handler) {
		r := httptest.NewRequest("GET", "/orders", nil)
		r.RemoteAddr = "127.0.0.1:5555"
		r.Header.Set("Authorization", "Bearer "+k.KeyValue)
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if rec.Code != 200 {
				b.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
		}
	}
	// baseline: the handler alone, with the result in its context as the middleware would put it,
	// so that cached minus baseline is the middleware's own cost.
	b.Run("baseline", func(b *testing.B) {
		res := &client.VerifyResult{Valid: true, Code: client.VerifyValid, KeyID: k.ID}
		run(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ok.ServeHTTP(w, r.WithContext(client.NewContext(r.Context(), res)))
		}))
	})
	b.Run("cached", func(b *testing.B) {
		run(b, v.Middleware(client.MiddlewareOptions{Permissions: []string{"orders:read"}})(ok))
	})
	b.Run("cached-parallel", func(b *testing.B) {
		h := v.Middleware(client.MiddlewareOptions{Permissions: []string{"orders:read"}})(ok)
		r := httptest.NewRequest("GET", "/orders", nil)
		r.RemoteAddr = "127.0.0.1:5555"
		r.Header.Set("Authorization", "Bearer "+k.KeyValue)
		h.ServeHTTP(httptest.NewRecorder(), r)
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, r)
				if rec.Code != 200 {
					b.Errorf("status %d", rec.Code)
					return
				}
			}
		})
	})
	b.Run("uncached", func(b *testing.B) {
		run(b, v.Middleware(client.MiddlewareOptions{Permissions: []string{"orders:read"}, CacheTTL: -1})(ok))
	})
}
