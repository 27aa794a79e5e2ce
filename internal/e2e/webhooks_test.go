package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyplane/keyplane/internal/testkit"
)

// received is one request a receiver got.
type received struct {
	header http.Header
	body   []byte
	at     time.Time
}

// receiver is a real HTTP server standing in for a tenant's endpoint. respond decides each answer
// from the number of requests before it (0 for the first).
type receiver struct {
	*httptest.Server
	mu      sync.Mutex
	got     []received
	respond func(n int, w http.ResponseWriter)
}

func newReceiver(t *testing.T, respond func(n int, w http.ResponseWriter)) *receiver {
	rc := &receiver{respond: respond}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		n := len(rc.got)
		rc.got = append(rc.got, received{header: r.Header.Clone(), body: body, at: time.Now()})
		rc.mu.Unlock()
		if rc.respond != nil {
			rc.respond(n, w)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

// waitFor polls until the receiver holds at least n requests.
func (rc *receiver) waitFor(t *testing.T, n int) []received {
	t.Helper()
	var got []received
	testkit.EventuallyNil(t, 15*time.Second, func() error {
		if got = rc.requests(); len(got) < n {
			return fmt.Errorf("the receiver got %d requests, want %d", len(got), n)
		}
		return nil
	})
	return got
}

// verifySignature checks a delivery the way the Standard Webhooks specification tells receivers to,
// written here from the specification's text rather than with keyplane's signer: the signed content
// is "{webhook-id}.{webhook-timestamp}.{body}", the key is the base64 part of the whsec_ secret, the
// signature header holds space-separated "v1,{base64 HMAC-SHA256}" entries, any of which may match,
// and the timestamp must be within five minutes of now. It returns how many entries matched.
func verifySignature(h http.Header, body []byte, secret string) (int, error) {
	msgID, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if msgID == "" || ts == "" || sigs == "" {
		return 0, fmt.Errorf("missing headers: id %q timestamp %q signature %q", msgID, ts, sigs)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("timestamp %q", ts)
	}
	if d := time.Since(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return 0, fmt.Errorf("timestamp %s is %s away", ts, d)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return 0, err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(msgID + "." + ts + "."))
	mac.Write(body)
	want := mac.Sum(nil)
	matched := 0
	for _, entry := range strings.Split(sigs, " ") {
		version, sig, ok := strings.Cut(entry, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(sig)
		if err == nil && hmac.Equal(got, want) {
			matched++
		}
	}
	if matched == 0 {
		return 0, fmt.Errorf("no signature of %q verifies", sigs)
	}
	return matched, nil
}

type delivered struct {
	ID          string         `json:"id"`
	Type        string         `json:"type"`
	Timestamp   string         `json:"timestamp"`
	WorkspaceID string         `json:"workspaceId"`
	Data        map[string]any `json:"data"`
}

func decodeDelivery(t *testing.T, r received) delivered {
	t.Helper()
	var d delivered
	if err := json.Unmarshal(r.body, &d); err != nil {
		t.Fatalf("delivery body %q: %v", r.body, err)
	}
	return d
}

func (n *node) webhook(ws string, body map[string]any) map[string]any {
	n.t.Helper()
	return n.must(201, req{method: "POST", path: "/v1/webhooks", cred: n.admin, ws: ws, body: body}).data()
}

func (n *node) deliveries(ws, endpoint, query string) []map[string]any {
	n.t.Helper()
	var out []map[string]any
	for _, d := range n.must(200, req{method: "GET", path: "/v1/webhooks/" + endpoint + "/deliveries" + query, cred: n.admin, ws: ws}).list() {
		out = append(out, d.(map[string]any))
	}
	return out
}

// webhookEnv compresses the retry schedule: three attempts, 200 ms apart.
var webhookEnv = map[string]string{
	"KEYPLANE_CONFIG":                 "../../examples/keyplane.json", // order.created
	"KEYPLANE_WEBHOOK_ALLOW_PRIVATE":  "true",
	"KEYPLANE_WEBHOOK_RETRY_SCHEDULE": "0s,200ms,200ms",
}

func TestWebhooks(t *testing.T) {
	eachDriver(t, func(t *testing.T, driver string) {
		n := start(t, driver, webhookEnv)
		ws := n.workspace("hooks", nil)

		t.Run("SignedDelivery", func(t *testing.T) {
			rc := newReceiver(t, nil)
			ep := n.webhook(ws, map[string]any{"url": rc.URL + "/hook", "eventTypes": []string{"api_key.created", "api_key.revoked"}, "description": "ops"})
			secret, _ := ep["secret"].(string)
			if !strings.HasPrefix(secret, "whsec_") || ep["enabled"] != true || ep["disabledReason"] != nil {
				t.Fatalf("created endpoint: %v", ep)
			}
			got := n.must(200, req{method: "GET", path: "/v1/webhooks/" + ep["id"].(string), cred: n.admin, ws: ws}).data()
			if _, has := got["secret"]; has {
				t.Error("GET shows the secret")
			}
			k := n.key(ws, map[string]any{"name": "checkout", "keyType": "secret"})
			r := rc.waitFor(t, 1)[0]
			if _, err := verifySignature(r.header, r.body, secret); err != nil {
				t.Fatalf("signature: %v", err)
			}
			d := decodeDelivery(t, r)
			if apiKey, _ := d.Data["apiKey"].(map[string]any); d.Type != "api_key.created" || d.WorkspaceID != ws || apiKey["id"] != k["id"] || r.header.Get("webhook-id") != d.ID {
				t.Errorf("delivery %+v (webhook-id %s)", d, r.header.Get("webhook-id"))
			}
			if strings.Contains(string(r.body), k["keyValue"].(string)) {
				t.Error("the delivery holds the key's value")
			}
			// An event type the endpoint does not want is not sent.
			n.must(200, req{method: "PATCH", path: "/v1/api-keys/" + k["id"].(string), cred: n.admin, ws: ws, body: map[string]any{"name": "renamed"}})
			n.must(200, req{method: "DELETE", path: "/v1/api-keys/" + k["id"].(string), cred: n.admin, ws: ws})
			got2 := rc.waitFor(t, 2)
			if typ := decodeDelivery(t, got2[1]).Type; typ != "api_key.revoked" {
				t.Errorf("second delivery is %s, want api_key.revoked (api_key.updated is not subscribed)", typ)
			}
			waitStatus(t, n, ws, ep["id"].(string), []string{"succeeded", "succeeded"})
			log := n.deliveries(ws, ep["id"].(string), "")
			if len(log) != 2 || log[0]["status"] != "succeeded" || log[0]["statusCode"] != float64(204) || log[0]["attempt"] != float64(1) {
				t.Errorf("deliveries log: %v", log)
			}
			// A delivery that succeeded is not sent again by hand: only failures are retried.
			n.fails(409, "delivery_not_retryable", req{method: "POST", path: "/v1/webhooks/" + ep["id"].(string) + "/deliveries/" + log[0]["id"].(string) + "/retry", cred: n.admin, ws: ws})
			if got := len(n.deliveries(ws, ep["id"].(string), "")); got != 2 {
				t.Errorf("%d attempts after a refused retry, want 2", got)
			}
		})

		t.Run("RetriesWithTheSameID", func(t *testing.T) {
			rc := newReceiver(t, func(i int, w http.ResponseWriter) {
				if i < 2 {
					w.WriteHeader(http.StatusServiceUnavailable)
					io.WriteString(w, "busy")
					return
				}
				w.WriteHeader(http.StatusOK)
			})
			ep := n.webhook(ws, map[string]any{"url": rc.URL, "eventTypes": []string{"order.created"}})
			sent := n.must(202, req{method: "POST", path: "/v1/events", cred: n.admin, ws: ws, body: map[string]any{"type": "order.created", "data": map[string]any{"order": "A-1", "total": 42}}}).data()
			if sent["endpoints"] != float64(1) {
				t.Errorf("event queued for %v endpoints, want 1", sent["endpoints"])
			}
			got := rc.waitFor(t, 3)
			for i, r := range got {
				if r.header.Get("webhook-id") != sent["id"] {
					t.Errorf("attempt %d has webhook-id %s, want the event's %s", i+1, r.header.Get("webhook-id"), sent["id"])
				}
				if d := decodeDelivery(t, r); d.Data["order"] != "A-1" {
					t.Errorf("attempt %d data %v", i+1, d.Data)
				}
			}
			if gap := got[1].at.Sub(got[0].at); gap < 150*time.Millisecond {
				t.Errorf("the retry came %s after the first attempt; the schedule says 200ms ± 20%%", gap)
			}
			waitStatus(t, n, ws, ep["id"].(string), []string{"succeeded", "failed", "failed"})
			log := n.deliveries(ws, ep["id"].(string), "?status=failed")
			if len(log) != 2 || log[0]["responseBody"] != "busy" || log[0]["statusCode"] != float64(503) || log[0]["error"] == nil {
				t.Errorf("failed attempts: %v", log)
			}
		})

		t.Run("GivesUp", func(t *testing.T) {
			rc := newReceiver(t, func(i int, w http.ResponseWriter) { w.WriteHeader(http.StatusInternalServerError) })
			ep := n.webhook(ws, map[string]any{"url": rc.URL, "eventTypes": []string{"order.created"}})
			// The previous endpoint is subscribed too; only this one's attempts are counted here.
			n.must(202, req{method: "POST", path: "/v1/events", cred: n.admin, ws: ws, body: map[string]any{"type": "order.created"}})
			rc.waitFor(t, 3)
			waitStatus(t, n, ws, ep["id"].(string), []string{"failed", "failed", "failed"})
			time.Sleep(600 * time.Millisecond)
			if got := len(rc.requests()); got != 3 {
				t.Errorf("%d attempts after giving up, want 3 (the schedule's length)", got)
			}
			// A manual retry is one more attempt, and schedules nothing after it.
			failed := n.deliveries(ws, ep["id"].(string), "")[0]
			retry := n.must(202, req{method: "POST", path: "/v1/webhooks/" + ep["id"].(string) + "/deliveries/" + failed["id"].(string) + "/retry", cred: n.admin, ws: ws}).data()
			if retry["status"] != "pending" || retry["attempt"] != float64(4) {
				t.Errorf("retry answered %v", retry)
			}
			rc.waitFor(t, 4)
			time.Sleep(600 * time.Millisecond)
			if got := len(rc.requests()); got != 4 {
				t.Errorf("%d attempts after a manual retry failed, want 4", got)
			}
			n.must(200, req{method: "PATCH", path: "/v1/webhooks/" + ep["id"].(string), cred: n.admin, ws: ws, body: map[string]any{"enabled": false}})
		})

		t.Run("GoneDisables", func(t *testing.T) {
			watcher := newReceiver(t, nil)
			n.webhook(ws, map[string]any{"url": watcher.URL, "eventTypes": []string{"endpoint.disabled"}})
			rc := newReceiver(t, func(i int, w http.ResponseWriter) { w.WriteHeader(http.StatusGone) })
			ep := n.webhook(ws, map[string]any{"url": rc.URL, "eventTypes": []string{"*"}})
			n.key(ws, map[string]any{"name": "gone", "keyType": "secret"})
			rc.waitFor(t, 1)
			d := decodeDelivery(t, watcher.waitFor(t, 1)[0])
			if d.Type != "endpoint.disabled" || d.Data["id"] != ep["id"] || !strings.Contains(fmt.Sprint(d.Data["reason"]), "410") {
				t.Errorf("endpoint.disabled delivery: %+v", d)
			}
			got := n.must(200, req{method: "GET", path: "/v1/webhooks/" + ep["id"].(string), cred: n.admin, ws: ws}).data()
			if got["enabled"] != false || !strings.Contains(fmt.Sprint(got["disabledReason"]), "410 Gone") {
				t.Errorf("after 410: %v", got)
			}
			// Enabling clears the reason.
			got = n.must(200, req{method: "PATCH", path: "/v1/webhooks/" + ep["id"].(string), cred: n.admin, ws: ws, body: map[string]any{"enabled": true}}).data()
			if got["enabled"] != true || got["disabledReason"] != nil {
				t.Errorf("after enabling: %v", got)
			}
			n.must(200, req{method: "DELETE", path: "/v1/webhooks/" + ep["id"].(string), cred: n.admin, ws: ws})
			n.fails(404, "not_found", req{method: "GET", path: "/v1/webhooks/" + ep["id"].(string), cred: n.admin, ws: ws})
		})

		t.Run("SecretRotation", func(t *testing.T) {
			rc := newReceiver(t, nil)
			ep := n.webhook(ws, map[string]any{"url": rc.URL, "eventTypes": []string{"api_key.created"}})
			old := ep["secret"].(string)
			rot := n.must(200, req{method: "POST", path: "/v1/webhooks/" + ep["id"].(string) + "/rotate-secret", cred: n.admin, ws: ws}).data()
			fresh := rot["secret"].(string)
			if fresh == old || rot["previousSecretExpiresAt"] == nil {
				t.Fatalf("rotation answered %v", rot)
			}
			n.key(ws, map[string]any{"name": "after rotation", "keyType": "secret"})
			r := rc.waitFor(t, 1)[0]
			if got := len(strings.Fields(r.header.Get("webhook-signature"))); got != 2 {
				t.Errorf("%d signatures during the overlap, want 2", got)
			}
			for _, s := range []string{old, fresh} {
				if _, err := verifySignature(r.header, r.body, s); err != nil {
					t.Errorf("with the %s secret: %v", map[bool]string{true: "old", false: "new"}[s == old], err)
				}
			}
			shown := n.must(200, req{method: "POST", path: "/v1/webhooks/" + ep["id"].(string) + "/reveal-secret", cred: n.admin, ws: ws}).data()
			if shown["secret"] != fresh {
				t.Errorf("reveal shows %v, want the new secret", shown["secret"])
			}
		})

		t.Run("TestSendAndRedirects", func(t *testing.T) {
			target := newReceiver(t, nil)
			rc := newReceiver(t, func(i int, w http.ResponseWriter) {
				if i == 0 {
					w.WriteHeader(http.StatusTeapot)
					io.WriteString(w, `{"ok":false}`)
					return
				}
				w.Header().Set("Location", target.URL)
				w.WriteHeader(http.StatusFound)
			})
			ep := n.webhook(ws, map[string]any{"url": rc.URL, "eventTypes": []string{"order.created"}})
			res := n.must(200, req{method: "POST", path: "/v1/webhooks/" + ep["id"].(string) + "/test", cred: n.admin, ws: ws}).data()
			if res["statusCode"] != float64(418) || res["responseBody"] != `{"ok":false}` || res["error"] == nil {
				t.Errorf("test send answered %v", res)
			}
			if d := decodeDelivery(t, rc.requests()[0]); d.Type != "webhook.test" || d.Data["test"] != true {
				t.Errorf("test event %+v", d)
			}
			res = n.must(200, req{method: "POST", path: "/v1/webhooks/" + ep["id"].(string) + "/test", cred: n.admin, ws: ws, body: map[string]any{"eventType": "order.created"}}).data()
			if res["statusCode"] != float64(302) {
				t.Errorf("a redirect answered %v", res)
			}
			if len(target.requests()) != 0 {
				t.Error("the redirect was followed")
			}
			log := n.deliveries(ws, ep["id"].(string), "")
			if len(log) != 2 || log[0]["eventType"] != "webhook.test" || log[0]["status"] != "failed" {
				t.Errorf("test sends logged as %v", log)
			}
			n.fails(400, "invalid_request", req{method: "POST", path: "/v1/webhooks/" + ep["id"].(string) + "/deliveries/" + log[0]["id"].(string) + "/retry", cred: n.admin, ws: ws})
			n.must(200, req{method: "DELETE", path: "/v1/webhooks/" + ep["id"].(string), cred: n.admin, ws: ws})
		})

		// WriteAlone: webhooks:write is enough for every webhook action, test sends and secret reveals
		// included (they used to need webhooks:read too, which the permission table never said);
		// webhooks:read alone is enough for none of them.
		t.Run("WriteAlone", func(t *testing.T) {
			rc := newReceiver(t, nil)
			single := func(perm string) string {
				return n.key(ws, map[string]any{"name": perm + " only", "keyType": "secret", "permissions": []string{perm}})["keyValue"].(string)
			}
			writer, reader := single("webhooks:write"), single("webhooks:read")
			ep := n.must(201, req{method: "POST", path: "/v1/webhooks", cred: writer, body: map[string]any{"url": rc.URL, "eventTypes": []string{"order.created"}}}).data()
			base := "/v1/webhooks/" + ep["id"].(string)
			for _, r := range []req{
				{method: "POST", path: base + "/test"},
				{method: "POST", path: base + "/rotate-secret"},
				{method: "POST", path: base + "/reveal-secret"},
				{method: "PATCH", path: base, body: map[string]any{"description": "by the writer"}},
			} {
				r.cred = reader
				n.fails(403, "forbidden", r)
				r.cred = writer
				n.must(200, r)
			}
			if got := rc.requests(); len(got) != 1 || decodeDelivery(t, got[0]).Type != "webhook.test" {
				t.Errorf("the writer's test send: %d requests", len(got))
			}
			rotated := n.must(200, req{method: "POST", path: base + "/rotate-secret", cred: writer}).data()["secret"]
			if shown := n.must(200, req{method: "POST", path: base + "/reveal-secret", cred: writer}).data()["secret"]; shown != rotated {
				t.Errorf("the writer revealed %v, want the secret it rotated to", shown)
			}
			// Key events carry whole keys: without api_keys:read the writer neither subscribes to
			// them nor changes (repoints) an endpoint that receives them.
			for _, types := range [][]string{{"*"}, {"api_key.created"}} {
				n.fails(403, "forbidden", req{method: "POST", path: "/v1/webhooks", cred: writer, body: map[string]any{"url": rc.URL, "eventTypes": types}})
			}
			n.fails(403, "forbidden", req{method: "PATCH", path: base, cred: writer, body: map[string]any{"eventTypes": []string{"*"}}})
			adminHook := n.webhook(ws, map[string]any{"url": rc.URL + "/admin", "eventTypes": []string{"*"}})["id"].(string)
			n.fails(403, "forbidden", req{method: "PATCH", path: "/v1/webhooks/" + adminHook, cred: writer, body: map[string]any{"url": rc.URL + "/mine"}})
			if u := n.must(200, req{method: "GET", path: "/v1/webhooks/" + adminHook, cred: n.admin, ws: ws}).data()["url"]; u != rc.URL+"/admin" {
				t.Errorf("the writer repointed an endpoint of *: %v", u)
			}
			n.must(200, req{method: "DELETE", path: "/v1/webhooks/" + adminHook, cred: n.admin, ws: ws})
			// Reading stays webhooks:read's.
			n.fails(403, "forbidden", req{method: "GET", path: base, cred: writer})
			n.fails(403, "forbidden", req{method: "GET", path: base + "/deliveries", cred: writer})
			n.must(200, req{method: "GET", path: base, cred: reader})
			n.must(200, req{method: "DELETE", path: base, cred: writer})
		})

		t.Run("Refusals", func(t *testing.T) {
			bad := func(body map[string]any, field string) {
				t.Helper()
				res := n.fails(400, "invalid_request", req{method: "POST", path: "/v1/webhooks", cred: n.admin, ws: ws, body: body})
				if f := res.detailFields(); len(f) == 0 || f[0] != field {
					t.Errorf("%v: details %v, want %s", body, f, field)
				}
			}
			bad(map[string]any{"url": "ftp://example.com/", "eventTypes": []string{"*"}}, "url")
			bad(map[string]any{"url": "https://user:pw@example.com/", "eventTypes": []string{"*"}}, "url")
			bad(map[string]any{"url": "https://example.com/" + strings.Repeat("a", 2048), "eventTypes": []string{"*"}}, "url")
			bad(map[string]any{"url": "/relative", "eventTypes": []string{"*"}}, "url")
			bad(map[string]any{"url": "https://203.0.113.10/", "eventTypes": []string{}}, "eventTypes")
			bad(map[string]any{"url": "https://203.0.113.10/", "eventTypes": []string{"no.such"}}, "eventTypes[0]")
			n.fails(400, "invalid_request", req{method: "POST", path: "/v1/events", cred: n.admin, ws: ws, body: map[string]any{"type": "api_key.revoked"}})
			n.fails(400, "invalid_request", req{method: "POST", path: "/v1/events", cred: n.admin, ws: ws, body: map[string]any{"type": "order.created", "data": []int{1}}})
			// Another workspace sees none of this one's endpoints.
			other := n.workspace("hooks-other", nil)
			eps := n.must(200, req{method: "GET", path: "/v1/webhooks", cred: n.admin, ws: ws}).list()
			id := eps[0].(map[string]any)["id"].(string)
			n.fails(404, "not_found", req{method: "GET", path: "/v1/webhooks/" + id, cred: n.admin, ws: other})
			n.fails(404, "not_found", req{method: "POST", path: "/v1/webhooks/" + id + "/test", cred: n.admin, ws: other})
			n.fails(404, "not_found", req{method: "GET", path: "/v1/webhooks/" + id + "/deliveries", cred: n.admin, ws: other})
			n.fails(404, "not_found", req{method: "DELETE", path: "/v1/webhooks/" + id, cred: n.admin, ws: other})
		})
	})
}

// waitStatus polls an endpoint's deliveries log until its statuses, newest first, are want.
func waitStatus(t *testing.T, n *node, ws, endpoint string, want []string) {
	t.Helper()
	testkit.EventuallyNil(t, 15*time.Second, func() error {
		var got []string
		for _, d := range n.deliveries(ws, endpoint, "") {
			got = append(got, d["status"].(string))
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			return fmt.Errorf("deliveries %v, want %v", got, want)
		}
		return nil
	})
}

// TestWebhookSSRF: without --webhook-allow-private, loopback and private URLs are refused, and so is
// http:// without --webhook-allow-http.
func TestWebhookSSRF(t *testing.T) {
	n := start(t, "sqlite", nil)
	ws := n.workspace("ssrf", nil)
	rc := newReceiver(t, nil)
	for _, u := range []string{
		rc.URL,                      // http://127.0.0.1:port
		"https://127.0.0.1/hook",    // loopback
		"https://10.1.2.3/hook",     // private
		"https://169.254.169.254/",  // metadata
		"https://[::1]/hook",        // IPv6 loopback
		"https://localhost/hook",    // a name for loopback
		"https://100.64.0.1/hook",   // CGNAT
		"https://[fd00:ec2::254]/",  // AWS metadata over IPv6
		"https://[::ffff:10.0.0.1]", // a mapped private address
	} {
		res := n.fails(400, "invalid_request", req{method: "POST", path: "/v1/webhooks", cred: n.admin, ws: ws, body: map[string]any{"url": u, "eventTypes": []string{"*"}}})
		if f := res.detailFields(); len(f) != 1 || f[0] != "url" {
			t.Errorf("%s: details %v", u, f)
		}
	}
	if len(rc.requests()) != 0 {
		t.Error("the receiver was contacted")
	}
}

// TestWebhookGuard: the harness's serve runs with a webhook.Guard, so that no test sends a packet off
// the machine. A test send to a documentation address (public to the URL policy) stops before
// connect(2) with the guard's reason, and creating an endpoint on a public name resolves nothing: the
// guard refuses the lookup, which would have asked a DNS server. The guard keeps both, and would fail
// the test if this test did not take them.
func TestWebhookGuard(t *testing.T) {
	n := start(t, "sqlite", webhookEnv)
	ws := n.workspace("guarded", nil)
	for _, u := range []string{"https://203.0.113.1:9/hook", "https://[2001:db8::1]:9/hook"} {
		ep := n.webhook(ws, map[string]any{"url": u, "eventTypes": []string{"order.created"}})
		res := n.must(200, req{method: "POST", path: "/v1/webhooks/" + ep["id"].(string) + "/test", cred: n.admin, ws: ws}).data()
		if e, _ := res["error"].(string); res["statusCode"] != nil || !strings.Contains(e, "refused by the test guard") {
			t.Errorf("a test send to %s answered %v", u, res)
		}
		n.must(200, req{method: "DELETE", path: "/v1/webhooks/" + ep["id"].(string), cred: n.admin, ws: ws})
	}
	res := n.fails(400, "invalid_request", req{method: "POST", path: "/v1/webhooks", cred: n.admin, ws: ws,
		body: map[string]any{"url": "https://hooks.example.com/in", "eventTypes": []string{"*"}}})
	if f := res.detailFields(); len(f) != 1 || f[0] != "url" {
		t.Errorf("an endpoint on a public name: details %v", f)
	}
	want := []string{"203.0.113.1:9", "[2001:db8::1]:9", "hooks.example.com"}
	if got := n.guard.Take(); !slices.Equal(got, want) {
		t.Errorf("the guard refused %q, want %q", got, want)
	}
}
