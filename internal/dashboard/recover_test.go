package dashboard_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane/internal/id"
	"github.com/keyplane/keyplane/internal/testkit"
)

var reRecoverError = regexp.MustCompile(`id="recover-error">([^<]*)<`)

// testRecovery: the webhooks page's recovery form and Resend buttons, without a browser. Viewers see
// the recent events but no form or button, and their posts are refused; a developer recovers after
// a confirmation page; a time that is not one, an endpoint that does not exist and a window past the
// event retention are said so on the form, and queue nothing.
func testRecovery(t *testing.T, s *kpServer) {
	rc := newReceiver(t, 503, "down")
	st, body := s.call(t, s.admin, "POST", "/v1/webhooks", s.ws["default"], map[string]any{"url": rc.srv.URL + "/recover", "eventTypes": []string{"order.created"}})
	if st != 201 {
		t.Fatalf("create endpoint: %d %v", st, body)
	}
	hookID := data(body)["id"].(string)
	s.mu.Lock()
	s.values = append(s.values, data(body)["secret"].(string))
	s.mu.Unlock()
	st, body = s.call(t, s.admin, "POST", "/v1/events", s.ws["default"], map[string]any{"type": "order.created", "data": map[string]any{"order": "recover-me"}})
	if st != 202 {
		t.Fatalf("send event: %d %v", st, body)
	}
	evID := data(body)["id"].(string)
	attempts := func() (failed, pending, total int) {
		_, body := s.call(t, s.admin, "GET", "/v1/webhooks/"+hookID+"/deliveries?limit=100", s.ws["default"], nil)
		for _, d := range list(body) {
			total++
			switch d["status"] {
			case "failed":
				failed++
			case "pending":
				pending++
			}
		}
		return
	}
	testkit.Eventually(t, 15*time.Second, "the event's attempts to fail", func() bool { f, p, _ := attempts(); return f == 3 && p == 0 })

	page := "/w/default/settings/webhooks"
	since := time.Now().UTC().Add(-time.Hour).Format("2006-01-02T15:04")
	form := func(kv ...string) url.Values {
		f := url.Values{"endpointId": {hookID}, "since": {since}}
		for i := 0; i+1 < len(kv); i += 2 {
			f.Set(kv[i], kv[i+1])
		}
		return f
	}

	viewer := s.as(t, "viewer")
	e := viewer.get(t, page)
	expect(t, e, http.StatusOK)
	if !strings.Contains(e.body, `data-event-id="`+evID+`"`) {
		t.Errorf("a viewer does not see the recent event: %s", e.summary())
	}
	if strings.Contains(e.body, `id="recover-since"`) || strings.Contains(e.body, "/resend") {
		t.Errorf("a viewer is offered the recovery form or Resend")
	}
	expect(t, viewer.post(t, page+"/recover", form("confirm", "yes")), http.StatusForbidden)
	expect(t, viewer.post(t, page+"/events/"+evID+"/resend", url.Values{}), http.StatusForbidden)

	dev := s.as(t, "developer")
	e = dev.get(t, page)
	expectText(t, e, "Recover failed deliveries", "Failed since (UTC)", "Recent events")
	for _, c := range []struct {
		name string
		form url.Values
		msg  string
	}{
		{"no time", form("since", ""), "Enter the time"},
		{"not a time", form("since", "next tuesday"), "must be a date and time"},
		{"no endpoint", form("endpointId", ""), "Choose the endpoint"},
		{"unknown endpoint", form("endpointId", id.New(id.Webhook)), "does not exist"},
		{"not an endpoint id", form("endpointId", "<script>"), "does not exist"},
		{"past the retention", form("since", time.Now().UTC().Add(-40*24*time.Hour).Format("2006-01-02T15:04"), "confirm", "yes"), "older than the event retention"},
		{"in the future", form("since", time.Now().UTC().Add(48*time.Hour).Format("2006-01-02T15:04"), "confirm", "yes"), "must be in the past"},
	} {
		e := dev.post(t, page+"/recover", c.form)
		expect(t, e, http.StatusBadRequest)
		if msg := first(reRecoverError, e.body); !strings.Contains(msg, c.msg) {
			t.Errorf("%s: the form says %q, want %q", c.name, msg, c.msg)
		}
	}
	if _, _, n := attempts(); n != 3 {
		t.Fatalf("refused recoveries queued %d attempts", n-3)
	}

	// The form leads to a confirmation page, which queues nothing; its button does.
	e = dev.post(t, page+"/recover", form())
	expect(t, e, http.StatusOK)
	expectText(t, e, rc.srv.URL+"/recover", "whose last delivery to this endpoint failed")
	if _, _, n := attempts(); n != 3 {
		t.Fatalf("the confirmation page queued %d attempts", n-3)
	}
	// The receiver is back: the recovered attempt succeeds, so nothing can be queued twice below.
	rc.answer(204, "")
	e = dev.post(t, page+"/recover", form("confirm", "yes"))
	expectRedirect(t, e, page)
	expectText(t, dev.get(t, page), "Queued 1 failed delivery of "+rc.srv.URL+"/recover")
	if _, p, _ := attempts(); p > 1 {
		t.Errorf("%d attempts pending after a recovery of one event", p)
	}
	// Recovering again at once queues nothing more: the first one's attempt is pending or made.
	expectRedirect(t, dev.post(t, page+"/recover", form("confirm", "yes")), page)
	expectText(t, dev.get(t, page), "Nothing to send again")
	testkit.Eventually(t, 15*time.Second, "the recovered attempt made", func() bool { _, p, _ := attempts(); return p == 0 })
	if _, _, n := attempts(); n != 4 {
		t.Errorf("after two recoveries the endpoint has %d attempts, want 4", n)
	}

	// Resend: queued for the one endpoint that wants the event.
	e = dev.post(t, page+"/events/"+evID+"/resend", url.Values{})
	expectRedirect(t, e, page)
	expectText(t, dev.get(t, page), "Event "+evID+" is queued for 1 endpoint")
	e = dev.post(t, page+"/events/"+id.New(id.Event)+"/resend", url.Values{})
	expect(t, e, http.StatusNotFound)
}
