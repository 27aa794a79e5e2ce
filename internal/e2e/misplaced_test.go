package e2e

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane/internal/testkit"
)

// TestSecretsWhereTheyDoNotBelong: callers who put a key value or a signing secret where an id, a
// path or a field name goes (GET /v1/api-keys/{the value}, a permission, an unknown field, the path a
// proxy forwards) are answered as before, with the credential cut out of the answer, and find it in
// neither the server's log nor the request log that every logs:read key of the workspace can list:
// the leak check that ends the test searches for it there, in the database and in every answer.
func TestSecretsWhereTheyDoNotBelong(t *testing.T) {
	eachDriver(t, func(t *testing.T, driver string) {
		n := start(t, driver, map[string]string{"KEYPLANE_WEBHOOK_ALLOW_PRIVATE": "true", "KEYPLANE_LOG_FLUSH_INTERVAL": "20ms",
			"KEYPLANE_TRUSTED_PROXIES": "127.0.0.1/8"}) // the test plays the proxy that forwards X-Forwarded-Uri
		ws := n.workspace("misplaced", nil)
		k := n.key(ws, map[string]any{"name": "confused", "keyType": "secret", "permissions": []string{"api_keys:read"}})
		id, value := k["id"].(string), k["keyValue"].(string)
		endpoint := n.webhook(ws, map[string]any{"url": "http://127.0.0.1:9/hook", "eventTypes": []string{"*"}})
		hook := endpoint["secret"].(string)
		const shown = "kp_sk_live_[redacted]"

		// The value where the id goes: by the admin root key, and by the key itself, whose management
		// calls are in the workspace's request log with their path.
		n.fails(404, "not_found", req{method: "GET", path: "/v1/api-keys/" + value, cred: n.admin, ws: ws})
		n.fails(404, "not_found", req{method: "GET", path: "/v1/api-keys/" + value, cred: value})
		n.fails(404, "not_found", req{method: "GET", path: "/v1/workspaces/" + n.admin, cred: n.admin})
		if r := n.fails(404, "not_found", req{method: "POST", path: "/v1/verify/" + value, cred: n.verifier}); !strings.Contains(string(r.Raw), "/v1/verify/"+shown) {
			t.Errorf("no such route: %s", r.Raw)
		}
		// Answers that name what the caller sent.
		for _, c := range []struct {
			name  string
			r     req
			field string
		}{
			{"an unknown field", req{method: "POST", path: "/v1/verify", cred: n.verifier, body: map[string]any{"key": value, value: true}}, shown},
			{"a permission", req{method: "POST", path: "/v1/api-keys", cred: n.admin, ws: ws, body: map[string]any{"name": "x", "keyType": "secret", "permissions": []string{value}}}, "permissions"},
			{"an allowlist entry", req{method: "POST", path: "/v1/api-keys", cred: n.admin, ws: ws, body: map[string]any{"name": "x", "keyType": "secret", "ipAllowlist": []string{value}}}, "ipAllowlist"},
			{"a signing secret as a field", req{method: "PATCH", path: "/v1/webhooks/" + endpoint["id"].(string), cred: n.admin, ws: ws, body: map[string]any{hook: true}}, "whsec_[redacted]"},
		} {
			r := n.do(c.r)
			if r.Status != 400 || r.errCode() != "invalid_request" || len(r.detailFields()) != 1 || r.detailFields()[0] != c.field {
				t.Errorf("%s: %d %s", c.name, r.Status, r.Raw)
			}
		}
		// A proxy forwards the client's path, which holds the key; a script sends it as its User-Agent.
		res := n.do(req{method: "GET", path: "/v1/auth", headers: map[string]string{"X-Keyplane-Root-Key": n.verifier,
			"Authorization": "Bearer " + value, "X-Forwarded-Uri": "/orders/" + value + "?x=1", "User-Agent": "curl " + value}})
		if res.Status != 200 || res.Header.Get("X-Keyplane-Key-Id") != id {
			t.Fatalf("forward auth: %d %s", res.Status, res.Raw)
		}

		// Both calls the request log keeps are there, without the value.
		var paths, agents []string
		// The checks below say what is missing when the wait runs out.
		testkit.Wait(10*time.Second, func() bool {
			paths, agents = nil, nil
			for _, e := range n.must(200, req{method: "GET", path: "/v1/logs?keyId=" + id, cred: n.admin, ws: ws}).list() {
				paths = append(paths, e.(map[string]any)["path"].(string))
				agents = append(agents, e.(map[string]any)["userAgent"].(string))
			}
			return len(paths) >= 2
		})
		want := map[string]bool{"/v1/api-keys/" + shown: true, "/orders/" + shown: true}
		for _, p := range paths {
			delete(want, p)
		}
		if len(want) > 0 {
			t.Errorf("request log paths %q, want both of the redacted ones", paths)
		}
		if !slices.Contains(agents, "curl "+shown) {
			t.Errorf("request log user agents %q, want the redacted one", agents)
		}
		logs := n.logs.String()
		if !strings.Contains(logs, "path=/v1/api-keys/"+shown) || !strings.Contains(logs, "path=/v1/workspaces/kp_root_[redacted]") {
			t.Errorf("the access log does not show the redacted paths:\n%s", logs)
		}
	})
}
