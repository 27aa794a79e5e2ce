package e2e

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane/internal/testkit"
)

// isolationEnv: custom event types to send, endpoints on this machine, and request logs written
// quickly, so that the workspace under attack settles fast.
var isolationEnv = map[string]string{
	"KEYPLANE_CONFIG":                "../../examples/keyplane.json",
	"KEYPLANE_WEBHOOK_ALLOW_PRIVATE": "true",
	"KEYPLANE_LOG_FLUSH_INTERVAL":    "20ms",
	"KEYPLANE_USAGE_FLUSH_INTERVAL":  "20ms",
	// One attempt per event: A's receiver fails every delivery (only a failed attempt may be retried
	// by hand), and no automatic retry may change A while B's calls are made.
	"KEYPLANE_WEBHOOK_RETRY_SCHEDULE": "0s",
}

// attack is one call of an operation on workspace A's resources.
type attack struct {
	params map[string]string // path parameters
	query  string            // "?…" or ""
	body   any
	// as names the credential of A that shows the call is valid, by making it: "key" (A's live
	// integration key), "testkey" (A's test integration key) or "operator" (the admin root key with
	// X-Workspace-Id: A); "" for calls that only B makes (ids that A's own call would consume, or
	// that a valid call could not take).
	as string
	// mismatch: the parameters name resources of different parents (an endpoint and another's
	// delivery): A's own call must be 404 too.
	mismatch bool
	// shows is an id that A's answer must hold, to show that a filter matched something.
	shows string
}

// world is the two workspaces: A, the target, with one of every resource; B, the attacker.
type world struct {
	a, b                    string
	aKey, aTestKey          string            // A's integration keys' values: every permission
	bKey, bTestKey          string            // B's, the same
	keys                    map[string]string // A's keys' ids by role
	intID, intTestID        string
	hooks                   map[string]string // A's endpoints' ids by role
	identities              map[string]string // A's identities' ids by role
	d1, d2, bHook, bDeliver string
	evA, evB                string // an event of A (order.created, to main) and one of B
	memberVictim            string // a member of A that removeMember may remove
	rcA                     *receiver
	rcNew                   *receiver // the URL of endpoints the calls create, A's or B's
	since, until            string    // the usage range snapshots read: fixed, so that the clock cannot move it
}

func TestIsolation(t *testing.T) {
	ops := documentedOps(t)
	eachDriver(t, func(t *testing.T, driver string) {
		t.Parallel()
		n := start(t, driver, isolationEnv)
		w := buildWorld(t, n)
		fixtures := isolationFixtures(w)
		// Every management operation must say how it is attacked: one added to the API without a
		// fixture fails here instead of going unchecked.
		var missing []string
		documented := map[string]bool{}
		for _, op := range ops {
			documented[op.id] = true
			if op.access != accessManagement {
				continue // public, or not a tenant's: verification takes only the operator's root keys
			}
			f, ok := fixtures[op.id]
			if !ok {
				missing = append(missing, op.String())
				continue
			}
			proven := false
			for _, at := range f {
				if p := op.fill(at.params); strings.Contains(p, "{") {
					t.Fatalf("%s: a fixture leaves a path parameter empty: %s", op, p)
				}
				proven = proven || at.as != "" && !at.mismatch
			}
			if !proven {
				t.Fatalf("%s: no fixture is made by A's own credentials, so a 404 to B would prove nothing", op)
			}
		}
		if len(missing) > 0 {
			t.Fatalf("operations without an isolation fixture (add them to isolationFixtures): %v", missing)
		}
		for id := range fixtures {
			if !documented[id] {
				t.Fatalf("isolationFixtures has %s, which the OpenAPI document does not", id)
			}
		}

		before := w.settle(t, n)
		aIDs := idsIn(before)
		type attacker struct {
			name, cred, ws string
			operator       bool
		}
		attackers := []attacker{
			// A workspace key's X-Workspace-Id is ignored: naming A must not help.
			{"B's live integration key", w.bKey, w.a, false},
			{"B's test integration key", w.bTestKey, w.a, false},
			{"the operator on B", n.admin, w.b, true},
		}
		calls, denied := 0, 0
		// named holds the ids of A that B has sent: B's own request log shows them back, rightly.
		named := map[string]bool{}
		for _, op := range ops {
			f, ok := fixtures[op.id]
			if !ok {
				continue
			}
			for _, at := range f {
				for _, who := range attackers {
					if who.operator && !op.workspaced {
						// An admin root key acts on every workspace by design: X-Workspace-Id does not
						// scope /v1/workspaces/{id} or the catalog.
						continue
					}
					r := req{method: op.method, path: op.fill(at.params) + at.query, cred: who.cred, ws: who.ws, body: at.body}
					// A space: an id that ends the path is a word of its own, not run into the body's "null".
					for id := range idsIn(r.path + " " + fmtJSON(at.body)) {
						named[id] = true
					}
					res := n.do(r)
					calls++
					what := fmt.Sprintf("%s as %s on %s%s", op.id, who.name, r.path, bodyNote(at.body))
					if len(op.params) > 0 {
						checkError(t, what, res, 404, "not_found", "")
						denied++
					} else if res.Status >= 500 || res.Status == 401 {
						t.Errorf("%s: %d %.300s", what, res.Status, res.Raw)
					}
					// Nothing of A that the caller did not name may come back.
					for id := range idsIn(string(res.Raw)) {
						if aIDs[id] && !named[id] {
							t.Errorf("%s: the answer holds %s, of workspace A: %.300s", what, id, res.Raw)
						}
					}
				}
			}
		}
		after := w.settle(t, n)
		if after != before {
			t.Errorf("workspace A changed under B's calls:\n%s", firstDiff(before, after))
		}

		// The same calls by A's own credentials succeed: the ids B used were good ones.
		creds := map[string]req{
			"key":      {cred: w.aKey},
			"testkey":  {cred: w.aTestKey},
			"operator": {cred: n.admin, ws: w.a},
		}
		positive := 0
		for _, op := range ops {
			for _, at := range fixtures[op.id] {
				if at.as == "" {
					continue
				}
				r := creds[at.as]
				r.method, r.path, r.body = op.method, op.fill(at.params)+at.query, at.body
				if !op.workspaced {
					r.ws = ""
				}
				res := n.do(r)
				positive++
				what := fmt.Sprintf("%s as A's %s on %s", op.id, at.as, r.path)
				switch {
				case at.mismatch:
					checkError(t, what, res, 404, "not_found", "")
				case res.Status != op.status:
					t.Errorf("%s: %d, want %d: %.300s", what, res.Status, op.status, res.Raw)
				case at.shows != "" && !strings.Contains(string(res.Raw), at.shows):
					t.Errorf("%s: the answer does not hold %s: %.300s", what, at.shows, res.Raw)
				}
			}
		}
		t.Logf("%d calls by B's credentials (%d on A's ids, each 404), %d by A's own", calls, denied, positive)
		if strings.Contains(n.logs.String(), "panic") {
			t.Fatalf("the server panicked:\n%s", n.logs.String())
		}
	})
}

func bodyNote(b any) string {
	if b == nil {
		return ""
	}
	return " " + fmtJSON(b)
}

// isolationFixtures says, for every management operation, how it is called on A's resources.
// Operations with path parameters take A's ids; the others (lists, creation, the catalog) are
// called by B as they are, with A's ids in the query where a filter takes ids.
func isolationFixtures(w *world) map[string][]attack {
	k, h := w.keys, w.hooks
	id := func(v string) map[string]string { return map[string]string{"id": v} }
	keyCalls := func(as map[string]string, query string, body any) []attack {
		var out []attack
		for _, role := range []string{"liveSecret", "testSecret", "livePublishable", "testPublishable", "recoverable", "revoked", "integration", "testIntegration", "revokeVictim", "deleteVictim", "deleteVictim2"} {
			out = append(out, attack{params: id(k[role]), query: query, body: body, as: as[role]})
		}
		return out
	}
	hookCalls := func(as map[string]string, body any) []attack {
		var out []attack
		for _, role := range []string{"main", "second", "victim", "victim2"} {
			out = append(out, attack{params: id(h[role]), body: body, as: as[role]})
		}
		return out
	}
	pair := func(hook, delivery, as string, mismatch bool) attack {
		return attack{params: map[string]string{"id": hook, "deliveryId": delivery}, as: as, mismatch: mismatch}
	}
	ws := id(w.a)
	idn := w.identities
	identityCalls := func(as map[string]string, body any) []attack {
		var out []attack
		for _, role := range []string{"main", "second", "victim", "victim2"} {
			out = append(out, attack{params: id(idn[role]), body: body, as: as[role]})
		}
		return out
	}
	return map[string][]attack{
		// API keys: every key of A, of both types and environments, whatever its state.
		"getApiKey":      keyCalls(map[string]string{"liveSecret": "key", "testSecret": "testkey", "livePublishable": "operator", "testPublishable": "key", "recoverable": "operator", "revoked": "operator"}, "", nil),
		"getApiKeyUsage": keyCalls(map[string]string{"liveSecret": "operator", "testSecret": "key", "testPublishable": "testkey", "revoked": "key"}, "?granularity=day", nil),
		"updateApiKey":   keyCalls(map[string]string{"liveSecret": "key", "testSecret": "testkey", "livePublishable": "operator", "testPublishable": "testkey", "recoverable": "operator"}, "", map[string]any{"name": "renamed", "meta": map[string]any{"by": "caller"}}),
		"rotateApiKey":   keyCalls(map[string]string{"liveSecret": "key", "testSecret": "operator", "livePublishable": "key", "testPublishable": "testkey", "recoverable": "operator"}, "", map[string]any{"expireOldAfterSeconds": 60}),
		// A workspace key reveals publishable keys; a recoverable secret only to an admin root key.
		"revealApiKey": keyCalls(map[string]string{"livePublishable": "key", "testPublishable": "testkey", "recoverable": "operator"}, "", nil),
		"deleteApiKey": append(
			keyCalls(map[string]string{"revokeVictim": "key"}, "", nil),
			keyCalls(map[string]string{"deleteVictim": "operator", "deleteVictim2": "testkey"}, "?permanent=true", nil)...),

		// A set needs no balance before it: every key of A, whatever its state, can be aimed at.
		"changeApiKeyCredits": keyCalls(map[string]string{"liveSecret": "key", "testSecret": "testkey", "recoverable": "operator"}, "", map[string]any{"op": "set", "value": 50}),

		// Identities, and their shared balances.
		"getIdentity":           identityCalls(map[string]string{"main": "key", "second": "operator"}, nil),
		"updateIdentity":        identityCalls(map[string]string{"main": "testkey", "second": "operator"}, map[string]any{"meta": map[string]any{"by": "caller"}}),
		"deleteIdentity":        identityCalls(map[string]string{"victim": "key", "victim2": "operator"}, nil),
		"changeIdentityCredits": identityCalls(map[string]string{"main": "key", "second": "operator"}, map[string]any{"op": "set", "value": 40}),

		// Webhook endpoints and their deliveries.
		"getWebhook":          hookCalls(map[string]string{"main": "key", "second": "operator"}, nil),
		"updateWebhook":       hookCalls(map[string]string{"main": "testkey", "second": "operator"}, map[string]any{"description": "changed", "eventTypes": []string{"*"}}),
		"deleteWebhook":       hookCalls(map[string]string{"victim": "key", "victim2": "operator"}, nil),
		"rotateWebhookSecret": hookCalls(map[string]string{"main": "key", "second": "operator"}, nil),
		"revealWebhookSecret": hookCalls(map[string]string{"main": "key", "second": "testkey"}, nil),
		"testWebhook":         hookCalls(map[string]string{"main": "key", "second": "operator"}, map[string]any{"eventType": "order.created"}),
		"listDeliveries":      hookCalls(map[string]string{"main": "operator", "second": "key"}, nil),
		"retryDelivery": {
			pair(h["main"], w.d1, "key", false),
			pair(h["second"], w.d2, "operator", false),
			// A delivery reached through another endpoint, of A or of B, is not found.
			pair(h["main"], w.d2, "testkey", true),
			pair(h["second"], w.d1, "key", true),
			pair(w.bHook, w.d1, "key", true),
			pair(h["main"], w.bDeliver, "operator", true),
		},
		// Recovery and events. B resending its own event to A's endpoint finds no endpoint; A
		// resending B's event finds no event.
		"recoverWebhook": hookCalls(map[string]string{"main": "key", "second": "operator"}, map[string]any{"since": w.since}),
		"getEvent":       {{params: id(w.evA), as: "key", shows: w.evA}, {params: id(w.evA), as: "operator", shows: `"order":"A-1"`}},
		"resendEvent": {
			{params: id(w.evA), as: "key"},
			{params: id(w.evA), body: map[string]any{"endpointId": h["second"]}},
			{params: id(w.evB), body: map[string]any{"endpointId": h["main"]}, as: "key", mismatch: true},
		},

		// Workspace A itself. Only the operator may change it or see its members.
		"getWorkspace":    {{params: ws, as: "key"}, {params: ws, as: "operator"}},
		"updateWorkspace": {{params: ws, body: map[string]any{"maxKeys": 99, "name": "Renamed"}, as: "operator"}},
		"listMembers":     {{params: ws, as: "operator", shows: "ana@example.com"}},
		// A change of role (200, the status the document lists first); B's attempt would have been an
		// invitation of mallory as an owner, had it reached A.
		"addMember": {
			{params: ws, body: map[string]any{"email": "mallory@example.com", "role": "owner"}},
			{params: ws, body: map[string]any{"email": "ana@example.com", "role": "viewer"}, as: "operator"},
		},
		"removeMember": {{params: map[string]string{"id": w.a, "userId": w.memberVictim}, as: "operator"}},

		// Calls without ids in the path: B acts on B, and sees nothing of A even when it names A's ids
		// in a filter.
		"listApiKeys": {{query: "?limit=100", as: "key", shows: k["liveSecret"]}, {query: "?environment=test&keyType=publishable", as: "testkey", shows: k["testPublishable"]},
			{query: "?identityId=" + idn["main"], as: "operator", shows: k["metered"]}, {query: "?externalId=customer-a", as: "key", shows: k["metered"]}},
		"createApiKey":         {{body: map[string]any{"name": "made by the caller", "keyType": "secret", "environment": "test"}, as: "testkey"}},
		"importApiKeys":        {{body: map[string]any{"keys": []any{map[string]any{"name": "imported by the caller", "environment": "test", "value": "legacy_" + strings.ToLower(rand.Text())}}}, as: "testkey"}},
		"getPublishableApiKey": {{query: "?environment=live", as: "operator", shows: k["livePublishable"]}, {query: "?environment=test", as: "testkey", shows: k["testPublishable"]}},
		"listAuditLogs": {
			{query: "?targetId=" + k["liveSecret"], as: "key", shows: k["liveSecret"]},
			{query: "?actorId=" + w.intID, as: "operator", shows: w.intID},
			{query: "?action=webhook.created&limit=100", as: "testkey", shows: h["main"]},
		},
		"verifyAuditLogs": {{as: "key", shows: `"valid":true`}},
		"listRequestLogs": {
			{query: "?keyId=" + k["liveSecret"], as: "key", shows: k["liveSecret"]},
			{query: "?keyId=" + w.intTestID, as: "testkey", shows: w.intTestID},
			{query: "?source=management", as: "operator", shows: w.intID},
		},
		"listIdentities": {{query: "?limit=100", as: "key", shows: idn["main"]}},
		"createIdentity": {{body: map[string]any{"externalId": "made-by-the-caller"}, as: "testkey"}},
		"exportUsage": {
			{query: "?groupBy=key&granularity=hour&since=" + w.since + "&until=" + w.until, as: "key", shows: k["metered"]},
			{query: "?groupBy=identity&format=csv&since=" + w.since + "&until=" + w.until, as: "operator", shows: idn["main"]},
		},
		"listWebhooks":    {{query: "?limit=100", as: "key", shows: h["main"]}},
		"createWebhook":   {{body: map[string]any{"url": w.rcNew.URL, "eventTypes": []string{"order.created"}}, as: "testkey"}},
		"listEvents":      {{query: "?limit=100", as: "key", shows: w.evA}, {query: "?type=order.created", as: "operator", shows: w.evA}},
		"sendEvent":       {{body: map[string]any{"type": "order.created", "data": map[string]any{"order": "B-1"}}, as: "key"}},
		"listPermissions": {{as: "key"}},
		"listEventTypes":  {{as: "testkey"}},
		"listWorkspaces":  {{as: "key", shows: w.a}},
		"createWorkspace": {{body: map[string]any{"name": "Gamma", "slug": "gamma"}, as: "operator"}},
		// A link into the caller's own workspace: B's is into B, whatever it names.
		"createPortalSession": {
			{body: map[string]any{"user": map[string]any{"id": "made-by-the-caller"}, "role": "viewer"}, as: "key"},
			{body: map[string]any{"user": map[string]any{"id": "made-by-the-operator", "email": "op@example.com"}, "role": "admin", "returnUrl": "https://a.example/"}, as: "operator"},
		},
		// Operator only: B's keys are refused (403). A value no key has, so that A's own call changes
		// nothing of A's (leakedkeys_test.go reports real values).
		"reportLeaks": {{body: map[string]any{"keys": []string{"kp_sk_live_00000000000000000000000000000000000000"}, "source": "isolation"}, as: "operator"}},
	}
}

// buildWorld makes workspace A with one of every resource the contract has (keys of both types and
// environments and every state, recoverable ones, endpoints, events, deliveries, a member, request
// logs, audit entries), and workspace B with integration keys holding every permission.
func buildWorld(t *testing.T, n *node) *world {
	t.Helper()
	now := time.Now().UTC()
	w := &world{keys: map[string]string{}, hooks: map[string]string{}, identities: map[string]string{},
		since: now.Add(-48 * time.Hour).Format(time.RFC3339), until: now.Add(48 * time.Hour).Format(time.RFC3339)}
	w.a = n.workspace("alpha", map[string]any{"maxKeys": 100})
	w.b = n.workspace("beta", map[string]any{"maxKeys": 100})
	var all []string
	for _, p := range n.must(200, req{method: "GET", path: "/v1/permissions", cred: n.admin}).list() {
		all = append(all, p.(map[string]any)["name"].(string))
	}

	// Endpoints first, so that every change below is an event delivered to them.
	w.rcA = newReceiver(t, func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusServiceUnavailable) })
	w.rcNew = newReceiver(t, nil)
	for _, role := range []string{"main", "second", "victim", "victim2"} {
		types := []string{"api_key.created"}
		if role == "main" {
			types = append(types, "order.created")
		}
		w.hooks[role] = n.webhook(w.a, map[string]any{"url": w.rcA.URL + "/" + role, "eventTypes": types, "description": role})["id"].(string)
	}
	mk := func(role string, body map[string]any) map[string]any {
		k := n.key(w.a, body)
		w.keys[role] = k["id"].(string)
		return k
	}
	integration := mk("integration", map[string]any{"name": "integration", "keyType": "secret", "permissions": all})
	testIntegration := mk("testIntegration", map[string]any{"name": "test integration", "keyType": "secret", "environment": "test", "permissions": all})
	w.aKey, w.aTestKey = integration["keyValue"].(string), testIntegration["keyValue"].(string)
	w.intID, w.intTestID = w.keys["integration"], w.keys["testIntegration"]
	values := map[string]string{}
	// A test key reaches only test keys that expire no later than itself: those below expire before
	// the test integration key.
	day := time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)
	for role, body := range map[string]map[string]any{
		"liveSecret":      {"name": "live secret", "keyType": "secret", "permissions": []string{"orders:read"}, "meta": map[string]any{"tier": "gold"}},
		"testSecret":      {"name": "test secret", "keyType": "secret", "environment": "test", "expiresAt": day},
		"livePublishable": {"name": "live publishable", "keyType": "publishable"},
		"testPublishable": {"name": "test publishable", "keyType": "publishable", "environment": "test", "expiresAt": day},
		"recoverable":     {"name": "recoverable", "keyType": "secret", "recoverable": true},
		"revoked":         {"name": "revoked", "keyType": "secret"},
		"revokeVictim":    {"name": "to revoke", "keyType": "secret"},
		"deleteVictim":    {"name": "to delete", "keyType": "secret"},
		"deleteVictim2":   {"name": "to delete too", "keyType": "secret", "environment": "test", "expiresAt": day},
	} {
		values[role] = mk(role, body)["keyValue"].(string)
	}
	admin := func(method, path string, body any) {
		n.must(200, req{method: method, path: path, cred: n.admin, ws: w.a, body: body})
	}
	// Usage-based keys: a metered key of an identity made by its externalId, an identity with a
	// balance of its own, and two identities without keys for the deletes.
	metered := mk("metered", map[string]any{"name": "metered", "keyType": "secret", "externalId": "customer-a",
		"credits": map[string]any{"remaining": 1000}, "rateLimits": []any{map[string]any{"name": "per-minute", "limit": 100, "windowMs": 60000, "autoApply": false}}})
	values["metered"] = metered["keyValue"].(string)
	w.identities["main"] = metered["identityId"].(string)
	for role, body := range map[string]map[string]any{
		"second":  {"externalId": "customer-b", "credits": map[string]any{"remaining": 500, "refill": map[string]any{"interval": "daily", "amount": 500}}},
		"victim":  {"externalId": "customer-c"},
		"victim2": {"externalId": "customer-d"},
	} {
		w.identities[role] = n.must(201, req{method: "POST", path: "/v1/identities", cred: n.admin, ws: w.a, body: body}).data()["id"].(string)
	}
	if c := n.code(values["metered"], "tags", []string{"checkout"}); c != "VALID" {
		t.Fatalf("the metered key: %s", c)
	}
	admin("DELETE", "/v1/api-keys/"+w.keys["revoked"], nil)
	admin("PATCH", "/v1/api-keys/"+w.keys["deleteVictim"], map[string]any{"enabled": false})
	admin("PATCH", "/v1/api-keys/"+w.keys["deleteVictim2"], map[string]any{"enabled": false})
	n.must(201, req{method: "POST", path: "/v1/workspaces/" + w.a + "/members", cred: n.admin, body: map[string]any{"email": "ana@example.com", "role": "developer"}})
	w.memberVictim = n.must(201, req{method: "POST", path: "/v1/workspaces/" + w.a + "/members", cred: n.admin, body: map[string]any{"email": "bo@example.com", "role": "viewer"}}).data()["userId"].(string)
	w.evA = n.must(202, req{method: "POST", path: "/v1/events", cred: w.aKey, body: map[string]any{"type": "order.created", "data": map[string]any{"order": "A-1"}}}).data()["id"].(string)
	n.must(200, req{method: "GET", path: "/v1/api-keys", cred: w.aTestKey}) // a management call in A's request log

	// Modes: a key verifies in its own environment only, and a workspace key reads every key of its
	// workspace but creates, changes and reveals keys of its own environment only: A's live key acts
	// on live keys below, A's test key on test keys.
	for _, role := range []string{"liveSecret", "testSecret", "livePublishable", "testPublishable"} {
		own, other := "live", "test"
		if strings.HasPrefix(role, "test") {
			own, other = "test", "live"
		}
		if c := n.code(values[role], "environment", own); c != "VALID" {
			t.Fatalf("%s verified in %s: %s", role, own, c)
		}
		if c := n.code(values[role], "environment", other); c != "FORBIDDEN" {
			t.Fatalf("%s verified in %s: %s, want FORBIDDEN", role, other, c)
		}
	}

	// B: integration keys of both environments, and an endpoint with a delivery of its own.
	w.bKey = n.key(w.b, map[string]any{"name": "b integration", "keyType": "secret", "permissions": all})["keyValue"].(string)
	rcB := newReceiver(t, nil)
	w.bHook = n.webhook(w.b, map[string]any{"url": rcB.URL, "eventTypes": []string{"api_key.created"}})["id"].(string)
	w.bTestKey = n.key(w.b, map[string]any{"name": "b test integration", "keyType": "secret", "environment": "test", "permissions": all})["keyValue"].(string)

	w.d1 = settledDelivery(t, n, w.a, w.hooks["main"], "failed")
	w.d2 = settledDelivery(t, n, w.a, w.hooks["second"], "failed")
	w.bDeliver = settledDelivery(t, n, w.b, w.bHook, "succeeded")
	w.evB = n.must(200, req{method: "GET", path: "/v1/events?limit=1", cred: w.bKey}).list()[0].(map[string]any)["id"].(string)
	return w
}

// settledDelivery waits for an endpoint's first delivery to end with status and returns its id.
func settledDelivery(t *testing.T, n *node, ws, hook, status string) string {
	t.Helper()
	var ds []map[string]any
	testkit.Eventually(t, 15*time.Second, "a delivery of "+hook+" "+status, func() bool {
		ds = n.deliveries(ws, hook, "?status="+status)
		return len(ds) > 0
	})
	return ds[len(ds)-1]["id"].(string)
}

// snapshotA is everything of A that the API shows its operator, read as the operator (root key calls
// are in no request log, so reading changes nothing), and what A's endpoint received.
func (w *world) snapshotA(n *node) string {
	var b strings.Builder
	get := func(path string) *resp {
		return n.must(200, req{method: "GET", path: path, cred: n.admin, ws: w.a})
	}
	pages := func(path string) []any {
		var out []any
		cursor := ""
		for {
			sep := "?"
			if strings.Contains(path, "?") {
				sep = "&"
			}
			p := path + sep + "limit=100"
			if cursor != "" {
				p += "&cursor=" + cursor
			}
			r := get(p)
			b.Write(r.Raw)
			out = append(out, r.list()...)
			next, _ := r.Body["nextCursor"].(string)
			if next == "" {
				return out
			}
			cursor = next
		}
	}
	b.Write(get("/v1/workspaces/" + w.a).Raw)
	b.Write(get("/v1/workspaces/" + w.a + "/members").Raw)
	for _, k := range pages("/v1/api-keys") {
		id := k.(map[string]any)["id"].(string)
		b.Write(get("/v1/api-keys/" + id + "/usage?granularity=hour&since=" + w.since + "&until=" + w.until).Raw)
	}
	for _, env := range []string{"live", "test"} {
		r := n.do(req{method: "GET", path: "/v1/api-keys/publishable?environment=" + env, cred: n.admin, ws: w.a})
		if r.Status == http.StatusOK {
			b.Write(r.Raw)
		} else {
			fmt.Fprintf(&b, "publishable %s: %d\n", env, r.Status)
		}
	}
	for _, h := range pages("/v1/webhooks") {
		id := h.(map[string]any)["id"].(string)
		b.Write(get("/v1/webhooks/" + id).Raw)
		pages("/v1/webhooks/" + id + "/deliveries")
	}
	for _, i := range pages("/v1/identities") {
		b.Write(get("/v1/identities/" + i.(map[string]any)["id"].(string)).Raw)
	}
	b.Write(get("/v1/usage?groupBy=identity&granularity=hour&since=" + w.since + "&until=" + w.until).Raw)
	audit := pages("/v1/audit-logs")
	fmt.Fprintf(&b, "audit entries: %d\n", len(audit))
	b.Write(get("/v1/audit-logs/verify").Raw)
	fmt.Fprintf(&b, "request log entries: %d\n", len(pages("/v1/logs")))
	fmt.Fprintf(&b, "requests received by A's endpoints: %d\n", len(w.rcA.requests()))
	return b.String()
}

// settle waits until A's state holds still, every delivery done and every request log entry
// written, and returns it.
func (w *world) settle(t *testing.T, n *node) string {
	t.Helper()
	// Holding still is the same snapshot twice, 150 ms apart.
	const still = 150 * time.Millisecond
	var s, prev string
	var prevAt time.Time
	testkit.Eventually(t, 15*time.Second, "workspace A settled", func() bool {
		if time.Since(prevAt) < still {
			return false
		}
		// Every logged request counted before the snapshot: root keys' reads log nothing, so the
		// counts cannot move after it. And no block of credits held: the node gives a block back
		// once idle, which moves the balance the snapshot shows.
		_, m := scrape(t, n, "")
		s = w.snapshotA(n)
		settled := s == prev && !strings.Contains(s, `"status":"pending"`) && strings.Contains(m, "\nkeyplane_usage_uncounted_requests 0\n") &&
			strings.Contains(m, "\nkeyplane_credit_balances_held 0\n")
		prev, prevAt = s, time.Now()
		return settled
	})
	return s
}

var idRE = regexp.MustCompile(`\b(?:ws|apk|whk|evt|dlv|aud|req|usr|idn)_[0-9A-HJKMNP-TV-Z]{26}\b`)

// idsIn returns the ids of tenant resources in s (root key ids are the operator's, not a tenant's).
func idsIn(s string) map[string]bool {
	out := map[string]bool{}
	for _, id := range idRE.FindAllString(s, -1) {
		out[id] = true
	}
	return out
}

// firstDiff shows where two snapshots part.
func firstDiff(a, b string) string {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	from := max(0, i-200)
	return fmt.Sprintf("before: …%s…\nafter:  …%s…", a[from:min(len(a), i+300)], b[from:min(len(b), i+300)])
}
