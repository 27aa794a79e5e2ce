package dashboard_test

import (
	"context"
	"encoding/csv"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/keyplane/keyplane/internal/browsertest"
	"github.com/keyplane/keyplane/internal/testkit"
)

// fieldValue is the value of the form control with this id.
func fieldValue(t *testing.T, ctx context.Context, id string) string {
	t.Helper()
	return browsertest.Eval[string](t, ctx, `(() => { const e = document.getElementById(`+quoteJS(id)+`); return e ? e.value : "" })()`)
}

// clearNotices removes the page's notices, so that waiting for one waits for the next page's.
var clearNotices = chromedp.Evaluate[chromedp.Void](`document.querySelectorAll(".notice").forEach(e => e.remove())`)

func quoteJS(s string) string { return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"` }

// TestBrowserUsageKeys: an admin sets a key's credits (a bad value first: its error is read out with
// the field), adds and removes a named rate limit, gives the key an identity and follows the link to
// it, creates an identity from the Identities page, is refused deleting one that has a key, filters
// the logs by tag and downloads the usage export. Every page passes axe and fits a 375 px phone.
func TestBrowserUsageKeys(t *testing.T) {
	t.Parallel() // its own server and its own chromium: nothing shared with the other tests
	s := startKP(t, "sqlite")
	keyID, value := s.restKey(t, "default", map[string]any{"name": "Metered", "keyType": "secret", "environment": "test",
		"rateLimit": map[string]any{"limit": 100, "windowMs": 60000}})
	for _, tags := range [][]string{{"checkout", "eu"}, {"search"}} {
		if st, body := s.call(t, s.verifier, "POST", "/v1/verify", "", map[string]any{"key": value, "tags": tags}); st != 200 {
			t.Fatalf("verify: %d %v", st, body)
		}
	}
	waitLogs(t, s.as(t, "admin"), "/w/default/logs?key="+keyID, 2)

	b := browsertest.New(t)
	ana := btPerson(t, b)
	signIn(t, ana, s.url, "admin@localhost", thePassword)
	page := s.url + "/w/default/settings/api/" + keyID

	// Credits: a value that is no number is shown next to its field, then a monthly refill.
	browsertest.Do(t, ana, "key page", chromedp.Navigate(page), chromedp.WaitVisible(css("#credits-form")))
	if got := browsertest.Text(t, ana, "#credits-remaining"); !strings.Contains(got, "Unlimited") {
		t.Fatalf("a new key's credits: %q", got)
	}
	b.Screenshot(t, ana, "20-key-usage-settings")
	checkA11y(t, ana, "a key's page with its credits, limits and identity")
	browsertest.Do(t, ana, "bad credits",
		browsertest.Click("#credits-limited"),
		browsertest.Fill("#remaining", "lots"),
		browsertest.Click("#credits-form button[type=submit]"),
		browsertest.WaitVisible("#remaining-error"))
	if msg := browsertest.Text(t, ana, "#remaining-error"); !strings.Contains(msg, "whole number") {
		t.Errorf("remaining lots: %q", msg)
	}
	if d := browsertest.Eval[string](t, ana, `document.getElementById("remaining").getAttribute("aria-describedby")`); !strings.Contains(d, "remaining-error") {
		t.Errorf("the error is not tied to its field: aria-describedby %q", d)
	}
	b.Screenshot(t, ana, "21-credits-error")
	checkA11y(t, ana, "the credits form with an error")
	// With the keyboard only: type into the fields and press Enter to send the form.
	browsertest.Do(t, ana, "credits by keyboard",
		chromedp.SetValue(css("#refillInterval"), "monthly"),
		browsertest.Fill("#refillAmount", "1000"),
		browsertest.Fill("#refillDay", "31"),
		clearNotices,
		browsertest.Fill("#remaining", "500\r"),
		browsertest.WaitVisible(".notice.ok"))
	if got := browsertest.Text(t, ana, "#credits-remaining"); got != "500" {
		t.Errorf("remaining after saving: %q", got)
	}
	if got := browsertest.Text(t, ana, "#credits-refill"); !strings.Contains(got, "Every month on day 31") || !strings.Contains(got, "1000") {
		t.Errorf("refill after saving: %q", got)
	}

	// Rate limits: the key's rateLimit is the row named default; add a limit in the empty row, then
	// remove it.
	if fieldValue(t, ana, "limit-0-name") != "default" || fieldValue(t, ana, "limit-0-limit") != "100" || fieldValue(t, ana, "limit-0-window") != "60" {
		t.Fatal("the key's rateLimit is not the first row")
	}
	browsertest.Do(t, ana, "add a limit",
		browsertest.Fill("#limit-1-name", "tokens"),
		browsertest.Fill("#limit-1-limit", "5000"),
		browsertest.Fill("#limit-1-window", "60"),
		browsertest.Click("#limit-1-auto"), // off: applies only when a verification names it
		clearNotices,
		browsertest.Click("#limits-form button[type=submit]"),
		browsertest.WaitVisible(".notice.ok"))
	if fieldValue(t, ana, "limit-1-name") != "tokens" || browsertest.Eval[bool](t, ana, `document.getElementById("limit-1-auto").checked`) {
		t.Fatal("the new limit is not shown as saved")
	}
	rl, _ := s.key(t, "default", keyID)["rateLimits"].([]any)
	if len(rl) != 2 {
		t.Fatalf("rate limits after adding: %v", rl)
	}
	browsertest.Do(t, ana, "limit error",
		browsertest.Fill("#limit-1-name", "Not Valid"),
		browsertest.Click("#limits-form button[type=submit]"),
		browsertest.WaitVisible("#limit-1-name-error"))
	checkA11y(t, ana, "the rate limits form with an error")
	browsertest.Do(t, ana, "remove a limit", chromedp.Navigate(page), browsertest.WaitVisible("#limit-1-remove"),
		browsertest.Click("#limit-1-remove"),
		browsertest.Click("#limits-form button[type=submit]"),
		browsertest.WaitVisible(".notice.ok"))
	if rl, _ := s.key(t, "default", keyID)["rateLimits"].([]any); len(rl) != 1 {
		t.Fatalf("rate limits after removing: %v", rl)
	}

	// Identity: by external id, then its page through the link.
	browsertest.Do(t, ana, "identity",
		browsertest.Fill("#externalId", "customer_42"),
		browsertest.Click("#identity-form button[type=submit]"),
		browsertest.WaitVisible("#identity-link"))
	browsertest.Do(t, ana, "identity page", browsertest.Click("#identity-link"), browsertest.WaitVisible("#identity-keys"))
	if h := browsertest.Text(t, ana, "h1"); h != "customer_42" {
		t.Errorf("identity page heading %q", h)
	}
	if txt := browsertest.Text(t, ana, "#identity-keys"); !strings.Contains(txt, "Metered") {
		t.Errorf("the identity's keys: %q", txt)
	}
	b.Screenshot(t, ana, "22-identity")
	checkA11y(t, ana, "an identity's page")
	customerPage := browsertest.URL(t, ana)

	// Deleting it is refused while the key has it, with the reason.
	browsertest.Do(t, ana, "delete refused", browsertest.Click("#delete-identity"), browsertest.WaitVisible("main form button.danger"),
		browsertest.Click("main form button.danger"), browsertest.WaitVisible("#confirm-error"))
	if msg := browsertest.Text(t, ana, "#confirm-error"); !strings.Contains(msg, "still has keys") {
		t.Errorf("delete of an identity in use: %q", msg)
	}
	checkA11y(t, ana, "the refused delete of an identity")

	// The Identities page, from the navigation: create one with metadata and credits.
	browsertest.Do(t, ana, "identities", browsertest.Click(`header nav a[href="/w/default/identities"]`), browsertest.WaitVisible("#identities-table"))
	if txt := browsertest.Text(t, ana, "#identities-table"); !strings.Contains(txt, "customer_42") {
		t.Errorf("the identities list: %q", txt)
	}
	b.Screenshot(t, ana, "23-identities")
	checkA11y(t, ana, "the identities page")
	browsertest.Do(t, ana, "create identity",
		browsertest.FillLabel("External id", "acme"),
		chromedp.SendKeys(css("#meta"), `{"plan": "pro"}`),
		browsertest.Click("#new-identity button[type=submit]"),
		browsertest.WaitVisible("#credits-form"))
	browsertest.Do(t, ana, "identity credits",
		browsertest.Click("#credits-limited"),
		chromedp.SetValue(css("#refillInterval"), "daily"),
		browsertest.Fill("#refillAmount", "250"),
		clearNotices,
		browsertest.Click("#credits-form button[type=submit]"),
		browsertest.WaitVisible(".notice.ok"))
	if got := browsertest.Text(t, ana, "#credits-remaining"); got != "250" {
		t.Errorf("a new daily balance starts at its amount: %q", got)
	}

	// Logs: the tag filter, and the tags on each entry.
	browsertest.Do(t, ana, "logs", chromedp.Navigate(s.url+"/w/default/logs"), browsertest.WaitVisible("#log-table"),
		browsertest.FillLabel("Tag", "checkout"),
		browsertest.Click("#log-filters button[type=submit]"),
		chromedp.WaitReady(css(`#tag[value="checkout"]`)))
	if n := browsertest.Eval[int](t, ana, `document.querySelectorAll("#log-table tbody tr").length`); n != 1 {
		t.Fatalf("filtered by tag: %d rows, want 1", n)
	}
	if tags := browsertest.Text(t, ana, `#log-table td[data-label="Tags"]`); !strings.Contains(tags, "checkout") || !strings.Contains(tags, "eu") {
		t.Errorf("the entry's tags: %q", tags)
	}
	b.Screenshot(t, ana, "24-logs-by-tag")
	checkA11y(t, ana, "the logs page filtered by tag")

	// The usage export: a CSV file saved by the browser.
	dir := t.TempDir()
	browsertest.AllowDownloads(t, ana, dir)
	browsertest.Do(t, ana, "export", chromedp.SetValue(css("#groupBy"), "key"), chromedp.SetValue(css("#granularity"), "month"),
		browsertest.Click("#export-usage"))
	var file string
	testkit.Eventually(t, 15*time.Second, "the export to be saved", func() bool {
		m, _ := filepath.Glob(filepath.Join(dir, "usage-default-*-by-key-month.csv"))
		if len(m) == 1 {
			file = m[0]
		}
		return file != ""
	})
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(strings.NewReader(string(raw))).ReadAll()
	if err != nil || len(recs) < 2 || recs[0][0] != "keyId" || !strings.Contains(string(raw), keyID) {
		t.Errorf("the downloaded export: %v %q", err, raw)
	}

	// A 375 px phone: every new page fits and passes.
	browsertest.Do(t, ana, "phone", chromedp.EmulateViewport(375, 812))
	for _, p := range []struct{ name, url, ready string }{
		{"25-phone-key", page, "#limits-form"},
		{"26-phone-identities", s.url + "/w/default/identities", "#identities-table"},
		{"27-phone-identity", customerPage, "#identity-keys"},
		{"28-phone-logs", s.url + "/w/default/logs?tag=checkout", "#export-form"},
	} {
		browsertest.Do(t, ana, p.name, chromedp.Navigate(p.url), browsertest.WaitVisible(p.ready))
		b.Screenshot(t, ana, p.name)
		checkA11y(t, ana, p.name+" at 375 px")
	}
	noJSErrors(t, b)
}
