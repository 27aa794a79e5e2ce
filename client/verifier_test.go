package client_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane/client"
	"github.com/keyplane/keyplane/internal/testkit"
)

// TestVerify: POST /v1/verify's outcomes, typed.
func TestVerify(t *testing.T) {
	ctx := context.Background()
	w, ws := newWorkspace(t, "verify")
	v := newVerifier(shared.Verify)
	k := mustKey(t, w, client.CreateAPIKeyRequest{Name: "Orders", KeyType: client.KeyTypeSecret, Permissions: []string{"orders:read"},
		Meta: json.RawMessage(`{"plan":"pro"}`)})

	res, err := v.Verify(ctx, k.KeyValue, client.VerifyRequest{Permissions: []string{"orders:read"}, IP: "198.51.100.7", Environment: client.EnvLive})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Valid || res.Code != client.VerifyValid || res.KeyID != k.ID || res.WorkspaceID != ws.ID || res.Name != "Orders" ||
		res.KeyType != client.KeyTypeSecret || res.Environment != client.EnvLive || !slices.Equal(res.Permissions, []string{"orders:read"}) ||
		string(res.Meta) != `{"plan":"pro"}` || res.ExpiresAt != nil || res.RateLimit != nil || !res.HasPermission("orders:read") || res.HasPermission("x") {
		t.Fatalf("VALID: %+v", res)
	}
	res, err = v.Verify(ctx, k.KeyValue, client.VerifyRequest{Permissions: []string{"orders:read", "orders:write"}})
	if err != nil || res.Valid || res.Code != client.VerifyInsufficientPermissions || res.KeyID != k.ID {
		t.Fatalf("INSUFFICIENT_PERMISSIONS: %+v, %v", res, err)
	}
	res, err = v.Verify(ctx, k.KeyValue, client.VerifyRequest{Environment: client.EnvTest})
	if err != nil || res.Code != client.VerifyForbidden {
		t.Fatalf("FORBIDDEN: %+v, %v", res, err)
	}
	res, err = v.Verify(ctx, "kp_sk_live_nope", client.VerifyRequest{})
	if err != nil || res.Valid || res.Code != client.VerifyNotFound || res.KeyID != "" || res.Meta != nil {
		t.Fatalf("NOT_FOUND: %+v, %v", res, err)
	}

	tk := mustKey(t, w, client.CreateAPIKeyRequest{Name: "Test", KeyType: client.KeyTypeSecret, Environment: client.EnvTest})
	res, err = v.Verify(ctx, tk.KeyValue, client.VerifyRequest{})
	if err != nil || !res.Valid || res.ExpiresAt == nil || !res.ExpiresAt.Equal(*tk.ExpiresAt) || res.Environment != client.EnvTest {
		t.Fatalf("test key: %+v, %v", res, err)
	}

	// A rate-limited key answers its limit's state, then RATE_LIMITED.
	rl := mustKey(t, w, client.CreateAPIKeyRequest{Name: "Limited", KeyType: client.KeyTypeSecret, RateLimit: &client.RateLimit{Limit: 2, WindowMs: 60000}})
	for i, want := range []client.VerifyCode{client.VerifyValid, client.VerifyValid, client.VerifyRateLimited} {
		res, err = v.Verify(ctx, rl.KeyValue, client.VerifyRequest{})
		if err != nil || res.Code != want || res.RateLimit == nil || res.RateLimit.Limit != 2 || res.RateLimit.Remaining != int64(max(0, 1-i)) ||
			!res.RateLimit.ResetAt.After(time.Now()) {
			t.Fatalf("limited #%d: %+v (%+v), %v", i+1, res, res.RateLimit, err)
		}
	}

	// Refusals of the call itself are *Error.
	_, err = newVerifier(shared.Admin).Verify(ctx, k.KeyValue, client.VerifyRequest{})
	if e := apiError(t, err); e.StatusCode != 403 {
		t.Errorf("admin root key verifying: %+v", e)
	}
	_, err = v.Verify(ctx, k.KeyValue, client.VerifyRequest{IP: "not an ip"})
	if e := apiError(t, err); e.StatusCode != 400 {
		t.Errorf("bad ip: %+v", e)
	} else if _, ok := e.Field("ip"); !ok {
		t.Errorf("no detail on ip: %+v", e)
	}
	_, err = v.Verify(ctx, "", client.VerifyRequest{})
	if e := apiError(t, err); e.StatusCode != 400 {
		t.Errorf("empty key: %+v", e)
	}
}

// TestSign checks Sign against the documented recipe's known parts.
func TestSign(t *testing.T) {
	sig, sum := client.Sign("kp_sk_live_x", 1700000000, "POST", "/charges?expand=customer", nil)
	if sum != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Errorf("SHA-256 of an empty body: %s", sum)
	}
	m := hmac.New(sha256.New, []byte("kp_sk_live_x"))
	m.Write([]byte("1700000000\nPOST\n/charges?expand=customer\n" + sum))
	if want := m.Sum(nil); sig != hex.EncodeToString(want) || len(sig) != 64 {
		t.Errorf("signature %s, want %x", sig, want)
	}
	sig2, sum2 := client.Sign("kp_sk_live_x", 1700000000, "POST", "/charges?expand=customer", []byte(`{"amount":42}`))
	if sig2 == sig || sum2 == sum {
		t.Error("the body is not signed")
	}
}

// TestVerifySignatureAndJWT: signed requests and HS256 JWTs made with a recoverable key.
func TestVerifySignatureAndJWT(t *testing.T) {
	ctx := context.Background()
	w, _ := newWorkspace(t, "signed")
	v := newVerifier(shared.Verify)
	k := mustKey(t, w, client.CreateAPIKeyRequest{Name: "Signer", KeyType: client.KeyTypeSecret, Recoverable: true, Permissions: []string{"orders:read"}})

	body := []byte(`{"amount":42}`)
	ts := time.Now().Unix()
	sig, sum := client.Sign(k.KeyValue, ts, "POST", "/charges?expand=customer", body)
	req := client.SignatureRequest{KeyID: k.ID, Timestamp: ts, Signature: sig, Method: "POST", Path: "/charges?expand=customer",
		BodySHA256: sum, Permissions: []string{"orders:read"}, IP: "203.0.113.7"}
	res, err := v.VerifySignature(ctx, req)
	if err != nil || !res.Valid || res.KeyID != k.ID || res.Reason != "" {
		t.Fatalf("signed request: %+v, %v", res, err)
	}
	res, err = v.VerifySignature(ctx, req)
	if err != nil || res.Valid || res.Code != client.VerifyInvalidSignature || !strings.Contains(res.Reason, "replay") {
		t.Fatalf("replay: %+v, %v", res, err)
	}
	req.Path = "/charges"
	res, err = v.VerifySignature(ctx, req)
	if err != nil || res.Code != client.VerifyInvalidSignature || !strings.Contains(res.Reason, "bad signature") {
		t.Fatalf("tampered path: %+v, %v", res, err)
	}
	stale := time.Now().Add(-10 * time.Minute).Unix()
	sig, sum = client.Sign(k.KeyValue, stale, "GET", "/", nil)
	res, err = v.VerifySignature(ctx, client.SignatureRequest{KeyID: k.ID, Timestamp: stale, Signature: sig, Method: "GET", Path: "/", BodySHA256: sum})
	if err != nil || res.Code != client.VerifyInvalidSignature || !strings.Contains(res.Reason, "stale") {
		t.Fatalf("stale: %+v, %v", res, err)
	}
	_, err = v.VerifySignature(ctx, client.SignatureRequest{KeyID: k.ID, Timestamp: ts, Signature: sig, Method: "get", Path: "/", BodySHA256: sum})
	if e := apiError(t, err); e.StatusCode != 400 {
		t.Errorf("lower-case method: %+v", e)
	}

	// JWTs, made by hand: HS256, kid = the key's id, signed with its value.
	enc := func(v any) string { b, _ := json.Marshal(v); return base64.RawURLEncoding.EncodeToString(b) }
	jwt := func(header, claims map[string]any) string {
		head := enc(header) + "." + enc(claims)
		m := hmac.New(sha256.New, []byte(k.KeyValue))
		m.Write([]byte(head))
		return head + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
	now := time.Now().Unix()
	token := jwt(map[string]any{"alg": "HS256", "typ": "JWT", "kid": k.ID}, map[string]any{"sub": "customer_9", "iat": now, "exp": now + 300})
	res, err = v.VerifyJWT(ctx, token, client.VerifyJWTRequest{Permissions: []string{"orders:read"}})
	if err != nil || !res.Valid || res.KeyID != k.ID {
		t.Fatalf("JWT: %+v, %v", res, err)
	}
	var claims struct {
		Sub string `json:"sub"`
		Exp int64  `json:"exp"`
	}
	if err := json.Unmarshal(res.Claims, &claims); err != nil || claims.Sub != "customer_9" || claims.Exp != now+300 {
		t.Errorf("claims %s: %+v, %v", res.Claims, claims, err)
	}
	res, err = v.VerifyJWT(ctx, token, client.VerifyJWTRequest{Permissions: []string{"orders:write"}})
	if err != nil || res.Code != client.VerifyInsufficientPermissions {
		t.Errorf("JWT without the permission: %+v, %v", res, err)
	}
	expired := jwt(map[string]any{"alg": "HS256", "kid": k.ID}, map[string]any{"iat": now - 600, "exp": now - 300})
	res, err = v.VerifyJWT(ctx, expired, client.VerifyJWTRequest{})
	if err != nil || res.Code != client.VerifyInvalidSignature || !strings.Contains(res.Reason, "expired") || res.Claims != nil {
		t.Errorf("expired JWT: %+v, %v", res, err)
	}
	none := enc(map[string]any{"alg": "none", "kid": k.ID}) + "." + enc(map[string]any{"exp": now + 60}) + "."
	res, err = v.VerifyJWT(ctx, none, client.VerifyJWTRequest{})
	if err != nil || res.Code != client.VerifyInvalidSignature || res.Reason == "" {
		t.Errorf("alg none: %+v, %v", res, err)
	}
	res, err = v.VerifyJWT(ctx, jwt(map[string]any{"alg": "HS256", "kid": "apk_01JDQ4ZV3W6J8Q2T5N7K9M1B3C"}, map[string]any{"exp": now + 60}), client.VerifyJWTRequest{})
	if err != nil || res.Code != client.VerifyNotFound {
		t.Errorf("unknown kid: %+v, %v", res, err)
	}

	// Both are logged under their own sources.
	testkit.Eventually(t, 5*time.Second, "signature and jwt entries", func() bool {
		s, err1 := w.ListRequestLogs(ctx, client.ListRequestLogsParams{Source: client.SourceSignature})
		j, err2 := w.ListRequestLogs(ctx, client.ListRequestLogsParams{Source: client.SourceJWT})
		return err1 == nil && err2 == nil && len(s.Items) >= 1 && len(j.Items) >= 1
	})
}
