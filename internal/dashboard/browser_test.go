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

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/keyplane/keyplane/internal/browsertest"
)

type css = chromedp.CSS

// btPerson is one person: a tab with its own cookies, accepting confirm() dialogs.
func btPerson(t *testing.T, b *browsertest.Browser) context.Context {
	t.Helper()
	ctx := b.Tab(t)
	browsertest.AcceptDialogs(ctx)
	return ctx
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
	secret := browsertest.Eval[string](t, ana, `document.getElementById("secret-value").value`)
	if !strings.HasPrefix(secret, "kp_sk_live_") || !strings.Contains(browsertest.Text(t, ana, "main"), "will not be shown again") {
		t.Fatalf("secret page: %q", secret[:12])
	}
	if browsertest.Eval[int](t, ana, `document.querySelectorAll("[data-copy=secret-value]").length`) != 1 {
		t.Fatal("no copy button")
	}
	b.Screenshot(t, ana, "02-secret-shown-once")

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
	browsertest.Do(t, ana, "regenerate confirm", chromedp.Click(css("main form button[type=submit]")), chromedp.WaitVisible(css("#secret-value")))
	if v2 := browsertest.Eval[string](t, ana, `document.getElementById("secret-value").value`); v2 == secret || !strings.HasPrefix(v2, "kp_sk_live_") {
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

	// The audit page shows what happened, with its chain check.
	browsertest.Do(t, ana, "audit", chromedp.Navigate(s.url+"/w/default/audit"), chromedp.WaitVisible(css("#chain-status")))
	if txt := browsertest.Text(t, ana, "main"); !strings.Contains(txt, "Chain verified") || !strings.Contains(txt, "api_key.deleted") || !strings.Contains(txt, "api_key.revoked") {
		t.Fatalf("audit page: %.400q", txt)
	}
	b.Screenshot(t, ana, "06-audit")
	if strings.Contains(s.logs.String(), secret) {
		t.Fatal("a secret in the server's log")
	}
	noJSErrors(t, b)
}

func TestBrowserWithoutJavaScript(t *testing.T) {
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
	noJSErrors(t, b)
}

func TestBrowserViewerAndPhone(t *testing.T) {
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
	browsertest.Do(t, vic, "phone", chromedp.EmulateViewport(390, 844), chromedp.Navigate(s.url+"/w/default/audit"), chromedp.WaitVisible(css("#chain-status")))
	if w := browsertest.Eval[int](t, vic, "document.documentElement.scrollWidth"); w > 400 {
		t.Errorf("the audit page is %d px wide on a 390 px phone", w)
	}
	b.Screenshot(t, vic, "10-phone-audit")
	noJSErrors(t, b)
}

func TestBrowserCSRFAndFixation(t *testing.T) {
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
	browsertest.Do(t, ana, "sign out", chromedp.Navigate(s.url+"/logout"), chromedp.Click(css("main form button[type=submit]")), chromedp.WaitVisible(css("#email")))
	browsertest.Do(t, ana, "after sign out", chromedp.Navigate(s.url+"/w/default/settings/api"), chromedp.WaitVisible(css("#email")))
	noJSErrors(t, b)
}

func TestBrowserReveal(t *testing.T) {
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
	value := browsertest.Eval[string](t, ana, `document.getElementById("secret-value").value`)
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
	browsertest.Do(t, ana, "reveal", chromedp.SendKeys(css("#password"), thePassword), chromedp.Click(css("main form button[type=submit]")),
		chromedp.WaitVisible(css("#secret-value")))
	if got := browsertest.Eval[string](t, ana, `document.getElementById("secret-value").value`); got != value {
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

	// The key's page has its own chart.
	browsertest.Do(t, ana, "key page", chromedp.Navigate(s.url+"/w/default/settings/api/"+checkout), chromedp.WaitVisible(css("#usage-chart")))
	if tip := browsertest.Eval[string](t, ana, `[...document.querySelectorAll("#usage-chart g.bar title")].at(-1).textContent`); !strings.Contains(tip, "15 requests, 12 valid, 3 forbidden") {
		t.Errorf("the key page's last bar: %q", tip)
	}
	b.Screenshot(t, ana, "13-key-usage")

	// A phone: the table becomes cards and the chart shrinks to fit.
	browsertest.Do(t, ana, "phone", chromedp.EmulateViewport(390, 844), chromedp.Navigate(s.url+"/w/default/logs"), chromedp.WaitVisible(css("#log-table")))
	if w := browsertest.Eval[int](t, ana, "document.documentElement.scrollWidth"); w > 400 {
		t.Errorf("the logs page is %d px wide on a 390 px phone", w)
	}
	b.Screenshot(t, ana, "14-phone-logs")
	noJSErrors(t, b)
}
