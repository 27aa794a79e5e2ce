package verify_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/service/servicetest"
	"github.com/keyplane/keyplane/internal/store/storetest"
	"github.com/keyplane/keyplane/internal/verify"
)

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

type signedFixture struct {
	ver *verify.Verifier
	svc *service.Service
	ws  string
	clk *testClock
}

func signedSetup(t *testing.T, driver string) *signedFixture {
	t.Helper()
	clk := &testClock{t: time.Now().UTC().Truncate(time.Second)}
	st := storetest.Open(t, driver)
	box := servicetest.Box(t)
	ver, err := verify.New(st, verify.Options{KeyPrefix: "kp", Box: box, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	svc := servicetest.New(t, st, service.Options{Catalog: servicetest.Catalog(t, []string{"orders:read"}, nil), Forget: ver.Forget, Now: clk.now})
	w, err := svc.CreateWorkspace(context.Background(), keyplane.System("test"), service.WorkspaceInput{Name: "W", Slug: "w"})
	if err != nil {
		t.Fatal(err)
	}
	return &signedFixture{ver: ver, svc: svc, ws: w.ID, clk: clk}
}

func (f *signedFixture) key(t *testing.T, recoverable bool) (*keyplane.APIKey, string) {
	t.Helper()
	k, v, err := f.svc.CreateAPIKey(context.Background(), keyplane.System("test"), f.ws, service.CreateKeyInput{
		Name: "signer", KeyType: keyplane.KeyTypeSecret, Permissions: []string{"orders:read"}, Recoverable: recoverable,
	})
	if err != nil {
		t.Fatal(err)
	}
	return k, v
}

const emptyBody = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// sign is the client's recipe, written here from the contract rather than with verify.Sign.
func sign(value string, ts int64, method, path, body string) string {
	m := hmac.New(sha256.New, []byte(value))
	m.Write([]byte(strconv.FormatInt(ts, 10) + "\n" + method + "\n" + path + "\n" + body))
	return hex.EncodeToString(m.Sum(nil))
}

func TestSignatures(t *testing.T) {
	for _, d := range storetest.Drivers() {
		t.Run(d, func(t *testing.T) { testSignatures(t, d) })
	}
}

func testSignatures(t *testing.T, driver string) {
	f := signedSetup(t, driver)
	ctx := context.Background()
	k, value := f.key(t, true)
	now := f.clk.now().Unix()
	signed := func(ts int64, method, path, body, sig string) verify.Result {
		t.Helper()
		r, err := f.ver.VerifySignature(ctx, &verify.SignedRequest{KeyID: k.ID, Timestamp: ts, Signature: sig, Method: method,
			Path: path, BodySHA256: body, Req: keyplane.VerifyRequest{Permissions: []string{"orders:read"}}})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	want := func(what string, r verify.Result, code keyplane.VerifyCode, reason string) {
		t.Helper()
		if r.Code != code || !strings.Contains(r.Reason, reason) {
			t.Errorf("%s: %s %q, want %s %q", what, r.Code, r.Reason, code, reason)
		}
	}
	good := sign(value, now, "POST", "/orders?x=1", emptyBody)
	if good != verify.Sign(value, now, "POST", "/orders?x=1", emptyBody) {
		t.Fatal("verify.Sign disagrees with the contract's recipe")
	}
	want("a good signature", signed(now, "POST", "/orders?x=1", emptyBody, good), keyplane.VerifyValid, "")
	want("the same again", signed(now, "POST", "/orders?x=1", emptyBody, good), keyplane.VerifyInvalidSignature, "replay")
	// The same signature in capitals is the same signature: still a replay.
	want("the same in capitals", signed(now, "POST", "/orders?x=1", emptyBody, strings.ToUpper(good)), keyplane.VerifyInvalidSignature, "replay")

	fresh := func(d int64) (int64, string) { ts := now + d; return ts, sign(value, ts, "GET", "/a", emptyBody) }
	ts, sig := fresh(1)
	want("tampered method", signed(ts, "PUT", "/a", emptyBody, sig), keyplane.VerifyInvalidSignature, "bad signature")
	want("tampered path", signed(ts, "GET", "/b", emptyBody, sig), keyplane.VerifyInvalidSignature, "bad signature")
	want("tampered body", signed(ts, "GET", "/a", strings.Repeat("0", 64), sig), keyplane.VerifyInvalidSignature, "bad signature")
	want("tampered timestamp", signed(ts+1, "GET", "/a", emptyBody, sig), keyplane.VerifyInvalidSignature, "bad signature")
	want("not hex", signed(ts, "GET", "/a", emptyBody, "zz"+sig[2:]), keyplane.VerifyInvalidSignature, "bad signature")
	want("the refused ones did not burn it", signed(ts, "GET", "/a", emptyBody, sig), keyplane.VerifyValid, "")
	ts, sig = fresh(-301)
	want("stale", signed(ts, "GET", "/a", emptyBody, sig), keyplane.VerifyInvalidSignature, "stale timestamp")
	ts, sig = fresh(301)
	want("future", signed(ts, "GET", "/a", emptyBody, sig), keyplane.VerifyInvalidSignature, "in the future")
	// Far off: the time arithmetic must not wrap a far-future stamp into a stale one, or back.
	for _, far := range []int64{1 << 40, math.MaxInt64 - now, math.MaxInt64/2 - now} {
		ts, sig = fresh(far)
		want(fmt.Sprintf("future by %d s", far), signed(ts, "GET", "/a", emptyBody, sig), keyplane.VerifyInvalidSignature, "timestamp in the future")
	}
	for _, far := range []int64{-(1 << 40), math.MinInt64 - now, -now} {
		ts, sig = fresh(far)
		want(fmt.Sprintf("past by %d s", -far), signed(ts, "GET", "/a", emptyBody, sig), keyplane.VerifyInvalidSignature, "stale timestamp")
	}
	ts, sig = fresh(-299)
	want("inside the window", signed(ts, "GET", "/a", emptyBody, sig), keyplane.VerifyValid, "")

	// Keys: unknown, not recoverable, disabled, rotated, revoked.
	r, _ := f.ver.VerifySignature(ctx, &verify.SignedRequest{KeyID: "apk_01JDQ4ZV3W6J8Q2T5N7K9M1B3C", Timestamp: now, Signature: good, Method: "GET", Path: "/", BodySHA256: emptyBody})
	want("unknown key", r, keyplane.VerifyNotFound, "")
	r, _ = f.ver.VerifySignature(ctx, &verify.SignedRequest{KeyID: "nonsense", Timestamp: now, Signature: good, Method: "GET", Path: "/", BodySHA256: emptyBody})
	want("malformed key id", r, keyplane.VerifyNotFound, "")
	plain, plainValue := f.key(t, false)
	r, _ = f.ver.VerifySignature(ctx, &verify.SignedRequest{KeyID: plain.ID, Timestamp: now, Signature: sign(plainValue, now, "GET", "/", emptyBody), Method: "GET", Path: "/", BodySHA256: emptyBody})
	want("a key that is not recoverable", r, keyplane.VerifyInvalidSignature, "not recoverable")

	sys := keyplane.System("test")
	if _, err := f.svc.UpdateAPIKey(ctx, sys, f.ws, k.ID, service.KeyPatch{Enabled: keyplane.Some(false)}); err != nil {
		t.Fatal(err)
	}
	ts, sig = fresh(2)
	want("disabled, good signature", signed(ts, "GET", "/a", emptyBody, sig), keyplane.VerifyDisabled, "")
	if _, err := f.svc.UpdateAPIKey(ctx, sys, f.ws, k.ID, service.KeyPatch{Enabled: keyplane.Some(true)}); err != nil {
		t.Fatal(err)
	}
	_, newValue, err := f.svc.RotateAPIKey(ctx, sys, f.ws, k.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	ts, sig = fresh(3)
	want("signed with the value rotated away", signed(ts, "GET", "/a", emptyBody, sig), keyplane.VerifyInvalidSignature, "bad signature")
	ts = now + 4
	want("signed with the new value", signed(ts, "GET", "/a", emptyBody, sign(newValue, ts, "GET", "/a", emptyBody)), keyplane.VerifyValid, "")
	if _, err := f.svc.RevokeAPIKey(ctx, sys, f.ws, k.ID); err != nil {
		t.Fatal(err)
	}
	ts = now + 5
	want("revoked", signed(ts, "GET", "/a", emptyBody, sign(newValue, ts, "GET", "/a", emptyBody)), keyplane.VerifyRevoked, "")
}

// jwtOf makes a compact JWT by hand: header and claims as given, signed HS256 with key unless alg
// says otherwise ("none": no signature).
func jwtOf(header, claims map[string]any, key string) string {
	enc := func(v any) string { b, _ := json.Marshal(v); return base64.RawURLEncoding.EncodeToString(b) }
	head := enc(header) + "." + enc(claims)
	if header["alg"] == "none" {
		return head + "."
	}
	h := sha256.New
	m := hmac.New(h, []byte(key))
	m.Write([]byte(head))
	return head + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func TestJWT(t *testing.T) {
	f := signedSetup(t, "sqlite")
	ctx := context.Background()
	k, value := f.key(t, true)
	other, otherValue := f.key(t, true)
	now := f.clk.now().Unix()
	hs := map[string]any{"alg": "HS256", "typ": "JWT", "kid": k.ID}
	check := func(what, token string, code keyplane.VerifyCode, reason string) verify.Result {
		t.Helper()
		r, err := f.ver.VerifyJWT(ctx, token, &keyplane.VerifyRequest{Permissions: []string{"orders:read"}})
		if err != nil {
			t.Fatal(err)
		}
		if r.Code != code || !strings.Contains(r.Reason, reason) {
			t.Errorf("%s: %s %q, want %s %q", what, r.Code, r.Reason, code, reason)
		}
		return r
	}
	r := check("a good token", jwtOf(hs, map[string]any{"sub": "user_1", "iat": now, "exp": now + 600}, value), keyplane.VerifyValid, "")
	if r.Claims["sub"] != "user_1" || r.Key == nil || r.Key.ID != k.ID {
		t.Errorf("claims %v, key %v", r.Claims, r.Key)
	}
	check("no iat, exp within the hour", jwtOf(hs, map[string]any{"exp": now + 3000}, value), keyplane.VerifyValid, "")
	check("alg none", jwtOf(map[string]any{"alg": "none", "kid": k.ID}, map[string]any{"exp": now + 60}, ""), keyplane.VerifyInvalidSignature, "alg")
	hs384 := map[string]any{"alg": "HS384", "kid": k.ID}
	check("alg HS384", jwtOf(hs384, map[string]any{"exp": now + 60}, value), keyplane.VerifyInvalidSignature, "alg")
	check("kid of no key", jwtOf(map[string]any{"alg": "HS256", "kid": "apk_01JDQ4ZV3W6J8Q2T5N7K9M1B3C"}, map[string]any{"exp": now + 60}, value), keyplane.VerifyNotFound, "")
	check("no kid", jwtOf(map[string]any{"alg": "HS256"}, map[string]any{"exp": now + 60}, value), keyplane.VerifyNotFound, "")
	check("kid of another key", jwtOf(map[string]any{"alg": "HS256", "kid": other.ID}, map[string]any{"exp": now + 60}, value), keyplane.VerifyInvalidSignature, "bad signature")
	check("signed with another value", jwtOf(hs, map[string]any{"exp": now + 60}, otherValue), keyplane.VerifyInvalidSignature, "bad signature")
	check("expired", jwtOf(hs, map[string]any{"iat": now - 600, "exp": now - 60}, value), keyplane.VerifyInvalidSignature, "expired")
	check("expired within the leeway", jwtOf(hs, map[string]any{"iat": now - 600, "exp": now - 20}, value), keyplane.VerifyValid, "")
	check("no exp", jwtOf(hs, map[string]any{"iat": now}, value), keyplane.VerifyInvalidSignature, "exp is required")
	check("lives too long", jwtOf(hs, map[string]any{"iat": now, "exp": now + 7200}, value), keyplane.VerifyInvalidSignature, "more than the 1h0m0s allowed")
	check("no iat, exp too far", jwtOf(hs, map[string]any{"exp": now + 7200}, value), keyplane.VerifyInvalidSignature, "more than the 1h0m0s allowed")
	check("nbf ahead", jwtOf(hs, map[string]any{"nbf": now + 120, "exp": now + 600}, value), keyplane.VerifyInvalidSignature, "not valid yet")
	check("nbf within the leeway", jwtOf(hs, map[string]any{"nbf": now + 20, "exp": now + 600}, value), keyplane.VerifyValid, "")
	check("iat ahead", jwtOf(hs, map[string]any{"iat": now + 120, "exp": now + 600}, value), keyplane.VerifyInvalidSignature, "iat")
	check("malformed", "not.a.jwt", keyplane.VerifyInvalidSignature, "malformed")
	check("two parts", "abc.def", keyplane.VerifyInvalidSignature, "malformed")
	plain, plainValue := f.key(t, false)
	check("a key that is not recoverable", jwtOf(map[string]any{"alg": "HS256", "kid": plain.ID}, map[string]any{"exp": now + 60}, plainValue), keyplane.VerifyInvalidSignature, "not recoverable")
	// The key's own checks come after the token's.
	if _, err := f.svc.RevokeAPIKey(ctx, keyplane.System("test"), f.ws, k.ID); err != nil {
		t.Fatal(err)
	}
	check("revoked key, good token", jwtOf(hs, map[string]any{"exp": now + 60}, value), keyplane.VerifyRevoked, "")
}
