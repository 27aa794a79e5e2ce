package e2e

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/keyplane/keyplane/internal/keyformat"
)

func scrape(t *testing.T, n *node, token string) (int, string) {
	t.Helper()
	r, _ := http.NewRequest("GET", n.url+"/metrics", nil)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// metricValue is the value of the unlabelled metric name in a scrape.
func metricValue(t *testing.T, body, name string) float64 {
	t.Helper()
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", l, err)
			}
			return f
		}
	}
	t.Fatalf("/metrics lacks %s", name)
	return 0
}

func TestMetrics(t *testing.T) {
	n := start(t, "sqlite", nil)
	ws := n.workspace("shop", nil)
	k := n.key(ws, map[string]any{"name": "k", "keyType": "secret"})
	for i := 0; i < 3; i++ {
		n.code(k["keyValue"].(string))
	}
	// A bad checksum: not keyplane's key, but it could be an imported value; the filter of imported
	// values answers it, without a read.
	n.code("kp_sk_live_" + strings.Repeat("A", 38))
	// A well-formed key never issued: the membership filter answers it, without a read.
	if c := n.code(keyformat.Generate("kp", "sk", "live")); c != "NOT_FOUND" {
		t.Fatalf("a key never issued: %s", c)
	}
	status, body := scrape(t, n, "")
	if status != 200 {
		t.Fatalf("/metrics: %d", status)
	}
	for _, want := range []string{
		`keyplane_verifications_total{code="VALID",source="verify"} 3`,
		`keyplane_verifications_total{code="NOT_FOUND",source="verify"} 2`,
		`keyplane_verification_duration_seconds_count{source="verify"} 5`,
		`keyplane_http_requests_total{method="POST",route="POST /v1/api-keys",status="201"} 1`,
		`keyplane_verify_filtered_total 2`,
		`keyplane_verify_cache_bytes`,
		`keyplane_verify_feed_trusted`,
		`keyplane_request_log_dropped_total 0`,
		`keyplane_request_log_waiting_entries `,
		`keyplane_usage_uncounted_requests `,
		`keyplane_usage_write_age_seconds `,
		`keyplane_usage_lost_total 0`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// The key's three verifications: the first reads it (a miss), the others find it cached. One more
	// miss is allowed: the node reads its own change journal (every 250 ms) and may forget the key's
	// creation after the first verification cached it, which costs one read and no wrong answer.
	misses, hits := metricValue(t, body, "keyplane_verify_cache_misses_total"), metricValue(t, body, "keyplane_verify_cache_hits_total")
	if misses+hits != 3 || misses < 1 || misses > 2 {
		t.Errorf("cache misses %v and hits %v for three verifications of one key: want 1 and 2, or 2 and 1", misses, hits)
	}
	// Verifications are counted by keyplane_verifications_total only: their route skips the generic
	// HTTP metrics (api.Server.Lean).
	if strings.Contains(body, `route="POST /v1/verify"`) {
		t.Error("the generic HTTP metrics counted verifications")
	}
	if strings.Contains(body, k["id"].(string)) || strings.Contains(body, k["keyValue"].(string)) {
		t.Error("an id or a key value in the metrics")
	}

	guarded := start(t, "sqlite", map[string]string{"KEYPLANE_METRICS_TOKEN": "scrape-me"})
	if status, _ := scrape(t, guarded, ""); status != 401 {
		t.Errorf("/metrics without the token: %d, want 401", status)
	}
	if status, _ := scrape(t, guarded, "wrong"); status != 401 {
		t.Errorf("/metrics with a wrong token: %d, want 401", status)
	}
	if status, body := scrape(t, guarded, "scrape-me"); status != 200 || !strings.Contains(body, "keyplane_http_requests_total") {
		t.Errorf("/metrics with the token: %d", status)
	}
}
