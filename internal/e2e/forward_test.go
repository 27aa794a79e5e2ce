package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane/internal/testkit"
)

// TestForwardAuth: GET /v1/auth answers a proxy's subrequest with a status and X-Keyplane-* headers.
func TestForwardAuth(t *testing.T) {
	eachDriver(t, func(t *testing.T, driver string) {
		n := start(t, driver, map[string]string{"KEYPLANE_CONFIG": "../../examples/keyplane.json", "KEYPLANE_LOG_FLUSH_INTERVAL": "20ms",
			"KEYPLANE_TRUSTED_PROXIES": "127.0.0.1/8,::1/128"}) // the test plays the proxy, from loopback
		ws := n.workspace("proxied", nil)
		k := n.key(ws, map[string]any{"name": "behind nginx", "keyType": "secret", "permissions": []string{"orders:read"},
			"ipAllowlist": []string{"198.51.100.0/24"}, "rateLimit": map[string]any{"limit": 4, "windowMs": 60000}})
		value := k["keyValue"].(string)
		auth := func(hdr map[string]string) *resp {
			t.Helper()
			h := map[string]string{"X-Keyplane-Root-Key": n.verifier, "X-Forwarded-For": "198.51.100.20"}
			for k, v := range hdr {
				if v == "" {
					delete(h, k)
				} else {
					h[k] = v
				}
			}
			return n.do(req{method: "GET", path: "/v1/auth", headers: h})
		}
		res := auth(map[string]string{"Authorization": "Bearer " + value, "X-Required-Permissions": "orders:read", "X-Original-URI": "/orders/7?x=1", "X-Original-Method": "DELETE"})
		if res.Status != 200 || res.Header.Get("X-Keyplane-Key-Id") != k["id"] || res.Header.Get("X-Keyplane-Workspace-Id") != ws ||
			res.Header.Get("X-Keyplane-Environment") != "live" || res.Header.Get("X-Keyplane-Permissions") != "orders:read" {
			t.Fatalf("a good key: %d %v %s", res.Status, res.Header, res.Raw)
		}
		if res := auth(map[string]string{"X-API-Key": value}); res.Status != 200 {
			t.Errorf("X-API-Key: %d %s", res.Status, res.Raw)
		}
		// Envoy's ext_authz appends the client's path to /v1/auth (outside the OpenAPI document).
		er, _ := http.NewRequest("POST", n.url+"/v1/auth/orders/7", nil)
		er.Header.Set("X-Keyplane-Root-Key", n.verifier)
		er.Header.Set("X-API-Key", value)
		er.Header.Set("X-Forwarded-For", "198.51.100.21")
		if res, err := http.DefaultClient.Do(er); err != nil || res.StatusCode != 200 || res.Header.Get("X-Keyplane-Key-Id") != k["id"] {
			t.Errorf("/v1/auth/orders/7: %v %v", res, err)
		} else {
			res.Body.Close()
		}
		for _, c := range []struct {
			name   string
			hdr    map[string]string
			status int
		}{
			{"a permission it lacks", map[string]string{"X-API-Key": value, "X-Required-Permissions": "orders:read, orders:write"}, 403},
			{"outside the allowlist", map[string]string{"X-API-Key": value, "X-Forwarded-For": "203.0.113.5"}, 403},
			{"no key", map[string]string{}, 401},
			{"an unknown key", map[string]string{"X-API-Key": "kp_sk_live_nope"}, 401},
			{"no root key", map[string]string{"X-API-Key": value, "X-Keyplane-Root-Key": ""}, 401},
			{"an admin-only root key", map[string]string{"X-API-Key": value, "X-Keyplane-Root-Key": n.admin}, 401},
		} {
			if res := auth(c.hdr); res.Status != c.status || res.Header.Get("X-Keyplane-Key-Id") != "" {
				t.Errorf("%s: %d (key id %q), want %d: %s", c.name, res.Status, res.Header.Get("X-Keyplane-Key-Id"), c.status, res.Raw)
			}
		}
		if !strings.Contains(n.logs.String(), "forward auth refused") {
			t.Error("the server did not log why the proxy's root key was refused")
		}
		// Three good requests so far; one more passes, then 429.
		for range 1 {
			auth(map[string]string{"X-API-Key": value})
		}
		res = auth(map[string]string{"X-API-Key": value})
		if res.Status != 429 || res.Header.Get("Retry-After") == "" {
			t.Errorf("over the rate limit: %d, Retry-After %q", res.Status, res.Header.Get("Retry-After"))
		}
		// Disabled: 401.
		n.must(200, req{method: "PATCH", path: "/v1/api-keys/" + k["id"].(string), cred: n.admin, ws: ws, body: map[string]any{"enabled": false}})
		if res := auth(map[string]string{"X-API-Key": value}); res.Status != 401 {
			t.Errorf("disabled: %d", res.Status)
		}
		// The log shows the client's request as the proxy described it, from the client's address.
		var logs []any
		testkit.EventuallyNil(t, 5*time.Second, func() error {
			if logs = n.must(200, req{method: "GET", path: "/v1/logs?source=auth&code=VALID", cred: n.admin, ws: ws}).list(); len(logs) != 4 {
				return fmt.Errorf("%d VALID auth entries logged, want 4", len(logs))
			}
			return nil
		})
		if last := logs[len(logs)-1].(map[string]any); last["path"] != "/orders/7" || last["method"] != "DELETE" || last["ip"] != "198.51.100.20" {
			t.Errorf("the first auth entry: %v", last)
		}
	})
}

// TestForwardedForNotTrustedByDefault: with no --trusted-proxies, a client on the same host (or any
// other) cannot pick its address with X-Forwarded-For or X-Real-IP: not past a key's ipAllowlist, and
// not into the audit trail.
func TestForwardedForNotTrustedByDefault(t *testing.T) {
	eachDriver(t, func(t *testing.T, driver string) {
		n := start(t, driver, nil)
		ws := n.workspace("no-proxy", nil)
		forged := map[string]string{"X-Forwarded-For": "198.51.100.20", "X-Real-IP": "198.51.100.20"}
		k := n.must(201, req{method: "POST", path: "/v1/api-keys", cred: n.admin, ws: ws, headers: forged,
			body: map[string]any{"name": "allow-listed", "keyType": "secret", "ipAllowlist": []string{"198.51.100.0/24"}}}).data()
		res := n.do(req{method: "GET", path: "/v1/auth", headers: map[string]string{"X-Keyplane-Root-Key": n.verifier,
			"X-API-Key": k["keyValue"].(string), "X-Forwarded-For": "198.51.100.20", "X-Real-IP": "198.51.100.20"}})
		if res.Status != 403 {
			t.Errorf("a forged X-Forwarded-For from an untrusted peer passed the ipAllowlist: %d %s", res.Status, res.Raw)
		}
		entries := n.must(200, req{method: "GET", path: "/v1/audit-logs?action=api_key.created", cred: n.admin, ws: ws}).list()
		if len(entries) != 1 || entries[0].(map[string]any)["ip"] != "127.0.0.1" {
			t.Errorf("audit entry of a request with a forged X-Forwarded-For: %v, want ip 127.0.0.1", entries)
		}
	})
}
