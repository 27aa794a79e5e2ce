package e2e

import (
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane/internal/keyformat"
)

// The leak checker runs at the end of every test that starts keyplane and finds nothing when keyplane
// leaks nothing: these tests show that it would find a leak, so that its silence means something.

// TestLeakCheckerForms: each form a secret could leak in is found, named, and reported without the
// secret in the report.
func TestLeakCheckerForms(t *testing.T) {
	key := keyformat.Generate("kp", "sk", "live")
	root := keyformat.GenerateRoot("kp")
	raw := []byte("0123456789abcdef0123456789abcdef")
	whsec := "whsec_" + base64.StdEncoding.EncodeToString(raw)
	master := []byte("fedcba9876543210fedcba9876543210")
	const password = "correct horse battery staple"

	lc := newLeakChecker(t)
	lc.secret("an API key", key)
	lc.secret("a root key", root)
	lc.secret("a webhook secret", whsec)
	lc.secret("a password", password)
	lc.secret("a short password", "short") // too short to search for: it would be found in any "too short"
	lc.masterKey("the master key", base64.StdEncoding.EncodeToString(master))
	random := key[len(key)-38 : len(key)-6]

	plant := map[string]string{ // place → content
		"a log with the whole key":           "level=DEBUG msg=verify key=" + key + " ok",
		"a log with the key's secret part":   "secret=" + key[len(key)-38:],
		"a log with the key's random part":   "r=" + random + ".",
		"a bytea column written as hex":      `(apk_1,"\x` + hex.EncodeToString([]byte(key)) + `")`,
		"a log with a webhook secret's body": "signing with " + strings.TrimPrefix(whsec, "whsec_"),
		"a database page with the HMAC key":  "\x00\x01" + string(raw) + "\xff",
		"a database page with the master":    "\x00" + string(master),
		"an error body with the password":    `{"error":{"message":"bad password ` + password + `"}}`,
		"the root key beside the API key":    root + key,
		"a clean log":                        "password is too short; key kp_sk_live_AbC4…x9Qz",
	}
	for name, content := range plant {
		lc.text(name, []byte(content))
	}
	found, st := lc.scan()
	if st.secrets != 5 || st.places != len(plant) {
		t.Errorf("searched %d secrets in %d places, want 5 in %d", st.secrets, st.places, len(plant))
	}
	want := map[string]string{ // place → the secret and form found there
		"a log with the whole key":           "an API key/whole value",
		"a log with the key's secret part":   "an API key/secret part",
		"a log with the key's random part":   "an API key/random part",
		"a bytea column written as hex":      "an API key/random part in hex",
		"a log with a webhook secret's body": "a webhook secret/base64 part",
		"a database page with the HMAC key":  "a webhook secret/decoded HMAC key",
		"a database page with the master":    "the master key/raw bytes",
		"an error body with the password":    "a password/whole value",
	}
	got := map[string][]string{}
	for _, f := range found {
		what, _, _ := strings.Cut(f.secret, " \"")
		got[f.place] = append(got[f.place], what+"/"+f.form)
		msg := f.String()
		for _, s := range []string{key[len(key)-38:], random, root[len(root)-38:], strings.TrimPrefix(whsec, "whsec_"), password, string(raw), string(master)} {
			if strings.Contains(msg, s) {
				t.Errorf("the report shows a secret: %s", msg)
			}
		}
		if !strings.Contains(msg, f.place) || !strings.Contains(msg, "[SECRET]") {
			t.Errorf("the report does not say where: %s", msg)
		}
	}
	for place, w := range want {
		if g := got[place]; len(g) != 1 || g[0] != w {
			t.Errorf("%s: found %v, want %s", place, g, w)
		}
	}
	if g := got["the root key beside the API key"]; len(g) != 2 {
		t.Errorf("two keys side by side: found %v, want both", g)
	}
	if g := got["a clean log"]; len(g) != 0 {
		t.Errorf("a clean log: found %v", g)
	}
}

// TestLeakCheckerFindsPlantedLeaks plants secrets where keyplane stores and shows what callers send (a
// key's meta, a webhook's description, a workspace's name, a request id, a User-Agent) and checks that
// the checker, as every test's cleanup runs it, finds each one in the database, the audit trail, the
// request log, the answers and the server's log; and that every kind of place is searched.
func TestLeakCheckerFindsPlantedLeaks(t *testing.T) {
	eachDriver(t, func(t *testing.T, driver string) {
		// The request log is written behind the answers: flushed often, it can be listed before stop.
		n := start(t, driver, map[string]string{"KEYPLANE_WEBHOOK_ALLOW_PRIVATE": "true", "KEYPLANE_LOG_FLUSH_INTERVAL": "20ms"})
		ws := n.workspace("planted", nil)
		newKey := func(name string, extra map[string]any) string {
			body := map[string]any{"name": name, "keyType": "secret"}
			for k, v := range extra {
				body[k] = v
			}
			return n.key(ws, body)["keyValue"].(string)
		}
		inMeta := newKey("in meta", nil)
		newKey("holder", map[string]any{"meta": map[string]any{"note": inMeta}})
		asRequestID, asUserAgent := newKey("as request id", nil), newKey("as user agent", nil)
		n.must(200, req{method: "POST", path: "/v1/verify", cred: n.verifier, body: map[string]any{"key": asUserAgent},
			headers: map[string]string{"X-Request-Id": asRequestID[len(asRequestID)-38:], "User-Agent": asUserAgent}})
		hookSecret := n.webhook(ws, map[string]any{"url": "http://127.0.0.1:9/a", "eventTypes": []string{"*"}})["secret"].(string)
		n.webhook(ws, map[string]any{"url": "http://127.0.0.1:9/b", "eventTypes": []string{"*"}, "description": strings.TrimPrefix(hookSecret, "whsec_")})
		for deadline := time.Now().Add(10 * time.Second); len(n.must(200, req{method: "GET", path: "/v1/logs?source=verify", cred: n.admin, ws: ws}).list()) == 0; {
			if time.Now().After(deadline) {
				t.Fatal("the verification is not in the request log after 10s")
			}
			time.Sleep(20 * time.Millisecond)
		}
		password := getenv("", "", nil)("KEYPLANE_ADMIN_PASSWORD")
		n.must(201, req{method: "POST", path: "/v1/workspaces", cred: n.admin, body: map[string]any{"name": password, "slug": "pw"}})
		n.stop() // flushes the request log; shows /metrics, the audit trail and the request log first
		n.stop = nil
		if _, err := run(t, n.dataDir, n.dbURL, "", "audit", "verify"); err != nil {
			t.Fatal(err)
		}

		lc := leaks(t)
		found, st := lc.scan()
		lc.forgive(inMeta, asRequestID, asUserAgent, hookSecret, password) // the end-of-test search is this one
		database := "data dir file keyplane.db"
		if driver == "postgres" {
			database = "PostgreSQL table "
		}
		want := []struct{ secret, form, place string }{
			{inMeta, "whole value", database},
			{inMeta, "whole value", "the audit trail of " + ws},
			{inMeta, "whole value", "the answer to POST /v1/api-keys (status 201)"},
			{asRequestID, "secret part", n.name + "'s log"},
			{asUserAgent, "whole value", "the request log of " + ws},
			{asUserAgent, "whole value", database},
			{hookSecret, "base64 part", database},
			{hookSecret, "base64 part", "the answer to POST /v1/webhooks (status 201)"},
			{password, "whole value", database},
			{password, "whole value", "the workspaces (API)"},
		}
		for _, w := range want {
			ok := false
			for _, f := range found {
				if f.s.value == w.secret && f.form == w.form && strings.HasPrefix(f.place, w.place) {
					ok = true
				}
			}
			if !ok {
				t.Errorf("planted %s (%s) not found in %s; found:\n%v", lc.secrets[w.secret].describe(), w.form, w.place, found)
			}
		}
		// Every kind of place is searched, those the plants above cannot reach included.
		for _, p := range []string{n.name + "'s log", n.name + "'s stdout", "/metrics of " + n.name, "the audit trail of ",
			"the request log of ", "the answer to ", "the stdout of keyplane ", "the stderr of keyplane ", database} {
			ok := false
			for _, name := range st.placeNames {
				ok = ok || strings.HasPrefix(name, p)
			}
			if !ok {
				t.Errorf("no place %q searched; searched %v", p, st.placeNames)
			}
		}
		if st.secrets < 8 { // two root keys, the password, the master key, five API keys, a webhook secret
			t.Errorf("%d secrets searched for", st.secrets)
		}
	})
}
