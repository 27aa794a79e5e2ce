package e2e

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane/internal/keyformat"
)

// publicOps are the operations the contract opens to the world. Every other operation of the
// document must refuse each bad credential; a new public operation must be added here on purpose.
// githubSecretScanning is public because GitHub's signature, not a keyplane credential, opens it
// (leakedkeys_test.go checks the signatures).
var publicOps = []string{"getOpenAPIDocument", "getStatus", "githubSecretScanning", "healthz", "readyz"}

// stand-in ids for path parameters: well-formed, so that a refusal cannot come from the id's shape,
// and of no resource, so that the control calls change nothing.
var unknownIDs = map[string]string{
	"api-keys":   "apk_01ARZ3NDEKTSV4RRFFQ69G5FAV",
	"webhooks":   "whk_01ARZ3NDEKTSV4RRFFQ69G5FAV",
	"deliveries": "dlv_01ARZ3NDEKTSV4RRFFQ69G5FAV",
	"events":     "evt_01ARZ3NDEKTSV4RRFFQ69G5FAV",
	"members":    "usr_01ARZ3NDEKTSV4RRFFQ69G5FAV",
	"identities": "idn_01ARZ3NDEKTSV4RRFFQ69G5FAV",
}

// matrixParams fills each path parameter with an id of the resource type its path names; the
// workspace's own id for /v1/workspaces/{id}, so that the controls reach the handler.
func matrixParams(t *testing.T, op apiOp, ws string) map[string]string {
	t.Helper()
	out := map[string]string{}
	segs := strings.Split(op.path, "/")
	for i, s := range segs {
		if !strings.HasPrefix(s, "{") {
			continue
		}
		name := s[1 : len(s)-1]
		switch coll := segs[i-1]; coll {
		case "workspaces":
			out[name] = ws
		default:
			id, ok := unknownIDs[coll]
			if !ok {
				t.Fatalf("%s: no stand-in id for the path parameter %s of /%s; add the resource type to unknownIDs", op, name, coll)
			}
			out[name] = id
		}
	}
	return out
}

const (
	control       = 0
	authenticated = -1
)

// credCase is one credential presented to every operation, and the answer it must get.
type credCase struct {
	name string
	// authorization is the Authorization header ("" for none); for forward auth, it is sent as
	// X-Keyplane-Root-Key instead, the header forward auth takes its caller's credential from.
	authorization string
	// want answers the status and code the contract gives op. The controls show that the
	// credential slot was the right one: status authenticated is anything but 401 (the caller may
	// still lack a permission), status control anything but 401 and 403.
	want func(op apiOp) (int, string)
}

func TestAuthenticationMatrix(t *testing.T) {
	ops := documentedOps(t)
	var public []string
	for _, op := range ops {
		if op.access == accessPublic {
			public = append(public, op.id)
		}
	}
	if !slices.Equal(public, publicOps) {
		t.Fatalf("public operations of the document are %v; the contract's are %v", public, publicOps)
	}
	eachDriver(t, func(t *testing.T, driver string) {
		t.Parallel()
		// The default cache TTL: the CLI's revocation of a root key reaches the node through its change
		// feed (NOTIFY, or SQLite's change journal), which the test waits for below.
		n := start(t, driver, nil)
		ws := n.workspace("matrix", nil)
		var all []string
		for _, p := range n.must(200, req{method: "GET", path: "/v1/permissions", cred: n.admin}).list() {
			all = append(all, p.(map[string]any)["name"].(string))
		}
		full := func(name string, extra map[string]any) map[string]any {
			body := map[string]any{"name": name, "keyType": "secret", "permissions": all}
			for k, v := range extra {
				body[k] = v
			}
			return n.key(ws, body)
		}
		// The expired key is made first: it needs a moment to expire.
		expiresAt := time.Now().Add(1500 * time.Millisecond)
		expired := full("expired", map[string]any{"expiresAt": expiresAt.UTC().Format(time.RFC3339Nano)})
		valid := full("valid", nil)
		disabled := full("disabled", nil)
		n.must(200, req{method: "PATCH", path: "/v1/api-keys/" + disabled["id"].(string), cred: n.admin, ws: ws, body: map[string]any{"enabled": false}})
		revoked := full("revoked", nil)
		n.must(200, req{method: "DELETE", path: "/v1/api-keys/" + revoked["id"].(string), cred: n.admin, ws: ws})
		publishable := n.key(ws, map[string]any{"name": "browser", "keyType": "publishable"})
		// A root key with both scopes, revoked with the CLI after the node has used (and cached) it.
		revokedRoot, err := run(t, n.dataDir, n.dbURL, "", "root-keys", "create", "--name", "to revoke", "--scopes", "admin,verify")
		if err != nil {
			t.Fatalf("root-keys create: %v", err)
		}
		revokedRoot = strings.TrimSpace(revokedRoot)
		n.must(200, req{method: "GET", path: "/v1/workspaces", cred: revokedRoot})
		if _, err := revokeRootKey(t, n, "to revoke"); err != nil {
			t.Fatal(err)
		}
		waitRefused(t, n, "the root key revoked with the CLI", req{method: "GET", path: "/v1/workspaces", cred: revokedRoot})
		time.Sleep(time.Until(expiresAt.Add(100 * time.Millisecond)))
		// Each fixture is what its name says, as the API itself reports it.
		for status, k := range map[string]map[string]any{"active": valid, "expired": expired, "disabled": disabled, "revoked": revoked} {
			if got := n.must(200, req{method: "GET", path: "/v1/api-keys/" + k["id"].(string), cred: n.admin, ws: ws}).data()["status"]; got != status {
				t.Fatalf("the %s key's status is %v", status, got)
			}
		}
		v := valid["keyValue"].(string)
		last := byte('0')
		if v[len(v)-1] == '0' {
			last = '1'
		}
		badChecksum := v[:len(v)-1] + string(last)
		if _, err := keyformat.Parse("kp", badChecksum); err == nil {
			t.Fatal("the bad-checksum fixture parses")
		}

		unauthorized := func(apiOp) (int, string) { return 401, "unauthorized" }
		cases := []credCase{
			{"no credential", "", unauthorized},
			{"Basic scheme", "Basic dXNlcjpwYXNz", unauthorized},
			{"Bearer without a value", "Bearer ", unauthorized},
			{"malformed bearer", "Bearer not-a-key", unauthorized},
			{"bad checksum", "Bearer " + badChecksum, unauthorized},
			{"unknown secret key", "Bearer " + keyformat.Generate("kp", "sk", "live"), unauthorized},
			{"unknown test secret key", "Bearer " + keyformat.Generate("kp", "sk", "test"), unauthorized},
			{"unknown root key", "Bearer " + keyformat.GenerateRoot("kp"), unauthorized},
			{"revoked root key", "Bearer " + revokedRoot, unauthorized},
			{"disabled key", "Bearer " + disabled["keyValue"].(string), unauthorized},
			{"expired key", "Bearer " + expired["keyValue"].(string), unauthorized},
			{"revoked key", "Bearer " + revoked["keyValue"].(string), unauthorized},
			{"publishable key", "Bearer " + publishable["keyValue"].(string), unauthorized},
			{"verify root key", "Bearer " + n.verifier, func(op apiOp) (int, string) {
				switch op.access {
				case accessManagement:
					return 403, "forbidden" // a root key without the admin scope
				}
				return control, "" // the right credential for verification and forward auth
			}},
			{"admin root key", "Bearer " + n.admin, func(op apiOp) (int, string) {
				switch op.access {
				case accessVerify:
					return 403, "forbidden" // a root key without the verify scope
				case accessForward:
					return 401, "unauthorized" // "missing or wrong: 401"
				}
				return control, ""
			}},
			{"workspace secret key", "Bearer " + v, func(op apiOp) (int, string) {
				switch op.access {
				case accessVerify:
					return 403, "forbidden" // verification needs a root key
				case accessForward:
					return 401, "unauthorized"
				}
				return authenticated, "" // some calls are the operator's: 403

			}},
		}

		calls := 0
		for _, op := range ops {
			if op.access == accessPublic {
				// Open to the world: a credential, even a bad one, changes nothing.
				r := n.do(req{method: op.method, path: op.path, cred: "not-a-key"})
				want := op.status
				if op.id == "githubSecretScanning" {
					want = 404 // this node has no --github-scanning-keys: the route answers as if absent
				}
				if r.Status != want {
					t.Errorf("%s with a bad credential: %d, want %d", op, r.Status, want)
				}
				continue
			}
			path := op.fill(matrixParams(t, op, ws))
			for _, c := range cases {
				r := req{method: op.method, path: path, headers: map[string]string{}}
				if op.workspaced {
					r.ws = ws // so that a root key is judged by its scope, not by a missing header
				}
				if op.access == accessForward {
					// The client's key is good: only the proxy's credential is on trial.
					r.headers["Authorization"] = "Bearer " + v
					if c.authorization != "" {
						r.headers["X-Keyplane-Root-Key"] = strings.TrimPrefix(c.authorization, "Bearer ")
					}
				} else if c.authorization != "" {
					r.headers["Authorization"] = c.authorization
				}
				status, code := c.want(op)
				res := n.do(r)
				calls++
				if status == control || status == authenticated {
					if res.Status == 401 || status == control && res.Status == 403 || res.Status >= 500 {
						t.Errorf("%s, %s (control): %d %s", op, c.name, res.Status, res.Raw)
					}
					continue
				}
				checkError(t, op.String()+", "+c.name, res, status, code, c.authorization)
			}
		}
		t.Logf("%d operations × %d credentials: %d calls", len(ops)-len(publicOps), len(cases), calls)
		if strings.Contains(n.logs.String(), "panic") {
			t.Fatalf("the server panicked:\n%s", n.logs.String())
		}
	})
}

// checkError checks a refusal: its status and code, and the contract's error shape, exactly:
// {"success": false, "error": {"code", "message", "requestId", "details"?}}, the request id that of
// the X-Request-Id header, and nothing of the credential that was refused.
func checkError(t *testing.T, what string, res *resp, status int, code, cred string) {
	t.Helper()
	if res.Status != status || res.errCode() != code {
		t.Errorf("%s: %d %q, want %d %q: %.300s", what, res.Status, res.errCode(), status, code, res.Raw)
		return
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: Content-Type %q", what, ct)
	}
	e, ok := res.Body["error"].(map[string]any)
	if len(res.Body) != 2 || res.Body["success"] != false || !ok {
		t.Errorf("%s: not the error envelope: %s", what, res.Raw)
		return
	}
	for k, v := range e {
		switch k {
		case "code", "message", "requestId":
			if s, _ := v.(string); s == "" {
				t.Errorf("%s: error.%s is %v", what, k, v)
			}
		case "details":
			if code != "invalid_request" {
				t.Errorf("%s: details on a %s error", what, code)
			}
		default:
			t.Errorf("%s: error has an undocumented field %q", what, k)
		}
	}
	if _, ok := e["message"]; !ok {
		t.Errorf("%s: no error.message", what)
	}
	if e["requestId"] != res.Header.Get("X-Request-Id") {
		t.Errorf("%s: error.requestId %v, X-Request-Id %s", what, e["requestId"], res.Header.Get("X-Request-Id"))
	}
	if secret := strings.TrimPrefix(cred, "Bearer "); len(secret) >= 8 && strings.Contains(string(res.Raw), secret) {
		t.Errorf("%s: the answer repeats the credential", what)
	}
}

// grantee is a workspace key used as a credential in TestKeyWritingMatrix, or a key it acts on.
type grantee struct {
	name, env, keyType string
	perms              []string
	disabled           bool
	recoverable        bool
	expiresAt          string // "" omits it
	id, value          string
}

func (g *grantee) body() map[string]any {
	b := map[string]any{"name": g.name, "keyType": g.keyType, "environment": g.env, "permissions": g.perms, "recoverable": g.recoverable}
	if g.expiresAt != "" {
		b["expiresAt"] = g.expiresAt
	}
	return b
}

// keyOp is a key-writing (or value-revealing) operation on one key.
type keyOp struct {
	name, method, suffix string
	need                 string // the permission the call needs
	// write: the call changes the key, so the caller must hold every permission the key holds.
	write bool
	body  func(target *grantee) any
	// perms is the permission list a patch gives the key; nil for calls that give none.
	perms func(target *grantee) []string
}

func holdsAll(held, perms []string) bool {
	for _, p := range perms {
		if !slices.Contains(held, p) {
			return false
		}
	}
	return true
}

func union(a []string, b ...string) []string {
	out := append([]string{}, a...)
	for _, p := range b {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// TestKeyWritingMatrix: a workspace key creates, changes, rotates, revokes, deletes and reveals keys
// only within what it holds. Every key-writing operation is tried by every narrower credential:
// single-permission keys (every permission of the catalog), keys lacking a permission they try to
// grant, test keys acting on live keys and live keys on test keys, and keys changing themselves.
//
// It reproduces issue 14's first finding: a key with only api_keys:write created a key with every
// permission and patched audit:read into its own list; a test key created a live key that never
// expires; and, by the same hole, rotating a key that holds more handed its new value, with those
// permissions, to a key that did not hold them.
//
// The rules (internal/service, apikeys.go): the caller needs the call's permission; the key acted on,
// or created, must be of the caller's environment; a change (patch, rotate, revoke, delete) needs
// every permission the key holds, and a new permission list only permissions the caller holds; a key
// never patches itself. Each refusal is 403 forbidden and changes nothing.
func TestKeyWritingMatrix(t *testing.T) {
	eachDriver(t, func(t *testing.T, driver string) {
		t.Parallel()
		// The matrix grows with the catalog (a credential per permission, each tried on every target):
		// past 2,000 calls in 10 s, which the default per-address limit would refuse. It is about
		// grants, not limits (ratelimit_test.go is).
		n := start(t, driver, map[string]string{"KEYPLANE_CONFIG": "../../examples/keyplane.json",
			"KEYPLANE_MANAGEMENT_RATE_LIMIT": "1000000/10s", "KEYPLANE_MANAGEMENT_IP_RATE_LIMIT": "1000000/10s"})
		ws := n.workspace("grants", map[string]any{"maxKeys": 5000})
		var all []string
		for _, p := range n.must(200, req{method: "GET", path: "/v1/permissions", cred: n.admin}).list() {
			all = append(all, p.(map[string]any)["name"].(string))
		}
		if !slices.Contains(all, "orders:write") || !slices.Contains(all, "audit:read") {
			t.Fatalf("the catalog lacks the permissions the matrix grants: %v", all)
		}
		mk := func(g *grantee) *grantee {
			k := n.key(ws, g.body())
			g.id, g.value = k["id"].(string), k["keyValue"].(string)
			if g.disabled {
				n.must(200, req{method: "PATCH", path: "/v1/api-keys/" + g.id, cred: n.admin, ws: ws, body: map[string]any{"enabled": false}})
			}
			return g
		}
		rw := []string{"api_keys:read", "api_keys:write"}
		var creds []*grantee
		for _, p := range all {
			creds = append(creds, &grantee{name: p + " only", env: "live", perms: []string{p}})
		}
		creds = append(creds,
			&grantee{name: "api_keys:read+write", env: "live", perms: rw},
			&grantee{name: "api_keys:read+write, orders:read", env: "live", perms: union(rw, "orders:read")},
			&grantee{name: "test api_keys:read+write, orders:read", env: "test", perms: union(rw, "orders:read")},
			&grantee{name: "test, every permission", env: "test", perms: all},
			&grantee{name: "live, every permission", env: "live", perms: all},
		)
		for _, c := range creds {
			c.keyType = "secret"
			mk(c)
		}
		targets := []*grantee{
			{name: "live, none", env: "live", keyType: "secret"},
			{name: "live, orders:read", env: "live", keyType: "secret", perms: []string{"orders:read"}},
			{name: "live, audit:read", env: "live", keyType: "secret", perms: []string{"audit:read"}},
			{name: "live, orders:write", env: "live", keyType: "secret", perms: []string{"orders:write"}},
			{name: "test, orders:read", env: "test", keyType: "secret", perms: []string{"orders:read"}},
			{name: "live publishable", env: "live", keyType: "publishable"},
			{name: "test publishable", env: "test", keyType: "publishable"},
			{name: "live recoverable", env: "live", keyType: "secret", recoverable: true},
			{name: "live, none, disabled", env: "live", keyType: "secret", disabled: true},
			{name: "live, audit:read, disabled", env: "live", keyType: "secret", perms: []string{"audit:read"}, disabled: true},
			{name: "test, none, disabled", env: "test", keyType: "secret", disabled: true},
		}
		// Test keys always expire, and a key changes only keys that expire no later than itself
		// (TestKeyBounds): the test targets expire before the test credentials made above.
		soon := time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)
		for _, g := range targets {
			if g.env == "test" {
				g.expiresAt = soon
			}
			mk(g)
		}
		snapshot := func() string {
			var b strings.Builder
			for _, g := range append(slices.Clone(targets), creds...) {
				d := n.must(200, req{method: "GET", path: "/v1/api-keys/" + g.id, cred: n.admin, ws: ws}).data()
				delete(d, "lastUsedAt") // the credentials are used
				b.WriteString(fmtJSON(d) + "\n")
			}
			return b.String()
		}
		before := snapshot()

		perms := func(p func(g *grantee) []string) func(g *grantee) any {
			return func(g *grantee) any { return map[string]any{"permissions": p(g)} }
		}
		ops := []keyOp{
			{name: "rename", method: "PATCH", need: "api_keys:write", write: true,
				body: func(*grantee) any { return map[string]any{"name": "renamed"} }},
			{name: "add orders:read", method: "PATCH", need: "api_keys:write", write: true,
				perms: func(g *grantee) []string { return union(g.perms, "orders:read") }},
			{name: "add audit:read", method: "PATCH", need: "api_keys:write", write: true,
				perms: func(g *grantee) []string { return union(g.perms, "audit:read") }},
			{name: "add orders:write", method: "PATCH", need: "api_keys:write", write: true,
				perms: func(g *grantee) []string { return union(g.perms, "orders:write") }},
			{name: "clear permissions", method: "PATCH", need: "api_keys:write", write: true,
				perms: func(*grantee) []string { return []string{} }},
			{name: "rotate", method: "POST", suffix: "/rotate", need: "api_keys:write", write: true},
			{name: "revoke", method: "DELETE", need: "api_keys:write", write: true},
			{name: "delete", method: "DELETE", suffix: "?permanent=true", need: "api_keys:write", write: true},
			{name: "reveal", method: "POST", suffix: "/reveal", need: "api_keys:read"},
		}
		for i := range ops {
			if ops[i].perms != nil {
				ops[i].body = perms(ops[i].perms)
			}
		}
		want := func(c *grantee, o keyOp, g *grantee) (int, string) {
			switch {
			case !slices.Contains(c.perms, o.need), g.env != c.env:
				return 403, "forbidden"
			case o.write && !holdsAll(c.perms, g.perms), o.perms != nil && !holdsAll(c.perms, o.perms(g)):
				return 403, "forbidden"
			case o.name == "delete" && !g.disabled:
				return 409, "key_not_deletable"
			case o.name == "reveal" && g.keyType == "secret":
				return 403, "forbidden" // a secret key's value: admin root keys and people only
			}
			return 200, ""
		}

		made := map[string]bool{} // keys the matrix itself creates
		calls, allowed := 0, 0
		try := func(c *grantee, what string, r req, status int, code string) *resp {
			t.Helper()
			r.cred = c.value
			res := n.do(r)
			calls++
			what = c.name + ": " + what
			if code != "" {
				checkError(t, what, res, status, code, r.cred)
				return res
			}
			allowed++
			if res.Status != status {
				t.Errorf("%s: %d, want %d: %.300s", what, res.Status, status, res.Raw)
			}
			return res
		}
		for _, c := range creds {
			// Creation, in every environment and with every grant.
			other := map[string]string{"live": "test", "test": "live"}[c.env]
			for _, cr := range []struct {
				what  string
				env   string // "" omits it: live
				perms []string
				typ   string
			}{
				{"no permissions", c.env, nil, "secret"},
				{"exactly its own permissions", c.env, c.perms, "secret"},
				{"orders:read", c.env, []string{"orders:read"}, "secret"},
				{"audit:read", c.env, []string{"audit:read"}, "secret"},
				{"orders:write", c.env, []string{"orders:write"}, "secret"},
				{"every permission", c.env, all, "secret"},
				{"a publishable key", c.env, nil, "publishable"},
				{"a key of the other environment", other, nil, "secret"},
				{"a key of the default environment (live)", "", nil, "secret"},
				{"a publishable key of the other environment", other, nil, "publishable"},
			} {
				body := map[string]any{"name": "made by " + c.name, "keyType": cr.typ, "permissions": cr.perms}
				env := "live"
				if cr.env != "" {
					body["environment"], env = cr.env, cr.env
				}
				status, code := 201, ""
				if !slices.Contains(c.perms, "api_keys:write") || env != c.env || !holdsAll(c.perms, cr.perms) {
					status, code = 403, "forbidden"
				}
				res := try(c, "create "+cr.what, req{method: "POST", path: "/v1/api-keys", body: body}, status, code)
				if res.Status == 201 {
					d := res.data()
					made[d["id"].(string)] = true
					if d["environment"] != env || fmtJSON(d["permissions"]) != fmtJSON(union(cr.perms)) {
						t.Errorf("%s: create %s made %s", c.name, cr.what, res.Raw)
					}
				}
			}
			// Every operation on every other key.
			for _, g := range targets {
				for _, o := range ops {
					status, code := want(c, o, g)
					on := g
					if status == 200 && o.name != "reveal" {
						// A change that must succeed is made on a fresh copy, so that the targets
						// stay as they are for the credentials that follow.
						on = mk(&grantee{name: g.name, env: g.env, keyType: g.keyType, perms: g.perms, disabled: g.disabled, recoverable: g.recoverable, expiresAt: g.expiresAt})
						made[on.id] = true
					}
					var body any
					if o.body != nil {
						body = o.body(g)
					}
					res := try(c, o.name+" "+g.name, req{method: o.method, path: "/v1/api-keys/" + on.id + o.suffix, body: body}, status, code)
					if res.Status == 200 && o.perms != nil {
						if got := fmtJSON(res.data()["permissions"]); got != fmtJSON(union(o.perms(g))) {
							t.Errorf("%s: %s %s gave permissions %s", c.name, o.name, g.name, got)
						}
					}
				}
			}
			// A key never patches itself: not its permissions, not anything.
			self := "/v1/api-keys/" + c.id
			for _, body := range []map[string]any{
				{"permissions": union(c.perms, "audit:read")},
				{"permissions": union(c.perms, "orders:write")},
				{"permissions": []string{}},
				{"permissions": c.perms},
				{"name": "renamed itself"},
				{"ipAllowlist": []string{}, "rateLimit": nil, "expiresAt": nil},
				{"enabled": false},
			} {
				try(c, "patch itself "+fmtJSON(body), req{method: "PATCH", path: self, body: body}, 403, "forbidden")
			}
		}
		// The order of the checks: a change beyond the caller is refused before its fields are
		// looked at, and before the key's state; a grant is judged on catalog names only.
		if after := snapshot(); after != before {
			t.Errorf("refused calls changed keys:\n%s", firstDiff(before, after))
		}
		byName := map[string]*grantee{}
		for _, c := range creds {
			byName[c.name] = c
		}
		testRW, writeOnly := byName["test api_keys:read+write, orders:read"], byName["api_keys:write only"]
		revokedLive := mk(&grantee{name: "revoked live", env: "live", keyType: "secret"})
		n.must(200, req{method: "DELETE", path: "/v1/api-keys/" + revokedLive.id, cred: n.admin, ws: ws})
		targets = append(targets, revokedLive)
		before = snapshot()
		try(testRW, "patch a live key with bad fields", req{method: "PATCH", path: "/v1/api-keys/" + targets[0].id,
			body: map[string]any{"name": "", "permissions": []string{"no:such"}, "rateLimit": map[string]any{"limit": 0}}}, 403, "forbidden")
		try(testRW, "patch a revoked live key", req{method: "PATCH", path: "/v1/api-keys/" + revokedLive.id, body: map[string]any{"name": "x"}}, 403, "forbidden")
		try(testRW, "rotate a revoked live key", req{method: "POST", path: "/v1/api-keys/" + revokedLive.id + "/rotate"}, 403, "forbidden")
		try(testRW, "reveal a revoked live key", req{method: "POST", path: "/v1/api-keys/" + revokedLive.id + "/reveal"}, 403, "forbidden")
		try(testRW, "get the live publishable key", req{method: "GET", path: "/v1/api-keys/publishable"}, 403, "forbidden")
		try(testRW, "get the test publishable key", req{method: "GET", path: "/v1/api-keys/publishable?environment=test"}, 200, "")
		try(writeOnly, "create with a permission outside the catalog", req{method: "POST", path: "/v1/api-keys",
			body: map[string]any{"name": "x", "keyType": "secret", "permissions": []string{"no:such"}}}, 400, "invalid_request")

		// Refused calls changed nothing, and made no key.
		if after := snapshot(); after != before {
			t.Errorf("refused calls changed keys:\n%s", firstDiff(before, after))
		}
		known := map[string]bool{}
		for _, g := range append(slices.Clone(targets), creds...) {
			known[g.id] = true
		}
		cursor := ""
		for {
			p := "/v1/api-keys?limit=100"
			if cursor != "" {
				p += "&cursor=" + cursor
			}
			r := n.must(200, req{method: "GET", path: p, cred: n.admin, ws: ws})
			for _, k := range r.list() {
				if id := k.(map[string]any)["id"].(string); !known[id] && !made[id] {
					t.Errorf("a refused call made key %s", fmtJSON(k))
				}
			}
			if cursor, _ = r.Body["nextCursor"].(string); cursor == "" {
				break
			}
		}
		// A key may rotate and revoke itself: rotation with a grace period, so that the old value
		// still answers; revocation last, after which it answers nothing.
		for _, c := range creds {
			self := "/v1/api-keys/" + c.id
			status, code := 200, ""
			if !slices.Contains(c.perms, "api_keys:write") {
				status, code = 403, "forbidden"
			}
			try(c, "rotate itself", req{method: "POST", path: self + "/rotate", body: map[string]any{"expireOldAfterSeconds": 3600}}, status, code)
			try(c, "revoke itself", req{method: "DELETE", path: self}, status, code)
			if status == 200 {
				n.fails(401, "unauthorized", req{method: "GET", path: "/v1/api-keys", cred: c.value})
			}
		}
		t.Logf("%d credentials × key-writing calls: %d calls, %d allowed", len(creds), calls, allowed)
		if strings.Contains(n.logs.String(), "panic") {
			t.Fatalf("the server panicked:\n%s", n.logs.String())
		}
	})
}
