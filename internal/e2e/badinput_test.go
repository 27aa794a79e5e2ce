package e2e

import (
	"strings"
	"testing"
)

// snapshot is everything a bad request could have changed, read through the API.
func (n *node) snapshot(wss ...string) string {
	n.t.Helper()
	var b strings.Builder
	b.Write(n.must(200, req{method: "GET", path: "/v1/workspaces?limit=100", cred: n.admin}).Raw)
	for _, ws := range wss {
		b.Write(n.must(200, req{method: "GET", path: "/v1/api-keys?limit=100", cred: n.admin, ws: ws}).Raw)
		b.Write(n.must(200, req{method: "GET", path: "/v1/audit-logs?limit=100", cred: n.admin, ws: ws}).Raw)
		b.Write(n.must(200, req{method: "GET", path: "/v1/workspaces/" + ws + "/members", cred: n.admin}).Raw)
	}
	return b.String()
}

func TestHostileInput(t *testing.T) {
	eachDriver(t, func(t *testing.T, driver string) {
		n := start(t, driver, nil)
		a := n.workspace("alpha", nil)
		b := n.workspace("beta", nil)
		ka := n.key(a, map[string]any{"name": "a", "keyType": "secret", "permissions": []string{"api_keys:read", "api_keys:write"}})
		kb := n.key(b, map[string]any{"name": "b", "keyType": "secret"})
		pk := n.key(a, map[string]any{"name": "p", "keyType": "publishable"})
		ida, idb, wsKey := ka["id"].(string), kb["id"].(string), ka["keyValue"].(string)

		create := func(body any) req {
			return req{method: "POST", path: "/v1/api-keys", cred: n.admin, ws: a, body: body}
		}
		patch := func(body any) req {
			return req{method: "PATCH", path: "/v1/api-keys/" + ida, cred: n.admin, ws: a, body: body}
		}
		ok := map[string]any{"name": "x", "keyType": "secret"}
		with := func(k string, v any) map[string]any {
			m := map[string]any{}
			for kk, vv := range ok {
				m[kk] = vv
			}
			m[k] = v
			return m
		}
		long := func(n int) string { return strings.Repeat("é", n) }
		ips := make([]string, 101)
		for i := range ips {
			ips[i] = "10.0.0.1"
		}

		cases := []struct {
			name   string
			r      req
			status int
			code   string
			field  string // expected details field, if any
		}{
			{"broken JSON", create(`{"name":`), 400, "invalid_request", ""},
			{"array body", create(`[]`), 400, "invalid_request", ""},
			{"string body", create(`"x"`), 400, "invalid_request", ""},
			{"null body", create(`null`), 400, "invalid_request", ""},
			{"empty body", create(``), 400, "invalid_request", ""},
			{"trailing data", create(`{"name":"a","keyType":"secret"} {}`), 400, "invalid_request", ""},
			{"unknown field", create(with("admin", true)), 400, "invalid_request", "admin"},
			{"name is a number", create(with("name", 7)), 400, "invalid_request", "name"},
			{"name empty", create(with("name", "   ")), 400, "invalid_request", "name"},
			{"name 101 characters", create(with("name", long(101))), 400, "invalid_request", "name"},
			{"name with NUL", create(with("name", "a\u0000b")), 400, "invalid_request", "name"},
			{"description with NUL", create(with("description", "line\u0000")), 400, "invalid_request", "description"},
			{"audit filter with NUL", req{method: "GET", path: "/v1/audit-logs?action=a%00b", cred: n.admin, ws: a}, 400, "invalid_request", "action"},
			{"audit filter invalid UTF-8", req{method: "GET", path: "/v1/audit-logs?targetId=%ff%fe", cred: n.admin, ws: a}, 400, "invalid_request", "targetId"},
			{"status filter with NUL", req{method: "GET", path: "/v1/api-keys?status=%00", cred: n.admin, ws: a}, 400, "invalid_request", "status"},
			{"description 501 characters", create(with("description", long(501))), 400, "invalid_request", "description"},
			{"keyType missing", create(map[string]any{"name": "x"}), 400, "invalid_request", "keyType"},
			{"keyType root", create(with("keyType", "root")), 400, "invalid_request", "keyType"},
			{"environment prod", create(with("environment", "prod")), 400, "invalid_request", "environment"},
			{"permission not in catalog", create(with("permissions", []string{"orders:read"})), 400, "invalid_request", "permissions"},
			{"permissions not an array", create(with("permissions", "api_keys:read")), 400, "invalid_request", "permissions"},
			{"CIDR /33", create(with("ipAllowlist", []string{"10.0.0.0/33"})), 400, "invalid_request", "ipAllowlist"},
			{"CIDR with host bits", create(with("ipAllowlist", []string{"10.0.0.1/8"})), 400, "invalid_request", "ipAllowlist"},
			{"hostname in allow-list", create(with("ipAllowlist", []string{"example.com"})), 400, "invalid_request", "ipAllowlist"},
			{"IPv6 zone in allow-list", create(with("ipAllowlist", []string{"fe80::1%eth0"})), 400, "invalid_request", "ipAllowlist"},
			{"101 allow-list entries", create(with("ipAllowlist", ips)), 400, "invalid_request", "ipAllowlist"},
			{"meta is an array", create(with("meta", []int{1})), 400, "invalid_request", "meta"},
			{"meta over 4 KiB", create(with("meta", map[string]string{"x": strings.Repeat("a", 4100)})), 400, "invalid_request", "meta"},
			{"meta nested 10000 deep", create(`{"name":"x","keyType":"secret","meta":` + strings.Repeat(`{"a":`, 10000) + `1` + strings.Repeat(`}`, 10000) + `}`), 400, "invalid_request", ""},
			{"rate limit 0", create(with("rateLimit", map[string]any{"limit": 0, "windowMs": 1000})), 400, "invalid_request", "rateLimit.limit"},
			{"rate window 10 ms", create(with("rateLimit", map[string]any{"limit": 5, "windowMs": 10})), 400, "invalid_request", "rateLimit.windowMs"},
			{"rate limit a string", create(with("rateLimit", "fast")), 400, "invalid_request", "rateLimit"},
			{"rate limit unknown field", create(with("rateLimit", map[string]any{"limit": 5, "windowMs": 1000, "burst": 3})), 400, "invalid_request", "burst"},
			{"expiresAt not a time", create(with("expiresAt", "tomorrow")), 400, "invalid_request", "expiresAt"},
			{"expiresAt a number", create(with("expiresAt", 1893456000)), 400, "invalid_request", "expiresAt"},
			{"recoverable a string", create(with("recoverable", "yes")), 400, "invalid_request", "recoverable"},
			{"origins on a secret key", create(with("allowedOrigins", []string{"https://a.example"})), 400, "invalid_request", "allowedOrigins"},
			{"javascript origin", create(map[string]any{"name": "x", "keyType": "publishable", "allowedOrigins": []string{"javascript:alert(1)"}}), 400, "invalid_request", "allowedOrigins"},
			{"origin with a path", create(map[string]any{"name": "x", "keyType": "publishable", "allowedOrigins": []string{"https://a.example/admin"}}), 400, "invalid_request", "allowedOrigins"},
			{"body over 1 MiB", create(`{"name":"` + strings.Repeat("a", 1<<20) + `"}`), 413, "payload_too_large", ""},
			{"text/plain body", req{method: "POST", path: "/v1/api-keys", cred: n.admin, ws: a, body: `{"name":"x","keyType":"secret"}`, ctype: "text/plain"}, 415, "unsupported_media_type", ""},
			{"form body", req{method: "POST", path: "/v1/api-keys", cred: n.admin, ws: a, body: `name=x`, ctype: "application/x-www-form-urlencoded"}, 415, "unsupported_media_type", ""},
			// encoding/json would take either the last duplicate or a member in another letter case:
			// not what a gateway filtering on exact names saw.
			{"member given twice", create(`{"name":"x","keyType":"secret","permissions":[],"permissions":["api_keys:read"]}`), 400, "invalid_request", "permissions"},
			{"member in capitals", create(`{"name":"x","keyType":"secret","PERMISSIONS":["orders:read"]}`), 400, "invalid_request", "PERMISSIONS"},
			{"member in capitals, escaped", create(`{"name":"x","keyType":"secret","\u0050ermissions":["orders:read"]}`), 400, "invalid_request", "Permissions"},
			{"nested member in capitals", create(`{"name":"x","keyType":"secret","rateLimit":{"limit":5,"windowMs":1000,"LIMIT":1000000}}`), 400, "invalid_request", "rateLimit.LIMIT"},
			{"meta member twice", create(`{"name":"x","keyType":"secret","meta":{"plan":"free","plan":"enterprise"}}`), 400, "invalid_request", "meta.plan"},
			{"patch member in other case", patch(`{"Enabled":false}`), 400, "invalid_request", "Enabled"},
			{"patch nested member twice", patch(`{"rateLimit":{"limit":5,"windowMs":1000,"limit":6}}`), 400, "invalid_request", "rateLimit.limit"},
			{"verify member twice", req{method: "POST", path: "/v1/verify", cred: n.verifier, body: `{"key":"x","permissions":[],"key":"y"}`}, 400, "invalid_request", "key"},
			{"verify key in capitals", req{method: "POST", path: "/v1/verify", cred: n.verifier, body: `{"KEY":"x"}`}, 400, "invalid_request", "KEY"},
			{"patch keyType", patch(map[string]any{"keyType": "publishable"}), 400, "invalid_request", "keyType"},
			{"patch environment", patch(map[string]any{"environment": "test"}), 400, "invalid_request", "environment"},
			{"patch name null", patch(map[string]any{"name": nil}), 400, "invalid_request", "name"},
			{"patch enabled a string", patch(map[string]any{"enabled": "no"}), 400, "invalid_request", "enabled"},
			{"patch enabled null", patch(map[string]any{"enabled": nil}), 400, "invalid_request", "enabled"},
			{"patch several bad fields at once", patch(map[string]any{"name": "", "ipAllowlist": []string{"x"}}), 400, "invalid_request", "name,ipAllowlist"},
			{"patch unknown key", req{method: "PATCH", path: "/v1/api-keys/apk_01ARZ3NDEKTSV4RRFFQ69G5FAV", cred: n.admin, ws: a, body: map[string]any{"name": "x"}}, 404, "not_found", ""},
			{"patch another workspace's key", req{method: "PATCH", path: "/v1/api-keys/" + idb, cred: n.admin, ws: a, body: map[string]any{"name": "x"}}, 404, "not_found", ""},
			{"path traversal id", req{method: "GET", path: "/v1/api-keys/..%2F..%2Fetc%2Fpasswd", cred: n.admin, ws: a}, 404, "not_found", ""},
			{"SQL in id", req{method: "GET", path: "/v1/api-keys/apk_'%20OR%201=1--", cred: n.admin, ws: a}, 404, "not_found", ""},
			{"rotate grace -1", req{method: "POST", path: "/v1/api-keys/" + ida + "/rotate", cred: n.admin, ws: a, body: map[string]any{"expireOldAfterSeconds": -1}}, 400, "invalid_request", "expireOldAfterSeconds"},
			{"rotate grace over 7 days", req{method: "POST", path: "/v1/api-keys/" + ida + "/rotate", cred: n.admin, ws: a, body: map[string]any{"expireOldAfterSeconds": 604801}}, 400, "invalid_request", "expireOldAfterSeconds"},
			{"rotate grace a string", req{method: "POST", path: "/v1/api-keys/" + ida + "/rotate", cred: n.admin, ws: a, body: map[string]any{"expireOldAfterSeconds": "10"}}, 400, "invalid_request", "expireOldAfterSeconds"},
			{"rotate grace a float", req{method: "POST", path: "/v1/api-keys/" + ida + "/rotate", cred: n.admin, ws: a, body: `{"expireOldAfterSeconds": 1.5}`}, 400, "invalid_request", "expireOldAfterSeconds"},
			{"delete permanent=maybe", req{method: "DELETE", path: "/v1/api-keys/" + ida + "?permanent=maybe", cred: n.admin, ws: a}, 400, "invalid_request", "permanent"},
			{"delete another workspace's key", req{method: "DELETE", path: "/v1/api-keys/" + idb, cred: n.admin, ws: a}, 404, "not_found", ""},
			{"limit 0", req{method: "GET", path: "/v1/api-keys?limit=0", cred: n.admin, ws: a}, 400, "invalid_request", "limit"},
			{"limit 101", req{method: "GET", path: "/v1/api-keys?limit=101", cred: n.admin, ws: a}, 400, "invalid_request", "limit"},
			{"limit abc", req{method: "GET", path: "/v1/api-keys?limit=abc", cred: n.admin, ws: a}, 400, "invalid_request", "limit"},
			{"verify body over 64 KiB", req{method: "POST", path: "/v1/verify", cred: n.verifier, body: `{"key":"` + strings.Repeat("a", 70000) + `"}`}, 413, "payload_too_large", ""},
			{"verify without key", req{method: "POST", path: "/v1/verify", cred: n.verifier, body: map[string]any{"permissions": []string{}}}, 400, "invalid_request", "key"},
			{"verify bad ip", req{method: "POST", path: "/v1/verify", cred: n.verifier, body: map[string]any{"key": wsKey, "ip": "999.1.1.1"}}, 400, "invalid_request", "ip"},
			{"verify bad environment", req{method: "POST", path: "/v1/verify", cred: n.verifier, body: map[string]any{"key": wsKey, "environment": "prod"}}, 400, "invalid_request", "environment"},
			{"verify text/plain", req{method: "POST", path: "/v1/verify", cred: n.verifier, body: `{"key":"x"}`, ctype: "text/plain"}, 415, "unsupported_media_type", ""},
			{"verify key a number", req{method: "POST", path: "/v1/verify", cred: n.verifier, body: `{"key": 5}`}, 400, "invalid_request", "key"},
			{"workspace slug with spaces", req{method: "POST", path: "/v1/workspaces", cred: n.admin, body: map[string]any{"name": "x", "slug": "Bad Slug"}}, 400, "invalid_request", "slug"},
			{"workspace slug taken", req{method: "POST", path: "/v1/workspaces", cred: n.admin, body: map[string]any{"name": "x", "slug": "alpha"}}, 400, "invalid_request", "slug"},
			{"workspace maxKeys 0", req{method: "POST", path: "/v1/workspaces", cred: n.admin, body: map[string]any{"name": "x", "slug": "x", "maxKeys": 0}}, 400, "invalid_request", "maxKeys"},
			{"workspace name 200 characters", req{method: "POST", path: "/v1/workspaces", cred: n.admin, body: map[string]any{"name": long(200), "slug": "y"}}, 400, "invalid_request", "name"},
			{"workspace TTL 10 s", req{method: "PATCH", path: "/v1/workspaces/" + a, cred: n.admin, body: map[string]any{"testKeyTtlSeconds": 10}}, 400, "invalid_request", "testKeyTtlSeconds"},
			{"workspace live mode null", req{method: "PATCH", path: "/v1/workspaces/" + a, cred: n.admin, body: map[string]any{"liveModeEnabled": nil}}, 400, "invalid_request", "liveModeEnabled"},
			{"member bad email", req{method: "POST", path: "/v1/workspaces/" + a + "/members", cred: n.admin, body: map[string]any{"email": "ana", "role": "viewer"}}, 400, "invalid_request", "email"},
			{"member email with a name", req{method: "POST", path: "/v1/workspaces/" + a + "/members", cred: n.admin, body: map[string]any{"email": "Ana <ana@example.com>", "role": "viewer"}}, 400, "invalid_request", "email"},
			{"publishable key as credential", req{method: "POST", path: "/v1/api-keys", cred: pk["keyValue"].(string), body: ok}, 401, "unauthorized", ""},
			{"verify root key on management", req{method: "POST", path: "/v1/api-keys", cred: n.verifier, ws: a, body: ok}, 403, "forbidden", ""},
			{"unknown secret key", req{method: "POST", path: "/v1/api-keys", cred: "kp_sk_live_" + strings.Repeat("Z", 38), body: ok}, 401, "unauthorized", ""},
			{"no credential", req{method: "POST", path: "/v1/api-keys", body: ok}, 401, "unauthorized", ""},
			{"workspace key on another workspace's key", req{method: "DELETE", path: "/v1/api-keys/" + idb + "?permanent=true", cred: wsKey}, 404, "not_found", ""},
			{"workspace key creating a workspace", req{method: "POST", path: "/v1/workspaces", cred: wsKey, body: map[string]any{"name": "x", "slug": "z"}}, 403, "forbidden", ""},
		}
		if len(cases) < 40 {
			t.Fatalf("only %d cases", len(cases))
		}
		before := n.snapshot(a, b)
		for _, c := range cases {
			res := n.do(c.r)
			if res.Status != c.status || res.errCode() != c.code {
				t.Errorf("%s: got %d %q, want %d %q: %.300s", c.name, res.Status, res.errCode(), c.status, c.code, res.Raw)
				continue
			}
			if c.field != "" {
				if got := strings.Join(res.detailFields(), ","); got != c.field {
					t.Errorf("%s: details name %q, want %q", c.name, got, c.field)
				}
			}
			if strings.Contains(string(res.Raw), wsKey) {
				t.Errorf("%s: the answer contains a key value", c.name)
			}
		}
		if after := n.snapshot(a, b); after != before {
			t.Fatal("a refused request changed the store")
		}
		if strings.Contains(n.logs.String(), "panic") {
			t.Fatalf("the server panicked:\n%s", n.logs.String())
		}
	})
}
