package dashboard_test

// Browser tests: Debian's chromium, driven by chromedp from go test, against the real program. Each
// person gets an isolated browser context (their own cookies). Screenshots go to KEYPLANE_SCREENSHOTS
// when set, so that a person can look at them.

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/keyplane/keyplane/internal/browsertest"
	"github.com/keyplane/keyplane/internal/testkit"
)

type css = chromedp.CSS

// btPerson is one person: a tab with its own cookies, accepting confirm() dialogs.
func btPerson(t *testing.T, b *browsertest.Browser) context.Context {
	t.Helper()
	ctx := b.Tab(t)
	browsertest.AcceptDialogs(ctx)
	return ctx
}

// shownValue reads the value a page shows (a key's, a signing secret), and keeps it for the leak check.
func (s *kpServer) shownValue(t *testing.T, ctx context.Context) string {
	t.Helper()
	v := browsertest.Eval[string](t, ctx, `document.getElementById("secret-value").value`)
	s.mu.Lock()
	s.shown = append(s.shown, v)
	s.mu.Unlock()
	return v
}

// noJSErrors fails the test if any page raised a script error or a CSP violation.
func noJSErrors(t *testing.T, b *browsertest.Browser) {
	t.Helper()
	if errs := b.ConsoleErrors(); len(errs) > 0 {
		t.Errorf("the pages raised JavaScript or CSP errors: %q", errs)
	}
}

func signIn(t *testing.T, ctx context.Context, base, email, pw string) {
	t.Helper()
	browsertest.Do(t, ctx, "sign in as "+email,
		chromedp.Navigate(base+"/login"),
		chromedp.SendKeys(css("#email"), email),
		chromedp.SendKeys(css("#password"), pw),
		chromedp.Click(css("form button[type=submit]")),
		chromedp.WaitVisible(css("footer")),
	)
}

// rowText is the text of the key table's row for the named key.
func rowText(t *testing.T, ctx context.Context, name string) string {
	t.Helper()
	return browsertest.Eval[string](t, ctx, fmt.Sprintf(`(() => { const r = [...document.querySelectorAll("tbody tr")].find(r => r.querySelector(".name") && r.querySelector(".name").textContent.trim() === %q); return r ? r.innerText : ""; })()`, name))
}

func clickInRow(name, label string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => { const r = [...document.querySelectorAll("tbody tr")].find(r => r.querySelector(".name") && r.querySelector(".name").textContent.trim() === %q); [...r.querySelectorAll("a,button")].find(b => b.textContent.trim() === %q).click(); })()`, name, label))
}

func TestBrowserKeyLifecycle(t *testing.T) {
	t.Parallel() // its own server and its own chromium: nothing shared with the other tests
	s := startKP(t, "sqlite")
	b := browsertest.New(t)
	ana := btPerson(t, b)

	// A wrong password is refused with a message, and no session.
	browsertest.Do(t, ana, "wrong password",
		chromedp.Navigate(s.url+"/login"),
		chromedp.SendKeys(css("#email"), "admin@localhost"),
		chromedp.SendKeys(css("#password"), "not my password"),
		chromedp.Click(css("form button[type=submit]")),
		chromedp.WaitVisible(css("#login-error")),
	)
	if msg := browsertest.Text(t, ana, "#login-error"); !strings.Contains(msg, "do not match") {
		t.Fatalf("wrong password message: %q", msg)
	}
	b.Screenshot(t, ana, "01-login-wrong-password")
	checkA11y(t, ana, "the login page with an error")

	signIn(t, ana, s.url, "admin@localhost", thePassword)
	if loc := browsertest.Eval[string](t, ana, "location.pathname"); loc != "/w/default/settings/api" {
		t.Fatalf("after sign-in at %s", loc)
	}

	// Create a key: the secret is shown once, with a copy button and the warning.
	browsertest.Do(t, ana, "create key",
		chromedp.SendKeys(css("#name"), "Mobile App Integration"),
		chromedp.SendKeys(css("#description"), "iOS and Android"),
		chromedp.SetValue(css("#environment"), "live"),
		chromedp.Click(css("#neverExpire")),
		chromedp.Click(css(`input[name=permissions][value="orders:read"]`)),
		chromedp.Click(css(`input[name=permissions][value="otp:send"]`)),
		chromedp.SendKeys(css("#ipAllowlist"), "203.0.113.0/24"),
		chromedp.Click(css("#new-key button[type=submit]")),
		chromedp.WaitVisible(css("#secret-value")),
	)
	secret := s.shownValue(t, ana)
	if !strings.HasPrefix(secret, "kp_sk_live_") || !strings.Contains(browsertest.Text(t, ana, "main"), "will not be shown again") {
		t.Fatalf("secret page: %q", secret[:12])
	}
	if browsertest.Eval[int](t, ana, `document.querySelectorAll("[data-copy=secret-value]").length`) != 1 {
		t.Fatal("no copy button")
	}
	b.Screenshot(t, ana, "02-secret-shown-once")
	checkA11y(t, ana, "the key's secret page")

	// Back on the list (and after a reload) only the masked value is there.
	browsertest.Do(t, ana, "back to list", chromedp.Click(css("a.btn.primary")), chromedp.WaitVisible(css("#new-key")), chromedp.Reload(), chromedp.WaitVisible(css("#new-key")))
	html := browsertest.Eval[string](t, ana, "document.documentElement.outerHTML")
	if strings.Contains(html, secret) {
		t.Fatal("the secret is on the list page")
	}
	row := rowText(t, ana, "Mobile App Integration")
	if !strings.Contains(row, secret[:15]) || !strings.Contains(row, secret[len(secret)-4:]) || !strings.Contains(row, "Active") || !strings.Contains(row, "orders:read") || !strings.Contains(row, "never") {
		t.Fatalf("row: %q", row)
	}
	b.Screenshot(t, ana, "03-keys-list")
	checkA11y(t, ana, "the API keys page")

	// Edit: name and permissions.
	browsertest.Do(t, ana, "edit", clickInRow("Mobile App Integration", "Edit"), chromedp.WaitVisible(css("#edit-title")),
		chromedp.Clear(css("#name")), chromedp.SendKeys(css("#name"), "Mobile App"),
		chromedp.Click(css(`input[name=permissions][value="otp:verify"]`)),
		chromedp.Click(css("main form button[type=submit]")), chromedp.WaitVisible(css("#new-key")))
	if row := rowText(t, ana, "Mobile App"); !strings.Contains(row, "otp:verify") {
		t.Fatalf("after edit: %q", row)
	}
	if !strings.Contains(browsertest.Text(t, ana, ".notice.ok"), "Saved") {
		t.Error("no confirmation after saving")
	}

	// Disable and re-enable.
	browsertest.Do(t, ana, "disable", clickInRow("Mobile App", "Disable"), chromedp.WaitVisible(css(".notice.ok")))
	if row := rowText(t, ana, "Mobile App"); !strings.Contains(row, "disabled") {
		t.Fatalf("after disable: %q", row)
	}
	browsertest.Do(t, ana, "enable", clickInRow("Mobile App", "Enable"), chromedp.WaitVisible(css(".notice.ok")))
	if row := rowText(t, ana, "Mobile App"); !strings.Contains(row, "Active") {
		t.Fatalf("after enable: %q", row)
	}

	// Regenerate: a confirmation that explains the old value stops working, with the grace choice.
	browsertest.Do(t, ana, "regenerate", clickInRow("Mobile App", "Regenerate"), chromedp.WaitVisible(css("#grace")))
	if txt := browsertest.Text(t, ana, "main"); !strings.Contains(txt, "stops working") {
		t.Fatalf("regenerate page: %q", txt)
	}
	b.Screenshot(t, ana, "04-regenerate-confirm")
	checkA11y(t, ana, "the regenerate confirmation")
	browsertest.Do(t, ana, "regenerate confirm", chromedp.Click(css("main form button[type=submit]")), chromedp.WaitVisible(css("#secret-value")))
	if v2 := s.shownValue(t, ana); v2 == secret || !strings.HasPrefix(v2, "kp_sk_live_") {
		t.Fatal("regenerate did not show a new value")
	}

	// Revoke, with a confirm() dialog (accepted) when JavaScript is on.
	browsertest.Do(t, ana, "revoke", chromedp.Click(css("a.btn.primary")), chromedp.WaitVisible(css("#new-key")),
		clickInRow("Mobile App", "Revoke"), chromedp.WaitVisible(css(".notice.ok")))
	if row := rowText(t, ana, "Mobile App"); !strings.Contains(row, "revoked") || strings.Contains(row, "Regenerate") {
		t.Fatalf("after revoke: %q", row)
	}
	// Delete is offered only now, and asks too.
	browsertest.Do(t, ana, "delete", clickInRow("Mobile App", "Delete"), chromedp.WaitVisible(css(".notice.ok")))
	if row := rowText(t, ana, "Mobile App"); row != "" {
		t.Fatalf("deleted key still listed: %q", row)
	}
	b.Screenshot(t, ana, "05-after-delete")

	// The audit page shows what happened; "Verify chain" checks the chain.
	browsertest.Do(t, ana, "audit", chromedp.Navigate(s.url+"/w/default/audit"), chromedp.WaitVisible(css("#chain-status")),
		chromedp.Click(css(".chain form button[type=submit]")), chromedp.WaitVisible(css("#chain-status .badge.active")))
	if txt := browsertest.Text(t, ana, "main"); !strings.Contains(txt, "Chain verified") || !strings.Contains(txt, "api_key.deleted") || !strings.Contains(txt, "api_key.revoked") {
		t.Fatalf("audit page: %.400q", txt)
	}
	b.Screenshot(t, ana, "06-audit")
	checkA11y(t, ana, "the audit page")
	if strings.Contains(s.logs.String(), secret) {
		t.Fatal("a secret in the server's log")
	}
	noJSErrors(t, b)
}

func TestBrowserWithoutJavaScript(t *testing.T) {
	t.Parallel() // its own server and its own chromium: nothing shared with the other tests
	s := startKP(t, "sqlite")
	b := browsertest.New(t)
	ana := btPerson(t, b)
	browsertest.JSOff(t, ana)
	signIn(t, ana, s.url, "admin@localhost", thePassword)
	browsertest.Do(t, ana, "create without JS",
		chromedp.SendKeys(css("#name"), "No script"),
		chromedp.Click(css("#new-key button[type=submit]")),
		chromedp.WaitVisible(css("#secret-value")),
		chromedp.Click(css("a.btn.primary")), chromedp.WaitVisible(css("#new-key")),
	)
	// Without JavaScript, Revoke opens a confirmation page instead of a dialog.
	browsertest.Do(t, ana, "revoke page", clickInRow("No script", "Revoke"), chromedp.WaitVisible(css("button.danger")))
	if txt := browsertest.Text(t, ana, "main"); !strings.Contains(txt, "permanent") {
		t.Fatalf("revoke confirmation: %q", txt)
	}
	b.Screenshot(t, ana, "07-revoke-confirm-no-js")
	checkA11y(t, ana, "the revoke confirmation without JavaScript")
	browsertest.Do(t, ana, "revoke", chromedp.Click(css("button.danger")), chromedp.WaitVisible(css(".notice.ok")))
	if row := rowText(t, ana, "No script"); !strings.Contains(row, "revoked") {
		t.Fatalf("after revoke without JS: %q", row)
	}
	// A validation error is shown next to its field.
	browsertest.Do(t, ana, "invalid create", chromedp.SendKeys(css("#ipAllowlist"), "10.0.0.1/8"), chromedp.SendKeys(css("#name"), "Bad"),
		chromedp.Click(css("#new-key button[type=submit]")), chromedp.WaitVisible(css(".field.invalid .error")))
	if e := browsertest.Text(t, ana, ".field.invalid .error"); !strings.Contains(e, "10.0.0.0/8") {
		t.Fatalf("field error: %q", e)
	}
	b.Screenshot(t, ana, "08-field-error")
	checkA11y(t, ana, "the API keys page with a field error")
	noJSErrors(t, b)
}

func TestBrowserViewerAndPhone(t *testing.T) {
	t.Parallel() // its own server and its own chromium: nothing shared with the other tests
	s := startKP(t, "sqlite")
	b := browsertest.New(t)
	vic := btPerson(t, b)
	signIn(t, vic, s.url, "viewer@example.com", thePassword)
	if nav := browsertest.Text(t, vic, "header nav"); strings.Contains(nav, "API keys") {
		t.Fatalf("a viewer's nav offers API keys: %q", nav)
	}
	browsertest.Do(t, vic, "keys page", chromedp.Navigate(s.url+"/w/default/settings/api"), chromedp.WaitVisible(css("#error-message")))
	if msg := browsertest.Text(t, vic, "#error-message"); !strings.Contains(msg, "viewer") {
		t.Fatalf("viewer on the keys page: %q", msg)
	}
	b.Screenshot(t, vic, "09-viewer-refused")
	checkA11y(t, vic, "the error page")
	browsertest.Do(t, vic, "phone", chromedp.EmulateViewport(390, 844), chromedp.Navigate(s.url+"/w/default/audit"), chromedp.WaitVisible(css("#chain-status")))
	if w := browsertest.Eval[int](t, vic, "document.documentElement.scrollWidth"); w > 400 {
		t.Errorf("the audit page is %d px wide on a 390 px phone", w)
	}
	b.Screenshot(t, vic, "10-phone-audit")
	checkA11y(t, vic, "the audit page at 390 px")
	browsertest.Do(t, vic, "status page", chromedp.Navigate(s.url+"/status"), chromedp.WaitVisible(css("footer")))
	checkA11y(t, vic, "the status page at 390 px")
	noJSErrors(t, b)
}

func TestBrowserCSRFAndFixation(t *testing.T) {
	t.Parallel() // its own server and its own chromium: nothing shared with the other tests
	s := startKP(t, "sqlite")
	b := browsertest.New(t)
	ana := btPerson(t, b)

	// Session fixation: a session id planted before sign-in is replaced and worthless.
	if _, err := chromedp.Call(ana, network.SetCookie, network.SetCookieParams{Name: "kp_session", Value: "planted-by-attacker", URL: s.url}); err != nil {
		t.Fatal(err)
	}
	signIn(t, ana, s.url, "admin@localhost", thePassword)
	cookies, err := chromedp.Call(ana, network.GetCookies, network.GetCookiesParams{URLs: []string{s.url}})
	if err != nil {
		t.Fatal(err)
	}
	var sess *network.Cookie
	for _, c := range cookies.Cookies {
		if c.Name == "kp_session" {
			sess = c
		}
	}
	if sess == nil || sess.Value == "planted-by-attacker" || !sess.HTTPOnly || sess.SameSite != network.CookieSameSiteLax {
		t.Fatalf("session cookie after sign-in: %+v", sess)
	}
	req, _ := http.NewRequest("GET", s.url+"/w/default/settings/api", nil)
	req.AddCookie(&http.Cookie{Name: "kp_session", Value: "planted-by-attacker"})
	res, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("the planted session id opened a page: %d", res.StatusCode)
	}

	// CSRF: a page on another origin posts a form to keyplane in the signed-in browser: refused.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!doctype html><form id="f" method="post" action="%s/w/default/settings/api"><input name="name" value="Planted by evil"><input name="keyType" value="secret"><input name="csrf" value="guess"></form><script>document.getElementById("f").submit()</script>`, s.url)
	}))
	defer evil.Close()
	// 127.0.0.1 and localhost are different origins: serve the attacker from "localhost".
	evilURL := strings.Replace(evil.URL, "127.0.0.1", "localhost", 1)
	browsertest.Do(t, ana, "csrf", chromedp.Navigate(evilURL), chromedp.WaitVisible(css("#error-message")))
	if msg := browsertest.Text(t, ana, "#error-message"); !strings.Contains(msg, "another site") && !strings.Contains(msg, "expired") {
		t.Fatalf("cross-site post answered: %q", msg)
	}
	b.Screenshot(t, ana, "11-csrf-refused")
	browsertest.Do(t, ana, "list", chromedp.Navigate(s.url+"/w/default/settings/api"), chromedp.WaitVisible(css("#new-key")))
	if row := rowText(t, ana, "Planted by evil"); row != "" {
		t.Fatal("the cross-site post created a key")
	}

	// Signing out ends the session.
	browsertest.Do(t, ana, "sign out page", chromedp.Navigate(s.url+"/logout"), chromedp.WaitVisible(css("main form button[type=submit]")))
	checkA11y(t, ana, "the sign-out page")
	browsertest.Do(t, ana, "sign out", chromedp.Click(css("main form button[type=submit]")), chromedp.WaitVisible(css("#email")))
	browsertest.Do(t, ana, "after sign out", chromedp.Navigate(s.url+"/w/default/settings/api"), chromedp.WaitVisible(css("#email")))
	noJSErrors(t, b)
}

func TestBrowserReveal(t *testing.T) {
	t.Parallel() // its own server and its own chromium: nothing shared with the other tests
	s := startKP(t, "sqlite")
	b := browsertest.New(t)
	ana := btPerson(t, b)
	signIn(t, ana, s.url, "admin@localhost", thePassword)
	browsertest.Do(t, ana, "create recoverable",
		chromedp.SendKeys(css("#name"), "Recoverable"),
		chromedp.Click(css("#recoverable")),
		chromedp.Click(css("#new-key button[type=submit]")),
		chromedp.WaitVisible(css("#secret-value")),
	)
	value := s.shownValue(t, ana)
	if strings.Contains(browsertest.Text(t, ana, "main"), "will not be shown again") {
		t.Error("a recoverable key's page says it will not be shown again")
	}
	browsertest.Do(t, ana, "list", chromedp.Click(css("a.btn.primary")), chromedp.WaitVisible(css("#new-key")),
		clickInRow("Recoverable", "Reveal"), chromedp.WaitVisible(css("#password")),
		chromedp.SendKeys(css("#password"), "wrong password"), chromedp.Click(css("main form button[type=submit]")),
		chromedp.WaitVisible(css("#confirm-error")))
	if msg := browsertest.Text(t, ana, "#confirm-error"); !strings.Contains(msg, "not right") {
		t.Fatalf("wrong password on reveal: %q", msg)
	}
	b.Screenshot(t, ana, "12-reveal-password")
	checkA11y(t, ana, "the reveal password page with an error")
	browsertest.Do(t, ana, "reveal", chromedp.SendKeys(css("#password"), thePassword), chromedp.Click(css("main form button[type=submit]")),
		chromedp.WaitVisible(css("#secret-value")))
	if got := s.shownValue(t, ana); got != value {
		t.Fatal("the revealed value is not the key's")
	}
	// Within the re-authentication window a second reveal needs no password.
	browsertest.Do(t, ana, "reveal again", chromedp.Navigate(s.url+"/w/default/settings/api"), chromedp.WaitVisible(css("#new-key")),
		clickInRow("Recoverable", "Reveal"), chromedp.WaitVisible(css("main form button[type=submit]")))
	if n := browsertest.Eval[int](t, ana, `document.querySelectorAll("#password").length`); n != 0 {
		t.Fatal("asked for the password again within five minutes")
	}
	noJSErrors(t, b)
}

// TestBrowserLogs: after some verifications the logs page lists them and draws the chart, filters
// work from the form, and the key's own page has its chart. On a phone nothing overflows.
func TestBrowserLogs(t *testing.T) {
	t.Parallel() // its own server and its own chromium: nothing shared with the other tests
	s := startKP(t, "sqlite")
	checkout, checkoutValue := s.restKey(t, "default", map[string]any{"name": "Checkout", "keyType": "secret", "ipAllowlist": []string{"198.51.100.0/24"}})
	_, mobileValue := s.restKey(t, "default", map[string]any{"name": "Mobile app", "keyType": "secret"})
	for i := range 12 {
		s.verifyCode(t, checkoutValue, fmt.Sprintf("198.51.100.%d", i+1))
	}
	for i := range 3 {
		s.verifyCode(t, checkoutValue, fmt.Sprintf("203.0.113.%d", i+1)) // FORBIDDEN: outside the allowlist
	}
	for range 5 {
		s.verifyCode(t, mobileValue, "")
	}
	admin := s.as(t, "admin")
	waitLogs(t, admin, "/w/default/logs", 20)

	b := browsertest.New(t)
	ana := btPerson(t, b)
	signIn(t, ana, s.url, "admin@localhost", thePassword)
	browsertest.Do(t, ana, "logs page", chromedp.Click(css(`header nav a[href="/w/default/logs"]`)), chromedp.WaitVisible(css("#log-table")))
	rows := browsertest.Eval[int](t, ana, `document.querySelectorAll("#log-table tbody tr").length`)
	if rows != 20 {
		t.Fatalf("the logs page lists %d rows, want 20", rows)
	}
	// The chart is drawn: a bar per hour, the last stacked green (valid) under pink (forbidden).
	segs := browsertest.Eval[[]string](t, ana, `[...document.querySelectorAll("#usage-chart g.bar")].at(-1).querySelectorAll("rect.seg").values().map(r => r.getAttribute("class") + " " + Math.round(r.getBBox().height)).toArray()`)
	if len(segs) != 2 || !strings.HasPrefix(segs[0], "seg c-valid ") || !strings.HasPrefix(segs[1], "seg c-forbidden ") {
		t.Fatalf("the current hour's bar: %q", segs)
	}
	fill := browsertest.Eval[string](t, ana, `getComputedStyle(document.querySelector("#usage-chart rect.c-valid")).fill`)
	if fill != "rgb(18, 183, 106)" {
		t.Errorf("valid segments are filled %q: the stylesheet's colours did not apply", fill)
	}
	if legend := strings.Join(strings.Fields(browsertest.Text(t, ana, "#usage-chart .legend")), " "); !strings.Contains(legend, "valid 17") || !strings.Contains(legend, "forbidden 3") {
		t.Errorf("legend: %q", legend)
	}
	b.Screenshot(t, ana, "11-logs")
	checkA11y(t, ana, "the logs page")

	// Filter from the form: Checkout's FORBIDDEN entries.
	browsertest.Do(t, ana, "filter",
		chromedp.SetValue(css("#key"), checkout),
		chromedp.SetValue(css("#code"), "FORBIDDEN"),
		chromedp.Click(css("#log-filters button[type=submit]")),
		chromedp.WaitReady(css(`#code option[value=FORBIDDEN][selected]`)), // the answer's, not the form's
	)
	if n := browsertest.Eval[int](t, ana, `document.querySelectorAll("#log-table tbody tr").length`); n != 3 {
		t.Fatalf("filtered by key and code: %d rows, want 3", n)
	}
	if cap := browsertest.Text(t, ana, "#chart-title"); !strings.Contains(cap, "Checkout") || !strings.Contains(cap, "15 requests, 12 valid") {
		t.Errorf("the filtered chart's title: %q", cap)
	}
	// Another period keeps the filters.
	browsertest.Do(t, ana, "30 days", chromedp.Click(css(`nav.ranges a[href*="range=30d"]`)), chromedp.WaitReady(css(`nav.ranges a[href*="range=30d"][aria-current]`)))
	if q := browsertest.Eval[string](t, ana, "location.search"); !strings.Contains(q, "range=30d") || !strings.Contains(q, "code=FORBIDDEN") {
		t.Errorf("after choosing 30 days the query is %q", q)
	}
	if n := browsertest.Eval[int](t, ana, `document.querySelectorAll("#usage-chart g.bar").length`); n != 30 {
		t.Errorf("30 days drawn as %d bars", n)
	}
	b.Screenshot(t, ana, "12-logs-filtered")
	checkA11y(t, ana, "the filtered logs page")

	// The key's page has its own chart.
	browsertest.Do(t, ana, "key page", chromedp.Navigate(s.url+"/w/default/settings/api/"+checkout), chromedp.WaitVisible(css("#usage-chart")))
	if tip := browsertest.Eval[string](t, ana, `[...document.querySelectorAll("#usage-chart g.bar title")].at(-1).textContent`); !strings.Contains(tip, "15 requests, 12 valid, 3 forbidden") {
		t.Errorf("the key page's last bar: %q", tip)
	}
	b.Screenshot(t, ana, "13-key-usage")
	checkA11y(t, ana, "a key's page")

	// A phone: the table becomes cards and the chart shrinks to fit.
	browsertest.Do(t, ana, "phone", chromedp.EmulateViewport(390, 844), chromedp.Navigate(s.url+"/w/default/logs"), chromedp.WaitVisible(css("#log-table")))
	if w := browsertest.Eval[int](t, ana, "document.documentElement.scrollWidth"); w > 400 {
		t.Errorf("the logs page is %d px wide on a 390 px phone", w)
	}
	b.Screenshot(t, ana, "14-phone-logs")
	checkA11y(t, ana, "the logs page at 390 px")
	noJSErrors(t, b)
}

// TestBrowserWebhooks: an admin adds an endpoint from the webhooks page, sees its secret once, sends
// a test event and reads the answer in the terminal block, sees a real event's attempts in the
// delivery log, retries a failed one and deletes the endpoint, confirming in a dialog. On a phone
// the endpoint page does not overflow.
func TestBrowserWebhooks(t *testing.T) {
	t.Parallel() // its own server and its own chromium: nothing shared with the other tests
	s := startKP(t, "sqlite")
	rc := newReceiver(t, 418, "<b>teapot</b>")
	b := browsertest.New(t)
	ana := btPerson(t, b)
	signIn(t, ana, s.url, "admin@localhost", thePassword)

	browsertest.Do(t, ana, "webhooks page", chromedp.Click(css(`header nav a[href="/w/default/settings/webhooks"]`)), chromedp.WaitVisible(css("#new-endpoint")))
	if cur := browsertest.Text(t, ana, `header nav a[aria-current=page]`); cur != "Webhooks" {
		t.Errorf("the navigation's current page: %q", cur)
	}
	hookURL := rc.srv.URL + "/keyplane"
	browsertest.Do(t, ana, "add endpoint",
		chromedp.Click(css(`a.btn.primary[href="#new-endpoint"]`)),
		chromedp.SendKeys(css("#url"), hookURL),
		chromedp.SendKeys(css("#description"), "Billing <service>"),
		chromedp.Click(css(`input[name=eventTypes][value="api_key.created"]`)),
		chromedp.Click(css("#new-endpoint button[type=submit]")),
		chromedp.WaitVisible(css("#secret-value")),
	)
	secret := s.shownValue(t, ana)
	if !strings.HasPrefix(secret, "whsec_") || !strings.Contains(browsertest.Text(t, ana, "main"), "shown only this once") {
		t.Fatalf("secret page: %.10q", secret)
	}
	if browsertest.Eval[int](t, ana, `document.querySelectorAll("[data-copy=secret-value]").length`) != 1 {
		t.Fatal("no copy button")
	}
	// Done leads to the endpoint's page, which does not hold the secret; nor does the list.
	browsertest.Do(t, ana, "done", chromedp.Click(css("main a.btn.primary")), chromedp.WaitVisible(css("#send-test")))
	endpointURL := browsertest.URL(t, ana)
	for _, page := range []string{endpointURL, s.url + "/w/default/settings/webhooks"} {
		browsertest.Do(t, ana, "open "+page, chromedp.Navigate(page), chromedp.WaitVisible(css("footer")))
		if html := browsertest.Eval[string](t, ana, "document.documentElement.outerHTML"); strings.Contains(html, secret) {
			t.Fatalf("%s shows the secret", page)
		}
	}
	row := browsertest.Text(t, ana, "#endpoints tbody tr")
	if !strings.Contains(row, hookURL) || !strings.Contains(row, "Enabled") || !strings.Contains(row, "api_key.created") || !strings.Contains(row, "Billing <service>") {
		t.Errorf("the endpoint's row: %q", row)
	}
	b.Screenshot(t, ana, "15-webhooks")
	checkA11y(t, ana, "the webhooks page")

	// Send test event: the answer, escaped, in the terminal block.
	browsertest.Do(t, ana, "open endpoint", chromedp.Click(css("#endpoints tbody tr a.name")), chromedp.WaitVisible(css("#send-test")))
	browsertest.Do(t, ana, "send test event", chromedp.Click(css("#send-test")), chromedp.WaitVisible(css("#test-result")))
	if st := browsertest.Text(t, ana, "#test-status"); st != "418 I'm a teapot" {
		t.Errorf("the test's status: %q", st)
	}
	if body := browsertest.Text(t, ana, "#test-body"); body != "<b>teapot</b>" {
		t.Errorf("the test's body: %q", body)
	}
	if n := browsertest.Eval[int](t, ana, `document.querySelectorAll("#test-result b").length`); n != 0 {
		t.Errorf("the endpoint's answer became %d elements of the page", n)
	}
	if txt := browsertest.Text(t, ana, "#test-result"); !strings.Contains(txt, "the endpoint answered 418") || !strings.Contains(txt, " ms") {
		t.Errorf("the terminal block: %q", txt)
	}
	if got := rc.posts("webhook.test"); len(got) != 1 {
		t.Errorf("the receiver got %d test events", len(got))
	}
	b.Screenshot(t, ana, "16-webhook-endpoint-test")
	checkA11y(t, ana, "an endpoint's page with a test result")

	// Reveal asks for the password first (a wrong one is said so next to the field), then shows the
	// signing secret.
	browsertest.Do(t, ana, "reveal, wrong password", chromedp.Click(css("#reveal")), chromedp.WaitVisible(css("#password")),
		chromedp.SendKeys(css("#password"), "not my password"), chromedp.Click(css("main form button[type=submit]")),
		chromedp.WaitVisible(css("#reveal-error")))
	if msg := browsertest.Text(t, ana, "#reveal-error"); !strings.Contains(msg, "That password is not right") {
		t.Errorf("wrong password on reveal: %q", msg)
	}
	checkA11y(t, ana, "an endpoint's reveal password page with an error")
	if n := browsertest.Eval[int](t, ana, `document.querySelectorAll("#secret-value").length`); n != 0 {
		t.Errorf("a wrong password revealed the secret")
	}
	browsertest.Do(t, ana, "reveal", chromedp.SendKeys(css("#password"), thePassword), chromedp.Click(css("main form button[type=submit]")),
		chromedp.WaitVisible(css("#secret-value")))
	if got := s.shownValue(t, ana); got != secret {
		t.Errorf("revealed %.10q, want the endpoint's secret", got)
	}
	browsertest.Do(t, ana, "back to the endpoint", chromedp.Navigate(endpointURL), chromedp.WaitVisible(css("#send-test")))

	// A real event: its three attempts (0s,100ms,100ms) fail with 418 and show in the log.
	s.restKey(t, "default", map[string]any{"name": "Webhook trigger", "keyType": "secret", "environment": "test"})
	failed := `document.querySelectorAll('#delivery-table tr[data-event-type="api_key.created"][data-status=failed]').length`
	waitRows := func(what, js string, want int) {
		t.Helper()
		testkit.Eventually(t, 15*time.Second, what, func() bool {
			browsertest.Do(t, ana, "reload", chromedp.Navigate(endpointURL), chromedp.WaitVisible(css("#delivery-table")))
			return browsertest.Eval[int](t, ana, js) == want
		})
	}
	waitRows("three failed attempts", failed, 3)
	if txt := browsertest.Text(t, ana, `#delivery-table tr[data-event-type="api_key.created"]`); !strings.Contains(txt, "418") || !strings.Contains(txt, "evt_") {
		t.Errorf("the newest attempt's row: %q", txt)
	}
	// Retry the newest failed attempt, the receiver mended.
	rc.answer(200, `{"ok": true}`)
	browsertest.Do(t, ana, "retry",
		chromedp.Click(css(`#delivery-table tr[data-event-type="api_key.created"][data-status=failed] button[type=submit]`)),
		chromedp.WaitVisible(css(".notice.ok")))
	if msg := browsertest.Text(t, ana, ".notice.ok"); !strings.Contains(msg, "Attempt 4 of event") {
		t.Errorf("after Retry: %q", msg)
	}
	waitRows("the retried attempt to succeed", `document.querySelectorAll('#delivery-table tr[data-event-type="api_key.created"][data-status=succeeded]').length`, 1)
	if txt := browsertest.Text(t, ana, `#delivery-table tbody tr`); !strings.Contains(txt, "succeeded") || !strings.Contains(txt, "4 (by hand)") {
		t.Errorf("the retried attempt's row: %q", txt)
	}
	browsertest.Do(t, ana, "open a response body",
		chromedp.Click(css(`#delivery-table tr[data-status=failed] details summary`)),
		chromedp.WaitVisible(css(`#delivery-table tr[data-status=failed] details pre`)))
	b.Screenshot(t, ana, "17-webhook-deliveries")
	checkA11y(t, ana, "an endpoint's deliveries")

	// A phone: the endpoint page fits.
	browsertest.Do(t, ana, "phone", chromedp.EmulateViewport(390, 844), chromedp.Navigate(endpointURL), chromedp.WaitVisible(css("#delivery-table")))
	if w := browsertest.Eval[int](t, ana, "document.documentElement.scrollWidth"); w > 400 {
		t.Errorf("the endpoint page is %d px wide on a 390 px phone", w)
	}
	b.Screenshot(t, ana, "18-phone-webhook-endpoint")
	checkA11y(t, ana, "an endpoint's page at 390 px")
	browsertest.Do(t, ana, "phone test send", chromedp.Click(css("#send-test")), chromedp.WaitVisible(css("#test-result")))
	if w := browsertest.Eval[int](t, ana, "document.documentElement.scrollWidth"); w > 400 {
		t.Errorf("the test result is %d px wide on a 390 px phone", w)
	}
	b.Screenshot(t, ana, "19-phone-webhook-test")
	browsertest.Do(t, ana, "desktop", chromedp.EmulateViewport(1280, 900), chromedp.Navigate(endpointURL), chromedp.WaitVisible(css("#delete")))

	// Without JavaScript, a developer: errors next to their fields, and Rotate secret through its
	// confirmation page. Developers are not offered Reveal.
	dev := btPerson(t, b)
	browsertest.JSOff(t, dev)
	signIn(t, dev, s.url, "dev@example.com", thePassword)
	browsertest.Do(t, dev, "invalid endpoint", chromedp.Navigate(s.url+"/w/default/settings/webhooks"), chromedp.WaitVisible(css("#new-endpoint")),
		chromedp.SendKeys(css("#url"), "ftp://x"), chromedp.Click(css("#new-endpoint button[type=submit]")), chromedp.WaitVisible(css(".field.invalid .error")))
	if e := browsertest.Text(t, dev, ".field.invalid .error"); !strings.Contains(e, "URL must be an absolute") {
		t.Errorf("the URL's error: %q", e)
	}
	if e := browsertest.Text(t, dev, "fieldset.invalid .error"); !strings.Contains(e, "Events must name at least one event type") {
		t.Errorf("the events' error: %q", e)
	}
	b.Screenshot(t, dev, "20-webhook-errors-no-js")
	checkA11y(t, dev, "the webhooks page with field errors, without JavaScript")
	browsertest.Do(t, dev, "rotate page", chromedp.Navigate(endpointURL), chromedp.WaitVisible(css("#rotate")))
	if n := browsertest.Eval[int](t, dev, `document.querySelectorAll("#reveal").length`); n != 0 {
		t.Errorf("a developer is offered Reveal")
	}
	browsertest.Do(t, dev, "rotate confirmation", chromedp.Click(css("#rotate")), chromedp.WaitVisible(css("main form button.btn.primary")))
	if txt := browsertest.Text(t, dev, "main"); !strings.Contains(txt, "The previous secret keeps signing for 24 hours") {
		t.Errorf("the rotate confirmation: %q", txt)
	}
	b.Screenshot(t, dev, "21-webhook-rotate-confirm-no-js")
	checkA11y(t, dev, "the rotate confirmation without JavaScript")
	browsertest.Do(t, dev, "rotate", chromedp.Click(css("main form button.btn.primary")), chromedp.WaitVisible(css("#secret-value")))
	if v := s.shownValue(t, dev); !strings.HasPrefix(v, "whsec_") || v == secret {
		t.Errorf("rotate showed %.10q", v)
	}
	b.Screenshot(t, dev, "22-webhook-new-secret")
	checkA11y(t, dev, "an endpoint's secret page")

	// Delete, confirmed in the dialog.
	browsertest.Do(t, ana, "delete", chromedp.Click(css("#delete")), chromedp.WaitVisible(css(".notice.ok")))
	if msg := browsertest.Text(t, ana, ".notice.ok"); !strings.Contains(msg, "is deleted") {
		t.Errorf("after delete: %q", msg)
	}
	if n := browsertest.Eval[int](t, ana, `document.querySelectorAll("#endpoints tr[data-endpoint-id]").length`); n != 0 {
		t.Errorf("%d endpoints listed after delete", n)
	}
	noJSErrors(t, b)
}
