package e2e

import (
	"encoding/json"
	"strings"
	"testing"
)

// memberOf finds a member by email in GET /v1/workspaces/{id}/members; nil when absent.
func (n *node) memberOf(ws, email string) map[string]any {
	n.t.Helper()
	for _, m := range n.must(200, req{method: "GET", path: "/v1/workspaces/" + ws + "/members", cred: n.admin}).list() {
		if mm := m.(map[string]any); mm["email"] == email {
			return mm
		}
	}
	return nil
}

// TestMembersAPI: adding a person invites them (201, status invited); a change of role answers 200;
// DELETE removes a member or revokes an invitation (200), is 404 for anyone who is not a member of that
// workspace, and no change or removal leaves a workspace without an active owner (409 last_owner).
func TestMembersAPI(t *testing.T) {
	eachDriver(t, func(t *testing.T, driver string) {
		n := start(t, driver, nil)
		acme := n.workspace("acme", nil)
		other := n.workspace("other", nil)
		path := "/v1/workspaces/" + acme + "/members"
		cli := func(stdin string, args ...string) string {
			t.Helper()
			out, err := run(t, n.dataDir, n.dbURL, stdin, args...)
			if err != nil {
				t.Fatalf("keyplane %s: %v: %s", strings.Join(args, " "), err, out)
			}
			return strings.TrimSpace(out)
		}
		// The operator's CLI makes an active owner directly.
		ownerID := cli("a long enough password\n", "users", "create", "--email", "owner@example.com", "--role", "owner", "--workspace", "acme")
		if m := n.memberOf(acme, "owner@example.com"); m["status"] != "active" || m["role"] != "owner" || m["userId"] != ownerID {
			t.Fatalf("the CLI's owner: %v", m)
		}
		// The admin of the default workspace (bootstrap) is an account of its own, in another
		// workspace: the API invites it, it does not attach it.
		var adminID any
		for _, w := range n.must(200, req{method: "GET", path: "/v1/workspaces?limit=100", cred: n.admin}).list() {
			if w := w.(map[string]any); w["slug"] == "default" {
				adminID = n.memberOf(w["id"].(string), "admin@localhost")["userId"]
			}
		}

		inv := n.must(201, req{method: "POST", path: path, cred: n.admin, body: map[string]any{"email": "Ana@Example.com", "role": "developer"}}).data()
		if inv["status"] != "invited" || inv["email"] != "ana@example.com" || inv["role"] != "developer" {
			t.Fatalf("invitation: %v", inv)
		}
		op := n.must(201, req{method: "POST", path: path, cred: n.admin, body: map[string]any{"email": "admin@localhost", "role": "viewer"}}).data()
		if op["status"] != "invited" || op["userId"] != adminID {
			t.Fatalf("the operator admin added by email: %v", op)
		}
		// A change of role, of an invitation or of a member: 200, the status unchanged.
		ch := n.must(200, req{method: "POST", path: path, cred: n.admin, body: map[string]any{"email": "ana@example.com", "role": "admin"}}).data()
		if ch["status"] != "invited" || ch["role"] != "admin" || ch["userId"] != inv["userId"] {
			t.Fatalf("role change of an invitation: %v", ch)
		}
		n.must(200, req{method: "POST", path: path, cred: n.admin, body: map[string]any{"email": "ana@example.com", "role": "admin"}})

		// The last active owner: not demoted, not removed, even by the operator.
		n.fails(409, "last_owner", req{method: "POST", path: path, cred: n.admin, body: map[string]any{"email": "owner@example.com", "role": "admin"}})
		n.fails(409, "last_owner", req{method: "DELETE", path: path + "/" + ownerID, cred: n.admin})
		// An invited owner is no owner yet.
		n.must(201, req{method: "POST", path: path, cred: n.admin, body: map[string]any{"email": "heir@example.com", "role": "owner"}})
		n.fails(409, "last_owner", req{method: "DELETE", path: path + "/" + ownerID, cred: n.admin})
		if m := n.memberOf(acme, "owner@example.com"); m["role"] != "owner" || m["status"] != "active" {
			t.Fatalf("the last owner after the refusals: %v", m)
		}

		// Revoking an invitation: 200 with the member as it was, then gone.
		gone := n.must(200, req{method: "DELETE", path: path + "/" + inv["userId"].(string), cred: n.admin}).data()
		if gone["status"] != "invited" || gone["email"] != "ana@example.com" {
			t.Fatalf("revoked invitation: %v", gone)
		}
		if n.memberOf(acme, "ana@example.com") != nil {
			t.Fatal("a revoked invitation is still listed")
		}
		n.fails(404, "not_found", req{method: "DELETE", path: path + "/" + inv["userId"].(string), cred: n.admin})
		// Nobody who is not a member here: another workspace's member, ids that exist nowhere, junk.
		otherID := cli("a long enough password\n", "users", "create", "--email", "someone@example.com", "--role", "viewer", "--workspace", "other")
		for _, uid := range []string{otherID, "usr_01ARZ3NDEKTSV4RRFFQ69G5FAV", "nope", "usr_" + strings.Repeat("Z", 200)} {
			n.fails(404, "not_found", req{method: "DELETE", path: path + "/" + uid, cred: n.admin})
		}
		n.fails(404, "not_found", req{method: "DELETE", path: "/v1/workspaces/ws_01ARZ3NDEKTSV4RRFFQ69G5FAV/members/" + ownerID, cred: n.admin})
		n.fails(404, "not_found", req{method: "DELETE", path: "/v1/workspaces/" + other + "/members/" + ownerID, cred: n.admin})

		// Workspace keys: forbidden in their own workspace, not found in any other.
		keyA := n.key(acme, map[string]any{"name": "integration", "keyType": "secret", "permissions": []string{"api_keys:read", "api_keys:write", "audit:read"}})["keyValue"].(string)
		n.fails(403, "forbidden", req{method: "DELETE", path: path + "/" + ownerID, cred: keyA})
		n.fails(404, "not_found", req{method: "DELETE", path: "/v1/workspaces/" + other + "/members/" + otherID, cred: keyA})
		if n.memberOf(other, "someone@example.com") == nil {
			t.Fatal("a key of acme removed a member of other")
		}

		// A second owner: then the first may go.
		cli("a long enough password\n", "users", "create", "--email", "second@example.com", "--role", "owner", "--workspace", "acme")
		removed := n.must(200, req{method: "DELETE", path: path + "/" + ownerID, cred: n.admin}).data()
		if removed["userId"] != ownerID || removed["role"] != "owner" || removed["status"] != "active" {
			t.Fatalf("removed owner: %v", removed)
		}

		// Every change is in acme's trail.
		seen := map[string]bool{}
		for _, e := range n.must(200, req{method: "GET", path: "/v1/audit-logs?limit=100", cred: keyA}).list() {
			seen[e.(map[string]any)["action"].(string)] = true
		}
		for _, a := range []string{"member.invited", "member.updated", "member.invitation_revoked", "member.removed"} {
			if !seen[a] {
				t.Errorf("no %s entry in acme's audit trail (%v)", a, seen)
			}
		}
		if !strings.Contains(string(n.must(200, req{method: "GET", path: "/v1/audit-logs/verify", cred: keyA}).Raw), `"valid":true`) {
			t.Error("acme's chain does not verify")
		}
	})
}

// TestMembersCLI: keyplane members remove ends a membership (or revokes an invitation) by email, under
// the same rules; keyplane users update --operator=false takes the operator flag away, which users
// create never does.
func TestMembersCLI(t *testing.T) {
	n := start(t, "sqlite", nil)
	n.workspace("acme", nil)
	run1 := func(stdin string, args ...string) (string, error) {
		t.Helper()
		return run(t, n.dataDir, n.dbURL, stdin, args...)
	}
	must := func(stdin string, args ...string) string {
		t.Helper()
		out, err := run1(stdin, args...)
		if err != nil {
			t.Fatalf("keyplane %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(out)
	}
	must("a long enough password\n", "users", "create", "--email", "owner@example.com", "--role", "owner", "--workspace", "acme")
	must("a long enough password\n", "users", "create", "--email", "dev@example.com", "--role", "developer", "--workspace", "acme")
	if out, err := run1("", "members", "remove", "--workspace", "acme", "--email", "owner@example.com"); err == nil || !strings.Contains(out+err.Error(), "without an owner") {
		t.Errorf("removing the last owner: %v %q", err, out)
	}
	if out := must("", "members", "remove", "--workspace", "acme", "--email", "DEV@example.com"); !strings.Contains(out, "removed dev@example.com") {
		t.Errorf("members remove: %q", out)
	}
	if _, err := run1("", "members", "remove", "--workspace", "acme", "--email", "dev@example.com"); err == nil {
		t.Error("removing a non-member succeeded")
	}
	for _, args := range [][]string{
		{"members", "remove", "--workspace", "acme"},
		{"members", "remove", "--email", "dev@example.com"},
		{"users", "update", "--email", "ops@example.com"},
		{"users", "create", "--email", "x@example.com", "--role", "owner", "--workspace", "acme", "--operator"},
	} {
		if _, err := run1("a long enough password\n", args...); err == nil {
			t.Errorf("keyplane %s succeeded", strings.Join(args, " "))
		}
	}

	opID := must("a long enough password\n", "users", "create", "--email", "ops@example.com", "--operator")
	// users create without --operator leaves the flag as it is.
	must("a long enough password\n", "users", "create", "--email", "ops@example.com", "--role", "viewer", "--workspace", "acme")
	if out := must("", "users", "update", "--email", "ops@example.com", "--operator=false"); out != opID+" operator=false" {
		t.Errorf("users update: %q", out)
	}
	if _, err := run1("", "users", "update", "--email", "nobody@example.com", "--operator=false"); err == nil {
		t.Error("users update of an unknown email succeeded")
	}
	if out := must("", "audit", "verify"); !strings.Contains(out, "chains verify") {
		t.Errorf("audit verify: %q", out)
	}

	// The operator's chain, which holds what no workspace's trail does (the operator flag taken away
	// above, people's sign-ins), is read with audit list; a workspace's trail with --workspace.
	lines := func(out string) []map[string]any {
		t.Helper()
		var es []map[string]any
		for _, l := range strings.Split(out, "\n") {
			var e map[string]any
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				t.Fatalf("audit list printed %q: %v", l, err)
			}
			es = append(es, e)
		}
		return es
	}
	op := lines(must("", "audit", "list", "--action", "user.updated", "--limit", "1"))
	if len(op) != 1 || op[0]["target"].(map[string]any)["id"] != opID || op[0]["changes"].(map[string]any)["operator"].(map[string]any)["to"] != false || op[0]["hash"] == "" {
		t.Errorf("audit list (operator chain): %v", op)
	}
	ws := lines(must("", "audit", "list", "--workspace", "acme", "--action", "member.removed"))
	if len(ws) != 1 || ws[0]["action"] != "member.removed" {
		t.Errorf("audit list --workspace acme: %v", ws)
	}
	for _, args := range [][]string{{"audit", "list", "--limit", "0"}, {"audit", "list", "--workspace", "nope"}} {
		if _, err := run1("", args...); err == nil {
			t.Errorf("keyplane %s succeeded", strings.Join(args, " "))
		}
	}
}
