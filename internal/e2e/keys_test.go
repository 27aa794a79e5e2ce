package e2e

import (
	"strings"
	"testing"
	"time"
)

func TestKeyLifecycle(t *testing.T) {
	eachDriver(t, func(t *testing.T, driver string) {
		n := start(t, driver, nil)
		ws := n.workspace("shop", nil)

		created := n.key(ws, map[string]any{
			"name": "Mobile App Integration", "keyType": "secret", "description": "iOS app",
			"permissions": []string{"api_keys:read", "audit:read"}, "meta": map[string]any{"currency": "fiat"},
			"rateLimit": map[string]any{"limit": 100, "windowMs": 60000},
		})
		value := created["keyValue"].(string)
		keyID := created["id"].(string)
		if !strings.HasPrefix(value, "kp_sk_live_") || created["status"] != "active" || created["environment"] != "live" {
			t.Fatalf("created: %v", created)
		}
		if created["start"] != value[:len("kp_sk_live_")+4] || created["end"] != value[len(value)-4:] {
			t.Errorf("start/end %v/%v do not mask %s", created["start"], created["end"], value[:12])
		}
		if created["expiresAt"] != nil {
			t.Errorf("a live key got an expiry: %v", created["expiresAt"])
		}

		// The secret is never shown again.
		got := n.must(200, req{method: "GET", path: "/v1/api-keys/" + keyID, cred: n.admin, ws: ws})
		if strings.Contains(string(got.Raw), value) || got.data()["keyValue"] != nil {
			t.Fatal("GET returned the secret")
		}
		list := n.must(200, req{method: "GET", path: "/v1/api-keys", cred: n.admin, ws: ws})
		if strings.Contains(string(list.Raw), value) || len(list.list()) != 1 {
			t.Fatalf("list: %s", list.Raw)
		}

		// Verification, every code this issue covers.
		v := n.verify(map[string]any{"key": value, "permissions": []string{"api_keys:read"}})
		if v["valid"] != true || v["code"] != "VALID" || v["keyId"] != keyID || v["workspaceId"] != ws || v["name"] != "Mobile App Integration" {
			t.Fatalf("verify: %v", v)
		}
		if m, _ := v["meta"].(map[string]any); m["currency"] != "fiat" {
			t.Errorf("verify meta: %v", v["meta"])
		}
		if c := n.code(value, "permissions", []string{"api_keys:write"}); c != "INSUFFICIENT_PERMISSIONS" {
			t.Errorf("missing permission: %s", c)
		}
		if c := n.code(value, "environment", "test"); c != "FORBIDDEN" {
			t.Errorf("other environment: %s", c)
		}
		if c := n.code(value, "environment", "live"); c != "VALID" {
			t.Errorf("same environment: %s", c)
		}
		bad := []byte(value)
		bad[20] ^= 1
		if v := n.verify(map[string]any{"key": string(bad)}); v["code"] != "NOT_FOUND" || v["valid"] != false || v["keyId"] != nil {
			t.Errorf("bad checksum: %v", v)
		}
		if c := n.code("kp_sk_live_" + strings.Repeat("x", 38)); c != "NOT_FOUND" {
			t.Errorf("malformed: %s", c)
		}

		// Disable and enable.
		d := n.must(200, req{method: "PATCH", path: "/v1/api-keys/" + keyID, cred: n.admin, ws: ws, body: map[string]any{"enabled": false}}).data()
		if d["status"] != "disabled" || d["enabled"] != false || d["disabledAt"] == nil {
			t.Fatalf("disable: %v", d)
		}
		if c := n.code(value); c != "DISABLED" {
			t.Errorf("disabled key verified as %s", c)
		}
		e := n.must(200, req{method: "PATCH", path: "/v1/api-keys/" + keyID, cred: n.admin, ws: ws, body: map[string]any{"enabled": true, "name": "Renamed"}}).data()
		if e["status"] != "active" || e["disabledAt"] != nil || e["name"] != "Renamed" {
			t.Fatalf("enable: %v", e)
		}
		if c := n.code(value); c != "VALID" {
			t.Errorf("re-enabled key verified as %s", c)
		}

		// IP allow-list: fails closed without an IP.
		n.must(200, req{method: "PATCH", path: "/v1/api-keys/" + keyID, cred: n.admin, ws: ws, body: map[string]any{"ipAllowlist": []string{"203.0.113.0/24", "2001:db8::/32"}}})
		for ip, want := range map[string]string{"203.0.113.7": "VALID", "2001:db8::9": "VALID", "198.51.100.1": "FORBIDDEN", "": "FORBIDDEN"} {
			args := []any{}
			if ip != "" {
				args = append(args, "ip", ip)
			}
			if c := n.code(value, args...); c != want {
				t.Errorf("ip %q: %s, want %s", ip, c, want)
			}
		}
		n.must(200, req{method: "PATCH", path: "/v1/api-keys/" + keyID, cred: n.admin, ws: ws, body: map[string]any{"ipAllowlist": []string{}}})

		// Rotation with a grace period: both values work, the old one until the grace ends.
		r1 := n.must(200, req{method: "POST", path: "/v1/api-keys/" + keyID + "/rotate", cred: n.admin, ws: ws, body: map[string]any{"expireOldAfterSeconds": 3600}}).data()
		v2 := r1["keyValue"].(string)
		if v2 == value || r1["id"] != keyID || r1["name"] != "Renamed" {
			t.Fatalf("rotate: %v", r1)
		}
		if c := n.code(value); c != "VALID" {
			t.Errorf("old value inside its grace period: %s", c)
		}
		if c := n.code(v2); c != "VALID" {
			t.Errorf("new value: %s", c)
		}
		// Rotation without grace: every older value stops at once and answers EXPIRED.
		r2 := n.must(200, req{method: "POST", path: "/v1/api-keys/" + keyID + "/rotate", cred: n.admin, ws: ws}).data()
		v3 := r2["keyValue"].(string)
		for _, old := range []string{value, v2} {
			if c := n.code(old); c != "EXPIRED" {
				t.Errorf("old value after rotation without grace: %s", c)
			}
		}
		if c := n.code(v3); c != "VALID" {
			t.Errorf("newest value: %s", c)
		}

		// Revoke, idempotently.
		rv := n.must(200, req{method: "DELETE", path: "/v1/api-keys/" + keyID, cred: n.admin, ws: ws}).data()
		if rv["id"] != keyID || rv["revokedAt"] == nil {
			t.Fatalf("revoke: %v", rv)
		}
		rv2 := n.must(200, req{method: "DELETE", path: "/v1/api-keys/" + keyID, cred: n.admin, ws: ws}).data()
		if rv2["revokedAt"] != rv["revokedAt"] {
			t.Errorf("second revoke changed revokedAt: %v → %v", rv["revokedAt"], rv2["revokedAt"])
		}
		if c := n.code(v3); c != "REVOKED" {
			t.Errorf("revoked key verified as %s", c)
		}
		n.fails(409, "key_revoked", req{method: "PATCH", path: "/v1/api-keys/" + keyID, cred: n.admin, ws: ws, body: map[string]any{"name": "x"}})
		n.fails(409, "key_revoked", req{method: "POST", path: "/v1/api-keys/" + keyID + "/rotate", cred: n.admin, ws: ws})

		// Permanent delete: gone everywhere but in the audit trail.
		del := n.must(200, req{method: "DELETE", path: "/v1/api-keys/" + keyID + "?permanent=true", cred: n.admin, ws: ws}).data()
		if del["id"] != keyID || del["deleted"] != true {
			t.Fatalf("delete: %v", del)
		}
		if c := n.code(v3); c != "NOT_FOUND" {
			t.Errorf("deleted key verified as %s", c)
		}
		n.fails(404, "not_found", req{method: "GET", path: "/v1/api-keys/" + keyID, cred: n.admin, ws: ws})

		// The audit trail has every action, in order, and its chain verifies.
		audit := n.must(200, req{method: "GET", path: "/v1/audit-logs?targetId=" + keyID + "&limit=100", cred: n.admin, ws: ws}).list()
		var actions []string
		for i := len(audit) - 1; i >= 0; i-- {
			actions = append(actions, audit[i].(map[string]any)["action"].(string))
		}
		want := "api_key.created api_key.disabled api_key.updated api_key.updated api_key.updated api_key.rotated api_key.rotated api_key.revoked api_key.deleted"
		if strings.Join(actions, " ") != want {
			t.Errorf("audit actions:\n got %s\nwant %s", strings.Join(actions, " "), want)
		}
		raw := n.must(200, req{method: "GET", path: "/v1/audit-logs?limit=100", cred: n.admin, ws: ws}).Raw
		for _, secret := range []string{value, v2, v3} {
			if strings.Contains(string(raw), secret) || strings.Contains(n.logs.String(), secret) {
				t.Fatal("a key value appears in the audit trail or the server's logs")
			}
		}
		chk := n.must(200, req{method: "GET", path: "/v1/audit-logs/verify", cred: n.admin, ws: ws}).data()
		if chk["valid"] != true || chk["entries"].(float64) < 10 || chk["firstBadId"] != nil {
			t.Errorf("audit verify: %v", chk)
		}
	})
}

func TestDeleteNeedsDisabledOrRevoked(t *testing.T) {
	n := start(t, "sqlite", nil)
	ws := n.workspace("shop", nil)
	k := n.key(ws, map[string]any{"name": "k", "keyType": "secret"})
	id := k["id"].(string)
	n.fails(409, "key_not_deletable", req{method: "DELETE", path: "/v1/api-keys/" + id + "?permanent=true", cred: n.admin, ws: ws})
	n.must(200, req{method: "PATCH", path: "/v1/api-keys/" + id, cred: n.admin, ws: ws, body: map[string]any{"enabled": false}})
	n.must(200, req{method: "DELETE", path: "/v1/api-keys/" + id + "?permanent=true", cred: n.admin, ws: ws})
	if c := n.code(k["keyValue"].(string)); c != "NOT_FOUND" {
		t.Errorf("deleted disabled key: %s", c)
	}
}

func TestTestKeysAlwaysExpire(t *testing.T) {
	eachDriver(t, func(t *testing.T, driver string) {
		n := start(t, driver, nil)
		ws := n.workspace("shop", nil)
		before := time.Now()
		k := n.key(ws, map[string]any{"name": "test key", "keyType": "secret", "environment": "test"})
		exp, err := time.Parse(time.RFC3339Nano, k["expiresAt"].(string))
		if err != nil {
			t.Fatal(err)
		}
		if d := exp.Sub(before); d < 72*time.Hour-time.Minute || d > 72*time.Hour+time.Minute {
			t.Errorf("default test key expiry is %v away, want three days", d)
		}
		if !strings.HasPrefix(k["keyValue"].(string), "kp_sk_test_") {
			t.Errorf("test key value %q", k["keyValue"].(string)[:12])
		}
		soon := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
		n.key(ws, map[string]any{"name": "short", "keyType": "secret", "environment": "test", "expiresAt": soon})
		for name, body := range map[string]map[string]any{
			"null":    {"name": "x", "keyType": "secret", "environment": "test", "expiresAt": nil},
			"too far": {"name": "x", "keyType": "secret", "environment": "test", "expiresAt": time.Now().Add(73 * time.Hour).UTC().Format(time.RFC3339)},
			"past":    {"name": "x", "keyType": "secret", "environment": "test", "expiresAt": time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)},
		} {
			r := n.fails(400, "invalid_request", req{method: "POST", path: "/v1/api-keys", cred: n.admin, ws: ws, body: body})
			if f := r.detailFields(); len(f) != 1 || f[0] != "expiresAt" {
				t.Errorf("%s: details %v", name, f)
			}
		}
		// A test key cannot be extended past creation + TTL, nor made eternal, by PATCH.
		id := k["id"].(string)
		n.fails(400, "invalid_request", req{method: "PATCH", path: "/v1/api-keys/" + id, cred: n.admin, ws: ws, body: map[string]any{"expiresAt": nil}})
		n.fails(400, "invalid_request", req{method: "PATCH", path: "/v1/api-keys/" + id, cred: n.admin, ws: ws, body: map[string]any{"expiresAt": time.Now().Add(80 * time.Hour).UTC().Format(time.RFC3339)}})
		// A workspace's own TTL applies.
		n.must(200, req{method: "PATCH", path: "/v1/workspaces/" + ws, cred: n.admin, body: map[string]any{"testKeyTtlSeconds": 3600}})
		k2 := n.key(ws, map[string]any{"name": "hourly", "keyType": "publishable", "environment": "test"})
		exp2, _ := time.Parse(time.RFC3339Nano, k2["expiresAt"].(string))
		if d := time.Until(exp2); d < 59*time.Minute || d > 61*time.Minute {
			t.Errorf("workspace TTL of an hour gave %v", d)
		}
		// A live key with an expiry in the past is refused; one that is past its expiry verifies EXPIRED.
		live := n.key(ws, map[string]any{"name": "live", "keyType": "secret", "expiresAt": time.Now().Add(1500 * time.Millisecond).UTC().Format(time.RFC3339Nano)})
		time.Sleep(1600 * time.Millisecond)
		if c := n.code(live["keyValue"].(string)); c != "EXPIRED" {
			t.Errorf("expired live key: %s", c)
		}
		if s := n.must(200, req{method: "GET", path: "/v1/api-keys/" + live["id"].(string), cred: n.admin, ws: ws}).data()["status"]; s != "expired" {
			t.Errorf("expired key status %v", s)
		}
		exp3 := n.must(200, req{method: "GET", path: "/v1/api-keys?status=expired", cred: n.admin, ws: ws}).list()
		if len(exp3) != 1 {
			t.Errorf("status=expired listed %d keys", len(exp3))
		}
	})
}

func TestKeyLimitAndLiveMode(t *testing.T) {
	eachDriver(t, func(t *testing.T, driver string) {
		n := start(t, driver, nil)
		ws := n.workspace("small", map[string]any{"maxKeys": 2})
		a := n.key(ws, map[string]any{"name": "a", "keyType": "secret"})
		n.key(ws, map[string]any{"name": "b", "keyType": "publishable"})
		n.fails(409, "key_limit_reached", req{method: "POST", path: "/v1/api-keys", cred: n.admin, ws: ws, body: map[string]any{"name": "c", "keyType": "secret"}})
		// Disabled keys count; revoked ones do not.
		n.must(200, req{method: "PATCH", path: "/v1/api-keys/" + a["id"].(string), cred: n.admin, ws: ws, body: map[string]any{"enabled": false}})
		n.fails(409, "key_limit_reached", req{method: "POST", path: "/v1/api-keys", cred: n.admin, ws: ws, body: map[string]any{"name": "c", "keyType": "secret"}})
		n.must(200, req{method: "DELETE", path: "/v1/api-keys/" + a["id"].(string), cred: n.admin, ws: ws})
		n.key(ws, map[string]any{"name": "c", "keyType": "secret"})

		off := n.workspace("sandbox", map[string]any{"liveModeEnabled": false})
		n.fails(403, "live_mode_disabled", req{method: "POST", path: "/v1/api-keys", cred: n.admin, ws: off, body: map[string]any{"name": "live", "keyType": "secret"}})
		n.key(off, map[string]any{"name": "test", "keyType": "secret", "environment": "test"})
		n.must(200, req{method: "PATCH", path: "/v1/workspaces/" + off, cred: n.admin, body: map[string]any{"liveModeEnabled": true}})
		n.key(off, map[string]any{"name": "live", "keyType": "secret"})
	})
}

func TestConcurrentCreatesRespectTheLimit(t *testing.T) {
	eachDriver(t, func(t *testing.T, driver string) {
		n := start(t, driver, nil)
		ws := n.workspace("race", map[string]any{"maxKeys": 5})
		results := make(chan int, 12)
		for i := 0; i < 12; i++ {
			go func() {
				results <- n.do(req{method: "POST", path: "/v1/api-keys", cred: n.admin, ws: ws, body: map[string]any{"name": "k", "keyType": "secret"}}).Status
			}()
		}
		counts := map[int]int{}
		for i := 0; i < 12; i++ {
			counts[<-results]++
		}
		if counts[201] != 5 || counts[409] != 7 {
			t.Fatalf("12 concurrent creates under a limit of 5: %v", counts)
		}
		chk := n.must(200, req{method: "GET", path: "/v1/audit-logs/verify", cred: n.admin, ws: ws}).data()
		if chk["valid"] != true {
			t.Fatalf("audit chain after concurrent writes: %v", chk)
		}
	})
}
