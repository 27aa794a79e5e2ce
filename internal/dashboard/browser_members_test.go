package dashboard_test

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/keyplane/keyplane/internal/browsertest"
)

// a11yProblems checks what axe's WCAG rules leave out: the page has a heading, nothing is wider than
// the window (reflow, WCAG 1.4.10, which axe cannot judge), and every id that aria-describedby or
// aria-labelledby names is on the page (axe leaves a missing one for review rather than failing it),
// and each field's error is tied to its field by aria-describedby, so a screen reader says it there.
const a11yProblems = `(() => {
  const out = [];
  document.querySelectorAll(".field .error, fieldset .error").forEach(el => {
    if (!el.id || !document.querySelector("[aria-describedby~='" + CSS.escape(el.id) + "']")) out.push("an error that no field's aria-describedby names: " + el.outerHTML.slice(0, 120));
  });
  document.querySelectorAll("[aria-describedby], [aria-labelledby]").forEach(el => {
    for (const a of ["aria-describedby", "aria-labelledby"]) {
      for (const id of (el.getAttribute(a) || "").split(/\s+/).filter(Boolean)) {
        if (!document.getElementById(id)) out.push(a + " names a missing id " + id + ": " + el.outerHTML.slice(0, 120));
      }
    }
  });
  if (!document.querySelector("h1")) out.push("no <h1>");
  if (document.documentElement.scrollWidth > window.innerWidth + 1) out.push("the page is " + document.documentElement.scrollWidth + " px wide in a " + window.innerWidth + " px window");
  return out;
})()`

// checkA11y fails the test for each WCAG 2.1 A or AA violation that axe-core finds on the open page,
// and for each of a11yProblems.
func checkA11y(t *testing.T, ctx context.Context, page string) {
	t.Helper()
	browsertest.CheckAccessibility(t, ctx, page)
	for _, p := range browsertest.Eval[[]string](t, ctx, a11yProblems) {
		t.Errorf("%s: %s", page, p)
	}
}

// TestBrowserMembers: an owner invites another tenant's owner, who signs in on a 375 px phone, lands on
// the invitations (not in the inviting workspace), accepts, is removed through the members page's
// Remove (a confirmation dialog), is invited again and leaves.
func TestBrowserMembers(t *testing.T) {
	t.Parallel() // its own server and its own chromium: nothing shared with the other tests
	s := startKP(t, "sqlite")
	s.createWorkspace(t, "team")
	s.createWorkspace(t, "elsewhere")
	s.cli(t, thePassword+"\n", "users", "create", "--email", "teamowner@example.com", "--role", "owner", "--workspace", "team")
	s.cli(t, thePassword+"\n", "users", "create", "--email", "guest@example.com", "--role", "owner", "--workspace", "elsewhere")
	b := browsertest.New(t)
	owner, guest := btPerson(t, b), btPerson(t, b)

	signIn(t, owner, s.url, "teamowner@example.com", thePassword)
	invite := func() {
		t.Helper()
		browsertest.Do(t, owner, "invite",
			chromedp.Navigate(s.url+"/w/team/members"), chromedp.WaitVisible(css("#email")),
			browsertest.FillLabel("Email", "guest@example.com"),
			chromedp.SetValue(css("#role"), "developer"),
			chromedp.Click(css(`main form button[type=submit]`)),
			chromedp.WaitVisible(css(".notice.ok")),
		)
		if msg := browsertest.Text(t, owner, ".notice.ok"); !strings.Contains(msg, "is invited as developer") {
			t.Fatalf("after inviting: %q", msg)
		}
	}
	invite()
	checkA11y(t, owner, "the members page")
	b.Screenshot(t, owner, "30-members-invited")

	// The guest, on a phone: signing in lands on the invitations.
	browsertest.Do(t, guest, "phone", chromedp.EmulateViewport(375, 812, chromedp.EmulateMobile, chromedp.EmulateTouch))
	signIn(t, guest, s.url, "guest@example.com", thePassword)
	if loc := browsertest.Eval[string](t, guest, "location.pathname"); loc != "/invitations" {
		t.Fatalf("after sign-in the guest is at %s, want /invitations", loc)
	}
	if txt := browsertest.Text(t, guest, "main"); !strings.Contains(txt, "Workspace team") || !strings.Contains(txt, "developer") {
		t.Fatalf("the invitations page: %q", txt)
	}
	checkA11y(t, guest, "the invitations page at 375 px")
	b.Screenshot(t, guest, "31-invitations-phone")
	browsertest.Do(t, guest, "accept", browsertest.Click(`button[aria-label="Accept the invitation to Workspace team"]`), chromedp.WaitVisible(css(".notice.ok")))
	if loc := browsertest.Eval[string](t, guest, "location.pathname"); loc != "/w/team/logs" {
		t.Errorf("after accepting the guest is at %s", loc)
	}
	if msg := browsertest.Text(t, guest, ".notice.ok"); !strings.Contains(msg, "You joined Workspace team") {
		t.Errorf("after accepting: %q", msg)
	}

	// Remove, through the dialog the script opens.
	browsertest.Do(t, owner, "remove",
		chromedp.Navigate(s.url+"/w/team/members"), chromedp.WaitVisible(css(`a[aria-label="Remove guest@example.com"]`)),
		browsertest.Click(`a[aria-label="Remove guest@example.com"]`),
		chromedp.WaitVisible(css(".notice.ok")),
	)
	if msg := browsertest.Text(t, owner, ".notice.ok"); !strings.Contains(msg, "no longer a member") {
		t.Fatalf("after removing: %q", msg)
	}
	browsertest.Do(t, guest, "team after removal", chromedp.Navigate(s.url+"/w/team/logs"), chromedp.WaitVisible(css("#error-message")))

	// Invited again, accepted, and left: the confirmation page without the dialog, at 375 px.
	invite()
	browsertest.Do(t, guest, "accept again", chromedp.Navigate(s.url+"/invitations"),
		browsertest.Click(`button[aria-label="Accept the invitation to Workspace team"]`), chromedp.WaitVisible(css(".notice.ok")))
	browsertest.Do(t, guest, "leave page", chromedp.Navigate(s.url+"/w/team/leave"), chromedp.WaitVisible(css("button.danger")))
	checkA11y(t, guest, "the leave page at 375 px")
	b.Screenshot(t, guest, "32-leave-phone")
	browsertest.Do(t, guest, "leave", browsertest.Click("button.danger"), chromedp.WaitVisible(css(".notice.ok")))
	if loc := browsertest.Eval[string](t, guest, "location.pathname"); loc != "/w/elsewhere/settings/api" {
		t.Errorf("after leaving the guest is at %s", loc)
	}
	if msg := browsertest.Text(t, guest, ".notice.ok"); !strings.Contains(msg, "You left Workspace team") {
		t.Errorf("after leaving: %q", msg)
	}
	noJSErrors(t, b)
}
