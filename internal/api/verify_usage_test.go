package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/api"
	"github.com/keyplane/keyplane/internal/api/openapitest"
	"github.com/keyplane/keyplane/internal/credits"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/service/servicetest"
	"github.com/keyplane/keyplane/internal/verify"
)

// meteredLog keeps the request log's entries.
type meteredLog struct {
	mu      sync.Mutex
	entries []keyplane.RequestLog
}

func (m *meteredLog) Log(e keyplane.RequestLog) {
	m.mu.Lock()
	m.entries = append(m.entries, e)
	m.mu.Unlock()
}

func (m *meteredLog) last() keyplane.RequestLog {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.entries[len(m.entries)-1]
}

type meteredAPI struct {
	h          http.Handler
	oas        *openapitest.Validator
	svc        *service.Service
	log        *meteredLog
	verifyRoot string
	ws         string
}

// newMeteredAPI is the API with a Bank on the service, as serve wires it.
func newMeteredAPI(t testing.TB) *meteredAPI {
	t.Helper()
	db := servicetest.OpenDB(t, "sqlite")
	var ver *verify.Verifier
	svc := db.Service(t, service.Options{Forget: func(h ...[]byte) { ver.Forget(h...) }})
	bank := credits.NewBank(svc, credits.Options{NoLoop: true})
	t.Cleanup(func() { bank.Close(context.Background()) })
	var err error
	if ver, err = verify.New(db.Lookups(), verify.Options{KeyPrefix: "kp", Bank: bank, Box: servicetest.Box(t)}); err != nil {
		t.Fatal(err)
	}
	ctx, sys := context.Background(), keyplane.System("test")
	u := &meteredAPI{svc: svc, log: &meteredLog{}}
	if _, u.verifyRoot, err = svc.CreateRootKey(ctx, sys, "v", []string{keyplane.ScopeVerify}); err != nil {
		t.Fatal(err)
	}
	w, err := svc.CreateWorkspace(ctx, sys, service.WorkspaceInput{Name: "W", Slug: "w"})
	if err != nil {
		t.Fatal(err)
	}
	u.ws = w.ID
	u.h = api.New(api.Options{Service: svc, Verifier: ver, RequestLog: u.log})
	if u.oas, err = openapitest.New(api.OpenAPI()); err != nil {
		t.Fatal(err)
	}
	return u
}

func (u *meteredAPI) key(t testing.TB, in service.CreateKeyInput) (*keyplane.APIKey, string) {
	t.Helper()
	in.Name, in.KeyType = "metered", keyplane.KeyTypeSecret
	k, v, err := u.svc.CreateAPIKey(context.Background(), keyplane.System("test"), u.ws, in)
	if err != nil {
		t.Fatal(err)
	}
	return k, v
}

func (u *meteredAPI) verify(t *testing.T, body string) *httptest.ResponseRecorder {
	t.Helper()
	return u.post(t, "/v1/verify", body)
}

func (u *meteredAPI) post(t *testing.T, path, body string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest("POST", path, strings.NewReader(body))
	r.Header.Set("Authorization", "Bearer "+u.verifyRoot)
	r.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	u.h.ServeHTTP(rec, r)
	// Every answer, usage fields and all, is what the OpenAPI document says.
	if err := u.oas.Check("POST", path, rec.Code, rec.Header().Get("Content-Type"), rec.Body.Bytes()); err != nil {
		t.Errorf("%s: %v", rec.Body, err)
	}
	return rec
}

func (u *meteredAPI) auth(t *testing.T, key string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest("GET", "/v1/auth", nil)
	r.Header.Set("X-Keyplane-Root-Key", u.verifyRoot)
	r.Header.Set("X-API-Key", key)
	rec := httptest.NewRecorder()
	u.h.ServeHTTP(rec, r)
	return rec
}

type meteredAnswer struct {
	Success bool `json:"success"`
	Data    struct {
		Valid     bool   `json:"valid"`
		Code      string `json:"code"`
		RateLimit *struct {
			Limit, Remaining int64
		} `json:"ratelimit"`
		RateLimits []struct {
			Name      string `json:"name"`
			Limit     int64  `json:"limit"`
			Remaining int64  `json:"remaining"`
			ResetAt   string `json:"resetAt"`
			Exceeded  bool   `json:"exceeded"`
		} `json:"ratelimits"`
		Credits *struct {
			Remaining int64 `json:"remaining"`
		} `json:"credits"`
		Identity *struct {
			ID         string          `json:"id"`
			ExternalID string          `json:"externalId"`
			Meta       json.RawMessage `json:"meta"`
		} `json:"identity"`
	} `json:"data"`
	Error struct {
		Code    string                `json:"code"`
		Details []keyplane.FieldError `json:"details"`
	} `json:"error"`
}

func decodeMetered(t *testing.T, rec *httptest.ResponseRecorder) meteredAnswer {
	t.Helper()
	var a meteredAnswer
	if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil {
		t.Fatalf("%d %s: %v", rec.Code, rec.Body, err)
	}
	return a
}

func meteredBadFields(a meteredAnswer) []string {
	var out []string
	for _, d := range a.Error.Details {
		out = append(out, d.Field)
	}
	sort.Strings(out)
	return out
}

// TestVerifyUsageValidation: every bad usage field is named in one 400, an unknown limit name too.
func TestVerifyUsageValidation(t *testing.T) {
	u := newMeteredAPI(t)
	_, v := u.key(t, service.CreateKeyInput{RateLimits: []keyplane.NamedRateLimit{{Name: "tokens", Limit: 10, WindowMs: 60_000}}})
	long := strings.Repeat("x", keyplane.MaxTagLen+1)
	eleven := `"a","b","c","d","e","f","g","h","i","j","k"`
	cases := []struct {
		body   string
		fields []string
	}{
		{`{"key":"` + v + `","credits":{"cost":-1}}`, []string{"credits.cost"}},
		{`{"key":"` + v + `","credits":{"cost":1001}}`, []string{"credits.cost"}},
		{`{"key":"` + v + `","rateLimits":[{"name":"tokens","cost":-2},{"name":"Bad Name"}]}`, []string{"rateLimits[0].cost", "rateLimits[1].name"}},
		{`{"key":"` + v + `","tags":[` + eleven + `]}`, []string{"tags"}},
		{`{"key":"` + v + `","tags":["ok","` + long + `"],"credits":{"cost":-5}}`, []string{"credits.cost", "tags[1]"}},
		{`{"key":"` + v + `","rateLimits":[{"name":"tokens"},{"name":"nope"},{"name":"other","cost":3}]}`, []string{"rateLimits[1].name", "rateLimits[2].name"}},
		{`{"key":"` + v + `","rateLimits":[` + strings.Repeat(`{"name":"tokens"},`, 10) + `{"name":"tokens"}]}`, []string{"rateLimits"}},
	}
	for _, c := range cases {
		rec := u.verify(t, c.body)
		a := decodeMetered(t, rec)
		if rec.Code != http.StatusBadRequest || a.Error.Code != "invalid_request" || !slices.Equal(meteredBadFields(a), c.fields) {
			t.Errorf("%.80s…: %d %s; want 400 naming %v", c.body, rec.Code, rec.Body, c.fields)
		}
	}
	// The largest allowed values pass.
	ten := `"a","b","c","d","e","f","g","h","i","` + strings.Repeat("y", keyplane.MaxTagLen) + `"`
	if rec := u.verify(t, `{"key":"`+v+`","credits":{"cost":1000},"rateLimits":[{"name":"tokens","cost":0}],"tags":[`+ten+`]}`); rec.Code != 200 {
		t.Errorf("the largest allowed: %d %s", rec.Code, rec.Body)
	}
}

// TestVerifyUsageAnswer: the answer's ratelimits, credits and identity, the request log's tags,
// credits spent and identity, and forward auth's 429 for USAGE_EXCEEDED.
func TestVerifyUsageAnswer(t *testing.T) {
	u := newMeteredAPI(t)
	ctx := context.Background()
	n := func(v int64) *int64 { return &v }
	i, err := u.svc.CreateIdentity(ctx, keyplane.System("test"), u.ws, service.IdentityInput{
		ExternalID: "cus_7", Meta: json.RawMessage(`{"plan":"pro"}`),
		RateLimits: []keyplane.NamedRateLimit{{Name: "org", Limit: 100, WindowMs: 60_000, AutoApply: true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	k, v := u.key(t, service.CreateKeyInput{
		RateLimit:  &keyplane.RateLimit{Limit: 50, WindowMs: 60_000},
		RateLimits: []keyplane.NamedRateLimit{{Name: "tokens", Limit: 10, WindowMs: 60_000}},
		Credits:    &service.CreditsInput{Remaining: n(5)},
		IdentityID: keyplane.Some(i.ID),
	})
	rec := u.verify(t, `{"key":"`+v+`","credits":{"cost":3},"rateLimits":[{"name":"tokens","cost":4}],"tags":["path:/a","beta"]}`)
	a := decodeMetered(t, rec)
	d := a.Data
	if rec.Code != 200 || d.Code != "VALID" || d.Credits == nil || d.Credits.Remaining != 2 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if d.RateLimit == nil || d.RateLimit.Limit != 50 || d.RateLimit.Remaining != 49 {
		t.Errorf("ratelimit (the default limit, as before): %+v", d.RateLimit)
	}
	var got []string
	for _, l := range d.RateLimits {
		got = append(got, l.Name)
		if l.Exceeded || l.ResetAt == "" {
			t.Errorf("limit %+v", l)
		}
	}
	if !slices.Equal(got, []string{"default", "org", "tokens"}) || d.RateLimits[2].Remaining != 6 {
		t.Errorf("ratelimits %s; want default, org, tokens (6 left)", rec.Body)
	}
	if d.Identity == nil || d.Identity.ID != i.ID || d.Identity.ExternalID != "cus_7" || string(d.Identity.Meta) != `{"plan":"pro"}` {
		t.Errorf("identity: %s", rec.Body)
	}
	e := u.log.last()
	if e.KeyID != k.ID || e.IdentityID != i.ID || e.CreditsSpent != 3 || !slices.Equal(e.Tags, []string{"path:/a", "beta"}) || e.Code != keyplane.VerifyValid {
		t.Errorf("request log entry: %+v", e)
	}
	// The default cost (1) when the body names none: the fast decoder's body.
	rec = u.verify(t, `{"key":"`+v+`"}`)
	if a := decodeMetered(t, rec); a.Data.Code != "VALID" || a.Data.Credits == nil || a.Data.Credits.Remaining != 1 || u.log.last().CreditsSpent != 1 {
		t.Fatalf("default cost: %s", rec.Body)
	}
	// 2 more do not fit: USAGE_EXCEEDED, nothing spent; the answer still says what is left.
	rec = u.verify(t, `{"key":"`+v+`","credits":{"cost":2}}`)
	if a := decodeMetered(t, rec); a.Data.Code != "USAGE_EXCEEDED" || a.Data.Valid || a.Data.Credits == nil || a.Data.Credits.Remaining != 1 || u.log.last().CreditsSpent != 0 {
		t.Fatalf("over the balance: %s", rec.Body)
	}
	// tokens refuses 7 of the 6 left: RATE_LIMITED, with exceeded on it.
	rec = u.verify(t, `{"key":"`+v+`","rateLimits":[{"name":"tokens","cost":7}]}`)
	a = decodeMetered(t, rec)
	if l := a.Data.RateLimits; a.Data.Code != "RATE_LIMITED" || len(l) != 3 || !l[2].Exceeded || l[0].Exceeded {
		t.Fatalf("over a named limit: %s", rec.Body)
	}
	// Forward auth spends the default cost: the last credit passes, then 429.
	if rec := u.auth(t, v); rec.Code != 200 {
		t.Fatalf("forward auth with 1 credit left: %d %s", rec.Code, rec.Body)
	}
	if rec := u.auth(t, v); rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "" {
		t.Fatalf("forward auth with no credits: %d (Retry-After %q) %s; want 429 without Retry-After", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
	if e := u.log.last(); e.Code != keyplane.VerifyUsageExceeded || e.Source != keyplane.SourceAuth {
		t.Errorf("forward auth's log entry: %+v", e)
	}
	// A key with nothing usage-based answers as before: no ratelimits, credits or identity.
	_, plain := u.key(t, service.CreateKeyInput{})
	rec = u.verify(t, `{"key":"`+plain+`"}`)
	if body := rec.Body.String(); strings.Contains(body, "ratelimits") || strings.Contains(body, "credits") || strings.Contains(body, "identity") {
		t.Errorf("a plain key's answer: %s", body)
	}
}

// TestSignedVerificationsSpend: signatures and JWTs spend the default cost of the key's credits.
func TestSignedVerificationsSpend(t *testing.T) {
	u := newMeteredAPI(t)
	n := int64(2)
	k, v := u.key(t, service.CreateKeyInput{Recoverable: true, Credits: &service.CreditsInput{Remaining: &n}})
	const body = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	signed := func(path string) string {
		ts := time.Now().Unix()
		return fmt.Sprintf(`{"keyId":%q,"timestamp":%d,"signature":%q,"method":"GET","path":%q,"bodySha256":%q}`,
			k.ID, ts, verify.Sign(v, ts, "GET", path, body), path, body)
	}
	rec := u.post(t, "/v1/verify/signature", signed("/a"))
	if a := decodeMetered(t, rec); a.Data.Code != "VALID" || a.Data.Credits == nil || a.Data.Credits.Remaining != 1 || u.log.last().CreditsSpent != 1 {
		t.Fatalf("a signature: %s", rec.Body)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"exp": time.Now().Add(time.Minute).Unix(), "sub": "x"})
	tok.Header["kid"] = k.ID
	signedTok, err := tok.SignedString([]byte(v))
	if err != nil {
		t.Fatal(err)
	}
	rec = u.post(t, "/v1/verify/jwt", fmt.Sprintf(`{"token":%q}`, signedTok))
	if a := decodeMetered(t, rec); a.Data.Code != "VALID" || a.Data.Credits == nil || a.Data.Credits.Remaining != 0 {
		t.Fatalf("a JWT: %s", rec.Body)
	}
	rec = u.post(t, "/v1/verify/signature", signed("/b"))
	if a := decodeMetered(t, rec); a.Data.Code != "USAGE_EXCEEDED" || a.Data.Valid {
		t.Fatalf("a signature with no credits left: %s", rec.Body)
	}
}

// BenchmarkVerifyHTTPCredits is POST /v1/verify over loopback for a key without anything
// usage-based and for one with credits (held by the node) and two auto-applied named limits besides
// its default one, on the same server: what usage-based keys add to a verification over HTTP.
func BenchmarkVerifyHTTPCredits(b *testing.B) {
	u := newMeteredAPI(b)
	_, plain := u.key(b, service.CreateKeyInput{RateLimit: &keyplane.RateLimit{Limit: 1_000_000, WindowMs: 1000}})
	grant := int64(keyplane.MaxCredits)
	_, metered := u.key(b, service.CreateKeyInput{
		Credits:   &service.CreditsInput{Remaining: &grant},
		RateLimit: &keyplane.RateLimit{Limit: 1_000_000, WindowMs: 1000},
		RateLimits: []keyplane.NamedRateLimit{
			{Name: "api", Limit: 1_000_000, WindowMs: 1000, AutoApply: true},
			{Name: "org", Limit: 1_000_000, WindowMs: 1000, AutoApply: true},
		},
	})
	ts := httptest.NewServer(u.h)
	defer ts.Close()
	for _, c := range []struct{ name, key string }{{"plain", plain}, {"credits", metered}} {
		b.Run(c.name, func(b *testing.B) {
			body := []byte(`{"key":"` + c.key + `"}`)
			b.ReportAllocs()
			postVerifyParallel(b, ts.URL, u.verifyRoot, body)
		})
	}
}
