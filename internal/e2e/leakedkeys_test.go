package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane/internal/keyformat"
	"github.com/keyplane/keyplane/internal/testkit"
)

// github is a stand-in for GitHub's secret scanning: a P-256 key whose public half is in a keys file
// of GitHub's shape, which serve is given with --github-scanning-keys.
type github struct {
	id   string
	key  *ecdsa.PrivateKey
	file string
}

func newGitHub(t *testing.T) *github {
	t.Helper()
	g := &github{id: "e2e-current"}
	var err error
	if g.key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pemOf := func(k *ecdsa.PrivateKey) string {
		der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	}
	file := map[string]any{"public_keys": []map[string]any{
		{"key_identifier": "e2e-old", "key": pemOf(other), "is_current": false},
		{"key_identifier": g.id, "key": pemOf(g.key), "is_current": true},
	}}
	b, _ := json.Marshal(file)
	g.file = filepath.Join(t.TempDir(), "github-keys.json")
	if err := os.WriteFile(g.file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return g
}

func (g *github) sign(t *testing.T, body []byte) string {
	t.Helper()
	sum := sha256.Sum256(body)
	sig, err := ecdsa.SignASN1(rand.Reader, g.key, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

type ghToken struct {
	Token  string `json:"token"`
	Type   string `json:"type"`
	URL    string `json:"url"`
	Source string `json:"source"`
}

type ghLabel struct {
	TokenHash string `json:"token_hash"`
	TokenType string `json:"token_type"`
	Label     string `json:"label"`
}

// send posts a batch signed as GitHub does, with headers as given (nil: the right ones).
func (g *github) send(t *testing.T, n *node, body []byte, headers map[string]string) *resp {
	t.Helper()
	if headers == nil {
		headers = map[string]string{"Github-Public-Key-Identifier": g.id, "Github-Public-Key-Signature": g.sign(t, body)}
	}
	return n.do(req{method: "POST", path: "/v1/secret-scanning/github", body: body, headers: headers})
}

func (g *github) report(t *testing.T, n *node, tokens []ghToken) []ghLabel {
	t.Helper()
	body, _ := json.Marshal(tokens)
	res := g.send(t, n, body, nil)
	if res.Status != 200 {
		t.Fatalf("GitHub batch: %d %s", res.Status, res.Raw)
	}
	var out []ghLabel
	if err := json.Unmarshal(res.Raw, &out); err != nil {
		t.Fatalf("GitHub's answer is not its array: %v: %s", err, res.Raw)
	}
	if len(out) != len(tokens) {
		t.Fatalf("%d labels for %d tokens", len(out), len(tokens))
	}
	return out
}

func hexSum(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// leakAudit returns the api_key.leaked audit entries of ws.
func leakAudit(n *node, ws string) []map[string]any {
	var out []map[string]any
	for _, e := range n.must(200, req{method: "GET", path: "/v1/audit-logs?action=api_key.leaked&limit=100", cred: n.admin, ws: ws}).list() {
		out = append(out, e.(map[string]any))
	}
	return out
}

// leakEvents counts the distinct api_key.leaked events queued for the endpoint: each event is written
// with its delivery in the same transaction, so the count is exact as soon as the report answered.
func leakEvents(n *node, ws, hook string) int {
	seen := map[string]bool{}
	for _, d := range n.must(200, req{method: "GET", path: "/v1/webhooks/" + hook + "/deliveries?limit=100", cred: n.admin, ws: ws}).list() {
		m := d.(map[string]any)
		if m["eventType"] == "api_key.leaked" {
			seen[m["eventId"].(string)] = true
		}
	}
	return len(seen)
}

var leakEnv = map[string]string{"KEYPLANE_WEBHOOK_ALLOW_PRIVATE": "true"}

func withEnv(base map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// TestGitHubSecretScanning: a batch signed with the key GitHub's file names is labelled right, token by
// token, and the secret keys in it are revoked before the answer; a bad signature, an unknown key
// identifier or a body changed after signing is 401 and does nothing; the same token again changes
// nothing more.
func TestGitHubSecretScanning(t *testing.T) {
	eachDriver(t, func(t *testing.T, driver string) {
		g := newGitHub(t)
		n := start(t, driver, withEnv(leakEnv, "KEYPLANE_GITHUB_SCANNING_KEYS", g.file))
		ws := n.workspace("scanned", map[string]any{"maxKeys": 100})
		rc := newReceiver(t, nil)
		hook := n.must(201, req{method: "POST", path: "/v1/webhooks", cred: n.admin, ws: ws,
			body: map[string]any{"url": rc.URL, "eventTypes": []string{"api_key.leaked"}}}).data()["id"].(string)

		// 100 tokens: 30 secret keys' values, 10 publishable ones (two keys), 30 well-formed values no
		// key has, 30 malformed.
		var tokens []ghToken
		want := map[int]string{}
		secretIDs := map[string]string{}
		add := func(value, label string) {
			want[len(tokens)] = label
			tokens = append(tokens, ghToken{Token: value, Type: "keyplane_api_key", URL: fmt.Sprintf("https://github.com/o/r/blob/c/f%d.env", len(tokens)), Source: "commit"})
		}
		for i := range 30 {
			k := n.key(ws, map[string]any{"name": fmt.Sprintf("secret %d", i), "keyType": "secret"})
			secretIDs[k["keyValue"].(string)] = k["id"].(string)
			add(k["keyValue"].(string), "true_positive")
		}
		pubs := []string{
			n.key(ws, map[string]any{"name": "pub live", "keyType": "publishable"})["keyValue"].(string),
			n.key(ws, map[string]any{"name": "pub test", "keyType": "publishable", "environment": "test"})["keyValue"].(string),
		}
		for i := range 10 {
			add(pubs[i%2], "false_positive")
		}
		for i := range 30 {
			env := []string{"live", "test"}[i%2]
			add(keyformat.Generate("kp", "sk", env), "false_positive")
		}
		some := keyformat.Generate("kp", "sk", "live")
		malformed := []string{"", "kp", "kp_sk_live_", some[:len(some)-1] + "!", some[:len(some)-1], some + "0",
			strings.ToUpper(some), "xx" + some[2:], strings.Replace(some, "_sk_", "_xk_", 1), strings.Repeat("a", 5000),
			"kp_root_" + strings.Repeat("A", 38), "\x00\u00e9\u202e", "ghp_" + strings.Repeat("A", 36), keyformat.GenerateRoot("kp")}
		for i := range 30 {
			v := malformed[i%len(malformed)]
			if i >= len(malformed) {
				// A real key's value with one character changed: its checksum fails.
				b := []byte(some)
				b[12+i%20] ^= 1
				v = string(b)
			}
			add(v, "false_positive")
		}
		if len(tokens) != 100 {
			t.Fatalf("%d tokens", len(tokens))
		}

		// Refused batches first: each 401, and nothing done.
		body, _ := json.Marshal(tokens)
		good := g.sign(t, body)
		other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		sum := sha256.Sum256(body)
		forged, _ := ecdsa.SignASN1(rand.Reader, other, sum[:])
		changed := []byte(strings.Replace(string(body), "commit", "commiT", 1))
		for name, c := range map[string]struct {
			body    []byte
			headers map[string]string
		}{
			"no headers":              {body, map[string]string{}},
			"no signature":            {body, map[string]string{"Github-Public-Key-Identifier": g.id}},
			"another key's signature": {body, map[string]string{"Github-Public-Key-Identifier": g.id, "Github-Public-Key-Signature": base64.StdEncoding.EncodeToString(forged)}},
			"the old key's id":        {body, map[string]string{"Github-Public-Key-Identifier": "e2e-old", "Github-Public-Key-Signature": good}},
			"unknown key identifier":  {body, map[string]string{"Github-Public-Key-Identifier": "nope", "Github-Public-Key-Signature": good}},
			"body changed after":      {changed, map[string]string{"Github-Public-Key-Identifier": g.id, "Github-Public-Key-Signature": good}},
			"signature not base64":    {body, map[string]string{"Github-Public-Key-Identifier": g.id, "Github-Public-Key-Signature": "%%%"}},
			"a keyplane credential":   {body, map[string]string{"Authorization": "Bearer " + n.admin}},
		} {
			res := g.send(t, n, c.body, c.headers)
			checkError(t, "GitHub batch, "+name, res, 401, "unauthorized", "")
		}
		for v := range secretIDs {
			if c := n.code(v); c != "VALID" {
				t.Fatalf("after refused batches a reported key answers %s", c)
			}
		}
		if a := leakAudit(n, ws); len(a) != 0 {
			t.Fatalf("refused batches wrote %d audit entries", len(a))
		}

		labels := g.report(t, n, tokens)
		for i, l := range labels {
			if l.Label != want[i] || l.TokenHash != hexSum(tokens[i].Token) || l.TokenType != "keyplane_api_key" {
				t.Errorf("token %d (%.20q): %+v, want label %s and hash %s", i, tokens[i].Token, l, want[i], hexSum(tokens[i].Token))
			}
		}
		// Revoked before the answer: this node answers REVOKED at once.
		for v := range secretIDs {
			if c := n.code(v); c != "REVOKED" {
				t.Errorf("a reported secret key answers %s, want REVOKED", c)
			}
		}
		for _, p := range pubs {
			if c := n.code(p); c != "VALID" {
				t.Errorf("a reported publishable key answers %s, want VALID", c)
			}
		}
		audit := leakAudit(n, ws)
		if len(audit) != 30 {
			t.Fatalf("%d api_key.leaked audit entries, want 30", len(audit))
		}
		for _, e := range audit {
			actor := e["actor"].(map[string]any)
			raw := fmtJSON(e)
			if actor["type"] != "system" || !strings.Contains(raw, "https://github.com/o/r/blob/c/f") || !strings.Contains(raw, `"revoked"`) {
				t.Fatalf("audit entry %s: want actor system, the url and the action", raw)
			}
		}
		if got := leakEvents(n, ws, hook); got != 30 {
			t.Fatalf("%d api_key.leaked events, want 30", got)
		}
		// The chain still checks out.
		if v := n.must(200, req{method: "GET", path: "/v1/audit-logs/verify", cred: n.admin, ws: ws}).data(); v["valid"] != true {
			t.Fatalf("audit chain: %v", v)
		}

		// The same token again, alone and twice in one batch: the same label, nothing more done.
		again := g.report(t, n, []ghToken{tokens[0], tokens[0]})
		for _, l := range again {
			if l.Label != "true_positive" {
				t.Errorf("a token reported again: %+v", l)
			}
		}
		if a := leakAudit(n, ws); len(a) != 30 {
			t.Errorf("%d audit entries after a token was reported again, want 30", len(a))
		}
		if got := leakEvents(n, ws, hook); got != 30 {
			t.Errorf("%d events after a token was reported again, want 30", got)
		}

		// Nasty bodies, signed: not JSON, an object, too many tokens, too large: 4xx, never 500.
		many := make([]ghToken, 1001)
		manyBody, _ := json.Marshal(many)
		for name, c := range map[string]struct {
			body   []byte
			status int
		}{
			"not JSON":       {[]byte("nope"), 400},
			"an object":      {[]byte(`{"token":"x"}`), 400},
			"1001 tokens":    {manyBody, 400},
			"over 1 MiB":     {[]byte(`[{"token":"` + strings.Repeat("a", 1<<20) + `"}]`), 413},
			"an empty array": {[]byte(`[]`), 200},
		} {
			res := g.send(t, n, c.body, nil)
			if res.Status != c.status {
				t.Errorf("%s: %d, want %d: %.200s", name, res.Status, c.status, res.Raw)
			}
		}
	})
}

// TestGitHubScanningOff: without --github-scanning-keys the endpoint answers 404 to everything, a
// well-signed batch included; serve refuses a keys file it cannot read.
func TestGitHubScanningOff(t *testing.T) {
	g := newGitHub(t)
	n := start(t, "sqlite", nil)
	ws := n.workspace("off", nil)
	k := n.key(ws, map[string]any{"name": "k", "keyType": "secret"})
	body, _ := json.Marshal([]ghToken{{Token: k["keyValue"].(string)}})
	checkError(t, "signed batch, no keys configured", g.send(t, n, body, nil), 404, "not_found", "")
	checkError(t, "unsigned batch, no keys configured", g.send(t, n, body, map[string]string{}), 404, "not_found", "")
	if c := n.code(k["keyValue"].(string)); c != "VALID" {
		t.Fatalf("the key answers %s", c)
	}

	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"public_keys":[]}`), 0o600)
	dataDir, dbURL := config(t, "sqlite")
	if out, err := run(t, dataDir, dbURL, "", "serve", "--addr", "127.0.0.1:0", "--github-scanning-keys", bad); err == nil {
		t.Fatalf("serve started with a keys file holding no key: %s", out)
	}
}

// TestReportLeaks: POST /v1/leaks applies each workspace's leakPolicy (revoke, disable, notify), counts
// a rotated value in its grace period as the key, answers per value, and a value reported again
// changes nothing more.
func TestReportLeaks(t *testing.T) {
	n := start(t, "sqlite", leakEnv)
	policies := map[string]string{}
	for _, p := range []string{"revoke", "disable", "notify"} {
		policies[p] = n.workspace("leaky-"+p, nil)
	}
	// leakPolicy is a workspace setting: default revoke, set on create or PATCH, validated.
	ws := n.must(200, req{method: "GET", path: "/v1/workspaces/" + policies["revoke"], cred: n.admin}).data()
	if ws["leakPolicy"] != "revoke" {
		t.Fatalf("default leakPolicy: %v", ws["leakPolicy"])
	}
	for _, p := range []string{"disable", "notify"} {
		got := n.must(200, req{method: "PATCH", path: "/v1/workspaces/" + policies[p], cred: n.admin, body: map[string]any{"leakPolicy": p}}).data()
		if got["leakPolicy"] != p {
			t.Fatalf("PATCH leakPolicy %s: %v", p, got["leakPolicy"])
		}
	}
	for _, bad := range []any{"delete", "", nil, 3, "REVOKE"} {
		res := n.fails(400, "invalid_request", req{method: "PATCH", path: "/v1/workspaces/" + policies["revoke"], cred: n.admin, body: map[string]any{"leakPolicy": bad}})
		if f := res.detailFields(); len(f) != 1 || f[0] != "leakPolicy" {
			t.Errorf("leakPolicy %v: details %v", bad, f)
		}
	}
	n.fails(400, "invalid_request", req{method: "POST", path: "/v1/workspaces", cred: n.admin, body: map[string]any{"name": "X", "slug": "x", "leakPolicy": "nope"}})
	if got := n.must(201, req{method: "POST", path: "/v1/workspaces", cred: n.admin, body: map[string]any{"name": "Y", "slug": "y", "leakPolicy": "notify"}}).data(); got["leakPolicy"] != "notify" {
		t.Fatalf("create with leakPolicy notify: %v", got["leakPolicy"])
	}

	keys := map[string]map[string]any{}
	for p, ws := range policies {
		keys[p] = n.key(ws, map[string]any{"name": "leaky " + p, "keyType": "secret"})
	}
	// A rotated key whose old value is still in its grace period: the old value is the key.
	rot := n.key(policies["revoke"], map[string]any{"name": "rotated", "keyType": "secret"})
	rotated := n.must(200, req{method: "POST", path: "/v1/api-keys/" + rot["id"].(string) + "/rotate", cred: n.admin, ws: policies["revoke"],
		body: map[string]any{"expireOldAfterSeconds": 3600}}).data()
	pub := n.key(policies["revoke"], map[string]any{"name": "pub", "keyType": "publishable"})
	unknown := keyformat.Generate("kp", "sk", "live")

	values := []string{keys["revoke"]["keyValue"].(string), keys["disable"]["keyValue"].(string), keys["notify"]["keyValue"].(string),
		rot["keyValue"].(string), pub["keyValue"].(string), unknown, "garbage"}
	res := n.must(200, req{method: "POST", path: "/v1/leaks", cred: n.admin, body: map[string]any{"keys": values, "source": "our-scanner", "url": "https://paste.example/abc"}}).list()
	type result struct{ found, keyID, action any }
	want := []result{
		{true, keys["revoke"]["id"], "revoked"}, {true, keys["disable"]["id"], "disabled"}, {true, keys["notify"]["id"], "notified"},
		{true, rot["id"], "revoked"}, {true, pub["id"], "none"}, {false, nil, "none"}, {false, nil, "none"},
	}
	for i, r := range res {
		m := r.(map[string]any)
		if got := (result{m["found"], m["keyId"], m["action"]}); got != want[i] {
			t.Errorf("value %d: %v, want %v", i, got, want[i])
		}
	}
	for v, c := range map[string]string{values[0]: "REVOKED", values[1]: "DISABLED", values[2]: "VALID", values[3]: "REVOKED",
		rotated["keyValue"].(string): "REVOKED", values[4]: "VALID"} {
		if got := n.code(v); got != c {
			t.Errorf("after the report a value answers %s, want %s", got, c)
		}
	}
	for p, ws := range policies {
		a := leakAudit(n, ws)
		if len(a) == 0 || a[0]["actor"].(map[string]any)["type"] != "system" || !strings.Contains(fmtJSON(a[0]), "https://paste.example/abc") {
			t.Fatalf("%s: audit %v", p, a)
		}
	}

	// Again: already_reported, nothing more (one audit entry per key still).
	res = n.must(200, req{method: "POST", path: "/v1/leaks", cred: n.admin, body: map[string]any{"keys": values[:3]}}).list()
	for i, r := range res {
		if a := r.(map[string]any)["action"]; a != "already_reported" {
			t.Errorf("value %d again: %v", i, a)
		}
	}
	for p, ws := range policies {
		want := 1
		if p == "revoke" {
			want = 2 // the rotated key's too
		}
		if a := leakAudit(n, ws); len(a) != want {
			t.Errorf("%s: %d audit entries after a second report, want %d", p, len(a), want)
		}
	}
	// The owner may enable a key disabled for a leak again (that is what disable is for): a repeat
	// report of the same value does not undo that.
	n.must(200, req{method: "PATCH", path: "/v1/api-keys/" + keys["disable"]["id"].(string), cred: n.admin, ws: policies["disable"], body: map[string]any{"enabled": true}})
	n.must(200, req{method: "POST", path: "/v1/leaks", cred: n.admin, body: map[string]any{"keys": values[1:2]}})
	if c := n.code(values[1]); c != "VALID" {
		t.Errorf("a key enabled again after its leak answers %s", c)
	}

	// Who may report, and what is refused.
	wsKey := n.key(policies["notify"], map[string]any{"name": "integration", "keyType": "secret", "permissions": []string{"api_keys:read", "api_keys:write"}})
	n.fails(403, "forbidden", req{method: "POST", path: "/v1/leaks", cred: wsKey["keyValue"].(string), body: map[string]any{"keys": []string{values[0]}}})
	n.fails(401, "unauthorized", req{method: "POST", path: "/v1/leaks", body: map[string]any{"keys": []string{values[0]}}})
	many := make([]string, 1001)
	for i := range many {
		many[i] = "x"
	}
	for name, body := range map[string]any{
		"no keys":       map[string]any{"keys": []string{}},
		"keys missing":  map[string]any{"source": "x"},
		"1001 values":   map[string]any{"keys": many},
		"an empty one":  map[string]any{"keys": []string{""}},
		"unknown field": map[string]any{"keys": []string{"x"}, "nope": 1},
		"bad url":       map[string]any{"keys": []string{"x"}, "url": strings.Repeat("u", 3000)},
		"control chars": map[string]any{"keys": []string{"x"}, "source": "a\x00b"},
	} {
		if res := n.do(req{method: "POST", path: "/v1/leaks", cred: n.admin, body: body}); res.Status != 400 || res.errCode() != "invalid_request" {
			t.Errorf("%s: %d %s", name, res.Status, res.Raw)
		}
	}
	if c := n.code(wsKey["keyValue"].(string)); c != "VALID" {
		t.Fatalf("the integration key answers %s", c)
	}
}

// TestLeakedKeyOnEveryNode: a key revoked by a leak report on one node answers REVOKED on another
// within a second, by the change path revokes already take (PostgreSQL's NOTIFY); the cache TTL is an
// hour, so nothing else could make the other node see it.
func TestLeakedKeyOnEveryNode(t *testing.T) {
	g := newGitHub(t)
	env := map[string]string{"KEYPLANE_CACHE_TTL": "1h", "KEYPLANE_GITHUB_SCANNING_KEYS": g.file}
	a := start(t, "postgres", env)
	b := &node{t: t, dataDir: a.dataDir, dbURL: a.dbURL, admin: a.admin, verifier: a.verifier, stdout: &syncBuffer{}, logs: &syncBuffer{}, client: a.client}
	b.serve(env)
	t.Cleanup(func() { b.stop() })
	ws := a.workspace("two-nodes", nil)
	a.must(200, req{method: "PATCH", path: "/v1/workspaces/" + ws, cred: a.admin, body: map[string]any{"leakPolicy": "disable"}})
	for name, report := range map[string]func(value string){
		"GitHub": func(v string) {
			g.report(t, a, []ghToken{{Token: v, Type: "t", URL: "https://github.com/x", Source: "commit"}})
		},
		"POST /v1/leaks": func(v string) {
			a.must(200, req{method: "POST", path: "/v1/leaks", cred: a.admin, body: map[string]any{"keys": []string{v}}})
		},
	} {
		k := a.key(ws, map[string]any{"name": name, "keyType": "secret"})
		v := k["keyValue"].(string)
		if c := b.code(v); c != "VALID" { // now cached on b
			t.Fatalf("%s: the other node answers %s", name, c)
		}
		report(v)
		start := time.Now()
		testkit.EventuallyNil(t, time.Second, func() error {
			if got := b.code(v); got != "DISABLED" {
				return fmt.Errorf("%s: the other node still answers %s", name, got)
			}
			return nil
		})
		t.Logf("%s: seen by the other node after %s", name, time.Since(start).Round(time.Millisecond))
	}
	// And revoke.
	a.must(200, req{method: "PATCH", path: "/v1/workspaces/" + ws, cred: a.admin, body: map[string]any{"leakPolicy": "revoke"}})
	k := a.key(ws, map[string]any{"name": "revoked", "keyType": "secret"})
	v := k["keyValue"].(string)
	if c := b.code(v); c != "VALID" {
		t.Fatalf("the other node answers %s", c)
	}
	a.must(200, req{method: "POST", path: "/v1/leaks", cred: a.admin, body: map[string]any{"keys": []string{v}}})
	testkit.EventuallyNil(t, time.Second, func() error {
		if got := b.code(v); got != "REVOKED" {
			return fmt.Errorf("the other node still answers %s", got)
		}
		return nil
	})
}
