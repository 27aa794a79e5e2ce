package dashboard_test

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/keyplane/keyplane/internal/browsertest"
)

// TestBrowserPortal: the portal's pages pass axe and fit the window, on a 375 px phone and at 900 px
// (the width of a platform's frame; the framing itself, cross-origin, is examples/portal's test). The
// person opens a link at the top level on http://127.0.0.1 (a potentially trustworthy origin, where
// Chromium accepts the portal's Secure cookie without TLS), creates a key, disables it (the message
// travels in the portal's kind of flash cookie), reads the webhooks and logs, ends the session, and
// then opens the used link again.
func TestBrowserPortal(t *testing.T) {
	t.Parallel() // its own server and its own chromium: nothing shared with the other tests
	s := startKP(t, "sqlite")
	s.patchWorkspace(t, "default", map[string]any{"branding": map[string]any{"name": "Acme Cloud", "accentColor": "#ffcc00"}})
	base := s.url
	b := browsertest.New(t)
	for _, size := range []struct {
		name          string
		width, height int64
	}{{"phone", 375, 812}, {"frame", 900, 700}} {
		t.Run(size.name, func(t *testing.T) {
			ana := btPerson(t, b)
			link := s.portalLink(t, s.ws["default"], "admin", anaUser, portalReturn)
			browsertest.Do(t, ana, "open the link", chromedp.EmulateViewport(size.width, size.height),
				chromedp.Navigate(base+link), chromedp.WaitVisible(css("#portal-brand")))
			if loc := browsertest.Eval[string](t, ana, "location.pathname"); loc != "/w/default/settings/api" {
				t.Fatalf("the link led to %s", loc)
			}
			if h := browsertest.Eval[int](t, ana, "history.length"); h > 2 {
				t.Logf("history length %d", h)
			}
			if strings.Contains(browsertest.URL(t, ana), "kp_portal_") {
				t.Errorf("the link's token stays in the address bar")
			}
			checkA11y(t, ana, "the portal's API keys ("+size.name+")")
			b.Screenshot(t, ana, "portal-keys-"+size.name)
			browsertest.Do(t, ana, "create a key",
				browsertest.FillLabel("Name", "Portal key "+size.name),
				chromedp.Click(css(`input[name=permissions][value="orders:read"]`)),
				chromedp.Click(css("#new-key button[type=submit]")),
				chromedp.WaitVisible(css("#secret-value")),
			)
			s.shownValue(t, ana)
			checkA11y(t, ana, "the portal's new key ("+size.name+")")
			// A change goes back to the list with its message: the flash cookie is the portal's kind too.
			browsertest.Do(t, ana, "disable", chromedp.Click(css("a.btn.primary")), chromedp.WaitVisible(css("#new-key")),
				chromedp.Click(css(`form[action$="/enabled"] button`)), chromedp.WaitVisible(css(".notice.ok")))
			if msg := browsertest.Text(t, ana, ".notice.ok"); !strings.Contains(msg, "is disabled") {
				t.Errorf("after disabling: %q", msg)
			}
			browsertest.Do(t, ana, "the key's page", chromedp.WaitVisible(css("#new-key")),
				chromedp.Click(css(`a.btn.link[href^="/w/default/settings/api/apk_"]`)), chromedp.WaitVisible(css("#credits-now")))
			checkA11y(t, ana, "the portal's key page ("+size.name+")")
			browsertest.Do(t, ana, "webhooks", chromedp.Navigate(base+"/w/default/settings/webhooks"), chromedp.WaitVisible(css("#portal-brand")))
			checkA11y(t, ana, "the portal's webhooks ("+size.name+")")
			browsertest.Do(t, ana, "logs", chromedp.Navigate(base+"/w/default/logs"), chromedp.WaitVisible(css("#usage-chart")))
			checkA11y(t, ana, "the portal's logs ("+size.name+")")
			browsertest.Do(t, ana, "end", chromedp.Click(css("#portal-end button")), chromedp.WaitVisible(css("#error-message")))
			if msg := browsertest.Text(t, ana, "#error-message"); !strings.Contains(msg, "You ended this session") {
				t.Errorf("after End session: %q", msg)
			}
			checkA11y(t, ana, "the portal's ended page ("+size.name+")")
			browsertest.Do(t, ana, "the link again", chromedp.Navigate(base+link), chromedp.WaitVisible(css("#error-message")))
			if msg := browsertest.Text(t, ana, "#error-message"); !strings.Contains(msg, "already used") {
				t.Errorf("the used link: %q", msg)
			}
			checkA11y(t, ana, "the portal's used link page ("+size.name+")")
			b.Screenshot(t, ana, "portal-used-link-"+size.name)
		})
	}
	noJSErrors(t, b)
}
