package dashboard

// The portal: a platform's own user manages their workspace's API keys, webhooks and logs inside the
// platform's product, through a one-time link (POST /v1/portal/sessions) and no keyplane account.
// The portal is the dashboard's own pages in portal mode: a live portal session (the kp_portal
// cookie) stands for a caller limited to one workspace and role, the pages registered with portal in
// routes are the only ones it reaches, and the layout carries the workspace's brand instead of
// keyplane's navigation. The decisions are in docs/portal.md.

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/accesslog"
	"github.com/keyplane/keyplane/internal/service"
)

// portalCookieGrace is how long the portal cookie outlives its session: long enough for the pages to
// say that the session ended, instead of answering as for a stranger, and no longer than the server
// keeps an ended session (its hourly prune removes it a day after).
const portalCookieGrace = 24 * time.Hour

// portalView is what the portal's layout and its message pages show.
type portalView struct {
	Session *keyplane.PortalSession
	// Live: a session in use (the portal's layout); false on the pages that say a link or a session
	// ended.
	Live bool
	// Brand is the workspace's brand name (its name without one); LogoURL its https logo.
	Brand   string
	LogoURL string
	// Accent and AccentInk colour the portal's header and main buttons: the brand's colour, and
	// black or white, whichever reads better on it.
	Accent    string
	AccentInk string
	ReturnURL string
	// Nonce allows the page's one <style> element (the accent) under its CSP.
	Nonce      string
	logoOrigin string
}

type portalKey struct{}

// withPortal marks a request as answered in portal mode: its cookies are the portal's (SameSite=None,
// Partitioned) and its pages carry the portal's CSP, whichever page it turns out to be.
func withPortal(r *http.Request) *http.Request {
	if inPortal(r) {
		return r
	}
	return r.WithContext(context.WithValue(r.Context(), portalKey{}, true))
}

func inPortal(r *http.Request) bool { v, _ := r.Context().Value(portalKey{}).(bool); return v }

// PortalRoutes lists the dashboard's route patterns that a portal session may use, as registered:
// the API keys, webhooks and logs pages of a workspace. Every other route answers a portal session
// as it answers a person who is no member of the workspace. Tests generate their cases from it.
func PortalRoutes() []string {
	d, err := New(Options{})
	if err != nil {
		return nil
	}
	return slices.Clone(d.portalRoutes)
}

// frameAncestors is the portal's CSP frame-ancestors source list: the configured origins (checked
// again here, since a stray character would change the policy), or 'none'.
func frameAncestors(origins []string) string {
	var ok []string
	for _, o := range origins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Path != "" || u.RawQuery != "" ||
			u.User != nil || strings.ContainsAny(o, " ;,'\"\t\r\n") {
			continue
		}
		ok = append(ok, u.Scheme+"://"+u.Host)
	}
	if len(ok) == 0 {
		return "'none'"
	}
	return strings.Join(ok, " ")
}

// portalHeaders replaces the dashboard's security headers on a portal answer: the platform's origins
// may frame it (frame-ancestors; no X-Frame-Options, which cannot list origins), the brand's logo may
// load, and the page's accent <style> carries a nonce.
func (d *Dashboard) portalHeaders(w http.ResponseWriter, v *view) {
	img, style := "'self' data:", "'self'"
	if v != nil && v.Portal != nil {
		if v.Portal.logoOrigin != "" {
			img += " " + v.Portal.logoOrigin
		}
		if v.Portal.Nonce != "" {
			style += " 'nonce-" + v.Portal.Nonce + "'"
		}
	}
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; img-src "+img+"; style-src "+style+"; script-src 'self'; form-action 'self'; frame-ancestors "+d.ancestors+"; base-uri 'none'")
	h.Del("X-Frame-Options")
}

// portalSession reads the portal cookie: a view in portal mode for a live session, or the look of a
// session that has ended (dead), for the page that says so. A cookie the server does not know (or
// none) is neither: the request is a person's, or a stranger's.
func (d *Dashboard) portalSession(w http.ResponseWriter, r *http.Request) (live *view, dead *portalView, err error) {
	ck, err := r.Cookie(portalCookie)
	if err != nil || ck.Value == "" {
		return nil, nil, nil
	}
	ps, ws, err := d.svc.PortalSessionOf(r.Context(), ck.Value)
	if err != nil {
		if keyplane.ErrorCode(err) != keyplane.CodeUnauthorized {
			return nil, nil, err
		}
		if ps == nil {
			return nil, nil, nil
		}
		return nil, d.portalLook(r, ps, ws), nil
	}
	c := service.PortalCaller(ps, d.now())
	if c == nil || ws == nil {
		return nil, nil, errNoPortalCaller
	}
	c.IP, c.UserAgent, c.RequestID = d.ip(r), userAgent(r), accesslog.RequestID(r.Context())
	pv := d.portalLook(r, ps, ws)
	pv.Live = true
	v := &view{Workspace: ws, Caller: c, CSRF: csrfToken(ck.Value), RequestID: c.RequestID, Version: d.version, Now: d.now(),
		token: ck.Value, Portal: pv}
	v.Flash = d.takeFlash(w, withPortal(r))
	return v, nil, nil
}

var errNoPortalCaller = errors.New("portal: no caller for a live portal session")

// portalLook is how a session's pages look: the workspace's brand, and the way back to the platform.
// ws may be nil (a session that ended): it is read again for its brand.
func (d *Dashboard) portalLook(r *http.Request, ps *keyplane.PortalSession, ws *keyplane.Workspace) *portalView {
	if ws == nil {
		// The session's own workspace only: a caller of that workspace and no permission.
		ws, _ = d.svc.GetWorkspace(r.Context(), &keyplane.Caller{WorkspaceID: ps.WorkspaceID}, ps.WorkspaceID)
	}
	pv := &portalView{Session: ps, ReturnURL: webURL(ps.ReturnURL)}
	if ws == nil {
		return pv
	}
	b := ws.Branding
	pv.Brand = ws.BrandName()
	// The logo's origin joins the page's CSP img-src: nothing that could end or extend a directive.
	if u, err := url.Parse(b.LogoURL); err == nil && u.Scheme == "https" && u.Host != "" && webURL(b.LogoURL) != "" && !strings.ContainsAny(u.Host, ";,*") {
		pv.LogoURL, pv.logoOrigin = b.LogoURL, "https://"+u.Host
	}
	if keyplane.ValidAccentColor(b.AccentColor) {
		pv.Accent, pv.AccentInk = strings.ToLower(b.AccentColor), inkOn(b.AccentColor)
	}
	return pv
}

// webURL is s when it is an http(s) address a link may point at, else "".
func webURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || strings.ContainsAny(s, " \t\r\n\"'<>`") {
		return ""
	}
	return s
}

// inkOn picks the text colour for a background of colour hex (#rrggbb): black or white, whichever
// contrasts more. One of the two always reaches at least 4.58:1, above WCAG AA's 4.5:1 for text.
func inkOn(hex string) string {
	l := luminance(hex)
	if (l+0.05)/0.05 >= 1.05/(l+0.05) {
		return "#000000"
	}
	return "#ffffff"
}

// luminance is the WCAG relative luminance of #rrggbb.
func luminance(hex string) float64 {
	ch := func(i int) float64 {
		n, _ := strconv.ParseUint(hex[i:i+2], 16, 8)
		c := float64(n) / 255
		if c <= 0.03928 {
			return c / 12.92
		}
		return math.Pow((c+0.055)/1.055, 2.4)
	}
	return 0.2126*ch(1) + 0.7152*ch(3) + 0.0722*ch(5)
}

// contrast is the WCAG contrast ratio of two #rrggbb colours.
func contrast(a, b string) float64 {
	la, lb := luminance(a), luminance(b)
	if la < lb {
		la, lb = lb, la
	}
	return (la + 0.05) / (lb + 0.05)
}

// portalLanding is a portal session's first page: the API keys for a role that sees them, else the
// logs, which every portal role may read.
func portalLanding(ws *keyplane.Workspace, c *keyplane.Caller) string {
	base := "/w/" + url.PathEscape(ws.Slug)
	if c != nil && c.Authorize(ws.ID, keyplane.PermAPIKeysRead) == nil {
		return base + "/settings/api"
	}
	return base + "/logs"
}

// openPortal uses a portal link: the link works once, and its answer is a redirect, so that the
// browser keeps neither the link in its history nor sends it on as a referrer. A used or expired link
// says so (410) with the way back to the platform; one that never was a link is not found. Neither
// starts a session.
func (d *Dashboard) openPortal(w http.ResponseWriter, r *http.Request) {
	r = withPortal(r)
	h := w.Header()
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	if r.Method == http.MethodHead {
		// A link checker's HEAD must not use the link up: only a GET, a browser's, opens it.
		d.portalHeaders(w, nil)
		w.WriteHeader(http.StatusOK)
		return
	}
	c := &keyplane.Caller{IP: d.ip(r), UserAgent: userAgent(r), RequestID: accesslog.RequestID(r.Context())}
	token, ps, err := d.svc.OpenPortalLink(r.Context(), c, r.PathValue("token"))
	switch {
	case err == nil:
	case keyplane.ErrorCode(err) == keyplane.CodePortalLinkEnded:
		pv := &portalView{}
		if ps != nil {
			pv = d.portalLook(r, ps, nil)
		}
		d.portalMessage(w, r, http.StatusGone, pv, "This link has ended",
			"A portal link works once, for a few minutes, and this one was already used or has expired. "+openAgain(pv))
		return
	case keyplane.ErrorCode(err) == keyplane.CodeNotFound, keyplane.ErrorCode(err) == keyplane.CodeInvalidRequest:
		d.portalMessage(w, r, http.StatusNotFound, &portalView{}, "This link is not valid",
			"There is no portal at this address. Open the page again from the site that sent you here.")
		return
	default:
		d.serverError(w, r, err)
		return
	}
	// The session just opened is ps: only its workspace is read, for the landing page's path.
	pc := service.PortalCaller(ps, d.now())
	ws, err := d.svc.GetWorkspace(r.Context(), pc, ps.WorkspaceID)
	if err != nil {
		d.serverError(w, r, err)
		return
	}
	d.setPortalCookie(w, token, ps.ExpiresAt.Sub(d.now())+portalCookieGrace)
	d.portalHeaders(w, nil)
	http.Redirect(w, r, portalLanding(ws, pc), http.StatusSeeOther)
}

// setPortalCookie sets (or, with maxAge < 0, clears) the portal cookie. It works inside the
// platform's frame: SameSite=None and Secure, Partitioned so that it is the frame's alone (CHIPS) and
// browsers that block third-party cookies keep it.
func (d *Dashboard) setPortalCookie(w http.ResponseWriter, token string, maxAge time.Duration) {
	c := &http.Cookie{Name: portalCookie, Value: token, Path: "/", HttpOnly: true, Secure: true, SameSite: http.SameSiteNoneMode, Partitioned: true}
	if maxAge < 0 {
		c.MaxAge = -1
	} else {
		c.MaxAge = max(1, int(maxAge.Seconds()))
	}
	http.SetCookie(w, c)
}

// endPortal ends the portal session at the person's request and says so.
func (d *Dashboard) endPortal(w http.ResponseWriter, r *http.Request) {
	v, r, ok := d.session(w, r)
	if !ok {
		return
	}
	if v.Portal == nil {
		d.fail(w, r, http.StatusNotFound, "There is no page here.")
		return
	}
	if err := d.svc.EndPortalSession(r.Context(), v.Caller, v.Portal.Session); err != nil {
		d.serverError(w, r, err)
		return
	}
	// The cookie stays until it expires: the session's pages keep saying that it ended.
	v.Portal.Session.EndedAt = d.now()
	d.portalEnded(w, r, v.Portal, http.StatusOK)
}

// portalEnded is the page of a portal session that ended or expired: the way back to the platform,
// never the sign-in page. status: 200 right after End session, 410 for every later request.
func (d *Dashboard) portalEnded(w http.ResponseWriter, r *http.Request, pv *portalView, status int) {
	pv.Live = false
	msg := "This session expired. "
	if pv.Session != nil && !pv.Session.EndedAt.IsZero() {
		msg = "You ended this session. "
	}
	d.portalMessage(w, r, status, pv, "Session ended", msg+openAgain(pv))
}

// openAgain says how to come back: from the platform, which makes a new link.
func openAgain(pv *portalView) string {
	if pv.Brand != "" {
		return "To manage your keys again, open this page again from " + pv.Brand + "."
	}
	return "To manage your keys again, open this page again from the site that sent you here."
}

type portalMessageData struct {
	Message string
}

func (d *Dashboard) portalMessage(w http.ResponseWriter, r *http.Request, status int, pv *portalView, title, msg string) {
	pv.Live = false
	v := &view{Title: title, RequestID: accesslog.RequestID(r.Context()), Version: d.version, Now: d.now(), Portal: pv,
		Data: portalMessageData{Message: msg}}
	d.render(w, r, status, "portal-message", v)
}

// portalPermissions are the permissions a portal may grant to keys: the platform's own, never
// keyplane's (its builtin catalog and portal:write), which the service refuses to a portal caller.
func portalPermissions(all []keyplane.CatalogEntry) []keyplane.CatalogEntry {
	var out []keyplane.CatalogEntry
	for _, e := range all {
		if !keyplane.IsBuiltinPermission(e.Name) {
			out = append(out, e)
		}
	}
	return out
}

// catalog is the permissions the key forms offer: in the portal, the platform's own only.
func (d *Dashboard) catalog(v *view) []keyplane.CatalogEntry {
	all := d.svc.Catalog().Permissions()
	if v.Portal != nil {
		return portalPermissions(all)
	}
	return all
}
