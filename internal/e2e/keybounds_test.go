package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestKeyBounds: a workspace key is bounded by its expiry, its IP allow-list and its rate limit, and
// so is every key it creates or changes, and every key it acts on. A key that expires in an hour and
// is limited to this machine used to create a live key with its own permissions, no expiry, no
// allow-list and no rate limit, which could then change the original. Each refusal is 403 forbidden,
// names the field, and makes or changes nothing; a key without bounds is not bounded by these rules.
func TestKeyBounds(t *testing.T) {
	eachDriver(t, func(t *testing.T, driver string) {
		t.Parallel()
		n := start(t, driver, map[string]string{"KEYPLANE_CONFIG": "../../examples/keyplane.json"})
		ws := n.workspace("bounds", nil)
		perms := []string{"api_keys:read", "api_keys:write", "orders:read"}
		hour := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
		bounded := n.key(ws, map[string]any{"name": "bounded", "keyType": "secret", "permissions": perms,
			"expiresAt": hour.Format(time.RFC3339), "ipAllowlist": []string{"127.0.0.0/8", "::1"},
			"rateLimit": map[string]any{"limit": 100000, "windowMs": 2000}})
		bv := bounded["keyValue"].(string)
		count := func() int {
			return len(n.must(200, req{method: "GET", path: "/v1/api-keys?limit=100", cred: n.admin, ws: ws}).list())
		}
		refused := func(what string, r req, field string) {
			t.Helper()
			res := n.fails(403, "forbidden", r)
			if e, _ := res.Body["error"].(map[string]any); !strings.Contains(e["message"].(string), field) {
				t.Errorf("%s: the refusal does not name %s: %s", what, field, res.Raw)
			}
		}
		within := map[string]any{"name": "within", "keyType": "secret", "permissions": perms,
			"expiresAt": hour.Format(time.RFC3339), "ipAllowlist": []string{"127.0.0.1"},
			"rateLimit": map[string]any{"limit": 10, "windowMs": 2000}}
		with := func(k string, v any) map[string]any {
			b := map[string]any{}
			for f, x := range within {
				b[f] = x
			}
			if v == nil {
				delete(b, k)
			} else {
				b[k] = v
			}
			return b
		}
		keys := count()
		for _, c := range []struct {
			what  string
			body  map[string]any
			field string
		}{
			{"no expiry", with("expiresAt", nil), "expiresAt"},
			{"a later expiry", with("expiresAt", hour.Add(time.Second).Format(time.RFC3339)), "expiresAt"},
			{"no allow-list", with("ipAllowlist", nil), "ipAllowlist"},
			{"an empty allow-list", with("ipAllowlist", []string{}), "ipAllowlist"},
			{"an allow-list of everything", with("ipAllowlist", []string{"0.0.0.0/0"}), "ipAllowlist"},
			{"an address outside", with("ipAllowlist", []string{"127.0.0.1", "10.0.0.1"}), "ipAllowlist"},
			{"an IPv6 prefix around ::1", with("ipAllowlist", []string{"::/64"}), "ipAllowlist"},
			{"no rate limit", with("rateLimit", nil), "rateLimit"},
			{"a higher limit", with("rateLimit", map[string]any{"limit": 100001, "windowMs": 2000}), "rateLimit"},
			{"a shorter window", with("rateLimit", map[string]any{"limit": 10, "windowMs": 1999}), "rateLimit"},
		} {
			refused("create with "+c.what, req{method: "POST", path: "/v1/api-keys", cred: bv, body: c.body}, c.field)
		}
		if got := count(); got != keys {
			t.Fatalf("refused creations made keys: %d → %d", keys, got)
		}
		// Within its bounds it creates, and changes what it made.
		made := n.must(201, req{method: "POST", path: "/v1/api-keys", cred: bv, body: within}).data()
		mp := "/v1/api-keys/" + made["id"].(string)
		n.must(201, req{method: "POST", path: "/v1/api-keys", cred: bv, body: with("ipAllowlist", []string{"::1", "127.1.0.0/16"})})
		before := fmtJSON(n.must(200, req{method: "GET", path: mp, cred: n.admin, ws: ws}).data())
		for _, c := range []struct {
			body  map[string]any
			field string
		}{
			{map[string]any{"expiresAt": nil}, "expiresAt"},
			{map[string]any{"expiresAt": hour.Add(time.Minute).Format(time.RFC3339)}, "expiresAt"},
			{map[string]any{"ipAllowlist": []string{}}, "ipAllowlist"},
			{map[string]any{"ipAllowlist": []string{"192.0.2.0/24"}}, "ipAllowlist"},
			{map[string]any{"rateLimit": nil}, "rateLimit"},
			{map[string]any{"rateLimit": map[string]any{"limit": 1000000, "windowMs": 2000}}, "rateLimit"},
		} {
			refused("patch "+fmtJSON(c.body), req{method: "PATCH", path: mp, cred: bv, body: c.body}, c.field)
		}
		if after := fmtJSON(n.must(200, req{method: "GET", path: mp, cred: n.admin, ws: ws}).data()); after != before {
			t.Errorf("refused patches changed the key:\n%s\n→ %s", before, after)
		}
		n.must(200, req{method: "PATCH", path: mp, cred: bv, body: map[string]any{"name": "renamed", "rateLimit": map[string]any{"limit": 5, "windowMs": 60000}}})

		// It reaches only keys at least as bounded as itself: not one that outlives it, is usable
		// from elsewhere, or may be verified more often, even holding nothing it lacks.
		for _, c := range []struct {
			what  string
			body  map[string]any
			field string
		}{
			{"no bounds", map[string]any{}, "expiresAt"},
			{"a later expiry", map[string]any{"expiresAt": hour.Add(time.Hour).Format(time.RFC3339), "ipAllowlist": []string{"127.0.0.1"}, "rateLimit": map[string]any{"limit": 1, "windowMs": 2000}}, "expiresAt"},
			{"no allow-list", map[string]any{"expiresAt": hour.Format(time.RFC3339), "rateLimit": map[string]any{"limit": 1, "windowMs": 2000}}, "ipAllowlist"},
			{"no rate limit", map[string]any{"expiresAt": hour.Format(time.RFC3339), "ipAllowlist": []string{"127.0.0.1"}}, "rateLimit"},
		} {
			body := map[string]any{"name": "looser: " + c.what, "keyType": "secret", "permissions": []string{"orders:read"}}
			for k, v := range c.body {
				body[k] = v
			}
			target := n.key(ws, body)
			p := "/v1/api-keys/" + target["id"].(string)
			was := fmtJSON(n.must(200, req{method: "GET", path: p, cred: n.admin, ws: ws}).data())
			refused("patch a key with "+c.what, req{method: "PATCH", path: p, cred: bv, body: map[string]any{"name": "x"}}, c.field)
			refused("rotate a key with "+c.what, req{method: "POST", path: p + "/rotate", cred: bv}, c.field)
			refused("revoke a key with "+c.what, req{method: "DELETE", path: p, cred: bv}, c.field)
			if now := fmtJSON(n.must(200, req{method: "GET", path: p, cred: n.admin, ws: ws}).data()); now != was {
				t.Errorf("refused calls changed the key with %s:\n%s\n→ %s", c.what, was, now)
			}
		}
		// Nor can the key it made reach the original, which is usable from more addresses.
		mv := made["keyValue"].(string)
		refused("the copy unbounds the original", req{method: "PATCH", path: "/v1/api-keys/" + bounded["id"].(string), cred: mv,
			body: map[string]any{"expiresAt": nil, "ipAllowlist": []string{}, "rateLimit": nil}}, "ipAllowlist")

		// A test key always expires: a test key it makes without a date expires with it, not later.
		testKey := n.key(ws, map[string]any{"name": "test", "keyType": "secret", "environment": "test", "permissions": perms,
			"expiresAt": hour.Format(time.RFC3339)})
		tv := testKey["keyValue"].(string)
		child := n.must(201, req{method: "POST", path: "/v1/api-keys", cred: tv,
			body: map[string]any{"name": "child", "keyType": "secret", "environment": "test"}}).data()
		if child["expiresAt"] != testKey["expiresAt"] || child["expiresAt"] == nil {
			t.Errorf("a test key's child expires at %v, its maker at %v", child["expiresAt"], testKey["expiresAt"])
		}
		refused("a test key gives a later date", req{method: "POST", path: "/v1/api-keys", cred: tv,
			body: map[string]any{"name": "child", "keyType": "secret", "environment": "test", "expiresAt": hour.Add(time.Hour).Format(time.RFC3339)}}, "expiresAt")

		// A key without bounds is bounded by none of these.
		free := n.key(ws, map[string]any{"name": "free", "keyType": "secret", "permissions": perms})["keyValue"].(string)
		n.must(201, req{method: "POST", path: "/v1/api-keys", cred: free, body: map[string]any{"name": "free child", "keyType": "secret", "permissions": perms}})
		n.must(200, req{method: "PATCH", path: mp, cred: free, body: map[string]any{"expiresAt": nil, "ipAllowlist": []string{}, "rateLimit": nil}})
	})
}
