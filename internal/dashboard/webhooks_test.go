package dashboard_test

// The webhooks pages over HTTP, against real receivers (httptest servers on 127.0.0.1, which the
// test deployment allows): adding an endpoint with its validation errors, the signing secret shown
// once, deliveries of real events in the log, a test send shown like a terminal, retries, edits,
// rotation and reveal, and what viewers, other workspaces and forged forms may not do. Run by
// TestDashboardHTTP (dashboard_test.go), in a workspace of its own.

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyplane/keyplane/internal/dashboard"
	"github.com/keyplane/keyplane/internal/kptest"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/service/servicetest"
	"github.com/keyplane/keyplane/internal/testkit"
	"github.com/keyplane/keyplane/internal/webhook"
)

// receiver is a webhook endpoint: it answers every post with its current status and body, and keeps
// what it was sent.
type receiver struct {
	srv *httptest.Server

	mu     sync.Mutex
	status int
	body   string
	got    []received
}

type received struct {
	id, timestamp, signature string
	body                     []byte
	event                    struct{ ID, Type string }
}

func newReceiver(t *testing.T, status int, body string) *receiver {
	t.Helper()
	rc := &receiver{status: status, body: body}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got := received{id: r.Header.Get("webhook-id"), timestamp: r.Header.Get("webhook-timestamp"), signature: r.Header.Get("webhook-signature"), body: b}
		_ = json.Unmarshal(b, &got.event)
		rc.mu.Lock()
		rc.got = append(rc.got, got)
		status, body := rc.status, rc.body
		rc.mu.Unlock()
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) answer(status int, body string) {
	rc.mu.Lock()
	rc.status, rc.body = status, body
	rc.mu.Unlock()
}

// posts returns what the receiver was sent, of the given event type ("" every one).
func (rc *receiver) posts(eventType string) []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []received
	for _, g := range rc.got {
		if eventType == "" || g.event.Type == eventType {
			out = append(out, g)
		}
	}
	return out
}

// signedWith reports whether one of a post's signatures is made with the whsec_ secret.
func (g received) signedWith(t *testing.T, secret string) bool {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		t.Fatalf("the signing secret is not base64 after whsec_: %v", err)
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(g.id + "." + g.timestamp + "." + string(g.body)))
	want := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
	return slices.Contains(strings.Fields(g.signature), want)
}

var (
	reHookSecretValue = regexp.MustCompile(`^whsec_[0-9A-Za-z+/]{43}=$`)
	reEndpointRow     = regexp.MustCompile(`(?s)<tr data-endpoint-id="(whk_[0-9A-Z]+)" data-status="([a-z]+)">(.*?)</tr>`)
	reDeliveryRow     = regexp.MustCompile(`(?s)<tr data-delivery-id="(dlv_[0-9A-Z]+)" data-status="([a-z]+)" data-event-type="([^"]+)">(.*?)</tr>`)
	rePostForm        = regexp.MustCompile(`<form[^>]*method="post"`)
)

// hookSecretPage checks a page that shows a signing secret and returns it, marking the page as one
// allowed to show it.
func hookSecretPage(t *testing.T, e *exchange) string {
	t.Helper()
	expect(t, e, http.StatusOK)
	v := first(reSecret, e.body)
	if !reHookSecretValue.MatchString(v) {
		t.Fatalf("%s %s: the page shows %q, want a whsec_ secret", e.method, e.path, v)
	}
	e.secret = v
	if cc := e.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("%s %s: a page with a signing secret has Cache-Control %q, want no-store", e.method, e.path, cc)
	}
	if !strings.Contains(e.body, `data-copy="secret-value"`) || !strings.Contains(e.body, ">Copy</button>") {
		t.Errorf("%s %s: the secret has no Copy button", e.method, e.path)
	}
	return v
}

type deliveryRow struct{ id, status, eventType, text string }

// deliveries are the rows of an endpoint page's delivery log, newest first.
func deliveries(body string) []deliveryRow {
	var out []deliveryRow
	for _, m := range reDeliveryRow.FindAllStringSubmatch(body, -1) {
		txt := html.UnescapeString(strings.Join(strings.Fields(reTag.ReplaceAllString(m[4], " ")), " "))
		out = append(out, deliveryRow{id: m[1], status: m[2], eventType: m[3], text: txt})
	}
	return out
}

// endpointIDs lists the endpoints of the list page, by URL.
func endpointIDs(body string) map[string]string {
	out := map[string]string{}
	for _, m := range reEndpointRow.FindAllStringSubmatch(body, -1) {
		if u := regexp.MustCompile(`class="name url" href="[^"]*">([^<]*)</a>`).FindStringSubmatch(m[3]); u != nil {
			out[html.UnescapeString(u[1])] = m[1]
		}
	}
	return out
}

// endpointStatus is an endpoint's status in the list: enabled, disabled, or "" when it is not listed.
func endpointStatus(body, endpointID string) string {
	for _, m := range reEndpointRow.FindAllStringSubmatch(body, -1) {
		if m[1] == endpointID {
			return m[2]
		}
	}
	return ""
}

// eventsError is the error shown in the Events fieldset, and whether it is marked invalid.
func eventsError(body string) (string, bool) {
	i := strings.Index(body, `<fieldset class="events`)
	if i < 0 {
		return "", false
	}
	seg := body[i : i+strings.Index(body[i:], "</fieldset>")]
	return strings.TrimSpace(first(reErrorSpan, seg)), strings.HasPrefix(seg, `<fieldset class="events invalid"`)
}

func testWebhooks(t *testing.T, s *kpServer) {
	wsID := s.createWorkspace(t, "hooks")
	for who, role := range map[string]string{"viewer": "viewer", "developer": "developer", "wsadmin": "admin"} {
		if st, body := s.call(t, s.admin, "POST", "/v1/workspaces/"+wsID+"/members", "", map[string]any{"email": emails[who], "role": role}); st != 201 && st != 200 {
			t.Fatalf("make %s a %s of hooks: %d %v", who, role, st, body)
		}
		// An invitation: they join by accepting it.
		if e := s.as(t, who).post(t, "/invitations/accept", url.Values{"workspace": {wsID}}); e.status != http.StatusSeeOther || !strings.HasPrefix(e.loc(), "/w/hooks/") {
			t.Fatalf("%s accepts the invitation to hooks: %d %s", who, e.status, e.summary())
		}
	}
	admin := s.as(t, "admin")
	hooks := "/w/hooks/settings/webhooks"
	// rest lists the workspace's endpoints through the API.
	rest := func() []map[string]any {
		t.Helper()
		st, body := s.call(t, s.admin, "GET", "/v1/webhooks?limit=100", wsID, nil)
		if st != 200 {
			t.Fatalf("list webhooks: %d %v", st, body)
		}
		return list(body)
	}
	restHook := func(id string) map[string]any {
		t.Helper()
		st, body := s.call(t, s.admin, "GET", "/v1/webhooks/"+id, wsID, nil)
		if st == 404 {
			return nil
		}
		if st != 200 {
			t.Fatalf("get webhook %s: %d %v", id, st, body)
		}
		return data(body)
	}
	ok := newReceiver(t, 200, `{"received": true}`)
	failing := newReceiver(t, 500, "down for maintenance")
	teapot := newReceiver(t, 418, "<b>teapot</b>")

	t.Run("EmptyPage", func(t *testing.T) {
		e := admin.get(t, hooks)
		expect(t, e, http.StatusOK)
		expectText(t, e, "Webhooks", "No endpoints yet.", "Add endpoint", "Endpoint URL", "Description", "All events (*)", "Enabled", "https://")
		if !strings.Contains(nav(e.body), `href="/w/hooks/settings/webhooks" aria-current="page">Webhooks</a>`) {
			t.Errorf("the navigation has no current Webhooks link: %q", nav(e.body))
		}
		// Every control of the form has a label.
		for _, id := range []string{"url", "description", "enabled"} {
			if !strings.Contains(e.body, `for="`+id+`"`) {
				t.Errorf("the %s control has no label", id)
			}
		}
		if !strings.Contains(e.body, `value="order.created"`) || !strings.Contains(e.body, `value="api_key.created"`) || !strings.Contains(e.body, `name="eventTypes" value="*"`) {
			t.Errorf("the event checkboxes do not offer the catalog and *")
		}
		if !strings.Contains(e.body, `id="enabled" name="enabled" checked`) {
			t.Errorf("a new endpoint is not enabled by default")
		}
	})

	t.Run("CreateValidation", func(t *testing.T) {
		for _, c := range []struct {
			name  string
			set   url.Values
			field string // "eventTypes": the fieldset
			want  string
		}{
			{"ftp URL", url.Values{"url": {"ftp://x"}}, "url", "URL must be an absolute http:// or https:// URL."},
			{"relative URL", url.Values{"url": {"/webhooks"}}, "url", "URL must be an absolute"},
			{"URL with credentials", url.Values{"url": {"https://user:pw@example.com/hook"}}, "url", "URL must not contain credentials."},
			{"no events", url.Values{"eventTypes": nil}, "eventTypes", "Events must name at least one event type, or *."},
			{"unknown event", url.Values{"eventTypes": {"api_key.created", "billing.paid"}}, "eventTypes", "“billing.paid” is not an event type of this deployment"},
			{"long description", url.Values{"description": {strings.Repeat("d", 501)}}, "description", "Description must be at most 500 characters."},
			{"bidi override in the description", url.Values{"description": {"ops \u202egnip"}}, "description", "Description must not contain bidirectional controls or zero-width characters."},
		} {
			t.Run(c.name, func(t *testing.T) {
				f := url.Values{"url": {ok.srv.URL + "/hook"}, "description": {"Invalid: " + c.name}, "eventTypes": {"api_key.created"}, "enabled": {"on"}}
				for k, v := range c.set {
					if v == nil {
						f.Del(k)
					} else {
						f[k] = v
					}
				}
				e := admin.post(t, hooks, f)
				expect(t, e, http.StatusBadRequest)
				var msg string
				var invalid bool
				if c.field == "eventTypes" {
					msg, invalid = eventsError(e.body)
				} else {
					var found bool
					if msg, invalid, found = fieldError(e.body, c.field); !found {
						t.Fatalf("no control with id %q on the page", c.field)
					}
				}
				if !strings.Contains(msg, c.want) || !invalid {
					t.Errorf("error next to %s: %q (invalid %v), want %q", c.field, msg, invalid, c.want)
				}
				if n := strings.Count(e.body, `class="error"`); n != 1 {
					t.Errorf("%d errors on the page, want the one next to %s", n, c.field)
				}
				// What the person typed and ticked is kept.
				if !strings.Contains(e.body, `id="url" name="url" value="`+html.EscapeString(f.Get("url"))+`"`) {
					t.Errorf("the URL typed is not kept")
				}
				for _, ev := range f["eventTypes"] {
					if !strings.Contains(e.body, `value="`+ev+`" checked`) && ev != "billing.paid" {
						t.Errorf("the event %s ticked is not kept", ev)
					}
				}
				if strings.Contains(e.body, `id="secret-value"`) || strings.Contains(e.body, "whsec_") {
					t.Errorf("an invalid form shows a signing secret")
				}
			})
		}
		if n := len(rest()); n != 0 {
			t.Errorf("invalid forms created %d endpoints", n)
		}
	})

	var okID, okSecret string
	t.Run("Create", func(t *testing.T) {
		e := admin.post(t, hooks, url.Values{"url": {ok.srv.URL + "/hook"}, "description": {"Orders <b>service</b>"}, "eventTypes": {"api_key.created"}, "enabled": {"on"}})
		okSecret = hookSecretPage(t, e)
		expectText(t, e, "Your new webhook endpoint", "It is shown only this once", ok.srv.URL+"/hook")
		all := rest()
		if len(all) != 1 || all[0]["url"] != ok.srv.URL+"/hook" || all[0]["enabled"] != true || all[0]["description"] != "Orders <b>service</b>" {
			t.Fatalf("after create the API lists %v", all)
		}
		okID = all[0]["id"].(string)
		if !strings.Contains(e.body, `href="/w/hooks/settings/webhooks/`+okID+`"`) {
			t.Errorf("the secret page has no link to the endpoint's page")
		}
		page := admin.get(t, hooks)
		expect(t, page, http.StatusOK)
		if endpointIDs(page.body)[ok.srv.URL+"/hook"] != okID {
			t.Fatalf("the list does not link the new endpoint: %v", endpointIDs(page.body))
		}
		row := reEndpointRow.FindStringSubmatch(page.body)
		if row[2] != "enabled" || !strings.Contains(row[3], "api_key.created") || !strings.Contains(row[3], okID) || !strings.Contains(row[3], "Orders &lt;b&gt;service&lt;/b&gt;") {
			t.Errorf("the endpoint's row:\n%s", row[0])
		}
		if strings.Contains(page.body, "<b>service</b>") {
			t.Errorf("the description is not escaped")
		}
		ep := admin.get(t, hooks+"/"+okID)
		expect(t, ep, http.StatusOK)
		expectText(t, ep, ok.srv.URL+"/hook", "Send test event", "Delivery attempts", "No deliveries yet.", "Rotate secret", "Reveal", "Delete", "Save changes")
		if !strings.Contains(ep.body, `value="api_key.created" checked`) || !strings.Contains(ep.body, `value="`+html.EscapeString(ok.srv.URL+"/hook")+`"`) {
			t.Errorf("the settings form is not filled in")
		}
	})
	if okID == "" {
		t.FailNow()
	}
	okPage := hooks + "/" + okID

	t.Run("EventIsDelivered", func(t *testing.T) {
		keyID, _ := s.restKey(t, "hooks", map[string]any{"name": "Webhook trigger", "keyType": "secret", "environment": "test"})
		testkit.Eventually(t, 15*time.Second, "api_key.created reaching the receiver", func() bool { return len(ok.posts("api_key.created")) > 0 })
		got := ok.posts("api_key.created")[0]
		if !strings.HasPrefix(got.id, "evt_") || got.id != got.event.ID || !strings.Contains(string(got.body), keyID) {
			t.Errorf("the delivery: webhook-id %q, body %s", got.id, got.body)
		}
		if !got.signedWith(t, okSecret) {
			t.Errorf("the delivery is not signed with the secret the page showed: %q", got.signature)
		}
		var rows []deliveryRow
		testkit.Eventually(t, 15*time.Second, "the attempt in the log", func() bool {
			rows = deliveries(admin.get(t, okPage).body)
			return len(rows) == 1 && rows[0].status == "succeeded"
		})
		r := rows[0]
		if r.eventType != "api_key.created" || !strings.Contains(r.text, got.id) || !strings.Contains(r.text, " 200 ") || !strings.Contains(r.text, " ms") || !strings.Contains(r.text, `{"received": true}`) {
			t.Errorf("the log's row: %q", r.text)
		}
		if strings.Contains(r.text, "Retry") {
			t.Errorf("a succeeded attempt offers Retry: %q", r.text)
		}
	})

	var failID string
	t.Run("RetryFailedAttempt", func(t *testing.T) {
		e := admin.post(t, hooks, url.Values{"url": {failing.srv.URL}, "eventTypes": {"*"}, "enabled": {"on"}})
		hookSecretPage(t, e)
		failID = endpointIDs(admin.get(t, hooks).body)[failing.srv.URL]
		if failID == "" {
			t.Fatal("the failing endpoint is not listed")
		}
		s.restKey(t, "hooks", map[string]any{"name": "Another trigger", "keyType": "secret", "environment": "test"})
		page := hooks + "/" + failID
		// The schedule is 0s,100ms,100ms: three attempts, all failed, and no more.
		var rows []deliveryRow
		testkit.Eventually(t, 15*time.Second, "three failed attempts", func() bool {
			rows = deliveries(admin.get(t, page).body)
			return len(rows) == 3 && rows[0].status == "failed" && rows[2].status == "failed" && rows[1].status == "failed"
		})
		for i, r := range rows {
			if !strings.Contains(r.text, "500") || !strings.Contains(r.text, "down for maintenance") || !strings.Contains(r.text, "only 2xx is success") {
				t.Errorf("failed attempt %d: %q", 3-i, r.text)
			}
		}
		body := admin.get(t, page).body
		for _, r := range rows {
			if !strings.Contains(body, `action="/w/hooks/settings/webhooks/`+failID+`/deliveries/`+r.id+`/retry"`) {
				t.Errorf("failed attempt %s has no Retry button", r.id)
			}
		}
		failing.answer(204, "")
		before := len(failing.posts(""))
		e = admin.post(t, page+"/deliveries/"+rows[0].id+"/retry", nil)
		expectRedirect(t, e, page)
		after := admin.get(t, page)
		if msg := first(reFlash, after.body); !strings.Contains(msg, "Attempt 4 of event") || !strings.Contains(msg, "is queued") {
			t.Errorf("flash after retry: %q", msg)
		}
		testkit.Eventually(t, 15*time.Second, "the retried attempt to succeed", func() bool {
			rows = deliveries(admin.get(t, page).body)
			return len(rows) == 4 && rows[0].status == "succeeded"
		})
		if !strings.Contains(rows[0].text, "4 (by hand)") || !strings.Contains(rows[0].text, "204") {
			t.Errorf("the retried attempt's row: %q", rows[0].text)
		}
		posts := failing.posts("")
		if len(posts) != before+1 || posts[len(posts)-1].id != posts[0].id {
			t.Errorf("the retry posted %d times, webhook-id %q (first %q)", len(posts)-before, posts[len(posts)-1].id, posts[0].id)
		}
		// The attempt that succeeded offers no Retry, and a hand-made post to retry it is refused.
		if strings.Contains(admin.get(t, page).body, "/deliveries/"+rows[0].id+"/retry") {
			t.Errorf("a succeeded attempt offers Retry")
		}
		e = admin.post(t, page+"/deliveries/"+rows[0].id+"/retry", nil)
		expect(t, e, http.StatusConflict)
		if !strings.Contains(e.text(), "only a failed attempt can be retried") {
			t.Errorf("the refusal of a succeeded attempt's retry says %q", e.text())
		}
		if n := len(deliveries(admin.get(t, page).body)); n != 4 {
			t.Errorf("%d attempts after a refused retry, want 4", n)
		}
		// The status filter.
		f := admin.get(t, page+"?status=failed")
		if rs := deliveries(f.body); len(rs) != 3 || !strings.Contains(f.body, `<option value="failed" selected>`) {
			t.Errorf("filtered by failed: %d rows", len(rs))
		}
		bad := admin.get(t, page+"?status=lost")
		expect(t, bad, http.StatusOK)
		if msg := first(regexp.MustCompile(`(?s)id="log-error">(.*?)</div>`), bad.body); !strings.Contains(msg, "Status must be pending, succeeded or failed") {
			t.Errorf("an unknown status filter says %q", msg)
		}
	})

	t.Run("SendTestEvent", func(t *testing.T) {
		e := admin.post(t, hooks, url.Values{"url": {teapot.srv.URL + "/tea"}, "eventTypes": {"order.created"}, "enabled": {"on"}})
		hookSecretPage(t, e)
		teaID := endpointIDs(admin.get(t, hooks).body)[teapot.srv.URL+"/tea"]
		page := hooks + "/" + teaID
		e = admin.post(t, page+"/test", url.Values{"eventType": {"webhook.test"}})
		expect(t, e, http.StatusOK)
		if got := first(regexp.MustCompile(`id="test-status">([^<]*)<`), e.body); got != "418 I'm a teapot" {
			t.Errorf("the test result's status: %q", got)
		}
		if !strings.Contains(e.body, `<span id="test-body">&lt;b&gt;teapot&lt;/b&gt;</span>`) || strings.Contains(e.body, "<b>teapot</b>") {
			t.Errorf("the response body is not shown escaped:\n%s", first(regexp.MustCompile(`(?s)(<pre class="terminal" id="test-result".*?</pre>)`), e.body))
		}
		if !regexp.MustCompile(`id="test-duration">\d+ ms<`).MatchString(e.body) || !strings.Contains(e.text(), "the endpoint answered 418") {
			t.Errorf("the test result lacks its duration or error")
		}
		got := teapot.posts("")
		if len(got) != 1 || got[0].event.Type != "webhook.test" || !strings.Contains(string(got[0].body), `"test":true`) {
			t.Fatalf("the receiver got %d posts: %+v", len(got), got)
		}
		// The same page's log shows the test send, failed, without Retry.
		rows := deliveries(e.body)
		if len(rows) != 1 || rows[0].eventType != "webhook.test" || rows[0].status != "failed" || !strings.Contains(rows[0].text, "418") {
			t.Fatalf("the log after a test send: %+v", rows)
		}
		if strings.Contains(e.body, "/deliveries/"+rows[0].id+"/retry") {
			t.Errorf("a test send offers Retry")
		}
		// Another event type of the catalog, and one that is not.
		teapot.answer(200, "ok")
		e = admin.post(t, page+"/test", url.Values{"eventType": {"order.created"}})
		expect(t, e, http.StatusOK)
		if got := first(regexp.MustCompile(`id="test-status">([^<]*)<`), e.body); got != "200 OK" || teapot.posts("order.created") == nil {
			t.Errorf("a test of order.created: status %q, %d posts", got, len(teapot.posts("order.created")))
		}
		e = admin.post(t, page+"/test", url.Values{"eventType": {"no.such"}})
		expect(t, e, http.StatusBadRequest)
		if msg, invalid, _ := fieldError(e.body, "eventType"); !invalid || !strings.Contains(msg, "Event type is not an event type of this deployment") {
			t.Errorf("an unknown test event type: %q (invalid %v)", msg, invalid)
		}
		if len(teapot.posts("")) != 2 {
			t.Errorf("a refused test send posted")
		}

		// 26 attempts: 25 a page, newest first, and a link to the older ones.
		for range 24 {
			expect(t, admin.post(t, page+"/test", nil), http.StatusOK)
		}
		newest := admin.get(t, page)
		rows = deliveries(newest.body)
		older := first(reOlder, newest.body)
		if len(rows) != 25 || older == "" || strings.Contains(newest.body, `id="newest"`) {
			t.Fatalf("the first page of 26 attempts: %d rows, older link %q", len(rows), older)
		}
		e = admin.get(t, older)
		expect(t, e, http.StatusOK)
		rest := deliveries(e.body)
		if len(rest) != 1 || rest[0].eventType != "webhook.test" || !strings.Contains(rest[0].text, "418") || first(reOlder, e.body) != "" || !strings.Contains(e.body, `id="newest"`) {
			t.Errorf("the second page: %d rows (%+v), older link %q", len(rest), rest, first(reOlder, e.body))
		}
		if slices.ContainsFunc(rows, func(r deliveryRow) bool { return r.id == rest[0].id }) {
			t.Errorf("the oldest attempt is on both pages")
		}
		bad := admin.get(t, page+"?cursor=junk")
		expect(t, bad, http.StatusOK)
		if msg := first(regexp.MustCompile(`(?s)id="log-error">(.*?)</div>`), bad.body); !strings.Contains(msg, "start again from the newest attempts") || !strings.Contains(bad.body, `id="newest"`) {
			t.Errorf("a bad cursor says %q", msg)
		}
	})

	t.Run("Edit", func(t *testing.T) {
		form := func(set url.Values) url.Values {
			f := url.Values{"url": {ok.srv.URL + "/hook"}, "description": {"Orders <b>service</b>"}, "eventTypes": {"api_key.created"}, "enabled": {"on"}}
			for k, v := range set {
				if v == nil {
					f.Del(k)
				} else {
					f[k] = v
				}
			}
			return f
		}
		// Refused edits show their error next to the field and change nothing.
		e := admin.post(t, okPage, form(url.Values{"url": {"ftp://x"}}))
		expect(t, e, http.StatusBadRequest)
		if msg, invalid, _ := fieldError(e.body, "url"); !invalid || !strings.Contains(msg, "URL must be an absolute") || !strings.Contains(e.body, `value="ftp://x"`) {
			t.Errorf("edit with a bad URL: %q (invalid %v)", msg, invalid)
		}
		e = admin.post(t, okPage, form(url.Values{"eventTypes": nil}))
		expect(t, e, http.StatusBadRequest)
		if msg, invalid := eventsError(e.body); !invalid || !strings.Contains(msg, "Events must name at least one event type") {
			t.Errorf("edit without events: %q (invalid %v)", msg, invalid)
		}
		if h := restHook(okID); h["url"] != ok.srv.URL+"/hook" || len(h["eventTypes"].([]any)) != 1 {
			t.Errorf("refused edits changed the endpoint: %v", h)
		}

		// Disable from the form: unticked "enabled".
		expectRedirect(t, admin.post(t, okPage, form(url.Values{"enabled": nil})), okPage)
		page := admin.get(t, okPage)
		if h := restHook(okID); h["enabled"] != false {
			t.Errorf("after unticking Enabled: %v", h)
		}
		if !strings.Contains(first(reFlash, page.body), "Saved") || !strings.Contains(page.body, `id="endpoint-status">✗ Disabled`) || !strings.Contains(page.body, ">Enable</button>") {
			t.Errorf("the disabled endpoint's page: %s", page.summary())
		}
		if st := endpointStatus(admin.get(t, hooks).body, okID); st != "disabled" {
			t.Errorf("the list shows the disabled endpoint as %q", st)
		}
		// Enable with the quick button, then change the events.
		expectRedirect(t, admin.post(t, okPage+"/enabled", url.Values{"enabled": {"true"}}), okPage)
		if h := restHook(okID); h["enabled"] != true {
			t.Errorf("after Enable: %v", h)
		}
		expectRedirect(t, admin.post(t, okPage, form(url.Values{"eventTypes": {"api_key.created", "api_key.revoked"}, "description": {"Orders"}})), okPage)
		h := restHook(okID)
		if ev, _ := json.Marshal(h["eventTypes"]); string(ev) != `["api_key.created","api_key.revoked"]` || h["description"] != "Orders" || h["enabled"] != true {
			t.Errorf("after changing the events: %v", h)
		}
		page = admin.get(t, okPage)
		if !strings.Contains(page.body, `value="api_key.revoked" checked`) {
			t.Errorf("the form does not show the new events ticked")
		}
		// "All events" alone.
		expectRedirect(t, admin.post(t, okPage, form(url.Values{"eventTypes": {"*", "api_key.created"}})), okPage)
		if ev, _ := json.Marshal(restHook(okID)["eventTypes"]); string(ev) != `["*"]` {
			t.Errorf("after ticking All events: %s", ev)
		}
	})

	// DeveloperAndKeyEvents: api_key events carry whole keys, which developers may not see. Their
	// form offers neither * nor the api_key events; posting them anyway, or changing an admin's
	// endpoint that receives them (repointing it at their own URL), is refused with the service's
	// reason and changes nothing. Endpoints of other events stay theirs to make.
	t.Run("DeveloperAndKeyEvents", func(t *testing.T) {
		dev := s.as(t, "developer")
		e := dev.get(t, hooks)
		expect(t, e, http.StatusOK)
		if strings.Contains(e.body, `value="api_key.`) || strings.Contains(e.body, `name="eventTypes" value="*"`) {
			t.Errorf("a developer's form offers * or api_key events")
		}
		if !strings.Contains(e.body, `value="order.created"`) || !strings.Contains(e.body, `value="webhook.test"`) {
			t.Errorf("a developer's form does not offer the other events")
		}
		before := rest()
		const why = "An endpoint that receives api_key events (or *) is created and changed only with the api_keys:read permission"
		for _, c := range []struct {
			path string
			form url.Values
		}{
			{hooks, url.Values{"url": {ok.srv.URL + "/dev"}, "eventTypes": {"*"}, "enabled": {"on"}}},
			{hooks, url.Values{"url": {ok.srv.URL + "/dev"}, "eventTypes": {"order.created", "api_key.created"}, "enabled": {"on"}}},
			{okPage, url.Values{"url": {ok.srv.URL + "/dev"}, "eventTypes": {"order.created"}, "enabled": {"on"}}},
			{okPage, url.Values{"url": {restHook(okID)["url"].(string)}, "description": {"just a description"}, "eventTypes": {"*"}, "enabled": {"on"}}},
			{okPage + "/enabled", url.Values{"enabled": {"false"}}},
		} {
			e := dev.post(t, c.path, c.form)
			errorPage(t, e, http.StatusForbidden, why)
			if strings.Contains(e.body, "whsec_") || strings.Contains(e.body, "Your role") {
				t.Errorf("POST %s: the refusal shows a secret or blames the role: %s", c.path, e.summary())
			}
		}
		was, _ := json.Marshal(before)
		if now, _ := json.Marshal(rest()); string(now) != string(was) {
			t.Errorf("a developer's refused posts changed the endpoints:\n%s\n→ %s", was, now)
		}
		// The admin's endpoint page shows the developer its settings, not a form to change them nor
		// Disable, and says why; rotating, testing and retrying stay theirs.
		page := dev.get(t, okPage)
		expectText(t, page, "all events (*)", "only those who may see API keys (owners and admins) change it", "Send test event")
		if strings.Contains(page.body, "Save changes") || strings.Contains(page.body, `action="`+okPage+`/enabled"`) || strings.Contains(page.body, `name="eventTypes"`) {
			t.Errorf("a developer is offered to change an endpoint of *")
		}
		if !strings.Contains(admin.get(t, okPage).body, "Save changes") {
			t.Errorf("an admin is not offered to change an endpoint of *")
		}
		mine := hookSecretPage(t, dev.post(t, hooks, url.Values{"url": {ok.srv.URL + "/dev"}, "eventTypes": {"order.created"}, "enabled": {"on"}}))
		if mine == "" || len(rest()) != len(before)+1 {
			t.Fatalf("a developer could not create an endpoint of order.created")
		}
		var devID string
		for _, h := range rest() {
			if h["url"] == ok.srv.URL+"/dev" {
				devID = h["id"].(string)
			}
		}
		errorPage(t, dev.post(t, hooks+"/"+devID, url.Values{"url": {ok.srv.URL + "/dev"}, "eventTypes": {"api_key.revoked"}, "enabled": {"on"}}), http.StatusForbidden, why)
		expectRedirect(t, dev.post(t, hooks+"/"+devID+"/delete", nil), hooks)
	})

	var rotated string
	t.Run("RotateSecret", func(t *testing.T) {
		confirm := admin.get(t, okPage+"/rotate")
		expect(t, confirm, http.StatusOK)
		expectText(t, confirm, "Rotate the signing secret", "The previous secret keeps signing for 24 hours")
		if !strings.Contains(confirm.body, `action="/w/hooks/settings/webhooks/`+okID+`/rotate"`) || !strings.Contains(confirm.body, ">Rotate secret</button>") {
			t.Errorf("the confirmation has no form")
		}
		if strings.Contains(confirm.text(), okSecret) {
			t.Errorf("the confirmation shows the secret")
		}
		e := admin.post(t, okPage+"/rotate", nil)
		rotated = hookSecretPage(t, e)
		if rotated == okSecret {
			t.Fatal("rotate showed the same secret")
		}
		expectText(t, e, "New signing secret", "The previous secret keeps signing until")
		// Deliveries are signed with both, for now.
		n := len(ok.posts("webhook.test"))
		expect(t, admin.post(t, okPage+"/test", nil), http.StatusOK)
		posts := ok.posts("webhook.test")
		if len(posts) != n+1 {
			t.Fatalf("the test send after rotation did not reach the receiver")
		}
		if g := posts[n]; !g.signedWith(t, rotated) || !g.signedWith(t, okSecret) {
			t.Errorf("after rotation the delivery is not signed with both secrets: %q", g.signature)
		}
	})

	t.Run("Reveal", func(t *testing.T) {
		reRevealError := regexp.MustCompile(`(?s)id="reveal-error">(.*?)</`)
		// askedAgain checks an answer that must be the reveal confirmation page with msg next to the
		// password field, and no secret.
		askedAgainWith := func(t *testing.T, e *exchange, status int, msg string) {
			t.Helper()
			expect(t, e, status)
			if got := first(reRevealError, e.body); !strings.Contains(got, msg) {
				t.Errorf("%s %s: the error is %q, want %q", e.method, e.path, got, msg)
			}
			if strings.Contains(e.body, "whsec_") || strings.Contains(e.text(), rotated) || strings.Contains(e.body, `id="secret-value"`) {
				t.Errorf("%s %s: a refused reveal shows the secret", e.method, e.path)
			}
			if !strings.Contains(e.body, `<label for="password">Password</label>`) || !strings.Contains(e.body, `action="`+okPage+`/reveal"`) {
				t.Errorf("%s %s: the answer is not the password form: %s", e.method, e.path, e.summary())
			}
		}
		askedAgain := func(t *testing.T, e *exchange, msg string) {
			t.Helper()
			askedAgainWith(t, e, http.StatusBadRequest, msg)
		}

		wsadmin := s.as(t, "wsadmin")
		page := wsadmin.get(t, okPage)
		expect(t, page, http.StatusOK)
		if !strings.Contains(page.body, `href="/w/hooks/settings/webhooks/`+okID+`/reveal"`) {
			t.Errorf("an admin is not offered Reveal")
		}
		// Revealing asks for the password, as revealing a key does: a page of its own, which is where
		// the Reveal button leads.
		confirm := wsadmin.get(t, okPage+"/reveal")
		expect(t, confirm, http.StatusOK)
		expectText(t, confirm, "Reveal the signing secret", "Enter your password again")
		if !strings.Contains(confirm.body, `<label for="password">Password</label>`) || !strings.Contains(confirm.body, `<input type="password" id="password" name="password"`) ||
			!strings.Contains(confirm.body, `>Reveal</button>`) || strings.Contains(confirm.body, "whsec_") {
			t.Fatalf("the reveal page does not ask for the password: %s", confirm.summary())
		}
		// Without the password, with an empty or a wrong one: the page again, with the reason. A form
		// sent without one is a missing field, not a wrong password (and counts toward no lock).
		askedAgain(t, wsadmin.post(t, okPage+"/reveal", nil), "Enter your password.")
		askedAgain(t, wsadmin.post(t, okPage+"/reveal", url.Values{"password": {""}}), "Enter your password.")
		askedAgain(t, wsadmin.post(t, okPage+"/reveal", url.Values{"password": {"not my password"}}), "That password is not right.")
		e := wsadmin.post(t, okPage+"/reveal", url.Values{"password": {thePassword}})
		if got := hookSecretPage(t, e); got != rotated {
			t.Errorf("revealed %.10s…, the current secret is %.10s…", got, rotated)
		}
		expectText(t, e, "This reveal is recorded in the audit trail")
		// Within five minutes, no password again.
		if c := wsadmin.get(t, okPage+"/reveal"); c.status != http.StatusOK || strings.Contains(c.body, `id="password"`) || !strings.Contains(c.body, `>Reveal</button>`) {
			t.Errorf("asked for the password again within five minutes: %s", c.summary())
		}
		if got := hookSecretPage(t, wsadmin.post(t, okPage+"/reveal", nil)); got != rotated {
			t.Errorf("the second reveal showed %.10s…", got)
		}

		// Too many wrong passwords: the account is throttled, and then the right password does not
		// reveal either. A person of its own, so that the others' sign-ins stay open.
		s.cli(t, thePassword+"\n", "users", "create", "--email", "hookadmin@example.com", "--role", "admin", "--workspace", "hooks")
		ha := s.newPerson("hookadmin@example.com")
		if e := ha.login(t, ha.email, thePassword, "/status"); e.status != http.StatusSeeOther {
			t.Fatalf("sign in as hookadmin: %s", e.summary())
		}
		ha.loadCSRF(t)
		for i := 1; i <= 5; i++ {
			askedAgain(t, ha.post(t, okPage+"/reveal", url.Values{"password": {"wrong password number " + strconv.Itoa(i)}}), "That password is not right.")
		}
		locked := ha.post(t, okPage+"/reveal", url.Values{"password": {thePassword}})
		askedAgainWith(t, locked, http.StatusTooManyRequests, "try again in")
		retryAfter(t, locked)

		dev := s.as(t, "developer")
		page = dev.get(t, okPage)
		expect(t, page, http.StatusOK)
		if strings.Contains(page.body, "/reveal") {
			t.Errorf("a developer is offered Reveal")
		}
		if !strings.Contains(page.body, `href="/w/hooks/settings/webhooks/`+okID+`/rotate"`) || !strings.Contains(page.body, ">Send test event</button>") {
			t.Errorf("a developer is not offered Rotate secret and Send test event")
		}
		// A developer may not reveal: no password form, and whatever is sent, the service's refusal
		// (not the role sentence: a developer changes endpoints).
		errorPage(t, dev.get(t, okPage+"/reveal"), http.StatusForbidden, "Only owners and admins may reveal a signing secret.")
		for _, form := range []url.Values{{"password": {thePassword}}, {"password": {"not my password"}}, nil} {
			e = dev.post(t, okPage+"/reveal", form)
			errorPage(t, e, http.StatusForbidden, "Only owners and admins may reveal a signing secret.")
			if strings.Contains(e.text(), rotated) || strings.Contains(e.body, "whsec_") || strings.Contains(e.body, "Your role") {
				t.Errorf("the refusal shows the secret or blames the role: %s", e.summary())
			}
		}
		audit := admin.get(t, "/w/hooks/audit")
		expectText(t, audit, "webhook.secret_revealed", "webhook.secret_reveal_denied", "webhook.secret_rotated", "user.reauth_failed", "user.reauthenticated")
	})

	t.Run("Viewer", func(t *testing.T) {
		p := s.as(t, "viewer")
		before := rest()
		e := p.get(t, hooks)
		expect(t, e, http.StatusOK)
		if !strings.Contains(nav(e.body), ">Webhooks</a>") {
			t.Errorf("a viewer's navigation has no Webhooks link")
		}
		if endpointIDs(e.body)[ok.srv.URL+"/hook"] != okID {
			t.Errorf("a viewer does not see the endpoints")
		}
		ep := p.get(t, okPage)
		expect(t, ep, http.StatusOK)
		expectText(t, ep, ok.srv.URL+"/hook", "Delivery attempts", "api_key.created")
		for _, pg := range []*exchange{e, ep} {
			if rePostForm.MatchString(pg.body) || strings.Contains(pg.body, "data-post=") {
				t.Errorf("%s: a viewer is offered a form that changes things", pg.path)
			}
			for _, b := range []string{"Add endpoint", "Send test event", "Rotate secret", "Save changes", ">Retry", ">Delete<", ">Reveal<", ">Disable<"} {
				if strings.Contains(pg.body, b) {
					t.Errorf("%s: a viewer is offered %q", pg.path, b)
				}
			}
		}
		if len(deliveries(ep.body)) == 0 {
			t.Errorf("a viewer does not see the delivery log")
		}
		errorPage(t, p.get(t, okPage+"/delete"), http.StatusForbidden, "(viewer) does not allow this")
		// Posting anyway is refused by the service, and changes nothing.
		fail := p.get(t, hooks+"/"+failID)
		fr := deliveries(fail.body)
		if len(fr) == 0 {
			t.Fatal("the failing endpoint has no attempts to retry")
		}
		for _, c := range []struct {
			path string
			form url.Values
		}{
			{hooks, url.Values{"url": {ok.srv.URL + "/viewer"}, "eventTypes": {"*"}, "enabled": {"on"}}},
			{okPage, url.Values{"url": {ok.srv.URL + "/viewer"}, "eventTypes": {"*"}}},
			{okPage + "/enabled", url.Values{"enabled": {"false"}}},
			{okPage + "/test", nil},
			{okPage + "/rotate", nil},
			{okPage + "/reveal", nil},
			{okPage + "/delete", nil},
			{hooks + "/" + failID + "/deliveries/" + fr[len(fr)-1].id + "/retry", nil},
		} {
			errorPage(t, p.post(t, c.path, c.form), http.StatusForbidden, "Your role in this workspace (viewer) does not allow this. Only owners, admins and developers change webhook endpoints.")
		}
		was, _ := json.Marshal(before)
		if now, _ := json.Marshal(rest()); string(now) != string(was) {
			t.Errorf("a viewer's posts changed the endpoints:\n%s\n→ %s", was, now)
		}
		if n := len(deliveries(p.get(t, hooks+"/"+failID).body)); n != len(fr) {
			t.Errorf("a viewer's retry queued an attempt: %d → %d", len(fr), n)
		}
	})

	t.Run("OtherWorkspaceIsNotFound", func(t *testing.T) {
		p := s.as(t, "owner2")
		errorPage(t, p.get(t, okPage), http.StatusNotFound, "There is no workspace here")
		errorPage(t, p.get(t, hooks), http.StatusNotFound, "There is no workspace here")
		errorPage(t, p.post(t, okPage+"/delete", nil), http.StatusNotFound, "There is no workspace here")
		// The endpoint through one's own workspace's pages.
		expect(t, p.get(t, "/w/second/settings/webhooks"), http.StatusOK)
		errorPage(t, p.get(t, "/w/second/settings/webhooks/"+okID), http.StatusNotFound, "")
		errorPage(t, p.post(t, "/w/second/settings/webhooks/"+okID+"/delete", nil), http.StatusNotFound, "")
		errorPage(t, p.post(t, "/w/second/settings/webhooks/"+okID+"/reveal", nil), http.StatusNotFound, "")
		errorPage(t, p.post(t, "/w/second/settings/webhooks/"+okID+"/test", nil), http.StatusNotFound, "")
		if restHook(okID) == nil {
			t.Fatal("another workspace's owner deleted the endpoint")
		}
		if len(ok.posts("webhook.test")) != 1 {
			t.Errorf("another workspace's owner sent a test event")
		}
	})

	t.Run("CSRF", func(t *testing.T) {
		n := len(rest())
		for _, c := range []struct {
			path string
			form url.Values
		}{
			{hooks, url.Values{"url": {ok.srv.URL + "/forged"}, "eventTypes": {"*"}, "enabled": {"on"}}},
			{okPage + "/delete", url.Values{}},
			{okPage + "/rotate", url.Values{}},
			{okPage + "/reveal", url.Values{}},
			{okPage + "/enabled", url.Values{"enabled": {"false"}}},
		} {
			e := admin.do(t, http.MethodPost, c.path, c.form) // no csrf field
			errorPage(t, e, http.StatusForbidden, "This form has expired or was not sent from this site")
			if strings.Contains(e.body, "whsec_") {
				t.Errorf("POST %s without a token shows a secret", c.path)
			}
		}
		if len(rest()) != n {
			t.Errorf("a form without a token created an endpoint")
		}
		if h := restHook(okID); h == nil || h["enabled"] != true {
			t.Errorf("forms without a token changed the endpoint: %v", h)
		}
	})

	t.Run("Delete", func(t *testing.T) {
		page := admin.get(t, okPage)
		if !strings.Contains(page.body, `href="/w/hooks/settings/webhooks/`+okID+`/delete" data-confirm="Delete the endpoint`) {
			t.Errorf("Delete does not ask for confirmation")
		}
		confirm := admin.get(t, okPage+"/delete")
		expect(t, confirm, http.StatusOK)
		expectText(t, confirm, "Delete this endpoint", "This cannot be undone")
		if !strings.Contains(confirm.body, `action="/w/hooks/settings/webhooks/`+okID+`/delete"`) || !strings.Contains(confirm.body, ">Delete</button>") {
			t.Errorf("the confirmation has no form")
		}
		errorPage(t, admin.get(t, okPage+"/explode"), http.StatusNotFound, "There is no page here.")
		e := admin.post(t, okPage+"/delete", nil)
		expectRedirect(t, e, hooks)
		after := admin.get(t, hooks)
		if msg := first(reFlash, after.body); !strings.Contains(msg, "is deleted") {
			t.Errorf("flash after delete: %q", msg)
		}
		if _, listed := endpointIDs(after.body)[ok.srv.URL+"/hook"]; listed || restHook(okID) != nil {
			t.Errorf("the deleted endpoint is still there")
		}
		errorPage(t, admin.get(t, okPage), http.StatusNotFound, "")
	})

	t.Run("DisabledByKeyplane", func(t *testing.T) {
		gone := newReceiver(t, http.StatusGone, "")
		hookSecretPage(t, admin.post(t, hooks, url.Values{"url": {gone.srv.URL}, "eventTypes": {"api_key.created"}, "enabled": {"on"}}))
		goneID := endpointIDs(admin.get(t, hooks).body)[gone.srv.URL]
		s.restKey(t, "hooks", map[string]any{"name": "Gone trigger", "keyType": "secret", "environment": "test"})
		var page *exchange
		testkit.Eventually(t, 15*time.Second, "the endpoint answering 410 to be disabled", func() bool {
			page = admin.get(t, hooks)
			return endpointStatus(page.body, goneID) == "disabled"
		})
		for _, m := range reEndpointRow.FindAllStringSubmatch(page.body, -1) {
			if m[1] == goneID && !strings.Contains(m[3], "the endpoint answered 410 Gone") {
				t.Errorf("the list does not say why the endpoint is disabled:\n%s", m[0])
			}
		}
		ep := admin.get(t, hooks+"/"+goneID)
		if msg := first(regexp.MustCompile(`(?s)id="disabled-reason">(.*?)</div>`), ep.body); !strings.Contains(msg, "keyplane disabled this endpoint: the endpoint answered 410 Gone") {
			t.Errorf("the endpoint page says %q", msg)
		}
		// Enabling it again clears the reason.
		expectRedirect(t, admin.post(t, hooks+"/"+goneID+"/enabled", url.Values{"enabled": {"true"}}), hooks+"/"+goneID)
		if h := restHook(goneID); h["enabled"] != true || h["disabledReason"] != nil && h["disabledReason"] != "" {
			t.Errorf("after Enable: %v", h)
		}
	})
}

// TestWebhookURLHint: the add form says which URLs the deployment takes.
func TestWebhookURLHint(t *testing.T) {
	for _, c := range []struct {
		policy webhook.URLPolicy
		want   string
	}{
		{webhook.URLPolicy{}, "An https:// address on the public internet"},
		{webhook.URLPolicy{AllowHTTP: true}, "An http:// or https:// address on the public internet"},
		{webhook.URLPolicy{AllowHTTP: true, AllowPrivate: true}, "allows private and loopback addresses"},
	} {
		svc, _ := servicetest.Open(t, "sqlite", service.Options{Webhooks: service.WebhookOptions{Policy: c.policy, Guard: kptest.Guard(t)}})
		d, err := dashboard.New(dashboard.Options{Service: svc})
		if err != nil {
			t.Fatal(err)
		}
		if got := d.WebhookURLHint(); !strings.Contains(got, c.want) {
			t.Errorf("policy %+v: hint %q, want it to contain %q", c.policy, got, c.want)
		}
	}
}
