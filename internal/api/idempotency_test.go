package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/api"
	"github.com/keyplane/keyplane/internal/api/openapitest"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/service/servicetest"
	"github.com/keyplane/keyplane/internal/verify"
)

// idemClock is the service's clock, moved by the test.
type idemClock struct{ ns atomic.Int64 }

func (c *idemClock) now() time.Time { return time.Unix(0, c.ns.Load()).UTC() }

type idemAPI struct {
	t        *testing.T
	h        http.Handler
	oas      *openapitest.Validator
	failNext func()
	clock    *idemClock
	admin    string
	admin2   string
	ws       string
	ws2      string
}

func newIdemAPI(t *testing.T, driver string) *idemAPI {
	t.Helper()
	a := &idemAPI{t: t, clock: &idemClock{}}
	a.clock.ns.Store(time.Now().UnixNano())
	db := servicetest.OpenDB(t, driver)
	ver, err := verify.New(db.Lookups(), verify.Options{KeyPrefix: "kp"})
	if err != nil {
		t.Fatal(err)
	}
	flaky, failNext := db.FailingChange()
	a.failNext = failNext
	svc := flaky.Service(t, service.Options{Forget: ver.Forget, Now: a.clock.now})
	ctx, sys := context.Background(), keyplane.System("test")
	if _, a.admin, err = svc.CreateRootKey(ctx, sys, "a", []string{keyplane.ScopeAdmin}); err != nil {
		t.Fatal(err)
	}
	if _, a.admin2, err = svc.CreateRootKey(ctx, sys, "b", []string{keyplane.ScopeAdmin}); err != nil {
		t.Fatal(err)
	}
	for i, slug := range []string{"one", "two"} {
		w, err := svc.CreateWorkspace(ctx, sys, service.WorkspaceInput{Name: slug, Slug: slug})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			a.ws = w.ID
		} else {
			a.ws2 = w.ID
		}
	}
	a.h = api.New(api.Options{Service: svc, Verifier: ver})
	if a.oas, err = openapitest.New(api.OpenAPI()); err != nil {
		t.Fatal(err)
	}
	return a
}

type idemAnswer struct {
	status   int
	replayed string
	env      map[string]any
	raw      string
}

func (an idemAnswer) data() map[string]any { d, _ := an.env["data"].(map[string]any); return d }
func (an idemAnswer) code() string {
	e, _ := an.env["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

// do sends a request with credential cred in workspace ws, with Idempotency-Key key unless it is
// "-", and checks the answer against the OpenAPI document.
func (a *idemAPI) do(cred, ws, method, path, key, body string) idemAnswer {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.Header.Set("Authorization", "Bearer "+cred)
	r.Header.Set("X-Workspace-Id", ws)
	r.Header.Set("Content-Type", "application/json")
	if key != "-" {
		r.Header.Set("Idempotency-Key", key)
	}
	rec := httptest.NewRecorder()
	a.h.ServeHTTP(rec, r)
	if err := a.oas.Check(method, strings.SplitN(path, "?", 2)[0], rec.Code, rec.Header().Get("Content-Type"), rec.Body.Bytes()); err != nil {
		a.t.Errorf("%s %s: the answer does not match the OpenAPI document: %v\n%s", method, path, err, rec.Body)
	}
	an := idemAnswer{status: rec.Code, replayed: rec.Header().Get("Idempotent-Replayed"), raw: rec.Body.String()}
	if err := json.Unmarshal(rec.Body.Bytes(), &an.env); err != nil {
		a.t.Fatalf("%s %s: %v: %s", method, path, err, rec.Body)
	}
	return an
}

func (a *idemAPI) countKeys(ws string) int {
	an := a.do(a.admin, ws, "GET", "/v1/api-keys?limit=100", "-", "")
	ks, _ := an.env["data"].([]any)
	return len(ks)
}

func TestIdempotencyKeyAPI(t *testing.T) {
	for _, d := range servicetest.Drivers() {
		t.Run(d, func(t *testing.T) {
			a := newIdemAPI(t, d)
			const body = `{"name": "ci", "keyType": "secret"}`
			first := a.do(a.admin, a.ws, "POST", "/v1/api-keys", "create-1", body)
			if first.status != 201 || first.replayed != "" {
				t.Fatalf("first: %d %q %s", first.status, first.replayed, first.raw)
			}
			value, _ := first.data()["keyValue"].(string)
			if value == "" {
				t.Fatalf("the first answer has no keyValue: %s", first.raw)
			}
			// The same request: the same answer, marked, and nothing more done.
			again := a.do(a.admin, a.ws, "POST", "/v1/api-keys", "create-1", body)
			if again.status != 201 || again.replayed != "true" || again.raw != first.raw {
				t.Fatalf("replay: %d %q %s, want the first answer replayed", again.status, again.replayed, again.raw)
			}
			if n := a.countKeys(a.ws); n != 1 {
				t.Fatalf("%d keys after a replay, want 1", n)
			}
			// Another body, path or method with the key: 422.
			for _, r := range [][3]string{{"POST", "/v1/api-keys", `{"name": "other", "keyType": "secret"}`},
				{"POST", "/v1/identities", `{"externalId": "x"}`}, {"PATCH", "/v1/api-keys/" + first.data()["id"].(string), `{"name": "x"}`}} {
				if got := a.do(a.admin, a.ws, r[0], r[1], "create-1", r[2]); got.status != 422 || got.code() != "idempotency_key_reused" {
					t.Errorf("%s %s with a used key: %d %s, want 422 idempotency_key_reused", r[0], r[1], got.status, got.raw)
				}
			}
			// Another credential, or the same root key in another workspace: its own key.
			if got := a.do(a.admin2, a.ws, "POST", "/v1/api-keys", "create-1", body); got.status != 201 || got.replayed != "" || got.data()["keyValue"] == value {
				t.Errorf("another root key with the same key: %d %q, want a new key", got.status, got.replayed)
			}
			if got := a.do(a.admin, a.ws2, "POST", "/v1/api-keys", "create-1", body); got.status != 201 || got.replayed != "" {
				t.Errorf("another workspace with the same key: %d %q, want a new key", got.status, got.replayed)
			}
			if n := a.countKeys(a.ws); n != 2 {
				t.Errorf("%d keys in the first workspace, want 2", n)
			}

			// A PATCH's answer has no keyValue, and neither has its replay.
			patch := "/v1/api-keys/" + first.data()["id"].(string)
			p1 := a.do(a.admin, a.ws, "PATCH", patch, "patch-1", `{"name": "renamed"}`)
			p2 := a.do(a.admin, a.ws, "PATCH", patch, "patch-1", `{"name": "renamed"}`)
			if p1.status != 200 || p2.status != 200 || p2.replayed != "true" || p2.raw != p1.raw || strings.Contains(p2.raw, "keyValue") || strings.Contains(p2.raw, value) {
				t.Errorf("PATCH replay: %d %d %q %s", p1.status, p2.status, p2.replayed, p2.raw)
			}
			// A 4xx first answer is replayed too, even once the request would succeed.
			bad := a.do(a.admin, a.ws, "POST", "/v1/api-keys", "bad-1", `{"name": "", "keyType": "secret"}`)
			badAgain := a.do(a.admin, a.ws, "POST", "/v1/api-keys", "bad-1", `{"name": "", "keyType": "secret"}`)
			if bad.status != 400 || badAgain.status != 400 || badAgain.replayed != "true" {
				t.Errorf("a 400 first answer: %d, then %d %q; want it replayed", bad.status, badAgain.status, badAgain.replayed)
			}

			// Invalid keys: 400 naming the header; nothing created.
			for _, k := range []string{"", strings.Repeat("k", 256), "caf\u00e9", "tab\there"} {
				got := a.do(a.admin, a.ws, "POST", "/v1/api-keys", k, body)
				if got.status != 400 || got.code() != "invalid_request" || !strings.Contains(got.raw, `"field":"Idempotency-Key"`) {
					t.Errorf("key %q: %d %s, want 400 naming Idempotency-Key", k, got.status, got.raw)
				}
			}
			if n := a.countKeys(a.ws); n != 2 {
				t.Errorf("%d keys after invalid keys, want 2", n)
			}
			// Two Idempotency-Key headers: 400 too.
			r := httptest.NewRequest("POST", "/v1/api-keys", strings.NewReader(body))
			r.Header.Set("Authorization", "Bearer "+a.admin)
			r.Header.Set("X-Workspace-Id", a.ws)
			r.Header.Set("Content-Type", "application/json")
			r.Header.Add("Idempotency-Key", "one")
			r.Header.Add("Idempotency-Key", "two")
			rec := httptest.NewRecorder()
			a.h.ServeHTTP(rec, r)
			if rec.Code != 400 || !strings.Contains(rec.Body.String(), `"field":"Idempotency-Key"`) {
				t.Errorf("two keys: %d %s", rec.Code, rec.Body)
			}

			// A body over the limit is refused before any key is claimed: the same key then runs.
			huge := `{"name": "` + strings.Repeat("x", 1<<20) + `", "keyType": "secret"}`
			if got := a.do(a.admin, a.ws, "POST", "/v1/api-keys", "huge-1", huge); got.status != 413 {
				t.Errorf("an oversized body with a key: %d %s", got.status, got.raw[:min(len(got.raw), 200)])
			}
			// The same without a Content-Length: read up to the limit, then given back whole.
			r0 := httptest.NewRequest("POST", "/v1/api-keys", io.MultiReader(strings.NewReader(huge)))
			r0.Header.Set("Authorization", "Bearer "+a.admin)
			r0.Header.Set("X-Workspace-Id", a.ws)
			r0.Header.Set("Content-Type", "application/json")
			r0.Header.Set("Idempotency-Key", "huge-1")
			rec0 := httptest.NewRecorder()
			a.h.ServeHTTP(rec0, r0)
			if rec0.Code != 413 {
				t.Errorf("an oversized body of unknown length with a key: %d", rec0.Code)
			}
			if got := a.do(a.admin, a.ws, "POST", "/v1/api-keys", "huge-1", `{"name": "small", "keyType": "secret"}`); got.status != 201 || got.replayed != "" {
				t.Errorf("the key of an oversized request: %d %q %s, want it unclaimed", got.status, got.replayed, got.raw)
			}

			// A first answer that failed on our side (500) is not kept: the retry runs.
			a.failNext()
			failed := a.do(a.admin, a.ws, "POST", "/v1/api-keys", "fails-1", body)
			retry := a.do(a.admin, a.ws, "POST", "/v1/api-keys", "fails-1", body)
			if failed.status != 500 || retry.status != 201 || retry.replayed != "" {
				t.Errorf("after a 500: %d, then %d %q; want the retry to run", failed.status, retry.status, retry.replayed)
			}

			// After 24 h, no replay: the request runs again.
			a.clock.ns.Add(int64(service.IdempotencyTTL))
			late := a.do(a.admin, a.ws, "POST", "/v1/api-keys", "create-1", body)
			if late.status != 201 || late.replayed != "" || late.data()["keyValue"] == value {
				t.Errorf("after 24 h: %d %q, want a new key", late.status, late.replayed)
			}
			// Without the header, nothing changes.
			if got := a.do(a.admin, a.ws, "POST", "/v1/api-keys", "-", body); got.status != 201 || got.replayed != "" {
				t.Errorf("without a key: %d %q", got.status, got.replayed)
			}
		})
	}
}

// TestIdempotencyConcurrentCreate: 20 concurrent requests with one key create exactly one key; every
// answer is that key's (replayed) or 409 idempotency_key_in_use.
func TestIdempotencyConcurrentCreate(t *testing.T) {
	for _, d := range servicetest.Drivers() {
		t.Run(d, func(t *testing.T) {
			a := newIdemAPI(t, d)
			const n = 20
			answers := make([]idemAnswer, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					answers[i] = a.do(a.admin, a.ws, "POST", "/v1/api-keys", "storm", `{"name": "storm", "keyType": "secret"}`)
				}()
			}
			wg.Wait()
			values := map[string]bool{}
			fresh := 0
			for _, an := range answers {
				switch {
				case an.status == 201:
					values[an.data()["keyValue"].(string)] = true
					if an.replayed == "" {
						fresh++
					}
				case an.status == 409 && an.code() == "idempotency_key_in_use":
				default:
					t.Errorf("answer %d %s, want 201 or 409 idempotency_key_in_use", an.status, an.raw)
				}
			}
			if fresh != 1 || len(values) != 1 {
				t.Errorf("%d fresh answers and %d key values, want 1 and 1", fresh, len(values))
			}
			if k := a.countKeys(a.ws); k != 1 {
				t.Errorf("%d keys created, want exactly 1", k)
			}
		})
	}
}
