package e2e

import (
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestRequestLogs checks the request log and usage end to end: every verification of a known key and
// every management call made with a workspace key is logged with the right fields, in its own
// workspace only; rollups equal the raw counts; the filters, the pages and logs:read hold.
//
// The flush interval is set longer than the test, so nothing is written while it runs: the restart in
// the middle (a shutdown, which flushes, and a new start) is what writes the entries, and every count
// after it is exact.
func TestRequestLogs(t *testing.T) {
	eachDriver(t, func(t *testing.T, driver string) {
		env := map[string]string{"KEYPLANE_LOG_FLUSH_INTERVAL": "1m"}
		n := start(t, driver, env)
		began := time.Now().UTC()
		a := n.workspace("logs-a", nil)
		b := n.workspace("logs-b", nil)
		key := n.key(a, map[string]any{"name": "checkout", "keyType": "secret", "permissions": []string{"api_keys:read"}})
		keyID, value := key["id"].(string), key["keyValue"].(string)
		keyB := n.key(b, map[string]any{"name": "b's", "keyType": "secret"})
		reader := n.key(a, map[string]any{"name": "log reader", "keyType": "secret", "permissions": []string{"logs:read"}})["keyValue"].(string)
		keysOnlyKey := n.key(a, map[string]any{"name": "key reader", "keyType": "secret", "permissions": []string{"api_keys:read"}})
		keysOnly, keysOnlyID := keysOnlyKey["keyValue"].(string), keysOnlyKey["id"].(string)

		const ua = "e2e-logs/1.0"
		verify := func(body map[string]any) string {
			t.Helper()
			return n.must(200, req{method: "POST", path: "/v1/verify", cred: n.verifier, body: body, headers: map[string]string{"User-Agent": ua}}).data()["code"].(string)
		}
		want := map[string]int{}
		wantIP := map[string]string{"VALID": "203.0.113.9", "INSUFFICIENT_PERMISSIONS": "", "FORBIDDEN": "2001:db8::1"}
		for range 5 {
			want[verify(map[string]any{"key": value, "permissions": []string{"api_keys:read"}, "ip": "203.0.113.9"})]++
		}
		for range 2 {
			want[verify(map[string]any{"key": value, "permissions": []string{"api_keys:write"}})]++
		}
		want[verify(map[string]any{"key": value, "environment": "test", "ip": "2001:db8::1"})]++
		if !sameCounts(want, map[string]int{"VALID": 5, "INSUFFICIENT_PERMISSIONS": 2, "FORBIDDEN": 1}) {
			t.Fatalf("verification codes %v", want)
		}
		// An unknown key is in no workspace's log; B's key is in B's only.
		if c := verify(map[string]any{"key": "kp_sk_live_" + strings.Repeat("A", 32) + "000000"}); c != "NOT_FOUND" {
			t.Fatalf("unknown key: %s", c)
		}
		verify(map[string]any{"key": keyB["keyValue"]})
		// Management calls with a workspace key: one allowed, two refused for a missing permission.
		n.must(200, req{method: "GET", path: "/v1/api-keys", cred: keysOnly, headers: map[string]string{"User-Agent": ua}})
		n.fails(403, "forbidden", req{method: "GET", path: "/v1/logs", cred: keysOnly})
		n.fails(403, "forbidden", req{method: "GET", path: "/v1/api-keys/" + keyID + "/usage", cred: keysOnly})

		// Nothing is written before the flush interval or a shutdown; root keys' calls are not logged.
		if got := n.must(200, req{method: "GET", path: "/v1/logs", cred: n.admin, ws: a}).list(); len(got) != 0 {
			t.Fatalf("%d entries before any flush", len(got))
		}
		if lu := n.must(200, req{method: "GET", path: "/v1/api-keys/" + keyID, cred: n.admin, ws: a}).data()["lastUsedAt"]; lu != nil {
			t.Fatalf("lastUsedAt %v before any flush", lu)
		}

		n.restart(env) // shutdown flushes
		ended := time.Now().UTC()

		logs := func(cred, ws, query string) []map[string]any {
			t.Helper()
			var out []map[string]any
			path := "/v1/logs?limit=100" + query
			for cursor := ""; ; {
				p := path
				if cursor != "" {
					p += "&cursor=" + url.QueryEscape(cursor)
				}
				r := n.must(200, req{method: "GET", path: p, cred: cred, ws: ws})
				for _, e := range r.list() {
					out = append(out, e.(map[string]any))
				}
				next, _ := r.Body["nextCursor"].(string)
				if next == "" {
					return out
				}
				cursor = next
			}
		}

		// Exactly the 8 verifications of the key, with the right fields.
		verifications := logs(n.admin, a, "&source=verify&keyId="+keyID)
		got := map[string]int{}
		seen := map[string]bool{}
		for _, e := range verifications {
			code := e["code"].(string)
			got[code]++
			ts, err := time.Parse(time.RFC3339Nano, e["timestamp"].(string))
			if err != nil || ts.Before(began.Add(-time.Second)) || ts.After(ended) {
				t.Errorf("entry %v: timestamp %v outside the test", e["id"], e["timestamp"])
			}
			if id := e["id"].(string); seen[id] || !strings.HasPrefix(id, "req_") {
				t.Errorf("entry id %s repeated or not a req_ id", id)
			} else {
				seen[id] = true
			}
			if e["keyId"] != keyID || e["source"] != "verify" || e["method"] != "POST" || e["path"] != "/v1/verify" ||
				e["userAgent"] != ua || e["ip"] != wantIP[code] || e["latencyMicros"].(float64) < 0 {
				t.Errorf("entry %s", fmtJSON(e))
			}
		}
		if len(verifications) != 8 || !sameCounts(got, want) {
			t.Fatalf("%d verification entries with codes %v; want exactly 8, %v", len(verifications), got, want)
		}

		// The management calls, under the key that made them, with the caller's address.
		mgmt := logs(n.admin, a, "&source=management")
		var calls []string
		for _, e := range mgmt {
			if e["keyId"] != keysOnlyID || e["ip"] != "127.0.0.1" || e["method"] != "GET" {
				t.Errorf("management entry %s", fmtJSON(e))
			}
			calls = append(calls, e["code"].(string)+" "+e["path"].(string))
		}
		slices.Sort(calls)
		wantCalls := []string{"INSUFFICIENT_PERMISSIONS /v1/api-keys/" + keyID + "/usage", "INSUFFICIENT_PERMISSIONS /v1/logs", "VALID /v1/api-keys"}
		if !slices.Equal(calls, wantCalls) {
			t.Errorf("management entries %v; want %v", calls, wantCalls)
		}

		// The whole log is those, newest first; B's entry is in B's log only; pages of 3 give the same.
		all := logs(n.admin, a, "")
		if len(all) != 11 {
			t.Fatalf("workspace A's log holds %d entries, want 11", len(all))
		}
		ids := func(es []map[string]any) []string {
			out := make([]string, len(es))
			for i, e := range es {
				out[i] = e["id"].(string)
			}
			return out
		}
		if !slices.IsSortedFunc(ids(all), func(x, y string) int { return strings.Compare(y, x) }) {
			t.Error("the log is not newest first")
		}
		var paged []map[string]any
		for cursor := ""; ; {
			p := "/v1/logs?limit=3"
			if cursor != "" {
				p += "&cursor=" + url.QueryEscape(cursor)
			}
			r := n.must(200, req{method: "GET", path: p, cred: reader})
			for _, e := range r.list() {
				paged = append(paged, e.(map[string]any))
			}
			next, _ := r.Body["nextCursor"].(string)
			if next == "" {
				break
			}
			cursor = next
		}
		if !slices.Equal(ids(paged), ids(all)) {
			t.Errorf("pages of 3 list %v, the whole list %v", ids(paged), ids(all))
		}
		inB := logs(n.admin, b, "")
		if len(inB) != 1 || inB[0]["keyId"] != keyB["id"] {
			t.Errorf("workspace B's log: %s", fmtJSON(inB))
		}

		// Filters.
		if f := logs(reader, "", "&code=FORBIDDEN"); len(f) != 1 || f[0]["ip"] != "2001:db8::1" {
			t.Errorf("code=FORBIDDEN: %s", fmtJSON(f))
		}
		oldest := all[len(all)-1]["timestamp"].(string)
		if f := logs(reader, "", "&until="+url.QueryEscape(oldest)); len(f) != 0 {
			t.Errorf("until the oldest entry: %d entries, want 0", len(f))
		}
		if f := logs(reader, "", "&since="+url.QueryEscape(oldest)); len(f) != 11 {
			t.Errorf("since the oldest entry: %d entries, want 11", len(f))
		}
		for _, q := range []string{"code=valid", "source=web", "keyId=key-1", "since=2030-01-02T00:00:00Z&until=2030-01-01T00:00:00Z", "since=yesterday", "cursor=junk", "limit=0"} {
			n.fails(400, "invalid_request", req{method: "GET", path: "/v1/logs?" + q, cred: reader})
		}

		// Usage: the rollups equal the raw counts, by hour and by day.
		for _, g := range []struct {
			query   string
			buckets int
		}{{"", 24}, {"?granularity=hour", 24}, {"?granularity=day", 30}} {
			r := n.must(200, req{method: "GET", path: "/v1/api-keys/" + keyID + "/usage" + g.query, cred: reader})
			buckets := r.Body["data"].([]any)
			total, valid, codes := 0, 0, map[string]int{}
			for _, x := range buckets {
				bk := x.(map[string]any)
				total += int(bk["total"].(float64))
				valid += int(bk["valid"].(float64))
				for c, v := range bk["codes"].(map[string]any) {
					codes[c] += int(v.(float64))
				}
			}
			if len(buckets) != g.buckets || total != 8 || valid != 5 || !sameCounts(codes, want) {
				t.Errorf("usage%s: %d buckets, total %d, valid %d, codes %v; want %d buckets and the log's 8, 5, %v",
					g.query, len(buckets), total, valid, codes, g.buckets, want)
			}
		}
		// An explicit range is widened to whole buckets: since rounded down, until up.
		since, until := began.Add(-time.Hour).Truncate(time.Second), ended.Truncate(time.Second)
		wantBuckets := int(until.Truncate(time.Hour).Add(time.Hour).Sub(since.Truncate(time.Hour)) / time.Hour)
		if until.Equal(until.Truncate(time.Hour)) {
			wantBuckets--
		}
		r := n.must(200, req{method: "GET", cred: n.admin, ws: a, path: "/v1/api-keys/" + keyID + "/usage?granularity=hour&since=" +
			url.QueryEscape(since.Format(time.RFC3339)) + "&until=" + url.QueryEscape(until.Format(time.RFC3339))})
		if buckets := r.Body["data"].([]any); len(buckets) != wantBuckets ||
			buckets[0].(map[string]any)["start"] != since.Truncate(time.Hour).Format(time.RFC3339) {
			t.Errorf("usage from %v to %v: %s; want %d buckets from %v", since, until, fmtJSON(buckets), wantBuckets, since.Truncate(time.Hour))
		}
		for _, q := range []string{"granularity=week", "since=2030-01-02T00:00:00Z&until=2030-01-01T00:00:00Z", "since=2020-01-01T00:00:00Z"} {
			n.fails(400, "invalid_request", req{method: "GET", path: "/v1/api-keys/" + keyID + "/usage?" + q, cred: reader})
		}
		// Another workspace's key is not found, for its keys and for the operator acting on A.
		n.fails(404, "not_found", req{method: "GET", path: "/v1/api-keys/" + keyB["id"].(string) + "/usage", cred: reader})
		n.fails(404, "not_found", req{method: "GET", path: "/v1/api-keys/" + keyB["id"].(string) + "/usage", cred: n.admin, ws: a})
		n.fails(404, "not_found", req{method: "GET", path: "/v1/api-keys/apk_nope/usage", cred: reader})

		// The keys used, by a verification or as a credential, carry their last use.
		for _, id := range []string{keyID, keysOnlyID} {
			lu, _ := n.must(200, req{method: "GET", path: "/v1/api-keys/" + id, cred: n.admin, ws: a}).data()["lastUsedAt"].(string)
			if at, err := time.Parse(time.RFC3339Nano, lu); err != nil || at.Before(began.Add(-time.Second)) || at.After(ended) {
				t.Errorf("key %s: lastUsedAt %q, want a time of the test", id, lu)
			}
		}
	})
}

// sameCounts reports whether two counts are equal.
func sameCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
