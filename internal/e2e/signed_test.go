package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane/internal/testkit"
)

// TestSignedVerification: request signatures and JWTs over HTTP, as a platform's backend would send
// them, on both databases; both are logged under their own source.
func TestSignedVerification(t *testing.T) {
	eachDriver(t, func(t *testing.T, driver string) {
		n := start(t, driver, map[string]string{"KEYPLANE_LOG_FLUSH_INTERVAL": "20ms", "KEYPLANE_CONFIG": "../../examples/keyplane.json"})
		ws := n.workspace("signed", nil)
		k := n.key(ws, map[string]any{"name": "signer", "keyType": "secret", "recoverable": true, "permissions": []string{"orders:read"}})
		keyID, value := k["id"].(string), k["keyValue"].(string)

		// The client's recipe: hex(HMAC-SHA256(value, ts \n METHOD \n path \n hex(sha256(body)))).
		body := []byte(`{"amount":42}`)
		sum := sha256.Sum256(body)
		bodyHash := hex.EncodeToString(sum[:])
		ts := time.Now().Unix()
		mac := hmac.New(sha256.New, []byte(value))
		mac.Write([]byte(strconv.FormatInt(ts, 10) + "\n" + "POST" + "\n" + "/charges?expand=customer" + "\n" + bodyHash))
		sig := hex.EncodeToString(mac.Sum(nil))
		signed := map[string]any{"keyId": keyID, "timestamp": ts, "signature": sig, "method": "POST", "path": "/charges?expand=customer",
			"bodySha256": bodyHash, "permissions": []string{"orders:read"}, "ip": "203.0.113.7"}
		d := n.must(200, req{method: "POST", path: "/v1/verify/signature", cred: n.verifier, body: signed}).data()
		if d["code"] != "VALID" || d["keyId"] != keyID {
			t.Fatalf("signed request: %v", d)
		}
		d = n.must(200, req{method: "POST", path: "/v1/verify/signature", cred: n.verifier, body: signed}).data()
		if d["code"] != "INVALID_SIGNATURE" || !strings.Contains(d["reason"].(string), "replay") {
			t.Errorf("replayed: %v", d)
		}
		signed["path"] = "/charges"
		d = n.must(200, req{method: "POST", path: "/v1/verify/signature", cred: n.verifier, body: signed}).data()
		if d["code"] != "INVALID_SIGNATURE" || !strings.Contains(d["reason"].(string), "bad signature") {
			t.Errorf("tampered path: %v", d)
		}
		d = n.must(200, req{method: "POST", path: "/v1/verify/signature", cred: n.verifier, body: map[string]any{"keyId": "apk_01JDQ4ZV3W6J8Q2T5N7K9M1B3C",
			"timestamp": ts, "signature": sig, "method": "POST", "path": "/", "bodySha256": bodyHash}}).data()
		if d["code"] != "NOT_FOUND" || len(d) != 2 {
			t.Errorf("unknown key: %v", d)
		}
		for _, bad := range []map[string]any{
			{"keyId": keyID, "signature": sig, "method": "POST", "path": "/", "bodySha256": bodyHash},                     // no timestamp
			{"keyId": keyID, "timestamp": ts, "signature": sig, "method": "post", "path": "/", "bodySha256": bodyHash},    // method case
			{"keyId": keyID, "timestamp": ts, "signature": sig, "method": "POST", "path": "x", "bodySha256": bodyHash},    // path
			{"keyId": keyID, "timestamp": ts, "signature": sig, "method": "POST", "path": "/", "bodySha256": "abc"},       // digest
			{"keyId": keyID, "timestamp": "now", "signature": sig, "method": "POST", "path": "/", "bodySha256": bodyHash}, // type
		} {
			n.fails(400, "invalid_request", req{method: "POST", path: "/v1/verify/signature", cred: n.verifier, body: bad})
		}
		n.fails(403, "forbidden", req{method: "POST", path: "/v1/verify/signature", cred: n.admin, body: signed})

		// A JWT made by hand, HS256 with kid = the key's id.
		enc := func(v any) string { b, _ := json.Marshal(v); return base64.RawURLEncoding.EncodeToString(b) }
		head := enc(map[string]any{"alg": "HS256", "typ": "JWT", "kid": keyID}) + "." + enc(map[string]any{"sub": "customer_9", "iat": ts, "exp": ts + 300})
		mac = hmac.New(sha256.New, []byte(value))
		mac.Write([]byte(head))
		token := head + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
		d = n.must(200, req{method: "POST", path: "/v1/verify/jwt", cred: n.verifier, body: map[string]any{"token": token, "permissions": []string{"orders:read"}}}).data()
		if claims, _ := d["claims"].(map[string]any); d["code"] != "VALID" || claims["sub"] != "customer_9" {
			t.Fatalf("JWT: %v", d)
		}
		none := enc(map[string]any{"alg": "none", "kid": keyID}) + "." + enc(map[string]any{"exp": ts + 60}) + "."
		d = n.must(200, req{method: "POST", path: "/v1/verify/jwt", cred: n.verifier, body: map[string]any{"token": none}}).data()
		if d["code"] != "INVALID_SIGNATURE" || d["claims"] != nil {
			t.Errorf("alg none: %v", d)
		}
		n.fails(400, "invalid_request", req{method: "POST", path: "/v1/verify/jwt", cred: n.verifier, body: map[string]any{"token": ""}})

		// Logged under their sources, with the IP the request named.
		testkit.EventuallyNil(t, 5*time.Second, func() error {
			logs := n.must(200, req{method: "GET", path: "/v1/logs?keyId=" + keyID, cred: n.admin, ws: ws}).list()
			sources := map[string]int{}
			for _, l := range logs {
				e := l.(map[string]any)
				sources[e["source"].(string)]++
				if e["source"] == "signature" && e["code"] == "VALID" && e["ip"] != "203.0.113.7" {
					t.Errorf("signature log entry ip %v", e["ip"])
				}
			}
			if sources["signature"] != 3 || sources["jwt"] != 2 {
				return fmt.Errorf("logged sources %v; want 3 signature, 2 jwt", sources)
			}
			return nil
		})
	})
}
