package dashboard_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/keyplane/keyplane/internal/browsertest"
	"github.com/keyplane/keyplane/internal/testkit"
)

// TestBrowserWebhookRecovery: on the webhooks page, a person recovers an endpoint's failed
// deliveries since a time (after a confirmation page), and the receiver, back up, gets each failed
// event once, signed, under its own webhook-id; recovering again sends nothing twice. A Resend button
// of the recent events, pressed from the keyboard, sends one event again. The page passes the
// accessibility checks and fits a 375 px phone.
func TestBrowserWebhookRecovery(t *testing.T) {
	t.Parallel() // its own server and its own chromium: nothing shared with the other tests
	s := startKP(t, "sqlite")
	rc := newReceiver(t, 503, "down for maintenance")
	st, res := s.call(t, s.admin, "POST", "/v1/webhooks", s.ws["default"], map[string]any{"url": rc.srv.URL + "/hook", "eventTypes": []string{"api_key.created"}})
	if st != 201 {
		t.Fatalf("create endpoint: %d %v", st, res)
	}
	hookID, secret := data(res)["id"].(string), data(res)["secret"].(string)
	s.mu.Lock()
	s.values = append(s.values, secret)
	s.mu.Unlock()
	var events []string
	for i := range 2 {
		keyID, _ := s.restKey(t, "default", map[string]any{"name": fmt.Sprintf("recovered %d", i), "keyType": "secret", "environment": "test"})
		_ = keyID
	}
	// Every attempt (0s, 100ms, 100ms) fails: six failed, none pending.
	testkit.Eventually(t, 20*time.Second, "the events' attempts to fail for good", func() bool {
		_, body := s.call(t, s.admin, "GET", "/v1/webhooks/"+hookID+"/deliveries?limit=100", s.ws["default"], nil)
		ds := list(body)
		failed := 0
		for _, d := range ds {
			switch d["status"] {
			case "pending":
				return false
			case "failed":
				failed++
			}
		}
		return failed == 6
	})
	_, body := s.call(t, s.admin, "GET", "/v1/events?type=api_key.created", s.ws["default"], nil)
	for _, e := range list(body) {
		events = append(events, e["id"].(string))
	}
	if len(events) != 2 {
		t.Fatalf("events: %v", events)
	}
	rc.answer(204, "")
	before := len(rc.posts(""))

	b := browsertest.New(t)
	ana := btPerson(t, b)
	signIn(t, ana, s.url, "admin@localhost", thePassword)
	page := s.url + "/w/default/settings/webhooks"
	browsertest.Do(t, ana, "webhooks page", chromedp.Navigate(page), chromedp.WaitVisible(css("#recover-since")))
	if lbl := browsertest.Text(t, ana, `label[for=recover-since]`); lbl != "Failed since (UTC)" {
		t.Errorf("the time's label: %q", lbl)
	}
	if n := browsertest.Eval[int](t, ana, `document.querySelectorAll("#event-table tbody tr[data-event-id]").length`); n != 2 {
		t.Errorf("recent events listed: %d, want 2", n)
	}
	checkA11y(t, ana, "the webhooks page with the recovery form and recent events")

	// A day ago is the default; the person sets an hour ago, then confirms.
	since := time.Now().UTC().Add(-time.Hour).Format("2006-01-02T15:04")
	browsertest.Do(t, ana, "recover: the form",
		chromedp.SetValue(css("#recover-since"), since),
		chromedp.Click(css("#recover-submit")),
		chromedp.WaitVisible(css("#recover-confirm")))
	if txt := browsertest.Text(t, ana, "main"); !strings.Contains(txt, rc.srv.URL+"/hook") || !strings.Contains(txt, "whose last delivery to this endpoint failed") {
		t.Errorf("the confirmation page: %q", txt)
	}
	if got := len(rc.posts("")); got != before {
		t.Fatalf("the form queued %d deliveries before the confirmation", got-before)
	}
	b.Screenshot(t, ana, "40-webhook-recover-confirm")
	checkA11y(t, ana, "the recovery's confirmation page")
	browsertest.Do(t, ana, "recover: confirm", chromedp.Click(css("#recover-confirm")), chromedp.WaitVisible(css(".notice.ok")))
	if msg := browsertest.Text(t, ana, ".notice.ok"); !strings.Contains(msg, "Queued 2 failed deliveries") {
		t.Errorf("after the recovery: %q", msg)
	}
	testkit.Eventually(t, 15*time.Second, "the two failed events delivered again", func() bool { return len(rc.posts("")) >= before+2 })
	got := map[string]int{}
	for _, p := range rc.posts("")[before:] {
		got[p.id]++
		if p.id != p.event.ID || !p.signedWith(t, secret) {
			t.Errorf("a recovered delivery: webhook-id %s, event %s, signed %v", p.id, p.event.ID, p.signedWith(t, secret))
		}
	}
	if len(got) != 2 || got[events[0]] != 1 || got[events[1]] != 1 {
		t.Errorf("recovered deliveries per event: %v, want %v once each", got, events)
	}
	b.Screenshot(t, ana, "41-webhook-recovered")

	// Again: everything was delivered, nothing is sent twice.
	testkit.Eventually(t, 15*time.Second, "the recovered attempts recorded", func() bool {
		_, body := s.call(t, s.admin, "GET", "/v1/webhooks/"+hookID+"/deliveries?status=succeeded", s.ws["default"], nil)
		return len(list(body)) == 2
	})
	browsertest.Do(t, ana, "recover again",
		chromedp.SetValue(css("#recover-since"), since),
		chromedp.Click(css("#recover-submit")), chromedp.WaitVisible(css("#recover-confirm")),
		chromedp.Click(css("#recover-confirm")), chromedp.WaitVisible(css(".notice.ok")))
	if msg := browsertest.Text(t, ana, ".notice.ok"); !strings.Contains(msg, "Nothing to send again") {
		t.Errorf("the second recovery: %q", msg)
	}

	// A time that is not one is said so next to the form, and queues nothing.
	browsertest.Do(t, ana, "recover without a time",
		chromedp.SetValue(css("#recover-since"), ""),
		chromedp.Click(css("#recover-submit")), chromedp.WaitVisible(css("#recover-error")))
	if msg := browsertest.Text(t, ana, "#recover-error"); !strings.Contains(msg, "Enter the time") {
		t.Errorf("no time: %q", msg)
	}
	checkA11y(t, ana, "the recovery form with an error")

	// Resend, from the keyboard: the newest event goes out once more.
	mark := len(rc.posts(""))
	browsertest.Do(t, ana, "back to the page", chromedp.Navigate(page+"#events"), chromedp.WaitVisible(css("#event-table")))
	btn := css(`#event-table tr[data-event-id="` + events[0] + `"] button[type=submit]`)
	if name := browsertest.Text(t, ana, `#event-table tr[data-event-id="`+events[0]+`"] button[type=submit]`); strings.Join(strings.Fields(name), " ") != "Resend event "+events[0] {
		t.Errorf("the Resend button's name: %q", name)
	}
	browsertest.Do(t, ana, "resend with the keyboard", chromedp.Focus(btn), chromedp.KeyEvent(kb.Enter), chromedp.WaitVisible(css(".notice.ok")))
	if msg := browsertest.Text(t, ana, ".notice.ok"); !strings.Contains(msg, "queued for 1 endpoint") {
		t.Errorf("after Resend: %q", msg)
	}
	testkit.Eventually(t, 15*time.Second, "the resent event delivered", func() bool { return len(rc.posts("")) > mark })
	if p := rc.posts("")[mark]; p.id != events[0] || !p.signedWith(t, secret) {
		t.Errorf("the resend: webhook-id %s, want %s, signed %v", p.id, events[0], p.signedWith(t, secret))
	}

	// A phone: the page fits, forms and table included.
	browsertest.Do(t, ana, "phone", chromedp.EmulateViewport(375, 812), chromedp.Navigate(page), chromedp.WaitVisible(css("#recover-since")))
	if w := browsertest.Eval[int](t, ana, "document.documentElement.scrollWidth"); w > 385 {
		t.Errorf("the webhooks page is %d px wide on a 375 px phone", w)
	}
	b.Screenshot(t, ana, "42-phone-webhook-recover")
	checkA11y(t, ana, "the webhooks page at 375 px")
	noJSErrors(t, b)
}
