package api_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/api"
	"github.com/keyplane/keyplane/internal/api/openapitest"
	"github.com/keyplane/keyplane/internal/id"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/service/servicetest"
	"github.com/keyplane/keyplane/internal/verify"
)

// usageAPI is the API on a fresh store with an admin root key and two workspaces; every answer is
// checked against the OpenAPI document.
type usageAPI struct {
	t     *testing.T
	db    *servicetest.DB
	h     http.Handler
	oas   *openapitest.Validator
	admin string
	ws    string
	other string
	last  *httptest.ResponseRecorder
}

func newUsageAPI(t *testing.T) *usageAPI {
	t.Helper()
	a, _ := newUsageAPIWith(t, service.Options{})
	return a
}

// newUsageAPIWith builds the harness on a service made with o (its Forget is the verifier's), and
// answers the service too.
func newUsageAPIWith(t *testing.T, o service.Options) (*usageAPI, *service.Service) {
	t.Helper()
	db := servicetest.OpenDB(t, "sqlite")
	ver, err := verify.New(db.Lookups(), verify.Options{KeyPrefix: "kp"})
	if err != nil {
		t.Fatal(err)
	}
	o.Forget = ver.Forget
	svc := db.Service(t, o)
	ctx, sys := context.Background(), keyplane.System("test")
	a := &usageAPI{t: t, db: db}
	if _, a.admin, err = svc.CreateRootKey(ctx, sys, "a", []string{keyplane.ScopeAdmin}); err != nil {
		t.Fatal(err)
	}
	for _, slug := range []string{"one", "two"} {
		w, err := svc.CreateWorkspace(ctx, sys, service.WorkspaceInput{Name: slug, Slug: slug})
		if err != nil {
			t.Fatal(err)
		}
		if a.ws == "" {
			a.ws = w.ID
		} else {
			a.other = w.ID
		}
	}
	a.h = api.New(api.Options{Service: svc, Verifier: ver})
	if a.oas, err = openapitest.New(api.OpenAPI()); err != nil {
		t.Fatal(err)
	}
	return a, svc
}

// call makes a request in workspace ws and returns the status and the decoded envelope.
func (a *usageAPI) call(ws, method, path, body string) (int, map[string]any) {
	a.t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.Header.Set("Authorization", "Bearer "+a.admin)
	r.Header.Set("X-Workspace-Id", ws)
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	a.h.ServeHTTP(rec, r)
	a.last = rec
	p := path
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	if err := a.oas.Check(method, p, rec.Code, rec.Header().Get("Content-Type"), rec.Body.Bytes()); err != nil {
		a.t.Errorf("%s %s: the answer does not match the OpenAPI document: %v\n%s", method, path, err, rec.Body)
	}
	var env map[string]any
	if strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil {
			a.t.Fatalf("%s %s: %v: %s", method, path, err, rec.Body)
		}
	}
	return rec.Code, env
}

func (a *usageAPI) ok(want int, method, path, body string) map[string]any {
	a.t.Helper()
	code, env := a.call(a.ws, method, path, body)
	if code != want {
		a.t.Fatalf("%s %s: %d %v, want %d", method, path, code, env, want)
	}
	d, _ := env["data"].(map[string]any)
	return d
}

// refused checks an error answer: its status, code and, for invalid_request, the fields named.
func (a *usageAPI) refused(ws, method, path, body string, status int, code string, fields ...string) {
	a.t.Helper()
	got, env := a.call(ws, method, path, body)
	e, _ := env["error"].(map[string]any)
	if got != status || e == nil || e["code"] != code {
		a.t.Errorf("%s %s: %d %v, want %d %s", method, path, got, env, status, code)
		return
	}
	var named []string
	ds, _ := e["details"].([]any)
	for _, d := range ds {
		f := d.(map[string]any)["field"].(string)
		if !slices.Contains(named, f) {
			named = append(named, f)
		}
	}
	slices.Sort(named)
	slices.Sort(fields)
	if len(fields) > 0 && !slices.Equal(named, fields) {
		a.t.Errorf("%s %s: fields %v, want %v", method, path, named, fields)
	}
}

func TestUsageKeysAPI(t *testing.T) {
	a := newUsageAPI(t)

	idn := a.ok(201, "POST", "/v1/identities", `{"externalId": "customer_1", "meta": {"plan": "pro"},
		"credits": {"refill": {"interval": "monthly", "amount": 1000, "refillDay": 31}},
		"rateLimits": [{"name": "requests", "limit": 10, "windowMs": 1000, "autoApply": true}]}`)
	idnID := idn["id"].(string)
	if c := idn["credits"].(map[string]any); c["remaining"] != float64(1000) {
		t.Fatalf("identity credits %v", c)
	}
	a.refused(a.ws, "POST", "/v1/identities", `{"externalId": "customer_1"}`, 409, "identity_exists")
	a.refused(a.ws, "POST", "/v1/identities", `{"externalId": "`+strings.Repeat("x", 256)+`", "credits": {"remaining": -1}, "rateLimits": [{"name": "A", "limit": 0, "windowMs": 1000, "autoApply": true}]}`,
		400, "invalid_request", "externalId", "credits.remaining", "rateLimits[0].name", "rateLimits[0].limit")
	a.refused(a.ws, "POST", "/v1/identities", `{"externalId": "x", "unknown": 1}`, 400, "invalid_request")

	// A key created with an externalId joins (or makes) the identity; its object shows it all.
	k := a.ok(201, "POST", "/v1/api-keys", `{"name": "k", "keyType": "secret", "externalId": "customer_1",
		"credits": {"remaining": 5, "refill": null},
		"rateLimits": [{"name": "default", "limit": 100, "windowMs": 60000, "autoApply": true}, {"name": "tokens", "limit": 5000, "windowMs": 60000, "autoApply": false}]}`)
	keyID := k["id"].(string)
	if k["identityId"] != idnID || k["externalId"] != "customer_1" || k["rateLimit"] == nil || len(k["rateLimits"].([]any)) != 2 {
		t.Fatalf("key %v", k)
	}
	a.refused(a.ws, "POST", "/v1/api-keys", `{"name": "bad", "keyType": "secret", "externalId": "c", "identityId": "`+idnID+`",
		"credits": {"remaining": 1, "refill": {"interval": "monthly", "refillDay": 0}},
		"rateLimits": [{"name": "a", "limit": 1, "windowMs": 1000, "autoApply": true}, {"name": "a", "limit": 1, "windowMs": 1000, "autoApply": true}]}`,
		400, "invalid_request", "identityId", "credits.refill.amount", "credits.refill.refillDay", "rateLimits[1].name")
	a.refused(a.ws, "PATCH", "/v1/api-keys/"+keyID, `{"credits": {"remaining": 1, "refill": {"interval": "daily", "amount": 5, "refillDay": 2}}, "externalId": ""}`,
		400, "invalid_request", "credits.refill.refillDay", "externalId")
	k = a.ok(200, "PATCH", "/v1/api-keys/"+keyID, `{"credits": {"remaining": 7, "refill": {"interval": "daily", "amount": 7}}}`)
	if c := k["credits"].(map[string]any); c["remaining"] != float64(7) || c["refill"].(map[string]any)["interval"] != "daily" {
		t.Fatalf("patched credits %v", c)
	}

	// Credits operations.
	if c := a.ok(200, "POST", "/v1/api-keys/"+keyID+"/credits", `{"op": "increment", "value": 3}`); c["remaining"] != float64(10) {
		t.Fatalf("increment: %v", c)
	}
	if c := a.ok(200, "POST", "/v1/identities/"+idnID+"/credits", `{"op": "decrement", "value": 2000}`); c["remaining"] != float64(0) {
		t.Fatalf("decrement: %v", c)
	}
	a.refused(a.ws, "POST", "/v1/api-keys/"+keyID+"/credits", `{"op": "add"}`, 400, "invalid_request", "op", "value")
	a.refused(a.ws, "POST", "/v1/api-keys/"+keyID+"/credits", `{"op": "set", "value": 1000000000001}`, 400, "invalid_request", "value")

	// Lists by identity.
	_, env := a.call(a.ws, "GET", "/v1/api-keys?externalId=customer_1", "")
	if l := env["data"].([]any); len(l) != 1 {
		t.Fatalf("keys of customer_1: %v", l)
	}
	_, env = a.call(a.ws, "GET", "/v1/api-keys?identityId="+idnID, "")
	if l := env["data"].([]any); len(l) != 1 {
		t.Fatalf("keys of %s: %v", idnID, l)
	}
	_, env = a.call(a.ws, "GET", "/v1/identities", "")
	if l := env["data"].([]any); len(l) != 1 {
		t.Fatalf("identities: %v", l)
	}
	a.refused(a.ws, "GET", "/v1/api-keys?externalId=a&identityId="+idnID, "", 400, "invalid_request", "identityId")

	// Another workspace reaches none of it.
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/v1/identities/" + idnID, ""},
		{"PATCH", "/v1/identities/" + idnID, `{"meta": {}}`},
		{"DELETE", "/v1/identities/" + idnID, ""},
		{"POST", "/v1/identities/" + idnID + "/credits", `{"op": "set", "value": 1}`},
		{"POST", "/v1/api-keys/" + keyID + "/credits", `{"op": "set", "value": 1}`},
	} {
		a.refused(a.other, c.method, c.path, c.body, 404, "not_found")
	}
	_, env = a.call(a.other, "GET", "/v1/api-keys?identityId="+idnID, "")
	if l := env["data"].([]any); len(l) != 0 {
		t.Fatalf("another workspace lists %v", l)
	}

	// Delete: in use while the key is there.
	a.refused(a.ws, "DELETE", "/v1/identities/"+idnID, "", 409, "identity_in_use")
	a.ok(200, "PATCH", "/v1/api-keys/"+keyID, `{"identityId": null}`)
	if d := a.ok(200, "DELETE", "/v1/identities/"+idnID, ""); d["deleted"] != true {
		t.Fatalf("delete: %v", d)
	}
	a.refused(a.ws, "GET", "/v1/identities/"+idnID, "", 404, "not_found")

	// Logs by tag; the usage export's parameters.
	if code, _ := a.call(a.ws, "GET", "/v1/logs?tag=checkout", ""); code != 200 {
		t.Fatalf("logs by tag: %d", code)
	}
	a.refused(a.ws, "GET", "/v1/logs?tag="+strings.Repeat("t", 129), "", 400, "invalid_request", "tag")
	a.refused(a.ws, "GET", "/v1/usage?groupBy=team&granularity=week&format=xml&since=yesterday", "", 400, "invalid_request",
		"groupBy", "granularity", "format", "since")
	a.refused(a.ws, "GET", "/v1/usage?since=2030-02-01T00:00:00Z&until=2030-01-01T00:00:00Z", "", 400, "invalid_request", "until")
}

// TestUsageExportAPI: GET /v1/usage in JSON and CSV, by key and by identity, and GET /v1/logs?tag.
func TestUsageExportAPI(t *testing.T) {
	a := newUsageAPI(t)
	ctx := context.Background()
	k1 := a.ok(201, "POST", "/v1/api-keys", `{"name": "k1", "keyType": "secret", "externalId": "customer_1"}`)
	k2 := a.ok(201, "POST", "/v1/api-keys", `{"name": "k2", "keyType": "secret"}`)
	k1ID, k2ID, idnID := k1["id"].(string), k2["id"].(string), k1["identityId"].(string)
	jan := time.Date(2030, 1, 15, 10, 0, 0, 0, time.UTC)
	var entries []keyplane.RequestLog
	add := func(keyID, identityID string, code keyplane.VerifyCode, at time.Time, spent int64, tags ...string) {
		entries = append(entries, keyplane.RequestLog{ID: id.NewAt(id.Request, at), WorkspaceID: a.ws, KeyID: keyID, IdentityID: identityID,
			Code: code, Source: keyplane.SourceVerify, Method: "POST", Path: "/v1/verify", Timestamp: at, CreditsSpent: spent, Tags: tags})
	}
	add(k1ID, idnID, keyplane.VerifyValid, jan, 3, "checkout")
	add(k1ID, idnID, keyplane.VerifyUsageExceeded, jan.Add(time.Minute), 0)
	add(k1ID, idnID, keyplane.VerifyValid, jan.AddDate(0, 0, 1), 2)
	add(k2ID, "", keyplane.VerifyRateLimited, jan.Add(2*time.Hour), 0, "checkout", "beta")
	if err := a.db.WriteLogs(ctx, entries); err != nil {
		t.Fatal(err)
	}

	_, env := a.call(a.ws, "GET", "/v1/logs?tag=checkout", "")
	l := env["data"].([]any)
	if len(l) != 2 {
		t.Fatalf("entries tagged checkout: %v", l)
	}
	// Newest first: k2's refusal, then k1's spend. Each entry shows what it was filtered and billed by.
	newest, oldest := l[0].(map[string]any), l[1].(map[string]any)
	if fmt.Sprint(newest["tags"]) != "[checkout beta]" || newest["identityId"] != nil || newest["creditsSpent"] != float64(0) {
		t.Fatalf("k2's entry: %v", newest)
	}
	if fmt.Sprint(oldest["tags"]) != "[checkout]" || oldest["identityId"] != idnID || oldest["creditsSpent"] != float64(3) {
		t.Fatalf("k1's entry: %v", oldest)
	}
	_, env = a.call(a.ws, "GET", "/v1/logs?keyId="+k1ID+"&code=USAGE_EXCEEDED", "")
	if l := env["data"].([]any); len(l) != 1 || fmt.Sprint(l[0].(map[string]any)["tags"]) != "[]" {
		t.Fatalf("an entry without tags: %v", l)
	}
	_, env = a.call(a.ws, "GET", "/v1/logs?tag=beta", "")
	if l := env["data"].([]any); len(l) != 1 || l[0].(map[string]any)["keyId"] != k2ID {
		t.Fatalf("entries tagged beta: %v", l)
	}

	window := "&since=2030-01-01T00:00:00Z&until=2030-02-01T00:00:00Z"
	_, env = a.call(a.ws, "GET", "/v1/usage?granularity=month"+window, "")
	rows := env["data"].([]any)
	if len(rows) != 2 {
		t.Fatalf("monthly rows by key: %v", rows)
	}
	byKey := map[string]map[string]any{}
	for _, r := range rows {
		m := r.(map[string]any)
		byKey[m["keyId"].(string)] = m
	}
	if r := byKey[k1ID]; r["total"] != float64(3) || r["valid"] != float64(2) || r["creditsSpent"] != float64(5) || r["externalId"] != "customer_1" ||
		r["start"] != "2030-01-01T00:00:00Z" || r["codes"].(map[string]any)["USAGE_EXCEEDED"] != float64(1) {
		t.Fatalf("k1's month: %v", r)
	}
	if r := byKey[k2ID]; r["total"] != float64(1) || r["externalId"] != nil {
		t.Fatalf("k2's month: %v", r)
	}
	_, env = a.call(a.ws, "GET", "/v1/usage?groupBy=identity&granularity=day"+window, "")
	rows = env["data"].([]any)
	if len(rows) != 2 || rows[0].(map[string]any)["identityId"] != idnID || rows[0].(map[string]any)["total"] != float64(2) ||
		rows[1].(map[string]any)["start"] != "2030-01-16T00:00:00Z" {
		t.Fatalf("daily rows by identity: %v", rows)
	}
	// Nothing in the window: an empty list.
	_, env = a.call(a.ws, "GET", "/v1/usage", "")
	if rows := env["data"].([]any); len(rows) != 0 {
		t.Fatalf("this month: %v", rows)
	}

	code, _ := a.call(a.ws, "GET", "/v1/usage?granularity=hour&format=csv"+window, "")
	if code != 200 || !strings.HasPrefix(a.last.Header().Get("Content-Type"), "text/csv") {
		t.Fatalf("csv: %d %v", code, a.last.Header())
	}
	recs, err := csv.NewReader(a.last.Body).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	head := append([]string{"keyId", "externalId", "start", "total", "valid", "creditsSpent"}, codeNames()...)
	if !slices.Equal(recs[0], head) || len(recs) != 4 {
		t.Fatalf("csv: %q", recs)
	}
	col := slices.Index(head, "USAGE_EXCEEDED")
	if r := recs[1]; r[0] != k1ID || r[1] != "customer_1" || r[2] != "2030-01-15T10:00:00Z" || r[3] != "2" || r[4] != "1" || r[5] != "3" || r[col] != "1" {
		t.Fatalf("first csv row %q", r)
	}
	code, _ = a.call(a.ws, "GET", "/v1/usage?groupBy=identity&format=csv&since=2031-01-01T00:00:00Z&until=2031-02-01T00:00:00Z", "")
	if code != 200 || !strings.HasPrefix(a.last.Body.String(), "identityId,externalId,start,") || strings.Count(a.last.Body.String(), "\n") != 1 {
		t.Fatalf("empty csv: %d %q", code, a.last.Body)
	}
	// Another workspace's export has none of these.
	_, env = a.call(a.other, "GET", "/v1/usage?granularity=month"+window, "")
	if rows := env["data"].([]any); len(rows) != 0 {
		t.Fatalf("another workspace's export: %v", rows)
	}
}

func codeNames() []string {
	var out []string
	for _, c := range keyplane.VerifyCodes {
		out = append(out, string(c))
	}
	return out
}
