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
var publicOps = []string{"getOpenAPIDocument", "getStatus", "healthz", "readyz"}

// stand-in ids for path parameters: well-formed, so that a refusal cannot come from the id's shape,
// and of no resource, so that the control calls change nothing.
var unknownIDs = map[string]string{
	"api-keys":   "apk_01ARZ3NDEKTSV4RRFFQ69G5FAV",
	"webhooks":   "whk_01ARZ3NDEKTSV4RRFFQ69G5FAV",
	"deliveries": "dlv_01ARZ3NDEKTSV4RRFFQ69G5FAV",
	"members":    "usr_01ARZ3NDEKTSV4RRFFQ69G5FAV",
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
		// A 1 s cache TTL: on SQLite the CLI's revocation of a root key reaches the node through it.
		n := start(t, driver, map[string]string{"KEYPLANE_CACHE_TTL": "1s"})
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
				if r.Status != op.status {
					t.Errorf("%s with a bad credential: %d, want %d", op, r.Status, op.status)
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
