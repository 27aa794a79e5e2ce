package e2e

import (
	"strings"
	"testing"
)

// TestCreditsThroughServe: serve spends credits from blocks it takes ahead, answers what is left,
// and gives back what it holds on a clean shutdown: after a restart the key's balance is exactly
// the grant less what verifications spent.
func TestCreditsThroughServe(t *testing.T) {
	eachDriver(t, func(t *testing.T, driver string) {
		n := start(t, driver, nil)
		ws := n.workspace("credits", nil)
		k := n.key(ws, map[string]any{"name": "metered", "keyType": "secret", "credits": map[string]any{"remaining": 1000},
			"rateLimits": []any{map[string]any{"name": "tokens", "limit": 100, "windowMs": 60_000, "autoApply": false}}})
		value, id := k["keyValue"].(string), k["id"].(string)
		for i := range 100 {
			d := n.verify(map[string]any{"key": value, "credits": map[string]any{"cost": 3}, "tags": []string{"e2e"}})
			if d["code"] != "VALID" || d["credits"].(map[string]any)["remaining"] != float64(1000-3*(i+1)) {
				t.Fatalf("verification %d: %v", i+1, d)
			}
		}
		d := n.verify(map[string]any{"key": value, "credits": map[string]any{"cost": 0}, "rateLimits": []any{map[string]any{"name": "tokens", "cost": 101}}})
		if d["code"] != "RATE_LIMITED" || d["ratelimits"].([]any)[0].(map[string]any)["exceeded"] != true {
			t.Fatalf("over a named limit: %v", d)
		}
		if c := n.must(400, req{method: "POST", path: "/v1/verify", cred: n.verifier, body: map[string]any{"key": value,
			"rateLimits": []any{map[string]any{"name": "nope"}}}}).detailFields(); len(c) != 1 || c[0] != "rateLimits[0].name" {
			t.Fatalf("an unknown limit: %v", c)
		}
		// 100 verifications of cost 3 from a balance of 1,000, whose blocks are at most 0.5 % of it:
		// some take, none takes twice.
		_, body := scrape(t, n, "")
		if takes := metricValue(t, body, "keyplane_credit_takes_total"); takes < 1 || takes > 100 || !strings.Contains(body, "keyplane_credit_balances_held 1") {
			t.Errorf("after 100 spends: %v takes of credits; /metrics: %s", takes, body)
		}
		// A clean shutdown gives back the node's block.
		n.restart(nil)
		key := n.must(200, req{method: "GET", path: "/v1/api-keys/" + id, cred: n.admin, ws: ws}).data()
		if got := key["credits"].(map[string]any)["remaining"]; got != float64(700) {
			t.Fatalf("after a restart the key has %v credits; want 700 (1000 less 100 × 3, the node's block given back)", got)
		}
		if d := n.verify(map[string]any{"key": value, "credits": map[string]any{"cost": 701}}); d["code"] != "USAGE_EXCEEDED" {
			t.Fatalf("a cost of 701 with 700 left: %v", d)
		}
		if d := n.verify(map[string]any{"key": value, "credits": map[string]any{"cost": 700}}); d["code"] != "VALID" {
			t.Fatalf("a cost of 700 with 700 left: %v", d)
		}
	})
}
