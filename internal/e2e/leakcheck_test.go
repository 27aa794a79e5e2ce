package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane/internal/testkit"
)

// The leak checker runs at the end of every test that starts keyplane and finds nothing when keyplane
// leaks nothing: this test shows that it would find a leak, so that its silence means something
// (package leakcheck's own tests check each form of each secret).

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
		// Secret parts without their head: keyplane cannot tell them from other text, the checker can.
		n.must(200, req{method: "POST", path: "/v1/verify", cred: n.verifier, body: map[string]any{"key": asUserAgent},
			headers: map[string]string{"X-Request-Id": asRequestID[len(asRequestID)-38:], "User-Agent": "agent/" + asUserAgent[len(asUserAgent)-38:]}})
		hookSecret := n.webhook(ws, map[string]any{"url": "http://127.0.0.1:9/a", "eventTypes": []string{"*"}})["secret"].(string)
		n.webhook(ws, map[string]any{"url": "http://127.0.0.1:9/b", "eventTypes": []string{"*"}, "description": strings.TrimPrefix(hookSecret, "whsec_")})
		testkit.Eventually(t, 10*time.Second, "the verification in the request log", func() bool {
			return len(n.must(200, req{method: "GET", path: "/v1/logs?source=verify", cred: n.admin, ws: ws}).list()) > 0
		})
		password := getenv("", "", nil)("KEYPLANE_ADMIN_PASSWORD")
		n.must(201, req{method: "POST", path: "/v1/workspaces", cred: n.admin, body: map[string]any{"name": password, "slug": "pw"}})
		n.stop() // flushes the request log; shows /metrics, the audit trail and the request log first
		n.stop = nil
		if _, err := run(t, n.dataDir, n.dbURL, "", "audit", "verify"); err != nil {
			t.Fatal(err)
		}

		lc := leaks(t)
		found, st := lc.Scan()
		lc.Forgive(inMeta, asRequestID, asUserAgent, hookSecret, password) // the end-of-test search is this one
		// On SQLite the request log has a file of its own.
		database, logDatabase := "data dir file keyplane.db", "data dir file requestlog.db"
		if driver == "postgres" {
			database, logDatabase = "PostgreSQL table ", "PostgreSQL table "
		}
		want := []struct{ secret, form, place string }{
			{inMeta, "whole value", database},
			{inMeta, "whole value", "the audit trail of " + ws},
			{inMeta, "whole value", "the answer to POST /v1/api-keys (status 201)"},
			{asRequestID, "secret part", n.name + "'s log"},
			{asUserAgent, "secret part", "the request log of " + ws},
			{asUserAgent, "secret part", logDatabase},
			{hookSecret, "base64 part", database},
			{hookSecret, "base64 part", "the answer to POST /v1/webhooks (status 201)"},
			{password, "whole value", database},
			{password, "whole value", "the workspaces (API)"},
		}
		for _, w := range want {
			ok := false
			for _, f := range found {
				if f.Secret.Value == w.secret && f.Form == w.form && strings.HasPrefix(f.Place, w.place) {
					ok = true
				}
			}
			if !ok {
				t.Errorf("planted %s (%s) not found in %s; found:\n%v", lc.Lookup(w.secret).Describe(), w.form, w.place, found)
			}
		}
		// Every kind of place is searched, those the plants above cannot reach included.
		for _, p := range []string{n.name + "'s log", n.name + "'s stdout", "/metrics of " + n.name, "the audit trail of ",
			"the request log of ", "the answer to ", "the stdout of keyplane ", "the stderr of keyplane ", database, logDatabase} {
			ok := false
			for _, name := range st.Places {
				ok = ok || strings.HasPrefix(name, p)
			}
			if !ok {
				t.Errorf("no place %q searched; searched %v", p, st.Places)
			}
		}
		if st.Secrets < 8 { // two root keys, the password, the master key, five API keys, a webhook secret
			t.Errorf("%d secrets searched for", st.Secrets)
		}
	})
}
