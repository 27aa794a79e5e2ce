// Package dashboard is keyplane's server-rendered web interface: people sign in and manage their
// workspaces' keys, members and audit trail. Every page's core action is a plain form that posts and
// redirects, so it works without JavaScript; a little script makes copy, reveal and confirmations
// smoother. Business rules stay in the service: pages only translate forms into its calls.
package dashboard

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/accesslog"
	"github.com/keyplane/keyplane/internal/redact"
	"github.com/keyplane/keyplane/internal/routemux"
	"github.com/keyplane/keyplane/internal/service"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Cookie names.
const (
	sessionCookie = "kp_session"
	loginCookie   = "kp_login" // double-submit token of the sign-in form, before any session exists
	flashCookie   = "kp_flash"
	// portalCookie holds a portal session's token (see portal.go): its own name, so that a portal
	// session and a person's session never stand for each other.
	portalCookie = "kp_portal"
)

// Options configure the dashboard.
type Options struct {
	Service *service.Service
	Logger  *slog.Logger
	Version string
	Started time.Time
	// ClientIP returns the address a request came from, trusting proxies as the API does.
	ClientIP func(r *http.Request) netip.Addr
	// FromTrustedProxy reports whether the request's peer is a trusted proxy, whose
	// X-Forwarded-Proto is believed.
	FromTrustedProxy func(r *http.Request) bool
	Now              func() time.Time
	// PortalFrameAncestors are the origins that may frame the portal (--portal-frame-ancestors):
	// its CSP frame-ancestors. Empty: none, as for the rest of the dashboard.
	PortalFrameAncestors []string
}

// Dashboard serves the pages.
type Dashboard struct {
	svc      *service.Service
	log      *slog.Logger
	version  string
	started  time.Time
	clientIP func(r *http.Request) netip.Addr
	trusted  func(r *http.Request) bool
	now      func() time.Time
	pages    map[string]*template.Template
	mux      *routemux.Mux
	handler  http.Handler
	checks   sync.Map // workspace id → chainCheck, the last full check of its audit chain on this node
	// ancestors is the portal's CSP frame-ancestors source list ('none' without any origin);
	// portalRoutes, the /w/{slug}/ patterns a portal session may use (PortalRoutes).
	ancestors    string
	portalRoutes []string
}

// New parses the templates and builds the routes.
func New(o Options) (*Dashboard, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	d := &Dashboard{svc: o.Service, log: o.Logger, version: o.Version, started: o.Started, clientIP: o.ClientIP, trusted: o.FromTrustedProxy, now: o.Now, mux: routemux.New(),
		ancestors: frameAncestors(o.PortalFrameAncestors)}
	if err := d.parse(); err != nil {
		return nil, err
	}
	d.routes()
	// Cross-origin form posts are refused before any handler runs; the per-session token in every
	// form is the second line, for browsers that send neither Sec-Fetch-Site nor Origin.
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := r.Cookie(portalCookie); err == nil {
			// Refused before anyone was looked up: a browser holding a portal session gets the
			// portal's headers, so that its frame shows the refusal.
			r = withPortal(r)
		}
		d.fail(w, r, http.StatusForbidden, "This form was sent from another site, so it was refused. Reload the page and try again.")
	}))
	d.handler = securityHeaders(cop.Handler(d.mux))
	return d, nil
}

func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) { d.handler.ServeHTTP(w, r) }

// Panic answers a request whose handler panicked.
func (d *Dashboard) Panic(w http.ResponseWriter, r *http.Request) {
	d.fail(w, r, http.StatusInternalServerError, "Something went wrong on our side. The request id below identifies it in our logs.")
}

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		next.ServeHTTP(w, r)
	})
}

func (d *Dashboard) routes() {
	m := d.mux
	static, _ := fs.Sub(staticFS, "static")
	m.Handle("GET /static/", http.StripPrefix("/static/", cacheStatic(http.FileServerFS(static))))
	m.HandleFunc("GET /{$}", d.home)
	m.HandleFunc("GET /login", d.loginPage)
	m.HandleFunc("POST /login", d.login)
	m.HandleFunc("GET /logout", d.person(d.logoutPage))
	m.HandleFunc("POST /logout", d.person(d.logout))
	m.HandleFunc("GET /status", d.person(d.statusPage))

	// A workspace's pages. Those registered with portal are also the portal's (PortalRoutes): a
	// portal session reaches them in its own workspace, within its role; every other page answers
	// it as it answers a person who is no member of the workspace.
	member := func(pattern string, h pageFunc) { m.HandleFunc(pattern, d.inWorkspace(false, h)) }
	portal := func(pattern string, h pageFunc) {
		d.portalRoutes = append(d.portalRoutes, pattern)
		m.HandleFunc(pattern, d.inWorkspace(true, h))
	}

	portal("GET /w/{slug}/settings/api", d.keysPage)
	portal("POST /w/{slug}/settings/api", d.createKey)
	portal("GET /w/{slug}/settings/api/{id}", d.editKeyPage)
	portal("POST /w/{slug}/settings/api/{id}", d.editKey)
	portal("POST /w/{slug}/settings/api/{id}/enabled", d.toggleKey)
	portal("GET /w/{slug}/settings/api/{id}/{action}", d.confirmPage)
	portal("POST /w/{slug}/settings/api/{id}/regenerate", d.rotateKey)
	portal("POST /w/{slug}/settings/api/{id}/revoke", d.revokeKey)
	portal("POST /w/{slug}/settings/api/{id}/delete", d.deleteKey)
	portal("POST /w/{slug}/settings/api/{id}/reveal", d.revealKey)
	member("POST /w/{slug}/settings/api/{id}/credits", d.keyCredits)
	member("POST /w/{slug}/settings/api/{id}/limits", d.keyLimits)
	member("POST /w/{slug}/settings/api/{id}/identity", d.keyIdentityChange)

	member("GET /w/{slug}/identities", d.identitiesPage)
	member("POST /w/{slug}/identities", d.createIdentity)
	member("GET /w/{slug}/identities/{id}", d.identityPage)
	member("POST /w/{slug}/identities/{id}", d.editIdentity)
	member("POST /w/{slug}/identities/{id}/credits", d.identityCredits)
	member("POST /w/{slug}/identities/{id}/limits", d.identityLimits)
	member("GET /w/{slug}/identities/{id}/delete", d.identityDeletePage)
	member("POST /w/{slug}/identities/{id}/delete", d.deleteIdentity)

	portal("GET /w/{slug}/settings/webhooks", d.hooksPage)
	portal("POST /w/{slug}/settings/webhooks", d.createHook)
	portal("POST /w/{slug}/settings/webhooks/recover", d.recoverHooks)
	portal("POST /w/{slug}/settings/webhooks/events/{id}/resend", d.resendEvent)
	portal("GET /w/{slug}/settings/webhooks/{id}", d.hookPage)
	portal("POST /w/{slug}/settings/webhooks/{id}", d.editHook)
	portal("POST /w/{slug}/settings/webhooks/{id}/enabled", d.toggleHook)
	portal("POST /w/{slug}/settings/webhooks/{id}/test", d.testHook)
	portal("GET /w/{slug}/settings/webhooks/{id}/{action}", d.hookConfirmPage)
	portal("POST /w/{slug}/settings/webhooks/{id}/delete", d.deleteHook)
	portal("POST /w/{slug}/settings/webhooks/{id}/rotate", d.rotateHook)
	portal("POST /w/{slug}/settings/webhooks/{id}/reveal", d.revealHook)
	portal("POST /w/{slug}/settings/webhooks/{id}/deliveries/{delivery}/retry", d.retryDelivery)

	member("GET /w/{slug}/audit", d.auditPage)
	member("POST /w/{slug}/audit/verify", d.verifyChain)
	portal("GET /w/{slug}/logs", d.logsPage)
	portal("GET /w/{slug}/logs/export", d.exportUsage)
	member("GET /w/{slug}/members", d.membersPage)
	member("POST /w/{slug}/members", d.addMember)
	member("GET /w/{slug}/members/{id}/remove", d.removeMemberPage)
	member("POST /w/{slug}/members/{id}/remove", d.removeMember)
	member("GET /w/{slug}/leave", d.leavePage)
	member("POST /w/{slug}/leave", d.leave)
	m.HandleFunc("GET /invitations", d.person(d.invitationsPage))
	m.HandleFunc("POST /invitations/accept", d.person(d.answerInvitation(true)))
	m.HandleFunc("POST /invitations/decline", d.person(d.answerInvitation(false)))
	m.HandleFunc("GET /w", d.person(func(w http.ResponseWriter, r *http.Request, v *view) {
		// The workspace switcher's form, without JavaScript.
		http.Redirect(w, r, landing(v, r.URL.Query().Get("slug")), http.StatusSeeOther)
	}))
	portal("GET /w/{slug}", func(w http.ResponseWriter, r *http.Request, v *view) {
		http.Redirect(w, r, landing(v, v.Workspace.Slug), http.StatusSeeOther)
	})
	m.HandleFunc("GET /portal/{token}", d.openPortal)
	m.HandleFunc("POST /portal/end", d.endPortal)
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		d.fail(w, r, http.StatusNotFound, "There is no page here.")
	})
}

func cacheStatic(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		next.ServeHTTP(w, r)
	})
}

// view is what every page template gets: who is signed in, where they are, and the page's own data.
type view struct {
	Title       string
	Section     string // the navigation entry a page belongs to when its title is not that entry's
	User        *keyplane.User
	Session     *keyplane.Session
	Memberships []keyplane.Membership
	Invitations []keyplane.Membership // workspaces the person is invited to, not a member of
	Workspace   *keyplane.Workspace
	Caller      *keyplane.Caller
	CSRF        string
	Flash       string
	RequestID   string
	Version     string
	Now         time.Time
	Data        any
	token       string
	// Portal is set in portal mode: the portal's layout and look, and no person (User is nil).
	Portal *portalView
}

// WS returns a path inside the current workspace.
func (v *view) WS(path string) string { return "/w/" + v.Workspace.Slug + path }

// canManageMembers: the operator, or an owner or admin of this workspace (the service decides; this
// only chooses what the page offers).
func (v *view) canManageMembers() bool {
	return v.Caller != nil && (v.Caller.Operator || v.Caller.Role == keyplane.RoleOwner || v.Caller.Role == keyplane.RoleAdmin)
}

// Can reports whether the person holds a keyplane permission in this workspace.
func (v *view) Can(perm string) bool {
	return v.Caller != nil && v.Caller.Authorize(v.Workspace.ID, perm) == nil
}

// landing is the path of a workspace's first page for the person: the API keys for those who may see
// them, else the logs, which every role may read. A workspace they are not a member of answers not
// found at its own path.
func landing(v *view, slug string) string {
	if v.Portal != nil {
		return portalLanding(v.Workspace, v.Caller)
	}
	base := "/w/" + url.PathEscape(slug)
	for _, m := range v.Memberships {
		if m.Workspace.Slug != slug {
			continue
		}
		if v.User.Operator || slices.Contains(keyplane.RolePermissions(m.Role), keyplane.PermAPIKeysRead) {
			return base + "/settings/api"
		}
		return base + "/logs"
	}
	return base
}

type pageFunc func(w http.ResponseWriter, r *http.Request, v *view)

// person requires a signed-in person; others go to the sign-in page and come back. A portal session
// is no person: these pages answer it as the catch-all does.
func (d *Dashboard) person(h pageFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, r, ok := d.session(w, r)
		if !ok {
			return
		}
		if v.Portal != nil {
			d.fail(w, r, http.StatusNotFound, "There is no page here.")
			return
		}
		h(w, r, v)
	}
}

// session finds who is asking: a live portal session first (portal mode, in which the person's own
// session, if the browser holds one too, is not used), else the signed-in person. It answers the
// request itself when there is neither (the sign-in page, or the page that says a portal session
// ended) or the form token is wrong; the request it returns knows whether it is in portal mode.
func (d *Dashboard) session(w http.ResponseWriter, r *http.Request) (*view, *http.Request, bool) {
	pv, dead, err := d.portalSession(w, r)
	if err != nil {
		d.fail(w, r, http.StatusServiceUnavailable, "The dashboard cannot reach its database right now. Try again in a moment.")
		d.log.ErrorContext(r.Context(), "portal session lookup", "err", err)
		return nil, r, false
	}
	if pv != nil {
		r = withPortal(r)
		// Every answer in portal mode carries the portal's headers, its redirects included; a page
		// it renders sets them again with its own nonce.
		d.portalHeaders(w, nil)
		return pv, r, !d.badForm(w, r, pv.CSRF)
	}
	var sess *keyplane.Session
	var u *keyplane.User
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		ck, err = &http.Cookie{}, keyplane.Errorf(keyplane.CodeUnauthorized, "sign in")
	} else {
		sess, u, err = d.svc.SessionUser(r.Context(), ck.Value)
	}
	if err != nil {
		if keyplane.ErrorCode(err) != keyplane.CodeUnauthorized {
			d.fail(w, r, http.StatusServiceUnavailable, "The dashboard cannot reach its database right now. Try again in a moment.")
			d.log.ErrorContext(r.Context(), "session lookup", "err", err)
			return nil, r, false
		}
		if dead != nil {
			// A portal session that ended, and no person signed in: the portal's own last page,
			// never the sign-in page (which could not be shown in the platform's frame anyway).
			d.portalEnded(w, withPortal(r), dead, http.StatusGone)
			return nil, r, false
		}
		next := r.URL.Path
		if r.Method != http.MethodGet {
			next = "/"
		}
		http.Redirect(w, r, "/login?next="+url.QueryEscape(next), http.StatusSeeOther)
		return nil, r, false
	}
	if d.badForm(w, r, csrfToken(ck.Value)) {
		return nil, r, false
	}
	ms, err := d.svc.Memberships(r.Context(), u)
	if err != nil {
		d.serverError(w, r, err)
		return nil, r, false
	}
	inv, err := d.svc.Invitations(r.Context(), u)
	if err != nil {
		d.serverError(w, r, err)
		return nil, r, false
	}
	v := &view{User: u, Session: sess, Memberships: ms, Invitations: inv, CSRF: csrfToken(ck.Value), RequestID: accesslog.RequestID(r.Context()),
		Version: d.version, Now: d.now(), token: ck.Value, Flash: d.takeFlash(w, r)}
	return v, r, true
}

// noMember is the answer to a workspace the person may not open: the same whether it exists or not,
// whoever asks.
const noMember = "There is no workspace here, or you are not one of its members."

// inWorkspace requires a person who may open the workspace named in the path. offered: the page is
// also the portal's, for a portal session of this very workspace.
func (d *Dashboard) inWorkspace(offered bool, h pageFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, r, ok := d.session(w, r)
		if !ok {
			return
		}
		slug := r.PathValue("slug")
		if v.Portal != nil {
			if !offered || v.Workspace.Slug != slug {
				d.fail(w, r, http.StatusNotFound, noMember)
				return
			}
			h(w, r, v)
			return
		}
		for i := range v.Memberships {
			if v.Memberships[i].Workspace.Slug == slug {
				v.Workspace = &v.Memberships[i].Workspace
			}
		}
		if v.Workspace == nil {
			d.fail(w, r, http.StatusNotFound, noMember)
			return
		}
		c, ok := service.PersonCaller(v.User, v.Session, v.Memberships, v.Workspace.ID, d.now())
		if !ok {
			d.fail(w, r, http.StatusNotFound, noMember)
			return
		}
		c.IP, c.UserAgent, c.RequestID = d.ip(r), userAgent(r), v.RequestID
		v.Caller = c
		h(w, r, v)
	}
}

func (d *Dashboard) ip(r *http.Request) string {
	if d.clientIP != nil {
		if a := d.clientIP(r); a.IsValid() {
			return a.String()
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return ""
	}
	return host
}

// badForm refuses a posted form whose token is not want, the session's, and says so.
func (d *Dashboard) badForm(w http.ResponseWriter, r *http.Request, want string) bool {
	if r.Method != http.MethodPost || validToken(r.PostFormValue("csrf"), want) {
		return false
	}
	d.fail(w, r, http.StatusForbidden, "This form has expired or was not sent from this site. Reload the page and try again.")
	return true
}

// csrfToken derives a session's form token from its secret token: unforgeable without the cookie,
// and it needs no storage.
func csrfToken(sessionToken string) string {
	h := sha256.Sum256([]byte("keyplane csrf\x00" + sessionToken))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

func validToken(got, want string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// secure reports whether the browser reached us over TLS, directly or through a trusted proxy that
// says so.
func (d *Dashboard) secure(r *http.Request) bool {
	return r.TLS != nil || d.trusted != nil && d.trusted(r) && strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

func (d *Dashboard) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge time.Duration) {
	c := &http.Cookie{Name: name, Value: value, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: d.secure(r)}
	if inPortal(r) {
		// The portal's cookies travel inside the platform's frame, a third-party context.
		c.SameSite, c.Secure, c.Partitioned = http.SameSiteNoneMode, true, true
	}
	if maxAge < 0 {
		c.MaxAge = -1
	} else if maxAge > 0 {
		c.MaxAge = int(maxAge.Seconds())
	}
	http.SetCookie(w, c)
}

// flash carries one short message across a redirect.
func (d *Dashboard) flash(w http.ResponseWriter, r *http.Request, msg string) {
	d.setCookie(w, r, flashCookie, base64.RawURLEncoding.EncodeToString([]byte(msg)), time.Minute)
}

func (d *Dashboard) takeFlash(w http.ResponseWriter, r *http.Request) string {
	c, err := r.Cookie(flashCookie)
	if err != nil {
		return ""
	}
	d.setCookie(w, r, flashCookie, "", -1)
	b, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil || len(b) > 300 {
		return ""
	}
	return string(b)
}

// render writes a page; a template error is a bug, logged and answered with the error page.
func (d *Dashboard) render(w http.ResponseWriter, r *http.Request, status int, page string, v *view) {
	t, ok := d.pages[page]
	if !ok {
		d.serverError(w, r, errors.New("no template "+page))
		return
	}
	if v.Portal != nil {
		v.Portal.Nonce = randomToken()
	}
	if v.Portal != nil || inPortal(r) {
		d.portalHeaders(w, v)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		d.serverError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// fail shows a plain error page with a message a person understands.
func (d *Dashboard) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	v := &view{Title: http.StatusText(status), RequestID: accesslog.RequestID(r.Context()), Version: d.version, Now: d.now(),
		Data: map[string]any{"Status": status, "Message": msg}}
	d.render(w, r, status, "error", v)
}

func (d *Dashboard) serverError(w http.ResponseWriter, r *http.Request, err error) {
	d.log.ErrorContext(r.Context(), "dashboard error", "err", redact.Secrets(err.Error()), "path", redact.Secrets(r.URL.Path))
	if errors.Is(err, context.Canceled) {
		return
	}
	d.fail(w, r, http.StatusInternalServerError, "Something went wrong on our side. The request id below identifies it in our logs.")
}

// userAgent is r's User-Agent as the audit trail and the session keep it.
func userAgent(r *http.Request) string { return redact.UserAgent(r.UserAgent()) }
