package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/credits"
	"github.com/keyplane/keyplane/internal/id"
	"github.com/keyplane/keyplane/internal/ratelimit"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/service/servicetest"
	"github.com/keyplane/keyplane/internal/verify"
	"github.com/keyplane/keyplane/internal/webhook"
)

// fuzzEndpoint is a route that takes a JSON body. Its path's {ws}, {ws2}, {key}, {hook}, {probe} and
// {delivery} stand for the fixture's workspaces, key, endpoints and a delivery id.
type fuzzEndpoint struct {
	method, path string
	verify       bool // a verification call: every well-formed body answers 200
}

// fuzzEndpoints is every route of the API that reads a request body.
var fuzzEndpoints = []fuzzEndpoint{
	{"POST", "/v1/workspaces", false},                                  // 0 workspaceRequest
	{"PATCH", "/v1/workspaces/{ws2}", false},                           // 1 workspaceRequest
	{"POST", "/v1/workspaces/{ws2}/members", false},                    // 2 memberRequest
	{"POST", "/v1/api-keys", false},                                    // 3 createKeyRequest
	{"PATCH", "/v1/api-keys/{key}", false},                             // 4 patchKeyRequest
	{"POST", "/v1/api-keys/{key}/rotate", false},                       // 5 rotateRequest (optional)
	{"POST", "/v1/api-keys/{key}/reveal", false},                       // 6 {} (optional)
	{"POST", "/v1/webhooks", false},                                    // 7 createWebhookRequest
	{"PATCH", "/v1/webhooks/{hook}", false},                            // 8 patchWebhookRequest
	{"POST", "/v1/webhooks/{hook}/rotate-secret", false},               // 9 {} (optional)
	{"POST", "/v1/webhooks/{hook}/reveal-secret", false},               // 10 {} (optional)
	{"POST", "/v1/webhooks/{probe}/test", false},                       // 11 testWebhookRequest (optional)
	{"POST", "/v1/webhooks/{hook}/deliveries/{delivery}/retry", false}, // 12 {} (optional)
	{"POST", "/v1/events", false},                                      // 13 sendEventRequest
	{"POST", "/v1/verify", true},                                       // 14 verifyRequest, decodeKeyOnly
	{"POST", "/v1/verify/signature", true},                             // 15 signatureRequest
	{"POST", "/v1/verify/jwt", true},                                   // 16 jwtRequest
}

// fuzzContentTypes are the Content-Type headers a fuzzed request may carry.
var fuzzContentTypes = []string{"application/json", "application/json; charset=utf-8", "", "text/plain",
	"application/json; charset", "Application/JSON ; Charset=UTF-8"}

// fuzzNode is a real API server on one store, with what the fuzzed requests act on.
type fuzzNode struct {
	driver string
	srv    *Server
	root   string
	repl   *strings.Replacer // the paths' and bodies' placeholders
}

// newFuzzNode builds a server on driver: a workspace whose settings the fuzzer leaves alone (so that
// live mode and the key limit do not end its exploration of the key routes) and one whose settings
// and members it changes, a key it may change (patch, rotate, reveal), a recoverable key only
// verified ($VKEY, $VKEYID in bodies), an endpoint it may change and one it only sends tests to (its
// deliveries resolve to a blocked address and stop there: nothing leaves the machine). Management
// rate limits are out of reach.
// ledgerOf is a Ledger made later than what needs it.
type ledgerOf func() credits.Ledger

func (l ledgerOf) TakeCredits(ctx context.Context, a keyplane.CreditAccount, t keyplane.CreditTake) (keyplane.CreditGrant, error) {
	return l().TakeCredits(ctx, a, t)
}

func (l ledgerOf) ReturnCredits(ctx context.Context, a keyplane.CreditAccount, n, epoch int64) (bool, error) {
	return l().ReturnCredits(ctx, a, n, epoch)
}

func newFuzzNode(f *testing.F, driver string) *fuzzNode {
	ctx, sys := context.Background(), keyplane.System("fuzz")
	db := servicetest.OpenDB(f, driver)
	// Keys the fuzzer makes with credits spend them through a Bank on the service, as serve wires
	// it; the service is made below, and the Bank asks it only on a verification.
	var svc *service.Service
	bank := credits.NewBank(ledgerOf(func() credits.Ledger { return svc }), credits.Options{})
	f.Cleanup(func() { bank.Close(context.Background()) })
	ver, err := verify.New(db.Lookups(), verify.Options{KeyPrefix: servicetest.KeyPrefix, Box: servicetest.Box(f), Bank: bank})
	if err != nil {
		f.Fatal(err)
	}
	public := func(context.Context, string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("93.184.216.34")}, nil
	}
	loopback := func(context.Context, string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	}
	// The api package's tests cannot use kptest.Guard (kptest runs serve, which imports this package).
	guard := &webhook.Guard{}
	f.Cleanup(func() {
		if r := guard.Refused(); len(r) > 0 {
			f.Errorf("webhooks tried to reach %q, off this machine", r)
		}
	})
	svc = db.Service(f, service.Options{Catalog: servicetest.Catalog(f, []string{"orders:read", "orders:write"}, []string{"order.created"}), Forget: ver.Forget,
		Webhooks: service.WebhookOptions{Lookup: public, Guard: guard, Client: webhook.NewClient(webhook.ClientOptions{Lookup: loopback, Guard: guard})}})
	_, root, err := svc.CreateRootKey(ctx, sys, "fuzz", []string{keyplane.ScopeAdmin, keyplane.ScopeVerify})
	if err != nil {
		f.Fatal(err)
	}
	w, err := svc.CreateWorkspace(ctx, sys, service.WorkspaceInput{Name: "W", Slug: "w", MaxKeys: keyplane.Some(keyplane.MaxMaxKeys)})
	if err != nil {
		f.Fatal(err)
	}
	w2, err := svc.CreateWorkspace(ctx, sys, service.WorkspaceInput{Name: "W2", Slug: "w2"})
	if err != nil {
		f.Fatal(err)
	}
	k, _, err := svc.CreateAPIKey(ctx, sys, w.ID, service.CreateKeyInput{Name: "changed", KeyType: keyplane.KeyTypeSecret, Recoverable: true})
	if err != nil {
		f.Fatal(err)
	}
	vk, vvalue, err := svc.CreateAPIKey(ctx, sys, w.ID, service.CreateKeyInput{Name: "verified", KeyType: keyplane.KeyTypeSecret,
		Recoverable: true, Permissions: []string{"orders:read"}, IPAllowlist: []string{"203.0.113.0/24"}})
	if err != nil {
		f.Fatal(err)
	}
	hook, _, err := svc.CreateWebhook(ctx, sys, w.ID, service.WebhookInput{URL: "https://hooks.example.com/a", EventTypes: []string{"*"}})
	if err != nil {
		f.Fatal(err)
	}
	probe, _, err := svc.CreateWebhook(ctx, sys, w.ID, service.WebhookInput{URL: "https://hooks.example.com/b", EventTypes: []string{"order.created"}})
	if err != nil {
		f.Fatal(err)
	}
	unlimited := ratelimit.Limit{Limit: 1 << 40, Window: time.Hour}
	srv := New(Options{Service: svc, Verifier: ver, CredentialLimit: unlimited, AddressLimit: unlimited})
	return &fuzzNode{driver: driver, srv: srv, root: root, repl: strings.NewReplacer(
		"{ws}", w.ID, "{ws2}", w2.ID, "{key}", k.ID, "{hook}", hook.ID, "{probe}", probe.ID, "{delivery}", id.New(id.Delivery),
		"$VKEYID", vk.ID, "$VKEY", vvalue)}
}

// fuzzAnswer is what a fuzzed request got: its status and the envelope's success and error code.
type fuzzAnswer struct {
	status  int
	success bool
	code    keyplane.Code
}

func (n *fuzzNode) do(t *testing.T, ep fuzzEndpoint, ct string, body []byte) fuzzAnswer {
	t.Helper()
	r := httptest.NewRequest(ep.method, n.repl.Replace(ep.path), bytes.NewReader([]byte(n.repl.Replace(string(body)))))
	r.Header.Set("Authorization", "Bearer "+n.root)
	r.Header.Set("X-Workspace-Id", n.repl.Replace("{ws}"))
	if ct != "" {
		r.Header.Set("Content-Type", ct)
	}
	w := httptest.NewRecorder()
	n.srv.ServeHTTP(w, r)
	var env struct {
		Success *bool           `json:"success"`
		Data    json.RawMessage `json:"data"`
		Error   *struct {
			Code    keyplane.Code `json:"code"`
			Message string        `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil || env.Success == nil {
		t.Fatalf("%s: %s %s: the answer is not an envelope (%v): %.300s", n.driver, ep.method, ep.path, err, w.Body)
	}
	if w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("%s: %s %s: Content-Type %q", n.driver, ep.method, ep.path, w.Header().Get("Content-Type"))
	}
	a := fuzzAnswer{status: w.Code, success: *env.Success}
	if w.Code >= 500 {
		t.Fatalf("%s: %s %s with body %.300q (Content-Type %q): %d %.300s", n.driver, ep.method, ep.path, body, ct, w.Code, w.Body)
	}
	if a.success != (w.Code < 300) {
		t.Fatalf("%s: %s %s: status %d with success %v", n.driver, ep.method, ep.path, w.Code, a.success)
	}
	if !a.success {
		if env.Error == nil || env.Error.Message == "" || statusOf[env.Error.Code] != w.Code {
			t.Fatalf("%s: %s %s: status %d with error %+v", n.driver, ep.method, ep.path, w.Code, env.Error)
		}
		a.code = env.Error.Code
	}
	if ep.verify {
		switch w.Code {
		case http.StatusOK:
			var d struct {
				Valid *bool               `json:"valid"`
				Code  keyplane.VerifyCode `json:"code"`
			}
			if json.Unmarshal(env.Data, &d) != nil || d.Valid == nil || !d.Code.Valid() || *d.Valid != (d.Code == keyplane.VerifyValid) {
				t.Fatalf("%s: %s: not a verification answer: %.300s", n.driver, ep.path, w.Body)
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
		default:
			t.Fatalf("%s: %s with body %.300q: %d %.300s; a verification answers 200 or refuses the body", n.driver, ep.path, body, w.Code, w.Body)
		}
	}
	return a
}

// FuzzRequestBodies sends a fuzzed body, with one of a few Content-Types, to one of the routes that
// read a body, through the real Server on SQLite and, when it is reachable, PostgreSQL, and asserts:
// nothing panics; the answer is the contract's envelope with a status below 500 whose error code is
// the one the contract gives that status; a verification call answers 200 with a verification, or
// refuses the body (400, 413, 415), never anything else; both stores answer alike (status and error
// code); and for POST /v1/verify, the hand-written fast path decodes exactly as encoding/json does.
func FuzzRequestBodies(f *testing.F) {
	nodes := []*fuzzNode{newFuzzNode(f, "sqlite")}
	if servicetest.PostgresUp() {
		nodes = append(nodes, newFuzzNode(f, "postgres"))
	}
	nasty := []string{
		``, ` `, "\n\t\r ", "\v{}", `null`, `[]`, `"x"`, `1`, `{`, `}`, `{}`, `{}{}`, `{} x`, `{}` + "\x00",
		"\xef\xbb\xbf{}", `{"unknown":1}`, `{"":1}`, `{"a":1,"a":2}`,
		strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
		`{"x":` + strings.Repeat(`{"x":`, 5000) + `1` + strings.Repeat(`}`, 5001),
		`{"name":"` + strings.Repeat("a", 1<<20) + `"}`,
	}
	seeds := [][]string{
		0: {`{"name":"Acme","slug":"acme"}`, `{"name":"Acme","slug":"acme2","maxKeys":99999999999999999999}`,
			`{"name":"\u0000","slug":"nul"}`, `{"name":"é","slug":"ÉCOLE"}`, `{"name":"a","slug":"a","testKeyTtlSeconds":-1}`,
			`{"name":"a","slug":"a","liveModeEnabled":"yes"}`, `{"name":null,"slug":null}`},
		1: {`{"name":"W2"}`, `{"maxKeys":null}`, `{"maxKeys":1e3}`, `{"maxKeys":1.5}`, `{"testKeyTtlSeconds":9223372036854775808}`,
			`{"liveModeEnabled":true,"liveModeEnabled":false}`, `{"slug":"w"}`},
		2: {`{"email":"dev@example.com","role":"developer"}`, `{"email":"DEV@EXAMPLE.COM","role":"owner"}`,
			`{"email":"a@b","role":"god"}`, `{"email":"\u0000@example.com","role":"viewer"}`, `{"email":"` + strings.Repeat("a", 500) + `@x.io","role":"viewer"}`},
		3: {`{"name":"k","keyType":"secret"}`, `{"name":"k","keyType":"publishable","environment":"test","allowedOrigins":["https://shop.example.com"]}`,
			`{"name":"k","keyType":"secret","permissions":["orders:read","nope"],"ipAllowlist":["10.0.0.1/8","fe80::1%eth0","::ffff:1.2.3.4"]}`,
			`{"name":"k","keyType":"secret","meta":{"a":"\u0000","b":"` + "\xff\xfe" + `"}}`, `{"name":"k","keyType":"secret","meta":[]}`,
			`{"name":"k","keyType":"secret","meta":{"n":1e400}}`, `{"name":"k","keyType":"secret","rateLimit":{"limit":1,"windowMs":1000}}`,
			`{"name":"k","keyType":"secret","rateLimit":{"limit":-1,"windowMs":1e20}}`, `{"name":"k","keyType":"secret","expiresAt":"2999-01-01T00:00:00Z"}`,
			`{"name":"k","keyType":"secret","expiresAt":"0000-01-01T00:00:00Z"}`, `{"name":"k","keyType":"secret","expiresAt":"9999-12-31T23:59:59.999999999+23:59"}`,
			`{"name":"k","keyType":"secret","expiresAt":1}`, `{"name":"k","keyType":"secret","recoverable":1}`, `{"name":"\u202e","keyType":"secret","description":"\n\t"}`},
		4: {`{"name":"renamed"}`, `{"enabled":false}`, `{"enabled":true}`, `{"ipAllowlist":null}`, `{"meta":null}`, `{"rateLimit":null}`,
			`{"expiresAt":null}`, `{"expiresAt":"yesterday"}`, `{"keyType":"publishable"}`, `{"environment":null}`, `{"permissions":[null]}`},
		5: {``, `{}`, `{"expireOldAfterSeconds":60}`, `{"expireOldAfterSeconds":604801}`, `{"expireOldAfterSeconds":-1}`, `{"expireOldAfterSeconds":"60"}`},
		6: {``, `{}`, `{"x":1}`},
		7: {`{"url":"https://hooks.example.com/in","eventTypes":["*"]}`, `{"url":"https://127.0.0.1/","eventTypes":["*"]}`,
			`{"url":"https://[::ffff:169.254.169.254]/","eventTypes":["*"]}`, `{"url":"http://hooks.example.com/","eventTypes":["*"]}`,
			`{"url":"https://hooks.example.com/","eventTypes":[]}`, `{"url":"https://hooks.example.com/","eventTypes":["nope"],"description":"\u0000"}`,
			`{"url":"https://hooks.example.com/","eventTypes":["*"],"description":"\u0000"}`, `{"url":"https://１２７。０。０。１/","eventTypes":["*"]}`,
			`{"url":"https://hooks.example.com/","eventTypes":["*"],"enabled":null}`},
		8: {`{"url":"https://hooks.example.com/c"}`, `{"eventTypes":null}`, `{"description":null}`, `{"description":"\u0000"}`,
			`{"enabled":false}`, `{"url":"https://localhost/"}`},
		9:  {``, `{}`},
		10: {``, `{}`},
		11: {``, `{}`, `{"eventType":"order.created"}`, `{"eventType":"nope"}`},
		12: {``, `{}`},
		13: {`{"type":"order.created","data":{"id":1}}`, `{"type":"order.created"}`, `{"type":"api_key.created","data":{}}`,
			`{"type":"order.created","data":[1]}`, `{"type":"order.created","data":"x"}`, `{"type":"order.created","data":{"s":"` + "\xff" + `"}}`,
			`{"type":"order.created","data":{"s":"\u0000"}}`, `{"type":"order.created","data":null}`},
		14: {`{"key":"$VKEY"}`, ` {"key" : "$VKEY" } `, `{"key":"$VKEY","permissions":["orders:read"],"ip":"203.0.113.9"}`,
			`{"key":"$VKEY","ip":"::ffff:203.0.113.9"}`, `{"key":"$VKEY","ip":"fe80::1%eth0"}`, `{"key":"$VKEY","environment":"prod"}`,
			`{"key":""}`, `{"key":"kp_sk_live_\u0041"}`, `{"KEY":"$VKEY"}`, `{"key":"$VKEY","key":"x"}`, `{"key":1}`, `{"key":"$VKEY"}x`,
			`{"key":"` + strings.Repeat("a", 70000) + `"}`,
			`{"key":"$VKEY","credits":{"cost":0},"rateLimits":[{"name":"default","cost":1000}],"tags":["a","\u0000",""]}`,
			`{"key":"$VKEY","credits":{"cost":-9223372036854775808},"rateLimits":[{"name":"NOPE","cost":1e3},{"cost":-1}],"tags":[null]}`,
			`{"key":"$VKEY","credits":null,"rateLimits":null,"tags":null}`, `{"key":"$VKEY","credits":{"cost":1.5}}`,
			`{"key":"$VKEY","rateLimits":[{"name":"x"},{"name":"x"},{"name":"y","cost":0}],"tags":["` + strings.Repeat("é", 65) + `"]}`},
		15: {`{"keyId":"$VKEYID","timestamp":1700000000,"signature":"00","method":"POST","path":"/","bodySha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}`,
			`{"keyId":"$VKEYID","timestamp":1700000000,"signature":"00","method":"POST\n/a","path":"/b","bodySha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}`,
			`{"keyId":"$VKEYID","timestamp":1.5,"signature":"00","method":"POST","path":"/","bodySha256":"E3B0"}`,
			`{"keyId":"$VKEYID","timestamp":-9223372036854775808,"signature":"zz","method":"GET","path":"/\u0000","bodySha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}`},
		16: {`{"token":"a.b.c"}`, `{"token":"eyJhbGciOiJub25lIn0.e30."}`, `{"token":"` + strings.Repeat("a", 17000) + `"}`, `{"token":"x","ip":"1.2.3.4"}`},
	}
	for ep, bodies := range seeds { // in order: a seed may change what the next one finds
		for _, b := range bodies {
			f.Add(uint8(ep), uint8(0), []byte(b))
		}
	}
	for i, b := range nasty {
		f.Add(uint8(i*5%len(fuzzEndpoints)), uint8(i%len(fuzzContentTypes)), []byte(b))
	}
	f.Add(uint8(14), uint8(2), []byte(`{"key":"$VKEY"}`))
	f.Add(uint8(14), uint8(3), []byte(`{"key":"$VKEY"}`))
	f.Add(uint8(5), uint8(3), []byte(``))

	f.Fuzz(func(t *testing.T, ep, ct uint8, body []byte) {
		e := fuzzEndpoints[int(ep)%len(fuzzEndpoints)]
		typ := fuzzContentTypes[int(ct)%len(fuzzContentTypes)]
		var first fuzzAnswer
		for i, n := range nodes {
			a := n.do(t, e, typ, body)
			if i == 0 {
				first = a
			} else if a.status != first.status || a.code != first.code {
				t.Fatalf("%s %s with body %.300q: %s answers %d %s, %s answers %d %s", e.method, e.path, body,
					nodes[0].driver, first.status, first.code, n.driver, a.status, a.code)
			}
		}
		if e.path == "/v1/verify" {
			checkDecodeKeyOnly(t, typ, []byte(nodes[0].repl.Replace(string(body))))
		}
	})
}

// checkDecodeKeyOnly decodes body as POST /v1/verify does, with its fast path and without it, and
// fails unless both give the same error (or none) and the same request.
func checkDecodeKeyOnly(t *testing.T, ct string, body []byte) {
	t.Helper()
	decodeWith := func(useFast bool) (verifyRequest, error) {
		r := httptest.NewRequest("POST", "/v1/verify", bytes.NewReader(body))
		if ct != "" {
			r.Header.Set("Content-Type", ct)
		}
		var req verifyRequest
		var fast func([]byte) bool
		if useFast {
			fast = req.decodeKeyOnly
		}
		err := decodeFast(httptest.NewRecorder(), r, &req, maxVerifyBody, false, fast)
		return req, err
	}
	fastReq, fastErr := decodeWith(true)
	slowReq, slowErr := decodeWith(false)
	var fe, se *keyplane.Error
	if (fastErr == nil) != (slowErr == nil) ||
		(fastErr != nil && (!errors.As(fastErr, &fe) || !errors.As(slowErr, &se) || fe.Code != se.Code || fe.Message != se.Message)) {
		t.Fatalf("body %.300q: with the fast path %v, with encoding/json %v", body, fastErr, slowErr)
	}
	if !reflect.DeepEqual(fastReq, slowReq) {
		t.Fatalf("body %.300q: the fast path reads %+v, encoding/json %+v", body, fastReq, slowReq)
	}
	// Where the fast path takes a body, it must be the strict decoding's whole answer: only a key.
	var direct verifyRequest
	if len(body) > 0 && direct.decodeKeyOnly(body) {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		var strict verifyRequest
		if err := dec.Decode(&strict); err != nil || !reflect.DeepEqual(strict, direct) || dec.More() {
			t.Fatalf("body %.300q: the fast path reads %+v, encoding/json %+v (%v)", body, direct, strict, err)
		}
	}
}

// FuzzDecodeKeyOnly is checkDecodeKeyOnly alone, without a server, so that the fuzzer spends its time
// on the fast path's own grammar: whitespace, escapes, repeated and case-folded names, trailing data.
func FuzzDecodeKeyOnly(f *testing.F) {
	const key = "kp_sk_live_0123456789abcdefghijABCDEFGHIJklmnop00AbCd"
	for _, s := range []string{
		`{"key":"` + key + `"}`, " \r\n\t{ \"key\" :\t\"" + key + "\" }\n", `{"key":""}`, `{"key":"` + key + `","ip":"1.2.3.4"}`,
		`{"KEY":"` + key + `"}`, `{"Key":"x"}`, `{"ke\u0079":"x"}`, `{"key":"kp\u005fsk"}`, `{"key":"kp-sk"}`, `{"key":"a"}{}`,
		`{"key":"a" , }`, `{"key":"a`, `{"key":123}`, `{"key":null}`, `{"key":"a","key":"b"}`, `{"key":"a"} x`, `["key"]`,
		"{\"key\":\"a\"}\x00", "\xef\xbb\xbf{\"key\":\"a\"}", "{\"key\":\"a\"}\v", "\v{\"key\":\"a\"}", `{"key":"a"}` + "\u00a0",
		"{\"key\":\"\xff\"}", `{"key":"é"}`, `{"key":"a"` + strings.Repeat(" ", 70000) + `}`, ``, ` `, `{`,
	} {
		f.Add(s, uint8(0))
	}
	f.Add(`{"key":"a"}`, uint8(2))
	f.Add(`{"key":"a"}`, uint8(3))
	f.Fuzz(func(t *testing.T, body string, ct uint8) {
		checkDecodeKeyOnly(t, fuzzContentTypes[int(ct)%len(fuzzContentTypes)], []byte(body))
	})
}
