package openapitest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/keyplane/keyplane/internal/api"
	"github.com/keyplane/keyplane/internal/api/openapitest"
)

func validator(t *testing.T) *openapitest.Validator {
	t.Helper()
	v, err := openapitest.New(api.OpenAPI())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestDocumentIsOpenAPI31(t *testing.T) {
	var doc struct {
		OpenAPI string `json:"openapi"`
		Info    struct {
			Title, Version, Description string
		} `json:"info"`
		Servers    []struct{ URL string } `json:"servers"`
		Paths      map[string]map[string]json.RawMessage
		Components struct {
			SecuritySchemes map[string]struct{ Type, Scheme string } `json:"securitySchemes"`
		}
	}
	if err := json.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatalf("the document is not JSON: %v", err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi = %q, want 3.1.0", doc.OpenAPI)
	}
	if doc.Info.Title != "keyplane" || doc.Info.Version == "" || doc.Info.Description == "" {
		t.Errorf("info = %+v", doc.Info)
	}
	if len(doc.Servers) != 1 || doc.Servers[0].URL != "/" {
		t.Errorf("servers = %+v", doc.Servers)
	}
	for name, s := range doc.Components.SecuritySchemes {
		// Forward auth's root key travels in a header of its own, beside the client's Authorization.
		if name == "proxyRootKey" && s.Type == "apiKey" {
			continue
		}
		if s.Type != "http" || s.Scheme != "bearer" {
			t.Errorf("security scheme %s = %+v, want http bearer", name, s)
		}
	}

	wildcard := regexp.MustCompile(`\{([^}]+)\}`)
	ids := map[string]string{}
	for path, item := range doc.Paths {
		for method, raw := range item {
			var op struct {
				OperationID string `json:"operationId"`
				Summary     string
				Parameters  []struct {
					Ref      string `json:"$ref"`
					Name, In string
					Required bool
				}
				Responses map[string]json.RawMessage
			}
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			where := strings.ToUpper(method) + " " + path
			if op.OperationID == "" || op.Summary == "" || len(op.Responses) == 0 {
				t.Errorf("%s lacks an operationId, summary or responses", where)
			}
			if other, dup := ids[op.OperationID]; dup {
				t.Errorf("operationId %s names %s and %s", op.OperationID, other, where)
			}
			ids[op.OperationID] = where
			for _, m := range wildcard.FindAllStringSubmatch(path, -1) {
				if !slices.ContainsFunc(op.Parameters, func(p struct {
					Ref      string `json:"$ref"`
					Name, In string
					Required bool
				}) bool {
					return p.Name == m[1] && p.In == "path" && p.Required
				}) {
					t.Errorf("%s does not declare its path parameter %s", where, m[1])
				}
			}
			// The server's JSON and panic recovery can answer 500 anywhere.
			if _, ok := op.Responses["500"]; !ok {
				t.Errorf("%s does not list 500", where)
			}
		}
	}
}

// TestEverySchemaCompiles compiles every schema of the document, which checks each against the
// draft 2020-12 meta-schema and resolves every $ref.
func TestEverySchemaCompiles(t *testing.T) {
	parsed, err := jsonschema.UnmarshalJSON(strings.NewReader(string(api.OpenAPI())))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	const url = "https://openapi.keyplane.invalid/doc.json"
	if err := c.AddResource(url, parsed); err != nil {
		t.Fatal(err)
	}
	esc := strings.NewReplacer("~", "~0", "/", "~1", "{", "%7B", "}", "%7D")
	n := 0
	compile := func(ptr ...string) {
		for i := range ptr {
			ptr[i] = esc.Replace(ptr[i])
		}
		loc := url + "#/" + strings.Join(ptr, "/")
		if _, err := c.Compile(loc); err != nil {
			t.Errorf("%s: %v", loc, err)
		}
		n++
	}
	root := parsed.(map[string]any)
	for name := range root["components"].(map[string]any)["schemas"].(map[string]any) {
		compile("components", "schemas", name)
	}
	for name, r := range root["components"].(map[string]any)["responses"].(map[string]any) {
		for mt := range r.(map[string]any)["content"].(map[string]any) {
			compile("components", "responses", name, "content", mt, "schema")
		}
	}
	for name, p := range root["components"].(map[string]any)["parameters"].(map[string]any) {
		if _, ok := p.(map[string]any)["schema"]; ok {
			compile("components", "parameters", name, "schema")
		}
	}
	for path, item := range root["paths"].(map[string]any) {
		for method, o := range item.(map[string]any) {
			op := o.(map[string]any)
			if rb, ok := op["requestBody"].(map[string]any); ok {
				for mt := range rb["content"].(map[string]any) {
					compile("paths", path, method, "requestBody", "content", mt, "schema")
				}
			}
			for i, p := range asSlice(op["parameters"]) {
				if _, ok := p.(map[string]any)["schema"]; ok {
					compile("paths", path, method, "parameters", strconv.Itoa(i), "schema")
				}
			}
			for status, r := range op["responses"].(map[string]any) {
				content, _ := r.(map[string]any)["content"].(map[string]any)
				for mt := range content {
					compile("paths", path, method, "responses", status, "content", mt, "schema")
				}
			}
		}
	}
	if n < 50 {
		t.Errorf("compiled only %d schemas; is the walk broken?", n)
	}
	// And the validator, which compiles every response schema its own way, accepts the document.
	validator(t)
}

func asSlice(v any) []any { s, _ := v.([]any); return s }

const (
	keyID = "apk_01JD3K5Q7W8X9Y0Z1A2B3C4D5E"
	wsID  = "ws_01JD3K5Q7W8X9Y0Z1A2B3C4D5E"
)

func keyObject() map[string]any {
	return map[string]any{
		"id": keyID, "workspaceId": wsID, "name": "Mobile App Integration", "description": "",
		"keyType": "secret", "environment": "live", "prefix": "kp_sk_live_", "start": "kp_sk_live_AbC4", "end": "x9Qz",
		"status": "active", "enabled": true, "permissions": []string{"orders:read"}, "ipAllowlist": []string{"203.0.113.0/24"},
		"allowedOrigins": []string{}, "meta": map[string]any{"currency": "fiat"}, "rateLimit": map[string]any{"limit": 100, "windowMs": 60000},
		"recoverable": false, "expiresAt": nil, "lastUsedAt": nil, "createdAt": "2030-01-31T12:00:00.123456Z",
		"updatedAt": "2030-01-31T12:00:00Z", "disabledAt": nil, "revokedAt": nil,
		"createdBy":  map[string]any{"type": "root_key", "id": "rk_01JD3K5Q7W8X9Y0Z1A2B3C4D5E"},
		"rateLimits": []any{map[string]any{"name": "default", "limit": 100, "windowMs": 60000, "autoApply": true}},
		"credits":    nil, "identityId": nil, "externalId": nil,
	}
}

func envelope(data any) map[string]any { return map[string]any{"success": true, "data": data} }

func list(items ...any) map[string]any {
	if items == nil {
		items = []any{}
	}
	return map[string]any{"success": true, "data": items, "nextCursor": nil}
}

func errorBody(code string, details ...map[string]any) map[string]any {
	e := map[string]any{"code": code, "message": "something", "requestId": "req_1"}
	if details != nil {
		e["details"] = details
	}
	return map[string]any{"success": false, "error": e}
}

func with(m map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == deleted {
			delete(out, kv[i].(string))
			continue
		}
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

type del struct{}

var deleted = del{}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type answer struct {
	name         string
	method, path string
	status       int
	body         any
	contentType  string // application/json when empty
}

func TestGoodAnswersValidate(t *testing.T) {
	v := validator(t)
	withValue := with(keyObject(), "keyValue", "kp_sk_live_"+strings.Repeat("a", 32)+"000000")
	found := map[string]any{"valid": true, "code": "VALID", "keyId": keyID, "workspaceId": wsID, "name": "n",
		"keyType": "secret", "environment": "live", "permissions": []string{}, "meta": map[string]any{}, "expiresAt": nil}
	audit := map[string]any{
		"id": "aud_01JD3K5Q7W8X9Y0Z1A2B3C4D5E", "timestamp": "2030-01-31T12:00:00Z", "action": "api_key.created",
		"actor": map[string]any{"type": "root_key", "id": "rk_1", "name": "ops"}, "target": map[string]any{"type": "api_key", "id": keyID},
		"ip": "", "userAgent": "curl/8", "requestId": "req_1",
		"changes": map[string]any{"name": map[string]any{"from": nil, "to": "x"}}, "prevHash": "", "hash": strings.Repeat("ab", 32),
	}
	for _, a := range []answer{
		{"health", "GET", "/healthz", 200, map[string]any{"status": "ok"}, ""},
		{"not ready", "GET", "/readyz", 503, map[string]any{"status": "unavailable", "store": "unreachable"}, ""},
		{"head", "HEAD", "/healthz", 200, nil, ""},
		{"status", "GET", "/v1/status", 200, envelope(map[string]any{"status": "ok", "version": "dev", "uptimeSeconds": 3,
			"store": map[string]any{"driver": "sqlite", "ok": true}}), ""},
		{"key list", "GET", "/v1/api-keys?limit=1", 200, list(keyObject()), ""},
		{"key list with cursor", "GET", "/v1/api-keys", 200, with(list(), "nextCursor", "abc"), ""},
		{"created key", "POST", "/v1/api-keys", 201, envelope(withValue), "application/json; charset=utf-8"},
		{"publishable literal wins", "GET", "/v1/api-keys/publishable", 200, envelope(withValue), ""},
		{"rotated", "POST", "/v1/api-keys/" + keyID + "/rotate", 200, envelope(withValue), ""},
		{"revoked", "DELETE", "/v1/api-keys/" + keyID, 200, envelope(map[string]any{"id": keyID, "revokedAt": "2030-01-31T12:00:00Z"}), ""},
		{"deleted", "DELETE", "/v1/api-keys/" + keyID + "?permanent=true", 200, envelope(map[string]any{"id": keyID, "deleted": true}), ""},
		{"validation error", "POST", "/v1/api-keys", 400, errorBody("invalid_request", map[string]any{"field": "name", "message": "is required"}), ""},
		{"live mode off", "POST", "/v1/api-keys", 403, errorBody("live_mode_disabled"), ""},
		{"key limit", "POST", "/v1/api-keys", 409, errorBody("key_limit_reached"), ""},
		{"store down", "GET", "/v1/api-keys/" + keyID, 503, errorBody("unavailable"), ""},
		{"verify not found", "POST", "/v1/verify", 200, envelope(map[string]any{"valid": false, "code": "NOT_FOUND"}), ""},
		{"verify found", "POST", "/v1/verify", 200, envelope(found), ""},
		{"verify found, disabled", "POST", "/v1/verify", 200, envelope(with(found, "valid", false, "code", "DISABLED", "expiresAt", "2030-01-31T12:00:00Z")), ""},
		{"audit", "GET", "/v1/audit-logs", 200, list(audit), ""},
		{"audit verify", "GET", "/v1/audit-logs/verify", 200, envelope(map[string]any{"valid": false, "entries": 3, "firstBadId": "aud_01JD3K5Q7W8X9Y0Z1A2B3C4D5E"}), ""},
		{"members", "GET", "/v1/workspaces/" + wsID + "/members", 200, list(map[string]any{"userId": "usr_01JD3K5Q7W8X9Y0Z1A2B3C4D5E",
			"email": "admin@localhost", "role": "owner", "status": "active", "createdAt": "2030-01-31T12:00:00Z"}), ""},
		{"unknown route", "GET", "/v1/nope", 404, errorBody("not_found"), ""},
		{"unknown method", "PUT", "/v1/api-keys", 405, errorBody("method_not_allowed"), ""},
	} {
		t.Run(a.name, func(t *testing.T) {
			var body []byte
			if a.body != nil {
				body = mustJSON(t, a.body)
			}
			ct := a.contentType
			if ct == "" {
				ct = "application/json"
			}
			if err := v.Check(a.method, a.path, a.status, ct, body); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestBadAnswersFail(t *testing.T) {
	v := validator(t)
	found := map[string]any{"valid": true, "code": "VALID", "keyId": keyID, "workspaceId": wsID, "name": "n",
		"keyType": "secret", "environment": "live", "permissions": []string{}, "meta": map[string]any{}, "expiresAt": nil}
	for _, a := range []answer{
		{"missing required field", "GET", "/v1/api-keys/" + keyID, 200, envelope(with(keyObject(), "status", deleted)), ""},
		{"extra field on the key object", "GET", "/v1/api-keys/" + keyID, 200, envelope(with(keyObject(), "secret", "x")), ""},
		{"secret value in a read", "GET", "/v1/api-keys/" + keyID, 200, envelope(with(keyObject(), "keyValue", "kp_sk_live_"+strings.Repeat("a", 38))), ""},
		{"wrong type", "GET", "/v1/api-keys/" + keyID, 200, envelope(with(keyObject(), "enabled", "yes")), ""},
		{"null where not nullable", "GET", "/v1/api-keys/" + keyID, 200, envelope(with(keyObject(), "createdAt", nil)), ""},
		{"not a time", "GET", "/v1/api-keys/" + keyID, 200, envelope(with(keyObject(), "expiresAt", "tomorrow")), ""},
		{"created key without its value", "POST", "/v1/api-keys", 201, envelope(keyObject()), ""},
		{"list without nextCursor", "GET", "/v1/api-keys", 200, envelope([]any{}), ""},
		{"undocumented status", "GET", "/v1/api-keys/" + keyID, 418, errorBody("internal"), ""},
		{"409 never answered by this operation", "GET", "/v1/api-keys/" + keyID, 409, errorBody("key_revoked"), ""},
		{"code of another status", "GET", "/v1/api-keys/" + keyID, 404, errorBody("forbidden"), ""},
		{"error without requestId", "GET", "/v1/api-keys/" + keyID, 404, map[string]any{"success": false, "error": map[string]any{"code": "not_found", "message": "m"}}, ""},
		{"unknown path", "GET", "/v1/nope", 200, envelope(map[string]any{}), ""},
		{"unknown path with a wrong error", "GET", "/v1/nope", 404, errorBody("forbidden"), ""},
		{"unknown method not 405", "PUT", "/v1/api-keys", 200, envelope(map[string]any{}), ""},
		{"verify: valid but not VALID", "POST", "/v1/verify", 200, envelope(with(found, "code", "DISABLED")), ""},
		{"verify: not found with key fields", "POST", "/v1/verify", 200, envelope(with(found, "valid", false, "code", "NOT_FOUND")), ""},
		{"verify: found without expiresAt", "POST", "/v1/verify", 200, envelope(with(found, "expiresAt", deleted)), ""},
		{"wrong content type", "GET", "/healthz", 200, map[string]any{"status": "ok"}, "text/plain"},
		{"enveloped health", "GET", "/healthz", 200, envelope(map[string]any{"status": "ok"}), ""},
	} {
		t.Run(a.name, func(t *testing.T) {
			ct := a.contentType
			if ct == "" {
				ct = "application/json"
			}
			err := v.Check(a.method, a.path, a.status, ct, mustJSON(t, a.body))
			if err == nil {
				t.Error("Check accepted it")
			} else {
				t.Log(err)
			}
		})
	}
	if err := v.Check("GET", "/healthz", 200, "application/json", []byte(`{"status":`)); err == nil {
		t.Error("Check accepted a body that is not JSON")
	}
}

// TestServerAnswers runs the real handlers for what needs no store: the public routes, unknown routes
// and methods, and a request without a credential on every authenticated operation.
func TestServerAnswers(t *testing.T) {
	v := validator(t)
	srv := httptest.NewServer(api.New(api.Options{}))
	defer srv.Close()
	tr := openapitest.NewTransport(v, nil)
	client := &http.Client{Transport: tr}
	get := func(method, path string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if b, _ := io.ReadAll(resp.Body); len(b) == 0 && method != "HEAD" {
			t.Errorf("%s %s: the transport lost the body", method, path)
		}
	}
	get("GET", "/healthz")
	get("GET", "/v1/openapi.json")
	get("GET", "/v1/no-such-thing")
	get("DELETE", "/v1/api-keys")
	get("GET", "/dashboard-page") // outside the API: passes unchecked
	for _, op := range v.Operations() {
		method, path, _ := strings.Cut(op, " ")
		if path == "/healthz" || path == "/readyz" || path == "/v1/status" || path == "/v1/openapi.json" {
			continue // public: they need a store, or were done above
		}
		get(method, strings.NewReplacer("{id}", keyID).Replace(path)) // no credential: 401
	}
	for _, e := range tr.Errors() {
		t.Error(e)
	}
	seen := tr.Seen()
	if seen["GET /healthz"] != 1 || seen["POST /v1/verify"] != 1 || seen["GET /v1/api-keys/publishable"] != 1 {
		t.Errorf("seen = %v", seen)
	}
}

func TestTransportRecordsFailures(t *testing.T) {
	v := validator(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/healthz":
			w.Write([]byte(`{"status":"ok"}`))
		case "/v1/permissions":
			w.WriteHeader(http.StatusTeapot)
			w.Write([]byte(`{}`))
		default:
			w.Write([]byte(`{"success":true,"data":{"name":"x","description":"y","extra":1}}`))
		}
	}))
	defer srv.Close()
	tr := openapitest.NewTransport(v, srv.Client().Transport)
	client := &http.Client{Transport: tr}
	for _, p := range []string{"/healthz", "/v1/permissions", "/v1/status", "/w/shop/settings/api"} {
		resp, err := client.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if p == "/healthz" && string(b) != `{"status":"ok"}` {
			t.Errorf("body = %q, want it restored", b)
		}
	}
	errs := tr.Errors()
	if len(errs) != 2 || !strings.Contains(errs[0], "418") || !strings.Contains(errs[1], "/v1/status") {
		t.Errorf("errors = %q, want the 418 of /v1/permissions and the bad body of /v1/status", errs)
	}
	if seen := tr.Seen(); seen["GET /healthz"] != 1 || seen["GET /v1/permissions"] != 1 || len(seen) != 3 {
		t.Errorf("seen = %v", seen)
	}
}
