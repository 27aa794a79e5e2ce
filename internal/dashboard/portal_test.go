package dashboard_test

// Portal sessions (issue 18): a platform's user, with no keyplane account, manages one workspace's
// keys, webhooks and logs through a one-time link. testPortal runs in TestDashboardHTTP (both
// drivers, the real program) after the isolation tests, with their workspace A; TestPortalClock runs
// the dashboard in process on a service whose clock the test moves, for what only time changes (an
// expired link, the reveal window, an expired session) and for the CSP of --portal-frame-ancestors.

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/dashboard"
	"github.com/keyplane/keyplane/internal/kptest"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/service/servicetest"
	"github.com/keyplane/keyplane/internal/webhook"
)

var (
	reStyleNonce = regexp.MustCompile(`<style nonce="([^"]+)">`)
	reCheckbox   = regexp.MustCompile(`<input type="checkbox" name="permissions" value="([^"]+)"`)
	reExpiresAt  = regexp.MustCompile(`id="expiresAt" name="expiresAt" value="([^"]*)"`)
)

const (
	portalReturn = "https://acme.example/settings/api"
	portalLogo   = "https://cdn.acme.example/logo.svg"
)

// portalSecurityHeaders checks a portal answer's headers: framed only by ancestors, no
// X-Frame-Options, and the rest of the dashboard's policy.
func portalSecurityHeaders(t *testing.T, e *exchange, ancestors string) {
	t.Helper()
	// No X-Frame-Options: frame-ancestors says who may frame it.
	checkHeaders(t, e, " (portal)", []string{"default-src 'self'", "frame-ancestors " + ancestors + ";", "form-action 'self'", "script-src 'self'", "base-uri 'none'"}, "")
}

// portalCookieFlags checks the portal cookie of an answer that opened a session.
func portalCookieFlags(t *testing.T, e *exchange) *http.Cookie {
	t.Helper()
	c := e.cookie("kp_portal")
	if c == nil || c.Value == "" {
		t.Fatalf("%s %s: no portal cookie: %v", e.method, e.path, e.cookies)
	}
	if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteNoneMode || !c.Partitioned || c.Path != "/" || c.MaxAge <= 0 {
		t.Errorf("portal cookie %+v: want HttpOnly, Secure, SameSite=None, Partitioned, Path=/, a lifetime", c)
	}
	return c
}

// portalLink asks the API for a link into a workspace and returns its path; its token joins the
// secrets that no page, log or row may hold.
func (s *kpServer) portalLink(t *testing.T, wsID, role string, user map[string]any, returnURL string) string {
	t.Helper()
	body := map[string]any{"user": user, "role": role}
	if returnURL != "" {
		body["returnUrl"] = returnURL
	}
	st, res := s.call(t, s.admin, "POST", "/v1/portal/sessions", wsID, body)
	if st != http.StatusCreated {
		t.Fatalf("POST /v1/portal/sessions: %d %v", st, res)
	}
	u, err := url.Parse(data(res)["url"].(string))
	if err != nil || !strings.HasPrefix(u.Path, "/portal/kp_portal_") {
		t.Fatalf("portal link %v: %v", data(res)["url"], err)
	}
	s.mu.Lock()
	s.tokens = append(s.tokens, path.Base(u.Path))
	s.mu.Unlock()
	return u.Path
}

// openPortal opens a link in a new browser and follows it to the landing page, whose path must be
// want; the browser then holds the portal cookie and the page's form token.
func (s *kpServer) openPortal(t *testing.T, link, want string) (*kpPerson, *exchange) {
	t.Helper()
	p := s.newPerson("")
	e := p.get(t, link)
	expectRedirect(t, e, want)
	p.portal = portalCookieFlags(t, e).Value
	if c := e.cookie("kp_session"); c != nil {
		t.Errorf("opening a portal link set a dashboard session: %+v", c)
	}
	land := p.get(t, e.loc())
	expect(t, land, http.StatusOK)
	if p.csrf = first(reMeta, land.body); p.csrf == "" {
		t.Fatalf("no form token on the portal's landing page")
	}
	return p, e
}

var anaUser = map[string]any{"id": "ext-123", "email": "ana@acme.example", "name": "Ana"}

func testPortal(t *testing.T, s *kpServer) {
	fx := isolationFixture(t, s)
	s.patchWorkspace(t, fx.slugA, map[string]any{"branding": map[string]any{"name": "Acme Cloud", "accentColor": "#ffcc00", "logoUrl": portalLogo}})
	keysA, logsA := "/w/"+fx.slugA+"/settings/api", "/w/"+fx.slugA+"/logs"

	t.Run("OpenLink", func(t *testing.T) {
		link := s.portalLink(t, fx.wsA, "admin", anaUser, portalReturn)
		// A link checker's HEAD does not use the link up.
		if h := s.newPerson("").do(t, http.MethodHead, link, nil); h.status != http.StatusOK || len(h.cookies) > 0 {
			t.Errorf("HEAD %s: %d %v, want 200 and no cookie", link, h.status, h.cookies)
		}
		p, e := s.openPortal(t, link, keysA)
		if got := e.header.Get("Referrer-Policy"); got != "no-referrer" {
			t.Errorf("the link's answer: Referrer-Policy %q, want no-referrer", got)
		}
		if got := e.header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("the link's answer: Cache-Control %q, want no-store", got)
		}
		// Used once: the second time is the page that says so, with the way back, and no session.
		again := s.newPerson("").get(t, link)
		errorPage(t, again, http.StatusGone, "already used or has expired")
		if c := again.cookie("kp_portal"); c != nil {
			t.Errorf("a used link set a portal cookie: %+v", c)
		}
		expectText(t, again, "Back to Acme Cloud", `href="`+portalReturn+`" target="_top"`)
		// The session it opened goes on.
		expect(t, p.get(t, keysA), http.StatusOK)
	})

	t.Run("ForgedLink", func(t *testing.T) {
		for _, forged := range []string{"/portal/kp_portal_" + randomToken()[:43], "/portal/kp_portal_short", "/portal/" + randomToken()} {
			e := s.newPerson("").get(t, forged)
			errorPage(t, e, http.StatusNotFound, "There is no portal at this address")
			if len(e.cookies) > 0 {
				t.Errorf("GET %s set cookies: %v", forged, e.cookies)
			}
		}
	})

	t.Run("Look", func(t *testing.T) {
		p, _ := s.openPortal(t, s.portalLink(t, fx.wsA, "admin", anaUser, portalReturn), keysA)
		e := p.get(t, keysA)
		expect(t, e, http.StatusOK)
		for _, want := range []string{`id="portal-brand"`, `<img src="` + portalLogo + `" alt="Acme Cloud"`, `href="` + portalReturn + `" target="_top"`,
			"Back to Acme Cloud", `action="/portal/end"`, "End session", `<nav aria-label="Portal">`,
			`href="` + keysA + `"`, `href="/w/` + fx.slugA + `/settings/webhooks"`, `href="` + logsA + `"`,
			"--accent: #ffcc00;", "--accent-ink: #000000;"} {
			if !strings.Contains(e.body, want) {
				t.Errorf("the portal's page lacks %q", want)
			}
		}
		// No keyplane navigation, account or switcher.
		for _, not := range []string{`aria-label="Workspace"`, `aria-label="Account"`, "workspace-switch", `href="/status"`, `href="/logout"`,
			`href="/invitations"`, "/audit", "/members", "/identities", `class="logo"`} {
			if strings.Contains(e.body, not) {
				t.Errorf("the portal's page shows %q", not)
			}
		}
		nonce := first(reStyleNonce, e.body)
		csp := e.header.Get("Content-Security-Policy")
		if nonce == "" || !strings.Contains(csp, "style-src 'self' 'nonce-"+nonce+"'") || !strings.Contains(csp, "img-src 'self' data: https://cdn.acme.example") {
			t.Errorf("portal CSP %q with style nonce %q: want the nonce in style-src and the logo's origin in img-src", csp, nonce)
		}
		if again := first(reStyleNonce, p.get(t, keysA).body); again == nonce {
			t.Errorf("two pages share a style nonce")
		}
		// The person's own pages are not the portal's: a person's page keeps keyplane's look and
		// headers (testNoSecretsAnywhere checks every answer's).
		if strings.Contains(fx.ownerA.get(t, keysA).body, "portal-brand") {
			t.Errorf("A's owner sees the portal's look")
		}
	})

	var made []string // keys made in the portal
	t.Run("KeyLifecycle", func(t *testing.T) {
		p, _ := s.openPortal(t, s.portalLink(t, fx.wsA, "admin", anaUser, portalReturn), keysA)
		e := p.post(t, keysA, url.Values{"name": {"Portal key"}, "keyType": {"secret"}, "environment": {"test"}, "permissions": {"orders:read"},
			"recoverable": {"on"}, "enabled": {"on"}})
		expect(t, e, http.StatusOK)
		if e.secret = first(reSecret, e.body); e.secret == "" {
			t.Fatalf("no new key value: %s", e.summary())
		}
		var id string
		for _, k := range s.keys(t, fx.slugA) {
			if k["name"] == "Portal key" {
				id = k["id"].(string)
			}
		}
		if id == "" {
			t.Fatal("the portal's key is not in the workspace")
		}
		made = append(made, id)
		kp := keysA + "/" + id
		page := p.get(t, kp)
		expect(t, page, http.StatusOK)
		// Billing is the platform's: shown, never a form.
		for _, id := range []string{`id="credits-now"`, `id="limits-table"`, `id="identity-now"`} {
			if !strings.Contains(page.body, id) {
				t.Errorf("the portal's key page lacks %s", id)
			}
		}
		for _, id := range []string{`id="credits-form"`, `id="limits-form"`, `id="identity-form"`, `action="` + kp + `/credits"`} {
			if strings.Contains(page.body, id) {
				t.Errorf("the portal's key page offers %s", id)
			}
		}
		var offered []string
		for _, m := range reCheckbox.FindAllStringSubmatch(page.body, -1) {
			offered = append(offered, m[1])
		}
		if !slices.Contains(offered, "orders:read") || slices.ContainsFunc(offered, func(p string) bool {
			return strings.HasPrefix(p, "api_keys:") || strings.HasPrefix(p, "portal:") || strings.Contains(p, "webhooks:")
		}) {
			t.Errorf("the portal offers the permissions %v: want the platform's only", offered)
		}
		expiry := first(reExpiresAt, page.body) // a test key's expiry, kept as the form shows it
		expectRedirect(t, p.post(t, kp, url.Values{"name": {"Portal key renamed"}, "permissions": {"orders:write"}, "enabled": {"on"}, "expiresAt": {expiry}}), keysA)
		expectRedirect(t, p.post(t, kp+"/enabled", url.Values{"enabled": {"false"}}), keysA)
		expectRedirect(t, p.post(t, kp+"/enabled", url.Values{"enabled": {"true"}}), keysA)
		if k := s.key(t, fx.slugA, id); k["name"] != "Portal key renamed" || k["enabled"] != true || len(k["permissions"].([]any)) != 1 {
			t.Errorf("after edits in the portal: %v", k)
		}
		e = p.post(t, kp+"/regenerate", url.Values{"grace": {"0"}})
		expect(t, e, http.StatusOK)
		if e.secret = first(reSecret, e.body); e.secret == "" {
			t.Fatalf("regenerate shows no value: %s", e.summary())
		}
		// Reveal: the link was opened just now, so no password is asked for.
		confirm := p.get(t, kp+"/reveal")
		expect(t, confirm, http.StatusOK)
		if strings.Contains(confirm.body, `type="password"`) {
			t.Errorf("the portal's reveal asks for a password")
		}
		e = p.post(t, kp+"/reveal", nil)
		expect(t, e, http.StatusOK)
		if e.secret = first(reSecret, e.body); e.secret == "" {
			t.Fatalf("reveal shows no value: %s", e.summary())
		}
		// Not offered: the platform's billing settings answer as for a stranger.
		errorPage(t, p.post(t, kp+"/credits", url.Values{"credits": {"limited"}, "remaining": {"5"}}), http.StatusNotFound, "There is no workspace here")
		// keyplane's own permissions are not the portal's to grant.
		before := len(s.keys(t, fx.slugA))
		e = p.post(t, keysA, url.Values{"name": {"Planted admin key"}, "keyType": {"secret"}, "environment": {"test"}, "permissions": {"api_keys:write"}})
		if e.status != http.StatusForbidden || len(s.keys(t, fx.slugA)) != before {
			t.Errorf("a key with api_keys:write made in the portal: %d %s", e.status, e.summary())
		}
		expectRedirect(t, p.post(t, kp+"/revoke", nil), keysA)
		expectRedirect(t, p.post(t, kp+"/delete", nil), keysA)
		if k := s.key(t, fx.slugA, id); k != nil {
			t.Errorf("the deleted key is still there: %v", k)
		}
	})

	t.Run("PlatformsKeys", func(t *testing.T) {
		// A key holding keyplane's own permissions is the platform's: the portal shows it and
		// changes nothing of it.
		p, _ := s.openPortal(t, s.portalLink(t, fx.wsA, "admin", anaUser, portalReturn), keysA)
		id, _ := s.restKey(t, fx.slugA, map[string]any{"name": "Platform-made key", "keyType": "secret", "environment": "test",
			"permissions": []string{"api_keys:read", "orders:read"}, "recoverable": true})
		before := s.key(t, fx.slugA, id)
		list := p.get(t, keysA)
		if !strings.Contains(list.text(), "Managed by Acme Cloud") || strings.Contains(list.body, `action="`+keysA+"/"+id+`/enabled"`) {
			t.Errorf("the portal's list offers to change the platform's key")
		}
		page := p.get(t, keysA+"/"+id)
		expect(t, page, http.StatusOK)
		expectText(t, page, `id="platform-key"`, "only Acme Cloud can change")
		if strings.Contains(page.body, `action="`+keysA+"/"+id+`"`) {
			t.Errorf("the portal offers the edit form of the platform's key")
		}
		for _, e := range []*exchange{
			p.post(t, keysA+"/"+id, url.Values{"name": {"Taken over"}, "permissions": {"orders:write"}, "enabled": {"on"}}),
			p.post(t, keysA+"/"+id+"/enabled", url.Values{"enabled": {"false"}}),
			p.post(t, keysA+"/"+id+"/regenerate", url.Values{"grace": {"0"}}),
			p.post(t, keysA+"/"+id+"/reveal", nil),
			p.post(t, keysA+"/"+id+"/revoke", nil),
		} {
			if e.status != http.StatusForbidden {
				t.Errorf("%s %s on the platform's key: %d %s, want 403", e.method, e.path, e.status, e.summary())
			}
		}
		if after := s.key(t, fx.slugA, id); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Errorf("the portal changed the platform's key: %v → %v", before, after)
		}
	})

	t.Run("RolesAndRefusals", func(t *testing.T) {
		viewer, _ := s.openPortal(t, s.portalLink(t, fx.wsA, "viewer", map[string]any{"id": "ext-viewer"}, ""), logsA)
		dev, _ := s.openPortal(t, s.portalLink(t, fx.wsA, "developer", map[string]any{"id": "ext-dev", "name": "Dev"}, ""), logsA)
		viewer.email, dev.email = "viewer", "developer" // their roles, as the refusals name them
		for _, p := range []*kpPerson{viewer, dev} {
			page := p.get(t, logsA)
			if strings.Contains(page.body, `href="`+keysA+`"`) || strings.Contains(page.body, "portal-return") {
				t.Errorf("a %s's portal shows the API keys, or a way back without a return URL", p.email)
			}
		}
		before := fx.settled(t, s)
		k := fx.keys[0]
		for _, p := range []*kpPerson{viewer, dev} {
			for _, e := range []*exchange{
				p.post(t, keysA+"/"+k.id+"/enabled", url.Values{"enabled": {"false"}}),
				p.post(t, keysA+"/"+k.id, url.Values{"name": {"Renamed by a viewer"}}),
				p.post(t, keysA+"/"+k.id+"/revoke", nil),
				p.post(t, keysA, url.Values{"name": {"Viewer's key"}, "keyType": {"secret"}, "environment": {"test"}}),
			} {
				errorPage(t, e, http.StatusForbidden, "Your access here ("+p.email+") does not allow this.")
			}
		}
		if after := fx.snapshot(t, s); after != before {
			t.Errorf("refused portal posts changed workspace A: %s", firstDiff(before, after))
		}
	})

	t.Run("CSRF", func(t *testing.T) {
		p, _ := s.openPortal(t, s.portalLink(t, fx.wsA, "admin", anaUser, portalReturn), keysA)
		other, _ := s.openPortal(t, s.portalLink(t, fx.wsA, "admin", anaUser, portalReturn), keysA)
		before := fx.settled(t, s)
		form := func(tok string) url.Values {
			f := url.Values{"name": {"Cross-site key"}, "keyType": {"secret"}, "environment": {"test"}}
			if tok != "" {
				f.Set("csrf", tok)
			}
			return f
		}
		for _, c := range []struct {
			name, token string
			hdr         []string
			msg         string
		}{
			{"NoToken", "", nil, "expired or was not sent from this site"},
			{"OtherSessionsToken", other.csrf, nil, "expired or was not sent from this site"},
			{"PersonsToken", fx.ownerA.csrf, nil, "expired or was not sent from this site"},
			{"EmbeddingPage", p.csrf, []string{"Sec-Fetch-Site", "cross-site"}, "sent from another site"},
			{"EmbeddingOrigin", p.csrf, []string{"Origin", "https://acme.example"}, "sent from another site"},
		} {
			e := p.do(t, http.MethodPost, keysA, form(c.token), c.hdr...)
			if e.status != http.StatusForbidden || !strings.Contains(first(reErrorMsg, e.body), c.msg) {
				t.Errorf("%s: %d %q, want 403 %q", c.name, e.status, e.summary(), c.msg)
			}
		}
		e := p.do(t, http.MethodPost, "/portal/end", url.Values{}, "Sec-Fetch-Site", "cross-site")
		expect(t, e, http.StatusForbidden)
		if after := fx.snapshot(t, s); after != before {
			t.Errorf("refused portal forms changed workspace A: %s", firstDiff(before, after))
		}
		expect(t, p.get(t, keysA), http.StatusOK) // the refused end did not end it
	})

	t.Run("Isolation", func(t *testing.T) {
		testPortalIsolation(t, s, fx)
	})

	t.Run("EndSession", func(t *testing.T) {
		p, _ := s.openPortal(t, s.portalLink(t, fx.wsA, "developer", map[string]any{"id": "ext-leaver", "email": "leaver@acme.example"}, portalReturn), logsA)
		e := p.post(t, "/portal/end", nil)
		expect(t, e, http.StatusOK)
		expectText(t, e, "You ended this session", "Back to Acme Cloud", `href="`+portalReturn+`" target="_top"`)
		for _, path := range []string{logsA, keysA, "/", "/status"} {
			errorPage(t, p.get(t, path), http.StatusGone, "You ended this session")
		}
		errorPage(t, p.post(t, "/portal/end", nil), http.StatusGone, "You ended this session")
		errorPage(t, p.post(t, "/w/"+fx.slugA+"/settings/webhooks", url.Values{"url": {fx.receiver.srv.URL + "/ended"}, "eventTypes": {"*"}}), http.StatusGone, "You ended this session")
	})

	t.Run("Audit", func(t *testing.T) {
		var entries []map[string]any
		for cursor := ""; ; {
			q := "/v1/audit-logs?limit=100"
			if cursor != "" {
				q += "&cursor=" + url.QueryEscape(cursor)
			}
			st, body := s.call(t, s.admin, "GET", q, fx.wsA, nil)
			if st != 200 {
				t.Fatalf("audit: %d %v", st, body)
			}
			entries = append(entries, list(body)...)
			if cursor, _ = body["nextCursor"].(string); cursor == "" {
				break
			}
		}
		actions := map[string]bool{}
		for _, e := range entries {
			actor, _ := e["actor"].(map[string]any)
			target, _ := e["target"].(map[string]any)
			tid, _ := target["id"].(string)
			if slices.Contains(made, tid) && strings.HasPrefix(e["action"].(string), "api_key.") && e["action"] != "api_key.created" {
				if actor["type"] != "portal_user" || actor["id"] != "ext-123" || actor["name"] != "ana@acme.example" {
					t.Errorf("%s of a key changed in the portal: actor %v, want the portal user", e["action"], actor)
				}
			}
			if actor["type"] == "portal_user" {
				actions[e["action"].(string)] = true
			}
		}
		for _, a := range []string{"api_key.created", "api_key.updated", "api_key.rotated", "api_key.revealed", "api_key.revoked", "api_key.deleted",
			"portal_session.opened", "portal_session.ended"} {
			if !actions[a] {
				t.Errorf("no %s by a portal user in the audit trail (have %v)", a, actions)
			}
		}
		st, body := s.call(t, s.admin, "GET", "/v1/audit-logs/verify", fx.wsA, nil)
		if st != 200 || data(body)["valid"] != true {
			t.Errorf("the chain does not verify after the portal's changes: %d %v", st, body)
		}
		e := fx.ownerA.get(t, "/w/"+fx.slugA+"/audit?actor=ext-123")
		expectText(t, e, "ana@acme.example (portal user ext-123)")
	})
}

// testPortalIsolation: a portal session reaches its own workspace's offered pages only. Generated
// from the route table: a session of workspace B ("second") tries every workspace route in A, and
// every route that takes an id in B with A's ids; a session of A tries every route of A that the
// portal does not offer, and every route outside workspaces. Each answer is the one a stranger gets
// (the 404 of a workspace or a thing that does not exist), and A is the same afterwards. A person
// signed in to A whose browser also holds B's portal session is in B's portal, not in A.
func testPortalIsolation(t *testing.T, s *kpServer, fx *isoFixture) {
	offered := dashboard.PortalRoutes()
	pB, _ := s.openPortal(t, s.portalLink(t, s.ws[fx.slugB], "admin", map[string]any{"id": "ext-b"}, ""), "/w/"+fx.slugB+"/settings/api")
	pA, _ := s.openPortal(t, s.portalLink(t, fx.wsA, "admin", anaUser, portalReturn), "/w/"+fx.slugA+"/settings/api")
	both := &kpPerson{s: s, email: fx.emailA, c: fx.ownerA.c, csrf: pB.csrf, portal: pB.portal}
	before := fx.settled(t, s)
	posts := len(fx.receiver.posts(""))
	var requests int
	ghosts := map[string]*exchange{}
	ghost := func(p *kpPerson, r routePattern, slug string, tg isoTarget) *exchange {
		t.Helper()
		key := p.portal + " " + r.method + " " + r.fill(tg.vars) + " " + slug
		if ghosts[key] == nil {
			ghosts[key] = p.send(t, r, slug, tg)
		}
		return ghosts[key]
	}
	for _, r := range routeTable() {
		if !r.inWorkspace() {
			switch r.pattern {
			case "GET /static/", "GET /login", "POST /login", "/", "GET /portal/{token}", "POST /portal/end":
				continue
			case "GET /{$}":
				expectRedirect(t, pA.get(t, "/"), "/w/"+fx.slugA+"/settings/api")
				continue
			}
			// A person's pages: none is the portal's.
			for _, p := range []*kpPerson{pA, both} {
				e := p.send(t, r, "", isoTarget{vars: map[string]string{}, form: url.Values{"workspace": {fx.wsA}}})
				errorPage(t, e, http.StatusNotFound, "There is no page here.")
				requests++
			}
			continue
		}
		tgs := fx.targets(t, r)
		if len(tgs) == 0 {
			continue
		}
		// B's session, and the person of A holding it, in A: as a workspace that does not exist.
		for _, p := range []*kpPerson{pB, both} {
			fx.hidden(t, p.send(t, r, fx.slugA, tgs[0]), ghost(p, r, "no-such-workspace", tgs[0]))
			requests++
		}
		isOffered := slices.Contains(offered, r.pattern)
		if !isOffered {
			// A's own session, on a page the portal does not offer: the same.
			for _, tg := range tgs {
				if fx.onlyA(tg) {
					fx.hidden(t, pA.send(t, r, fx.slugA, tg), ghost(pA, r, "no-such-workspace", tg))
					requests++
				}
			}
		}
		if !r.takesID() {
			continue
		}
		// In B, with A's ids: as ids that exist nowhere.
		for _, tg := range tgs {
			fx.hidden(t, pB.send(t, r, fx.slugB, tg), ghost(pB, r, fx.slugB, fx.ghostOf(tg)))
			requests++
		}
	}
	t.Logf("%d requests of portal sessions outside what they are offered", requests+len(ghosts))
	if after := fx.snapshot(t, s); after != before {
		t.Errorf("portal sessions changed workspace A from outside: %s", firstDiff(before, after))
	}
	if n := len(fx.receiver.posts("")); n != posts {
		t.Errorf("portal sessions made A's endpoint receive %d posts", n-posts)
	}
	// The person's own session is ignored while the portal session is live, and works without it.
	if e := both.get(t, "/w/"+fx.slugB+"/settings/api"); e.status != http.StatusOK || !strings.Contains(e.body, "portal-brand") {
		t.Errorf("the person holding B's portal session: %d, want B's portal", e.status)
	}
	expect(t, fx.ownerA.get(t, "/w/"+fx.slugA+"/settings/api"), http.StatusOK)
}

// TestPortalRouteTable: the portal offers API keys (not the platform's billing settings of a key),
// webhooks and logs, and nothing else.
func TestPortalRouteTable(t *testing.T) {
	offered := dashboard.PortalRoutes()
	all := dashboard.Routes()
	for _, want := range []string{"GET /w/{slug}/settings/api", "POST /w/{slug}/settings/api/{id}/reveal", "POST /w/{slug}/settings/api/{id}/delete",
		"GET /w/{slug}/settings/webhooks/{id}", "POST /w/{slug}/settings/webhooks/{id}/test", "POST /w/{slug}/settings/webhooks/{id}/deliveries/{delivery}/retry",
		"GET /w/{slug}/logs", "GET /w/{slug}/logs/export"} {
		if !slices.Contains(offered, want) {
			t.Errorf("the portal does not offer %s", want)
		}
	}
	for _, p := range offered {
		if !slices.Contains(all, p) || !strings.Contains(p, " /w/{slug}") {
			t.Errorf("portal route %q is no workspace route of the table", p)
		}
		for _, not := range []string{"/identities", "/audit", "/members", "/leave", "/credits", "/limits", "/identity"} {
			if strings.Contains(p, not) {
				t.Errorf("the portal offers %s", p)
			}
		}
	}
}

// portalHarness is a dashboard in process on a service whose clock the test sets.
type portalHarness struct {
	svc *service.Service
	srv *httptest.Server
	kp  *kpServer // the people of kpPerson.do, on srv
	ws  *keyplane.Workspace
	mu  sync.Mutex
	now time.Time
}

func (h *portalHarness) clock() time.Time { h.mu.Lock(); defer h.mu.Unlock(); return h.now }
func (h *portalHarness) advance(d time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.now = h.now.Add(d)
}

func newPortalHarness(t *testing.T, driver string, ancestors []string) *portalHarness {
	t.Helper()
	h := &portalHarness{now: time.Now().UTC()}
	h.svc, _ = servicetest.Open(t, driver, service.Options{Now: h.clock, PublicURL: "http://127.0.0.1:1",
		Webhooks: service.WebhookOptions{Policy: webhook.URLPolicy{AllowHTTP: true, AllowPrivate: true}, Guard: kptest.Guard(t)}})
	d, err := dashboard.New(dashboard.Options{Service: h.svc, Now: h.clock, PortalFrameAncestors: ancestors})
	if err != nil {
		t.Fatal(err)
	}
	h.srv = httptest.NewServer(d)
	t.Cleanup(h.srv.Close)
	h.kp = &kpServer{url: h.srv.URL}
	h.ws, err = h.svc.CreateWorkspace(context.Background(), keyplane.System("test"), service.WorkspaceInput{Name: "Clock Co", Slug: "clock-co"})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// link makes a link as the operator would through the API.
func (h *portalHarness) link(t *testing.T, role keyplane.Role, ttl time.Duration) string {
	t.Helper()
	l, err := h.svc.CreatePortalSession(context.Background(), keyplane.System("test"), h.ws.ID,
		service.PortalRequest{User: keyplane.PortalUser{ID: "ext-clock", Email: "clock@example.com"}, Role: role, ReturnURL: portalReturn, ExpiresIn: ttl})
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(l.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Path
}

// do sends a request as kpPerson.do does (a form body, on POST the page's own Origin), with the
// portal cookie by hand, and answers the response's status and headers and its body.
func (h *portalHarness) do(t *testing.T, method, path, cookie string, form url.Values) (*http.Response, string) {
	t.Helper()
	p := h.kp.newPerson("")
	p.portal = cookie
	e := p.do(t, method, path, form)
	return &http.Response{StatusCode: e.status, Header: e.header}, e.body
}

func TestPortalClock(t *testing.T) {
	for _, driver := range servicetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			h := newPortalHarness(t, driver, []string{"https://platform.example", "http://localhost:8080"})
			ctx := context.Background()

			t.Run("ExpiredLink", func(t *testing.T) {
				link := h.link(t, keyplane.RoleAdmin, time.Minute)
				h.advance(time.Minute + time.Second)
				res, body := h.do(t, "GET", link, "", nil)
				if res.StatusCode != http.StatusGone || !strings.Contains(body, "already used or has expired") || !strings.Contains(body, `href="`+portalReturn+`"`) {
					t.Errorf("an expired link: %d %.300s", res.StatusCode, body)
				}
				for _, c := range res.Cookies() {
					t.Errorf("an expired link set a cookie: %+v", c)
				}
				if got := res.Header.Get("Content-Security-Policy"); !strings.Contains(got, "frame-ancestors https://platform.example http://localhost:8080;") {
					t.Errorf("the expired link's page: CSP %q", got)
				}
			})

			t.Run("RevealWindowAndExpiry", func(t *testing.T) {
				k, _, err := h.svc.CreateAPIKey(ctx, keyplane.System("test"), h.ws.ID, service.CreateKeyInput{Name: "Recoverable", KeyType: keyplane.KeyTypeSecret,
					Environment: keyplane.EnvTest, Recoverable: true})
				if err != nil {
					t.Fatal(err)
				}
				res, _ := h.do(t, "GET", h.link(t, keyplane.RoleAdmin, 0), "", nil)
				if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/w/clock-co/settings/api" {
					t.Fatalf("open: %d %s", res.StatusCode, res.Header.Get("Location"))
				}
				if got := res.Header.Get("Content-Security-Policy"); !strings.Contains(got, "frame-ancestors https://platform.example http://localhost:8080;") || res.Header.Get("X-Frame-Options") != "" {
					t.Errorf("the link's answer: CSP %q, X-Frame-Options %q", got, res.Header.Get("X-Frame-Options"))
				}
				var cookie string
				for _, c := range res.Cookies() {
					if c.Name == "kp_portal" {
						cookie = c.Value
					}
				}
				hook, _, err := h.svc.CreateWebhook(ctx, keyplane.System("test"), h.ws.ID, service.WebhookInput{URL: "http://127.0.0.1:9/hook", EventTypes: []string{"*"}})
				if err != nil {
					t.Fatal(err)
				}
				hookPage := "/w/clock-co/settings/webhooks/" + hook.ID + "/reveal"
				if res, body := h.do(t, "GET", hookPage, cookie, nil); res.StatusCode != 200 || strings.Contains(body, "portal-reopen") || strings.Contains(body, `type="password"`) {
					t.Errorf("a signing secret's reveal in the first minutes: %d, want the Reveal button and no password", res.StatusCode)
				}
				page := "/w/clock-co/settings/api/" + k.ID + "/reveal"
				res, body := h.do(t, "GET", page, cookie, nil)
				if res.StatusCode != 200 || strings.Contains(body, "portal-reopen") || !strings.Contains(body, ">Reveal</button>") {
					t.Errorf("reveal in the first minutes: %d, want the Reveal button", res.StatusCode)
				}
				csrf := first(reMeta, body)
				h.advance(keyplane.ReauthWindow + time.Second)
				res, body = h.do(t, "GET", page, cookie, nil)
				if res.StatusCode != 200 || !strings.Contains(body, `id="portal-reopen"`) || strings.Contains(body, `type="password"`) || !strings.Contains(body, `href="`+portalReturn+`" target="_top"`) {
					t.Errorf("reveal after the window: %d, want the message to open the portal again: %.400s", res.StatusCode, body)
				}
				res, body = h.do(t, "POST", page, cookie, url.Values{"csrf": {csrf}})
				if res.StatusCode != http.StatusForbidden || !strings.Contains(body, `id="portal-reopen"`) || reSecret.MatchString(body) {
					t.Errorf("a reveal posted after the window: %d", res.StatusCode)
				}
				res, body = h.do(t, "POST", hookPage, cookie, url.Values{"csrf": {csrf}})
				if res.StatusCode != http.StatusForbidden || !strings.Contains(body, `id="portal-reopen"`) || reHookSecret.MatchString(body) {
					t.Errorf("a signing secret's reveal posted after the window: %d", res.StatusCode)
				}
				// A page of a person is not framed: only the portal's answers are.
				res, _ = h.do(t, "GET", "/login", "", nil)
				if got := res.Header.Get("Content-Security-Policy"); !strings.Contains(got, "frame-ancestors 'none'") || res.Header.Get("X-Frame-Options") != "DENY" {
					t.Errorf("the sign-in page: CSP %q, X-Frame-Options %q", got, res.Header.Get("X-Frame-Options"))
				}
				// The session ends at its TTL: the page says so, with the way back; never the sign-in page.
				h.advance(keyplane.DefaultPortalSessionTTL)
				res, body = h.do(t, "GET", "/w/clock-co/settings/api", cookie, nil)
				if res.StatusCode != http.StatusGone || !strings.Contains(body, "This session expired") || !strings.Contains(body, `href="`+portalReturn+`"`) {
					t.Errorf("an expired session: %d %s", res.StatusCode, res.Header.Get("Location"))
				}
			})
		})
	}
	t.Run("NoAncestors", func(t *testing.T) {
		h := newPortalHarness(t, "sqlite", nil)
		for _, link := range []string{h.link(t, keyplane.RoleViewer, 0), "/portal/kp_portal_" + randomToken()[:43]} {
			res, _ := h.do(t, "GET", link, "", nil)
			if got := res.Header.Get("Content-Security-Policy"); !strings.Contains(got, "frame-ancestors 'none';") || res.Header.Get("X-Frame-Options") != "" {
				t.Errorf("GET %s without --portal-frame-ancestors: %d CSP %q", link, res.StatusCode, got)
			}
		}
	})
}
