package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane/internal/keyformat"
)

// A key value carries no id: {prefix}_{sk|pk}_{live|test}_{random}{checksum}, stored as a SHA-256
// digest. What a caller may know of a real key without holding it is its head and the start the API
// shows (prefix, type, environment and 4 random characters). A guess that shares all of that, and
// all but the last characters of the secret, with a good checksum, must be told apart from a value
// that was never issued neither by its answer nor by its timing: otherwise an attacker learns which
// starts are real and that a guess is close.
func TestKeyEnumeration(t *testing.T) {
	eachDriver(t, func(t *testing.T, driver string) {
		n := start(t, driver, nil)
		ws := n.workspace("enum", nil)
		knownKey := n.key(ws, map[string]any{"name": "known", "keyType": "secret", "permissions": []string{"api_keys:read"}})
		known := knownKey["keyValue"].(string)
		revoked := n.key(ws, map[string]any{"name": "revoked", "keyType": "secret", "permissions": []string{"api_keys:read"}})
		n.must(200, req{method: "DELETE", path: "/v1/api-keys/" + revoked["id"].(string), cred: n.admin, ws: ws})

		head := "kp_sk_live_"
		secret := known[len(head) : len(head)+keyformat.RandomLen]
		// nearMiss keeps the key's head, start and all but the last 4 random characters, with the
		// checksum made by keyformat itself, so that it passes every check before the store.
		nearMiss := func() string {
			for {
				h := head + secret[:keyformat.RandomLen-4] + randomBase62(4)
				if v := h + keyformat.Checksum(h); v != known {
					return v
				}
			}
		}
		unknown := func() string { return keyformat.Generate("kp", "sk", "live") }
		for _, v := range []string{nearMiss(), unknown()} {
			if k, err := keyformat.Parse("kp", v); err != nil || k.Root || k.Publishable || k.Environment != "live" {
				t.Fatalf("fixture %s does not parse as a live secret key: %v", v, err)
			}
		}
		if start, _ := knownKey["start"].(string); start == "" || !strings.HasPrefix(nearMiss(), start) {
			t.Fatal("the near miss does not share the start the API shows")
		}

		surfaces := []struct {
			name string
			make func(v string) req
		}{
			{"POST /v1/verify", func(v string) req {
				return req{method: "POST", path: "/v1/verify", cred: n.verifier, body: map[string]any{"key": v}}
			}},
			{"management auth", func(v string) req { return req{method: "GET", path: "/v1/api-keys", cred: v} }},
			{"forward auth", func(v string) req {
				return req{method: "GET", path: "/v1/auth", headers: map[string]string{"X-Keyplane-Root-Key": n.verifier, "Authorization": "Bearer " + v}}
			}},
		}

		// The same answer: status and body, but for the request id.
		for _, s := range surfaces {
			answers := map[string]string{}
			for name, v := range map[string]string{"unknown": unknown(), "near miss": nearMiss(), "revoked": revoked["keyValue"].(string)} {
				res := n.do(s.make(v))
				answers[name] = fmt.Sprintf("%d %s", res.Status, withoutRequestID(t, res))
			}
			if answers["unknown"] != answers["near miss"] {
				t.Errorf("%s: an unknown key answers %s, a near miss of a real one %s", s.name, answers["unknown"], answers["near miss"])
			}
			if s.name != "POST /v1/verify" && answers["unknown"] != answers["revoked"] {
				// Verification tells REVOKED, by contract; a credential check says no more than 401.
				t.Errorf("%s: an unknown key answers %s, a revoked one %s", s.name, answers["unknown"], answers["revoked"])
			}
			t.Logf("%s: %s", s.name, answers["unknown"])
		}

		// The same time. Each try uses fresh values, so that neither is answered from the cache of
		// unknown digests, and the two kinds alternate (in both orders) so that the machine's load
		// weighs on both alike. Round trips over a plain keep-alive client.
		plain := &http.Client{Timeout: 10 * time.Second}
		const tries, warm = 200, 20
		for _, s := range surfaces {
			var tu, tn []time.Duration
			for i := 0; i < tries+warm; i++ {
				u, m := s.make(unknown()), s.make(nearMiss())
				var du, dm time.Duration
				if i%2 == 0 {
					du, dm = roundTrip(t, plain, n, u), roundTrip(t, plain, n, m)
				} else {
					dm, du = roundTrip(t, plain, n, m), roundTrip(t, plain, n, u)
				}
				if i >= warm {
					tu, tn = append(tu, du), append(tn, dm)
				}
			}
			mu, mn := median(tu), median(tn)
			// Loose enough for a loaded 2-core machine; tight enough for a password hash, or a store
			// read, done only for a value whose start is real.
			allowed := max(min(mu, mn), 200*time.Microsecond)
			t.Logf("%s: median %s for unknown keys, %s for near misses (%d tries each)", s.name, mu, mn, tries)
			if d := max(mu, mn) - min(mu, mn); d >= allowed {
				t.Errorf("%s: medians %s (unknown) and %s (near miss) differ by %s, more than %s", s.name, mu, mn, d, allowed)
			}
		}
	})
}

// roundTrip times one request, from sending to the last byte of the answer.
func roundTrip(t *testing.T, c *http.Client, n *node, r req) time.Duration {
	t.Helper()
	var body io.Reader
	if r.body != nil {
		b, _ := json.Marshal(r.body)
		body = bytes.NewReader(b)
	}
	hr, err := http.NewRequest(r.method, n.url+r.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if r.cred != "" {
		hr.Header.Set("Authorization", "Bearer "+r.cred)
	}
	if body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	for k, v := range r.headers {
		hr.Header.Set(k, v)
	}
	start := time.Now()
	res, err := c.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	d := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK && res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("%s %s: %d", r.method, r.path, res.StatusCode)
	}
	return d
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// withoutRequestID is the answer's body with error.requestId, which differs on every request, taken
// out.
func withoutRequestID(t *testing.T, r *resp) string {
	t.Helper()
	if e, ok := r.Body["error"].(map[string]any); ok {
		if e["requestId"] != r.Header.Get("X-Request-Id") {
			t.Errorf("error.requestId %v, X-Request-Id %s", e["requestId"], r.Header.Get("X-Request-Id"))
		}
		delete(e, "requestId")
	}
	return fmtJSON(r.Body)
}

func randomBase62(n int) string {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)] // the bias does not matter for a guess
	}
	return string(b)
}
