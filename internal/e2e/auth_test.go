package e2e

import (
	"strings"
	"testing"
)

func TestCredentials(t *testing.T) {
	eachDriver(t, func(t *testing.T, driver string) {
		n := start(t, driver, nil)
		a := n.workspace("alpha", nil)
		b := n.workspace("beta", nil)
		// A workspace integration key of A with keyplane's key permissions.
		intA := n.key(a, map[string]any{"name": "integration", "keyType": "secret", "permissions": []string{"api_keys:read", "api_keys:write"}})["keyValue"].(string)
		readOnlyA := n.key(a, map[string]any{"name": "reader", "keyType": "secret", "permissions": []string{"api_keys:read"}})["keyValue"].(string)
		pkA := n.key(a, map[string]any{"name": "browser", "keyType": "publishable"})["keyValue"].(string)
		keyB := n.key(b, map[string]any{"name": "b's key", "keyType": "secret"})
		idB := keyB["id"].(string)

		// The workspace key acts on its own workspace only; X-Workspace-Id is ignored.
		mine := n.must(201, req{method: "POST", path: "/v1/api-keys", cred: intA, ws: b, body: map[string]any{"name": "made by integration", "keyType": "secret"}}).data()
		if mine["workspaceId"] != a || mine["createdBy"].(map[string]any)["type"] != "api_key" {
			t.Fatalf("workspace key created in %v by %v", mine["workspaceId"], mine["createdBy"])
		}
		list := n.must(200, req{method: "GET", path: "/v1/api-keys?limit=100", cred: intA, ws: b})
		if strings.Contains(string(list.Raw), idB) || len(list.list()) != 4 {
			t.Fatalf("workspace A's key listed %d keys, or saw B's", len(list.list()))
		}
		// B's resources are not found, never forbidden, for every call.
		for _, r := range []req{
			{method: "GET", path: "/v1/api-keys/" + idB},
			{method: "PATCH", path: "/v1/api-keys/" + idB, body: map[string]any{"name": "pwned"}},
			{method: "POST", path: "/v1/api-keys/" + idB + "/rotate"},
			{method: "POST", path: "/v1/api-keys/" + idB + "/reveal"},
			{method: "DELETE", path: "/v1/api-keys/" + idB},
			{method: "DELETE", path: "/v1/api-keys/" + idB + "?permanent=true"},
			{method: "GET", path: "/v1/workspaces/" + b},
			{method: "PATCH", path: "/v1/workspaces/" + b, body: map[string]any{"maxKeys": 100}},
			{method: "GET", path: "/v1/workspaces/" + b + "/members"},
			{method: "POST", path: "/v1/workspaces/" + b + "/members", body: map[string]any{"email": "x@example.com", "role": "owner"}},
			{method: "DELETE", path: "/v1/workspaces/" + b + "/members/usr_01ARZ3NDEKTSV4RRFFQ69G5FAV"},
		} {
			r.cred, r.ws = intA, b
			n.fails(404, "not_found", r)
		}
		if c := n.code(keyB["keyValue"].(string)); c != "VALID" {
			t.Fatalf("B's key was changed by A: %s", c)
		}
		// Its own workspace is visible, but its settings are the operator's.
		n.must(200, req{method: "GET", path: "/v1/workspaces/" + a, cred: intA})
		n.fails(403, "forbidden", req{method: "PATCH", path: "/v1/workspaces/" + a, cred: intA, body: map[string]any{"maxKeys": 100}})
		n.fails(403, "forbidden", req{method: "POST", path: "/v1/workspaces", cred: intA, body: map[string]any{"name": "x", "slug": "x"}})
		ws := n.must(200, req{method: "GET", path: "/v1/workspaces", cred: intA}).list()
		if len(ws) != 1 || ws[0].(map[string]any)["id"] != a {
			t.Fatalf("workspace key listed workspaces %v", ws)
		}
		// Permissions are enforced.
		n.fails(403, "forbidden", req{method: "POST", path: "/v1/api-keys", cred: readOnlyA, body: map[string]any{"name": "x", "keyType": "secret"}})
		n.fails(403, "forbidden", req{method: "GET", path: "/v1/audit-logs", cred: intA})
		n.must(200, req{method: "GET", path: "/v1/api-keys", cred: readOnlyA})
		// A key with audit:read but not api_keys:read reads the trail without the keys' names and
		// settings, and the chain still checks out.
		auditorA := n.key(a, map[string]any{"name": "auditor", "keyType": "secret", "permissions": []string{"audit:read"}})["keyValue"].(string)
		trail := n.must(200, req{method: "GET", path: "/v1/audit-logs?limit=100&action=api_key.created", cred: auditorA})
		if raw := string(trail.Raw); strings.Contains(raw, "made by integration") || strings.Contains(raw, `"integration"`) || !strings.Contains(raw, `"redacted":true`) {
			t.Errorf("audit trail read by a key without api_keys:read: %s", raw)
		}
		if v := n.must(200, req{method: "GET", path: "/v1/audit-logs/verify", cred: auditorA}).data(); v["valid"] != true {
			t.Errorf("chain check for a key without api_keys:read: %v", v)
		}
		if raw := string(n.must(200, req{method: "GET", path: "/v1/audit-logs?limit=100&action=api_key.created", cred: n.admin, ws: a}).Raw); !strings.Contains(raw, "made by integration") || strings.Contains(raw, `"redacted"`) {
			t.Errorf("audit trail read by the admin root key: %s", raw)
		}

		// Credentials that must not work, each with its status.
		n.fails(401, "unauthorized", req{method: "GET", path: "/v1/api-keys", cred: pkA})
		n.fails(401, "unauthorized", req{method: "GET", path: "/v1/api-keys"})
		n.fails(401, "unauthorized", req{method: "GET", path: "/v1/api-keys", headers: map[string]string{"Authorization": "Basic dXNlcjpwYXNz"}})
		n.fails(401, "unauthorized", req{method: "GET", path: "/v1/api-keys", cred: "not-a-key"})
		n.fails(401, "unauthorized", req{method: "GET", path: "/v1/api-keys", cred: "kp_root_" + strings.Repeat("A", 38)})
		n.fails(401, "unauthorized", req{method: "GET", path: "/v1/api-keys", cred: "kp_sk_live_" + strings.Repeat("A", 38)})
		n.fails(403, "forbidden", req{method: "GET", path: "/v1/api-keys", cred: n.verifier, ws: a})
		n.fails(403, "forbidden", req{method: "POST", path: "/v1/verify", cred: n.admin, body: map[string]any{"key": intA}})
		n.fails(403, "forbidden", req{method: "POST", path: "/v1/verify", cred: intA, body: map[string]any{"key": intA}})
		n.fails(401, "unauthorized", req{method: "POST", path: "/v1/verify", body: map[string]any{"key": intA}})
		r := n.fails(400, "invalid_request", req{method: "GET", path: "/v1/api-keys", cred: n.admin})
		if f := r.detailFields(); len(f) != 1 || f[0] != "X-Workspace-Id" {
			t.Errorf("missing X-Workspace-Id details: %v", f)
		}
		n.fails(404, "not_found", req{method: "GET", path: "/v1/api-keys", cred: n.admin, ws: "ws_nope"})
		n.fails(404, "not_found", req{method: "GET", path: "/v1/api-keys", cred: n.admin, ws: "ws_01ARZ3NDEKTSV4RRFFQ69G5FAV"})

		// A disabled, revoked or IP-restricted integration key stops working at once.
		readerID := n.must(200, req{method: "GET", path: "/v1/api-keys?limit=100", cred: readOnlyA}).list()
		var rid string
		for _, k := range readerID {
			if k.(map[string]any)["name"] == "reader" {
				rid = k.(map[string]any)["id"].(string)
			}
		}
		n.must(200, req{method: "PATCH", path: "/v1/api-keys/" + rid, cred: intA, body: map[string]any{"ipAllowlist": []string{"192.0.2.1"}}})
		n.fails(403, "forbidden", req{method: "GET", path: "/v1/api-keys", cred: readOnlyA})
		n.must(200, req{method: "PATCH", path: "/v1/api-keys/" + rid, cred: intA, body: map[string]any{"ipAllowlist": []string{"127.0.0.1"}}})
		n.must(200, req{method: "GET", path: "/v1/api-keys", cred: readOnlyA})
		n.must(200, req{method: "PATCH", path: "/v1/api-keys/" + rid, cred: intA, body: map[string]any{"enabled": false}})
		n.fails(401, "unauthorized", req{method: "GET", path: "/v1/api-keys", cred: readOnlyA})
		n.must(200, req{method: "DELETE", path: "/v1/api-keys/" + rid, cred: intA})
		n.fails(401, "unauthorized", req{method: "GET", path: "/v1/api-keys", cred: readOnlyA})

		// The audit trail names the integration key as the actor.
		entries := n.must(200, req{method: "GET", path: "/v1/audit-logs?actorId=" + mine["createdBy"].(map[string]any)["id"].(string), cred: n.admin, ws: a}).list()
		if len(entries) == 0 {
			t.Fatal("no audit entries by the integration key")
		}
		actor := entries[0].(map[string]any)["actor"].(map[string]any)
		if actor["type"] != "api_key" || actor["name"] != "integration" {
			t.Errorf("actor %v", actor)
		}
		if entries[0].(map[string]any)["ip"] != "127.0.0.1" {
			t.Errorf("audit ip %v", entries[0].(map[string]any)["ip"])
		}
	})
}

func TestPublishableKeysAndReveal(t *testing.T) {
	eachDriver(t, func(t *testing.T, driver string) {
		n := start(t, driver, nil)
		ws := n.workspace("shop", nil)
		n.fails(404, "not_found", req{method: "GET", path: "/v1/api-keys/publishable", cred: n.admin, ws: ws})
		old := n.key(ws, map[string]any{"name": "old pk", "keyType": "publishable", "allowedOrigins": []string{"https://Shop.Example.com/"}})
		pk := n.key(ws, map[string]any{"name": "web", "keyType": "publishable", "allowedOrigins": []string{"https://shop.example.com", "http://localhost:3000"}})
		testPK := n.key(ws, map[string]any{"name": "test web", "keyType": "publishable", "environment": "test"})
		if o := old["allowedOrigins"].([]any); len(o) != 1 || o[0] != "https://shop.example.com" {
			t.Errorf("origin not normalized: %v", o)
		}
		got := n.must(200, req{method: "GET", path: "/v1/api-keys/publishable", cred: n.admin, ws: ws}).data()
		if got["id"] != pk["id"] || got["keyValue"] != pk["keyValue"] {
			t.Fatalf("publishable: got %v, want the newest %v", got["id"], pk["id"])
		}
		gotTest := n.must(200, req{method: "GET", path: "/v1/api-keys/publishable?environment=test", cred: n.admin, ws: ws}).data()
		if gotTest["keyValue"] != testPK["keyValue"] {
			t.Fatal("test publishable key not returned")
		}
		n.fails(400, "invalid_request", req{method: "GET", path: "/v1/api-keys/publishable?environment=prod", cred: n.admin, ws: ws})
		// Disabling the newest falls back to the older active one.
		n.must(200, req{method: "PATCH", path: "/v1/api-keys/" + pk["id"].(string), cred: n.admin, ws: ws, body: map[string]any{"enabled": false}})
		if got := n.must(200, req{method: "GET", path: "/v1/api-keys/publishable", cred: n.admin, ws: ws}).data(); got["id"] != old["id"] {
			t.Errorf("after disabling the newest, got %v", got["id"])
		}
		// Origins are enforced and fail closed.
		pv := pk["keyValue"].(string)
		n.must(200, req{method: "PATCH", path: "/v1/api-keys/" + pk["id"].(string), cred: n.admin, ws: ws, body: map[string]any{"enabled": true}})
		if c := n.code(pv, "origin", "https://shop.example.com"); c != "VALID" {
			t.Errorf("allowed origin: %s", c)
		}
		if c := n.code(pv, "origin", "https://evil.example.com"); c != "FORBIDDEN" {
			t.Errorf("other origin: %s", c)
		}
		if c := n.code(pv); c != "FORBIDDEN" {
			t.Errorf("no origin: %s", c)
		}
		// Reveal: publishable always; secret only when recoverable and asked by an admin root key.
		rev := n.must(200, req{method: "POST", path: "/v1/api-keys/" + pk["id"].(string) + "/reveal", cred: n.admin, ws: ws}).data()
		if rev["keyValue"] != pv {
			t.Fatal("reveal of a publishable key")
		}
		sec := n.key(ws, map[string]any{"name": "plain secret", "keyType": "secret"})
		n.fails(403, "forbidden", req{method: "POST", path: "/v1/api-keys/" + sec["id"].(string) + "/reveal", cred: n.admin, ws: ws})
		rec := n.key(ws, map[string]any{"name": "recoverable", "keyType": "secret", "recoverable": true, "permissions": []string{"api_keys:read"}})
		if rec["recoverable"] != true {
			t.Fatal("recoverable flag lost")
		}
		rv := n.must(200, req{method: "POST", path: "/v1/api-keys/" + rec["id"].(string) + "/reveal", cred: n.admin, ws: ws}).data()
		if rv["keyValue"] != rec["keyValue"] {
			t.Fatal("reveal of a recoverable secret by an admin root key")
		}
		// A workspace key may not reveal a secret, even its own.
		n.fails(403, "forbidden", req{method: "POST", path: "/v1/api-keys/" + rec["id"].(string) + "/reveal", cred: rec["keyValue"].(string)})
		// After rotation the reveal answers the new value.
		rot := n.must(200, req{method: "POST", path: "/v1/api-keys/" + rec["id"].(string) + "/rotate", cred: n.admin, ws: ws}).data()
		if rv := n.must(200, req{method: "POST", path: "/v1/api-keys/" + rec["id"].(string) + "/reveal", cred: n.admin, ws: ws}).data(); rv["keyValue"] != rot["keyValue"] {
			t.Fatal("reveal after rotation did not answer the new value")
		}
		// Every reveal and refused reveal is audited.
		rv2 := n.must(200, req{method: "GET", path: "/v1/audit-logs?action=api_key.revealed", cred: n.admin, ws: ws}).list()
		denied := n.must(200, req{method: "GET", path: "/v1/audit-logs?action=api_key.reveal_denied", cred: n.admin, ws: ws}).list()
		if len(rv2) != 3 || len(denied) != 2 {
			t.Errorf("audited reveals %d (want 3), denied %d (want 2)", len(rv2), len(denied))
		}
		// Secret keys cannot have origins.
		n.fails(400, "invalid_request", req{method: "POST", path: "/v1/api-keys", cred: n.admin, ws: ws, body: map[string]any{"name": "x", "keyType": "secret", "allowedOrigins": []string{"https://a.example"}}})
	})
}

func TestPaginationAndFilters(t *testing.T) {
	eachDriver(t, func(t *testing.T, driver string) {
		n := start(t, driver, nil)
		ws := n.workspace("many", map[string]any{"maxKeys": 50})
		made := map[string]bool{}
		for i := 0; i < 7; i++ {
			env := "live"
			if i%2 == 1 {
				env = "test"
			}
			made[n.key(ws, map[string]any{"name": "k", "keyType": "secret", "environment": env})["id"].(string)] = true
		}
		seen := map[string]bool{}
		cursor := ""
		pages := 0
		var prev string
		for {
			path := "/v1/api-keys?limit=3"
			if cursor != "" {
				path += "&cursor=" + cursor
			}
			r := n.must(200, req{method: "GET", path: path, cred: n.admin, ws: ws})
			pages++
			for _, k := range r.list() {
				id := k.(map[string]any)["id"].(string)
				if seen[id] {
					t.Fatalf("key %s on two pages", id)
				}
				if prev != "" && id > prev {
					t.Fatalf("not newest first: %s after %s", id, prev)
				}
				prev, seen[id] = id, true
			}
			next, _ := r.Body["nextCursor"].(string)
			if next == "" {
				if _, present := r.Body["nextCursor"]; !present {
					t.Fatal("nextCursor missing on the last page; want null")
				}
				break
			}
			cursor = next
		}
		if pages != 3 || len(seen) != 7 {
			t.Fatalf("%d pages, %d keys", pages, len(seen))
		}
		if tests := n.must(200, req{method: "GET", path: "/v1/api-keys?environment=test", cred: n.admin, ws: ws}).list(); len(tests) != 3 {
			t.Errorf("environment=test: %d", len(tests))
		}
		if pubs := n.must(200, req{method: "GET", path: "/v1/api-keys?keyType=publishable", cred: n.admin, ws: ws}).list(); len(pubs) != 0 {
			t.Errorf("keyType=publishable: %d", len(pubs))
		}
		n.fails(400, "invalid_request", req{method: "GET", path: "/v1/api-keys?cursor=bogus", cred: n.admin, ws: ws})
		n.fails(400, "invalid_request", req{method: "GET", path: "/v1/api-keys?status=sleeping", cred: n.admin, ws: ws})
		// Audit log filters and pagination.
		page1 := n.must(200, req{method: "GET", path: "/v1/audit-logs?limit=2&action=api_key.created", cred: n.admin, ws: ws})
		if len(page1.list()) != 2 || page1.Body["nextCursor"] == nil {
			t.Fatalf("audit page: %s", page1.Raw)
		}
		all := n.must(200, req{method: "GET", path: "/v1/audit-logs?action=api_key.created&limit=100", cred: n.admin, ws: ws}).list()
		if len(all) != 7 {
			t.Errorf("api_key.created entries: %d", len(all))
		}
		future := n.must(200, req{method: "GET", path: "/v1/audit-logs?since=2100-01-01T00:00:00Z", cred: n.admin, ws: ws}).list()
		if len(future) != 0 {
			t.Errorf("since the future: %d entries", len(future))
		}
		n.fails(400, "invalid_request", req{method: "GET", path: "/v1/audit-logs?since=yesterday", cred: n.admin, ws: ws})
	})
}

func TestWorkspacesAndMembers(t *testing.T) {
	eachDriver(t, func(t *testing.T, driver string) {
		n := start(t, driver, nil)
		w := n.must(201, req{method: "POST", path: "/v1/workspaces", cred: n.admin, body: map[string]any{"name": "Acme Store", "slug": "acme"}}).data()
		if w["maxKeys"] != 20.0 || w["testKeyTtlSeconds"] != 259200.0 || w["liveModeEnabled"] != true {
			t.Fatalf("defaults: %v", w)
		}
		id := w["id"].(string)
		r := n.fails(400, "invalid_request", req{method: "POST", path: "/v1/workspaces", cred: n.admin, body: map[string]any{"name": "Again", "slug": "acme"}})
		if f := r.detailFields(); len(f) != 1 || f[0] != "slug" {
			t.Errorf("duplicate slug details %v", f)
		}
		p := n.must(200, req{method: "PATCH", path: "/v1/workspaces/" + id, cred: n.admin, body: map[string]any{"maxKeys": 5, "name": "Acme"}}).data()
		if p["maxKeys"] != 5.0 || p["name"] != "Acme" {
			t.Fatalf("patch: %v", p)
		}
		all := n.must(200, req{method: "GET", path: "/v1/workspaces", cred: n.admin}).list()
		if len(all) != 2 { // Default and Acme
			t.Fatalf("workspaces: %d", len(all))
		}
		m := n.must(201, req{method: "POST", path: "/v1/workspaces/" + id + "/members", cred: n.admin, body: map[string]any{"email": "Ana@Example.com", "role": "developer"}}).data()
		if m["email"] != "ana@example.com" || m["role"] != "developer" {
			t.Fatalf("member: %v", m)
		}
		// A change of role of someone already there (invited, here) is 200.
		n.must(200, req{method: "POST", path: "/v1/workspaces/" + id + "/members", cred: n.admin, body: map[string]any{"email": "ana@example.com", "role": "admin"}})
		ms := n.must(200, req{method: "GET", path: "/v1/workspaces/" + id + "/members", cred: n.admin}).list()
		if len(ms) != 1 || ms[0].(map[string]any)["role"] != "admin" {
			t.Fatalf("members: %v", ms)
		}
		n.fails(400, "invalid_request", req{method: "POST", path: "/v1/workspaces/" + id + "/members", cred: n.admin, body: map[string]any{"email": "not an email", "role": "owner"}})
		n.fails(400, "invalid_request", req{method: "POST", path: "/v1/workspaces/" + id + "/members", cred: n.admin, body: map[string]any{"email": "bo@example.com", "role": "god"}})
		n.fails(404, "not_found", req{method: "GET", path: "/v1/workspaces/ws_01ARZ3NDEKTSV4RRFFQ69G5FAV", cred: n.admin})
		// The catalogs.
		perms := n.must(200, req{method: "GET", path: "/v1/permissions", cred: n.admin}).list()
		if len(perms) < 7 {
			t.Errorf("permissions: %d", len(perms))
		}
		n.must(200, req{method: "GET", path: "/v1/event-types", cred: n.admin})
		// Bootstrap made the Default workspace with the admin as its owner.
		def := all[len(all)-1].(map[string]any)
		if def["name"] != "Default" || def["slug"] != "default" {
			t.Fatalf("bootstrap workspace: %v", def)
		}
		owners := n.must(200, req{method: "GET", path: "/v1/workspaces/" + def["id"].(string) + "/members", cred: n.admin}).list()
		if len(owners) != 1 || owners[0].(map[string]any)["email"] != "admin@localhost" || owners[0].(map[string]any)["role"] != "owner" {
			t.Errorf("Default's members: %v", owners)
		}
	})
}

func TestPublicEndpoints(t *testing.T) {
	n := start(t, "sqlite", nil)
	for _, p := range []string{"/healthz", "/readyz"} {
		r := n.must(200, req{method: "GET", path: p})
		if r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s content type %q", p, r.Header.Get("Content-Type"))
		}
	}
	st := n.must(200, req{method: "GET", path: "/v1/status"}).data()
	if st["status"] != "ok" || st["store"].(map[string]any)["driver"] != "sqlite" {
		t.Errorf("status: %v", st)
	}
	doc := n.must(200, req{method: "GET", path: "/v1/openapi.json"})
	if doc.Body["openapi"] != "3.1.0" || doc.Body["success"] != nil {
		t.Errorf("openapi.json is not the raw document")
	}
	n.fails(404, "not_found", req{method: "GET", path: "/v1/nothing"})
	r := n.fails(405, "method_not_allowed", req{method: "PUT", path: "/v1/api-keys", cred: n.admin})
	if !strings.Contains(r.Header.Get("Allow"), "GET") {
		t.Errorf("Allow: %q", r.Header.Get("Allow"))
	}
	// A sane request id from the caller is kept; a hostile one is replaced.
	if got := n.do(req{method: "GET", path: "/healthz", headers: map[string]string{"X-Request-Id": "abc-123"}}).Header.Get("X-Request-Id"); got != "abc-123" {
		t.Errorf("request id %q", got)
	}
	if got := n.do(req{method: "GET", path: "/healthz", headers: map[string]string{"X-Request-Id": "a\"b{}"}}).Header.Get("X-Request-Id"); !strings.HasPrefix(got, "req_") {
		t.Errorf("hostile request id kept: %q", got)
	}
}
