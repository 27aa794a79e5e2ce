package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func scrape(t *testing.T, h http.Handler, auth string) (int, string) {
	t.Helper()
	r := httptest.NewRequest("GET", "/metrics", nil)
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	b, _ := io.ReadAll(w.Result().Body)
	return w.Code, string(b)
}

func TestMetrics(t *testing.T) {
	m := New()
	m.Verification("VALID", "verify", 300*time.Microsecond)
	m.Verification("VALID", "verify", 200*time.Microsecond)
	m.Verification("NOT_FOUND", "verify", time.Millisecond)
	m.Delivery("succeeded")
	hits := 41.0
	m.CounterFunc("keyplane_verify_cache_hits_total", "Cache hits.", func() float64 { return hits })
	m.GaugeFunc("keyplane_request_log_queue_depth", "Queued log entries.", func() float64 { return 7 })

	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/api-keys/{id}", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(404) })
	h := m.Middleware(mux)
	for _, p := range []string{"/v1/api-keys/apk_1", "/v1/api-keys/apk_2", "/nowhere"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", p, nil))
	}

	code, body := scrape(t, m.Handler(""), "")
	if code != 200 {
		t.Fatalf("scrape: %d", code)
	}
	for _, want := range []string{
		`keyplane_verifications_total{code="VALID",source="verify"} 2`,
		`keyplane_verifications_total{code="NOT_FOUND",source="verify"} 1`,
		`keyplane_verification_duration_seconds_count{source="verify"} 3`,
		`keyplane_webhook_deliveries_total{outcome="succeeded"} 1`,
		`keyplane_verify_cache_hits_total 41`,
		`keyplane_request_log_queue_depth 7`,
		`keyplane_http_requests_total{method="GET",route="GET /v1/api-keys/{id}",status="404"} 2`,
		`keyplane_http_requests_total{method="GET",route="unmatched",status="404"} 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
	if strings.Contains(body, "apk_1") {
		t.Error("an id from a path became a label value")
	}
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "# HELP ") {
			name := strings.Fields(line)[2]
			if !strings.HasPrefix(name, "keyplane_") && !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") {
				t.Errorf("metric %s is not prefixed keyplane_", name)
			}
		}
	}
}

func TestToken(t *testing.T) {
	h := New().Handler("s3cret")
	for auth, want := range map[string]int{"": 401, "Bearer wrong": 401, "s3cret": 401, "Bearer s3cret": 200} {
		if code, _ := scrape(t, h, auth); code != want {
			t.Errorf("Authorization %q: %d, want %d", auth, code, want)
		}
	}
}

// TestVerificationConcurrent: goroutines meeting new codes and sources at the same time each count in
// the one series of their pair; none is lost to a map replaced under it.
func TestVerificationConcurrent(t *testing.T) {
	m := New()
	codes := []string{"VALID", "NOT_FOUND", "EXPIRED", "REVOKED"}
	sources := []string{"verify", "auth"}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 400 {
				m.Verification(codes[(g+i)%len(codes)], sources[i%len(sources)], time.Microsecond)
			}
		}()
	}
	wg.Wait()
	_, body := scrape(t, m.Handler(""), "")
	for _, want := range []string{
		// 8 goroutines × 400 over 4 codes and 2 sources, evenly: 400 each pair, 1,600 each source.
		`keyplane_verifications_total{code="VALID",source="verify"} 400`,
		`keyplane_verifications_total{code="REVOKED",source="auth"} 400`,
		`keyplane_verification_duration_seconds_count{source="verify"} 1600`,
		`keyplane_verification_duration_seconds_count{source="auth"} 1600`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// BenchmarkVerification is the metrics' share of a verification.
func BenchmarkVerification(b *testing.B) {
	m := New()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Verification("VALID", "verify", 300*time.Microsecond)
		}
	})
}
