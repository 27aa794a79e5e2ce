package e2e

import (
	"slices"
	"strings"
	"testing"
)

// TestUsageBasedKeysManagement: identities, credits operations, the key's usage fields and the
// usage export through the real binary, with a workspace key holding identities:read/write that
// reaches its own workspace only.
func TestUsageBasedKeysManagement(t *testing.T) {
	eachDriver(t, func(t *testing.T, driver string) {
		n := start(t, driver, nil)
		a := n.workspace("usage-a", nil)
		b := n.workspace("usage-b", nil)
		wk := n.key(a, map[string]any{"name": "integration", "keyType": "secret",
			"permissions": []string{"identities:read", "identities:write", "api_keys:read", "api_keys:write", "logs:read"}})["keyValue"].(string)
		as := func(r req) req { r.cred = wk; return r }

		idn := n.must(201, as(req{method: "POST", path: "/v1/identities", body: map[string]any{"externalId": "customer_1",
			"credits": map[string]any{"remaining": 10, "refill": map[string]any{"interval": "daily", "amount": 10}}}})).data()
		idnID := idn["id"].(string)
		n.fails(409, "identity_exists", as(req{method: "POST", path: "/v1/identities", body: map[string]any{"externalId": "customer_1"}}))
		if l := n.must(200, as(req{method: "GET", path: "/v1/identities"})).list(); len(l) != 1 {
			t.Fatalf("identities %v", l)
		}
		n.must(200, as(req{method: "GET", path: "/v1/identities/" + idnID}))
		n.must(200, as(req{method: "PATCH", path: "/v1/identities/" + idnID, body: map[string]any{"meta": map[string]any{"plan": "pro"}}}))

		k := n.must(201, as(req{method: "POST", path: "/v1/api-keys", body: map[string]any{"name": "k", "keyType": "secret",
			"identityId": idnID, "credits": map[string]any{"remaining": 3},
			"rateLimits": []any{map[string]any{"name": "tokens", "limit": 5, "windowMs": 1000, "autoApply": false}}}})).data()
		keyID := k["id"].(string)
		if k["externalId"] != "customer_1" || k["credits"].(map[string]any)["remaining"] != float64(3) {
			t.Fatalf("key %v", k)
		}
		res := n.fails(400, "invalid_request", as(req{method: "PATCH", path: "/v1/api-keys/" + keyID, body: map[string]any{
			"credits":    map[string]any{"remaining": -1, "refill": map[string]any{"interval": "monthly", "amount": 1, "refillDay": 32}},
			"rateLimits": []any{map[string]any{"name": "x", "limit": 1, "windowMs": 1000, "autoApply": true}, map[string]any{"name": "x", "limit": 1, "windowMs": 1000, "autoApply": true}}}}))
		got := res.detailFields()
		slices.Sort(got)
		if want := []string{"credits.refill.refillDay", "credits.remaining", "rateLimits[1].name"}; !slices.Equal(got, want) {
			t.Fatalf("fields %v, want %v", got, want)
		}
		if c := n.must(200, as(req{method: "POST", path: "/v1/api-keys/" + keyID + "/credits", body: map[string]any{"op": "decrement", "value": 1}})).data(); c["remaining"] != float64(2) {
			t.Fatalf("key credits %v", c)
		}
		if c := n.must(200, as(req{method: "POST", path: "/v1/identities/" + idnID + "/credits", body: map[string]any{"op": "increment", "value": 5}})).data(); c["remaining"] != float64(15) {
			t.Fatalf("identity credits %v", c)
		}
		if l := n.must(200, as(req{method: "GET", path: "/v1/api-keys?externalId=customer_1"})).list(); len(l) != 1 {
			t.Fatalf("keys of customer_1 %v", l)
		}

		// The workspace key cannot reach b's identity, nor name b in X-Workspace-Id.
		other := n.must(201, req{method: "POST", path: "/v1/identities", cred: n.admin, ws: b, body: map[string]any{"externalId": "customer_1"}}).data()["id"].(string)
		n.fails(404, "not_found", as(req{method: "GET", path: "/v1/identities/" + other}))
		n.fails(404, "not_found", as(req{method: "POST", path: "/v1/identities/" + other + "/credits", ws: b, body: map[string]any{"op": "set", "value": 1}}))
		n.fails(404, "not_found", req{method: "POST", path: "/v1/api-keys/" + keyID + "/credits", cred: n.admin, ws: b, body: map[string]any{"op": "set", "value": 1}})

		n.fails(409, "identity_in_use", as(req{method: "DELETE", path: "/v1/identities/" + idnID}))
		n.must(200, as(req{method: "PATCH", path: "/v1/api-keys/" + keyID, body: map[string]any{"identityId": nil}}))
		n.must(200, as(req{method: "DELETE", path: "/v1/identities/" + idnID}))

		// The export: JSON and CSV, and logs by tag.
		if l := n.must(200, as(req{method: "GET", path: "/v1/usage?groupBy=key&granularity=month"})).list(); l == nil {
			t.Fatalf("export is not a list")
		}
		csv := n.must(200, as(req{method: "GET", path: "/v1/usage?groupBy=identity&format=csv"}))
		if !strings.HasPrefix(string(csv.Raw), "identityId,externalId,start,total,valid,creditsSpent,VALID,") {
			t.Fatalf("csv %q", csv.Raw)
		}
		n.must(200, as(req{method: "GET", path: "/v1/logs?tag=checkout"}))
	})
}
