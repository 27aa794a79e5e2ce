package dashboard

import (
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/accesslog"
	"github.com/keyplane/keyplane/internal/service"
)

var pageNames = []string{"error", "login", "logout", "status", "keys", "key", "confirm", "secret", "audit", "members", "member-confirm", "invitations", "logs", "webhooks", "webhook", "webhook-confirm", "webhook-secret", "webhook-recover", "identities", "identity", "identity-confirm", "portal-message"}

func (d *Dashboard) parse() error {
	funcs := template.FuncMap{
		"when":           func(t time.Time) string { return t.UTC().Format("2 Jan 2006 15:04 UTC") },
		"relative":       relative,
		"exact":          func(t time.Time) string { return t.UTC().Format("2 Jan 2006 15:04:05.000") },
		"day":            func(t time.Time) string { return t.UTC().Format("2 Jan 2006") },
		"clock":          func(t time.Time) string { return t.UTC().Format("15:04:05.000") },
		"join":           strings.Join,
		"hasString":      slices.Contains[[]string],
		"webhookURLHint": d.WebhookURLHint,
		"fieldError": func(errs map[string]string, field string) string {
			return errs[field]
		},
		"limitField": func(i int, name string) string { return "limit-" + strconv.Itoa(i) + "-" + name },
		"add":        func(a, b int) int { return a + b },
		"seconds":    windowSeconds,
		"actorName":  actorName,
		// accent is a colour for the portal's <style>: portalLook keeps only #rrggbb values.
		"accent": func(c string) template.CSS {
			if !keyplane.ValidAccentColor(c) {
				return ""
			}
			return template.CSS(c)
		},
	}
	d.pages = map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New("").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return fmt.Errorf("dashboard template %s: %w", name, err)
		}
		d.pages[name] = t
	}
	return nil
}

// WebhookURLHint says which endpoint URLs this deployment accepts, as the webhook forms show it.
func (d *Dashboard) WebhookURLHint() string {
	switch p := d.svc.WebhookPolicy(); {
	case p.AllowPrivate:
		return "An http:// or https:// address; this deployment allows private and loopback addresses (for development). keyplane never follows redirects."
	case p.AllowHTTP:
		return "An http:// or https:// address on the public internet: keyplane refuses private, loopback and link-local addresses, and never follows redirects."
	}
	return "An https:// address on the public internet: keyplane refuses private, loopback and link-local addresses, and never follows redirects."
}

// relative says how far t is from now the way a person would: "in 2 days", "3 hours ago".
func relative(t time.Time, now time.Time) string {
	d := t.Sub(now)
	future := d > 0
	if !future {
		d = -d
	}
	var s string
	switch {
	case d < time.Minute:
		return map[bool]string{true: "in less than a minute", false: "just now"}[future]
	case d < time.Hour:
		s = count(int(d/time.Minute), "minute")
	case d < 48*time.Hour:
		s = count(int(d/time.Hour), "hour")
	default:
		s = count(int(d/(24*time.Hour)), "day")
	}
	if future {
		return "in " + s
	}
	return s + " ago"
}

func count(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

// home opens the first workspace on the first page the person's role there allows; a portal
// session, its own workspace's.
func (d *Dashboard) home(w http.ResponseWriter, r *http.Request) {
	v, r, ok := d.session(w, r)
	if !ok {
		return
	}
	switch {
	case v.Portal != nil:
		http.Redirect(w, r, landing(v, v.Workspace.Slug), http.StatusSeeOther)
	case len(v.Invitations) > 0:
		// Invitations are shown first after sign-in: they are how a person joins a workspace.
		http.Redirect(w, r, "/invitations", http.StatusSeeOther)
	case len(v.Memberships) == 0:
		v.Title = "No workspace yet"
		d.render(w, r, http.StatusOK, "status", d.statusView(r, v))
	default:
		http.Redirect(w, r, landing(v, v.Memberships[0].Workspace.Slug), http.StatusSeeOther)
	}
}

type loginData struct {
	Email string
	Next  string
	Error string
	Token string
}

func (d *Dashboard) loginPage(w http.ResponseWriter, r *http.Request) {
	d.showLogin(w, r, http.StatusOK, loginData{Next: safeNext(r.URL.Query().Get("next"))})
}

func (d *Dashboard) showLogin(w http.ResponseWriter, r *http.Request, status int, ld loginData) {
	ld.Token = randomToken()
	d.setCookie(w, r, loginCookie, ld.Token, 30*time.Minute)
	d.render(w, r, status, "login", &view{Title: "Sign in", Data: ld, Version: d.version, Now: d.now()})
}

// safeNext keeps a post-sign-in redirect on this site: a path with no scheme and no host. Control
// characters and backslashes are refused outright, because browsers drop tabs and read "\" as "/",
// which turns "/\t/evil.example" into "//evil.example".
func safeNext(s string) string {
	if s == "" || len(s) > 2000 || !strings.HasPrefix(s, "/") || strings.HasPrefix(s, "//") ||
		strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }) >= 0 {
		return "/"
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || !strings.HasPrefix(u.Path, "/") || strings.HasPrefix(u.Path, "//") {
		return "/"
	}
	return s
}

func (d *Dashboard) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	email, pw := r.PostFormValue("email"), r.PostFormValue("password")
	ld := loginData{Email: email, Next: safeNext(r.PostFormValue("next"))}
	ck, err := r.Cookie(loginCookie)
	if err != nil || !validToken(r.PostFormValue("csrf"), ck.Value) {
		ld.Error = "This sign-in form has expired. Please try again."
		d.showLogin(w, r, http.StatusForbidden, ld)
		return
	}
	if strings.TrimSpace(email) == "" || pw == "" {
		ld.Error = "Enter your email and your password."
		d.showLogin(w, r, http.StatusBadRequest, ld)
		return
	}
	c := &keyplane.Caller{IP: d.ip(r), UserAgent: userAgent(r), RequestID: accesslog.RequestID(r.Context())}
	_, token, err := d.svc.SignIn(r.Context(), c, email, pw)
	if err == nil {
		// A new session id at every sign-in: a session id planted before it (fixation) is worthless.
		d.setCookie(w, r, sessionCookie, token, keyplane.SessionLifetime)
		d.setCookie(w, r, loginCookie, "", -1)
		http.Redirect(w, r, ld.Next, http.StatusSeeOther)
		return
	}
	switch keyplane.ErrorCode(err) {
	case keyplane.CodeUnauthorized:
		ld.Error = "That email and password do not match an account."
		d.showLogin(w, r, http.StatusUnauthorized, ld)
	case keyplane.CodeRateLimited, keyplane.CodeUnavailable:
		ld.Error = message(err)
		d.showLogin(w, r, retryLater(w, err), ld)
	default:
		d.serverError(w, r, err)
	}
}

// retryLater answers a refusal to check a password now: 429 for a sign-in throttle, 503 when every
// hashing slot is taken. Both carry Retry-After, as the contract's 429 and 503 do, the dashboard's
// included.
func retryLater(w http.ResponseWriter, err error) int {
	if wait := service.RetryAfter(err); wait > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(max(1, int64(math.Ceil(wait.Seconds()))), 10))
	}
	if keyplane.ErrorCode(err) == keyplane.CodeUnavailable {
		return http.StatusServiceUnavailable
	}
	return http.StatusTooManyRequests
}

func (d *Dashboard) logoutPage(w http.ResponseWriter, r *http.Request, v *view) {
	v.Title = "Sign out"
	d.render(w, r, http.StatusOK, "logout", v)
}

func (d *Dashboard) logout(w http.ResponseWriter, r *http.Request, v *view) {
	c := &keyplane.Caller{Actor: keyplane.Actor{Type: keyplane.ActorUser, ID: v.User.ID, Name: v.User.Email}, IP: d.ip(r), UserAgent: userAgent(r), RequestID: v.RequestID}
	if err := d.svc.SignOut(r.Context(), c, v.Session); err != nil {
		d.serverError(w, r, err)
		return
	}
	d.setCookie(w, r, sessionCookie, "", -1)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

type statusData struct {
	Version string
	Uptime  string
	Driver  string
	StoreOK bool
}

func (d *Dashboard) statusView(r *http.Request, v *view) *view {
	v.Data = statusData{Version: d.version, Uptime: time.Since(d.started).Round(time.Second).String(), Driver: d.svc.StoreDriver(), StoreOK: d.svc.Health(r.Context()) == nil}
	return v
}

func (d *Dashboard) statusPage(w http.ResponseWriter, r *http.Request, v *view) {
	v.Title = "Service status"
	d.render(w, r, http.StatusOK, "status", d.statusView(r, v))
}

// Audit

type auditRow struct {
	Entry   map[string]any
	Changes []string
}

type auditData struct {
	Rows     []auditRow
	Action   string
	ActorID  string
	TargetID string
	Next     string
	// Check is the last full check of the chain this node made, nil before the first: the page does
	// not scan the whole chain on every view, the "Verify chain" button does.
	Check *chainCheck
	// KeysHidden: the person sees no API keys, so the entries about keys come without their values.
	KeysHidden bool
	Error      string
}

// chainCheck is the outcome of a full check of a workspace's audit chain, and when it was made.
type chainCheck struct {
	Valid    bool
	Entries  int
	FirstBad string
	At       time.Time
}

// recheckAfter is how long a chain check is reused: pressing "Verify chain" again sooner answers the
// same result instead of scanning the whole chain again.
const recheckAfter = 10 * time.Second

func (d *Dashboard) auditPage(w http.ResponseWriter, r *http.Request, v *view) {
	v.Title = "Audit trail"
	q := r.URL.Query()
	ad := auditData{Action: q.Get("action"), ActorID: q.Get("actor"), TargetID: q.Get("target")}
	f := keyplane.AuditFilter{Action: ad.Action, ActorID: ad.ActorID, TargetID: ad.TargetID, Limit: 50, Cursor: q.Get("cursor")}
	entries, next, err := d.svc.ListAudit(r.Context(), v.Caller, v.Workspace.ID, f)
	if err != nil {
		if keyplane.ErrorCode(err) != keyplane.CodeInvalidRequest {
			d.userError(w, r, v, err)
			return
		}
		ad.Error = message(err)
	}
	ad.Next = next
	for _, e := range entries {
		ad.Rows = append(ad.Rows, auditRowOf(e))
	}
	if c, ok := d.checks.Load(v.Workspace.ID); ok {
		cc := c.(chainCheck)
		ad.Check = &cc
	}
	ad.KeysHidden = !v.Can(keyplane.PermAPIKeysRead)
	v.Data = ad
	d.render(w, r, http.StatusOK, "audit", v)
}

// verifyChain checks the workspace's whole chain, on the stored entries (whatever the person may
// read of them), and shows the audit page with the result.
func (d *Dashboard) verifyChain(w http.ResponseWriter, r *http.Request, v *view) {
	if err := v.Caller.Authorize(v.Workspace.ID, keyplane.PermAuditRead); err != nil {
		d.userError(w, r, v, err)
		return
	}
	cc, fresh := chainCheck{}, false
	if c, ok := d.checks.Load(v.Workspace.ID); ok {
		cc = c.(chainCheck)
		fresh = d.now().Sub(cc.At) < recheckAfter
	}
	if !fresh {
		res, err := d.svc.VerifyAudit(r.Context(), v.Caller, v.Workspace.ID)
		if err != nil {
			d.userError(w, r, v, err)
			return
		}
		cc = chainCheck{Valid: res.Valid, Entries: res.Entries, FirstBad: res.FirstBadID, At: d.now().UTC()}
		d.checks.Store(v.Workspace.ID, cc)
	}
	if cc.Valid {
		d.flash(w, r, "Chain verified: all "+strconv.Itoa(cc.Entries)+" entries are intact.")
	} else {
		d.flash(w, r, "Chain broken at entry "+cc.FirstBad+": it or one before it was changed or removed.")
	}
	http.Redirect(w, r, v.WS("/audit"), http.StatusSeeOther)
}

// Members

type membersData struct {
	Members  []keyplane.Member
	Email    string
	Role     string
	Errors   map[string]string
	CanEdit  bool
	CanLeave bool // an active member (an operator admin may open the workspace without being one)
}

func (d *Dashboard) membersPage(w http.ResponseWriter, r *http.Request, v *view) {
	d.showMembers(w, r, v, http.StatusOK, membersData{Role: "developer"})
}

func (d *Dashboard) showMembers(w http.ResponseWriter, r *http.Request, v *view, status int, md membersData) {
	v.Title = "Members"
	ms, err := d.svc.ListMembers(r.Context(), v.Caller, v.Workspace.ID)
	if err != nil {
		d.userError(w, r, v, err)
		return
	}
	md.Members = ms
	md.CanEdit = v.canManageMembers()
	for _, m := range ms {
		if m.UserID == v.User.ID && m.Status == keyplane.MemberActive {
			md.CanLeave = true
		}
	}
	v.Data = md
	d.render(w, r, status, "members", v)
}

func (d *Dashboard) addMember(w http.ResponseWriter, r *http.Request, v *view) {
	md := membersData{Email: r.PostFormValue("email"), Role: r.PostFormValue("role")}
	m, created, err := d.svc.AddMember(r.Context(), v.Caller, v.Workspace.ID, md.Email, keyplane.Role(md.Role))
	if err != nil {
		if md.Errors = fieldErrors(err); md.Errors == nil {
			d.userError(w, r, v, err)
			return
		}
		d.showMembers(w, r, v, http.StatusBadRequest, md)
		return
	}
	switch {
	case created:
		d.flash(w, r, m.Email+" is invited as "+string(m.Role)+". They join when they accept the invitation, under Invitations once signed in.")
	case m.Status == keyplane.MemberInvited:
		d.flash(w, r, m.Email+"'s invitation is now for the role "+string(m.Role)+".")
	default:
		d.flash(w, r, m.Email+" is now "+string(m.Role)+" in this workspace.")
	}
	http.Redirect(w, r, v.WS("/members"), http.StatusSeeOther)
}

// memberConfirm is the page that asks before a member is removed, or before the person leaves.
type memberConfirm struct {
	Member *keyplane.Member
	Leave  bool
	Error  string
}

// findMemberOf returns the workspace's member with this user id, or a not-found error.
func (d *Dashboard) findMemberOf(r *http.Request, v *view, userID string) (*keyplane.Member, error) {
	ms, err := d.svc.ListMembers(r.Context(), v.Caller, v.Workspace.ID)
	if err != nil {
		return nil, err
	}
	for i := range ms {
		if ms[i].UserID == userID {
			return &ms[i], nil
		}
	}
	return nil, keyplane.NotFound("member")
}

// removeMemberPage asks before a member is removed (or an invitation revoked): what the Remove button
// leads to without JavaScript.
func (d *Dashboard) removeMemberPage(w http.ResponseWriter, r *http.Request, v *view) {
	if !v.canManageMembers() {
		d.userError(w, r, v, keyplane.Errorf(keyplane.CodeForbidden, "only the operator or the workspace's owners and admins may manage members"))
		return
	}
	m, err := d.findMemberOf(r, v, r.PathValue("id"))
	if err != nil {
		d.userError(w, r, v, err)
		return
	}
	v.Title, v.Section, v.Data = "Remove "+m.Email, "members", memberConfirm{Member: m}
	d.render(w, r, http.StatusOK, "member-confirm", v)
}

func (d *Dashboard) removeMember(w http.ResponseWriter, r *http.Request, v *view) {
	m, err := d.svc.RemoveMember(r.Context(), v.Caller, v.Workspace.ID, r.PathValue("id"))
	if keyplane.ErrorCode(err) == keyplane.CodeLastOwner {
		if cur, ferr := d.findMemberOf(r, v, r.PathValue("id")); ferr == nil {
			v.Title, v.Section, v.Data = "Remove "+cur.Email, "members", memberConfirm{Member: cur, Error: message(err)}
			d.render(w, r, http.StatusConflict, "member-confirm", v)
			return
		}
	}
	if err != nil {
		d.userError(w, r, v, err)
		return
	}
	if m.Status == keyplane.MemberInvited {
		d.flash(w, r, m.Email+"'s invitation is revoked.")
	} else {
		d.flash(w, r, m.Email+" is no longer a member of this workspace.")
	}
	if m.UserID == v.User.ID && !v.User.Operator {
		// They removed themselves: this workspace is no longer theirs to open.
		http.Redirect(w, r, d.homeOf(r, v), http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, v.WS("/members"), http.StatusSeeOther)
}

// leavePage asks before the person leaves the workspace.
func (d *Dashboard) leavePage(w http.ResponseWriter, r *http.Request, v *view) {
	v.Title, v.Section, v.Data = "Leave "+v.Workspace.Name, "members", memberConfirm{Leave: true}
	d.render(w, r, http.StatusOK, "member-confirm", v)
}

func (d *Dashboard) leave(w http.ResponseWriter, r *http.Request, v *view) {
	err := d.svc.LeaveWorkspace(r.Context(), v.Caller, v.Workspace.ID)
	if keyplane.ErrorCode(err) == keyplane.CodeLastOwner {
		v.Title, v.Section, v.Data = "Leave "+v.Workspace.Name, "members", memberConfirm{Leave: true, Error: message(err)}
		d.render(w, r, http.StatusConflict, "member-confirm", v)
		return
	}
	if err != nil {
		d.userError(w, r, v, err)
		return
	}
	d.flash(w, r, "You left "+v.Workspace.Name+".")
	http.Redirect(w, r, d.homeOf(r, v), http.StatusSeeOther)
}

// homeOf is where home sends the person now, read again after a change of their memberships: a
// redirect through home would take the flash with it.
func (d *Dashboard) homeOf(r *http.Request, v *view) string {
	if len(v.Invitations) > 0 {
		return "/invitations"
	}
	ms, err := d.svc.Memberships(r.Context(), v.User)
	if err != nil {
		return "/"
	}
	if len(ms) == 0 {
		return "/" // the status page, which shows the flash
	}
	v.Memberships = ms
	return landing(v, ms[0].Workspace.Slug)
}

// Invitations

// personCaller is the signed-in person acting outside any workspace: answering an invitation.
func (d *Dashboard) personCaller(r *http.Request, v *view) *keyplane.Caller {
	return &keyplane.Caller{Actor: keyplane.Actor{Type: keyplane.ActorUser, ID: v.User.ID, Name: v.User.Email},
		IP: d.ip(r), UserAgent: userAgent(r), RequestID: v.RequestID}
}

func (d *Dashboard) invitationsPage(w http.ResponseWriter, r *http.Request, v *view) {
	v.Title = "Invitations"
	d.render(w, r, http.StatusOK, "invitations", v)
}

// answerInvitation accepts or declines the invitation named by the form's workspace field.
func (d *Dashboard) answerInvitation(accept bool) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, v *view) {
		wsID := r.PostFormValue("workspace")
		var name string
		for _, inv := range v.Invitations {
			if inv.Workspace.ID == wsID {
				name = inv.Workspace.Name
			}
		}
		if accept {
			ws, err := d.svc.AcceptInvitation(r.Context(), d.personCaller(r, v), wsID)
			if err != nil {
				d.invitationError(w, r, v, err)
				return
			}
			d.flash(w, r, "You joined "+ws.Name+".")
			// Straight to the workspace's first page for the role: a redirect in between would
			// take the flash.
			to := "/w/" + url.PathEscape(ws.Slug)
			if ms, err := d.svc.Memberships(r.Context(), v.User); err == nil {
				v.Memberships = ms
				to = landing(v, ws.Slug)
			}
			http.Redirect(w, r, to, http.StatusSeeOther)
			return
		}
		if err := d.svc.DeclineInvitation(r.Context(), d.personCaller(r, v), wsID); err != nil {
			d.invitationError(w, r, v, err)
			return
		}
		d.flash(w, r, "You declined the invitation to "+name+".")
		http.Redirect(w, r, "/invitations", http.StatusSeeOther)
	}
}

func (d *Dashboard) invitationError(w http.ResponseWriter, r *http.Request, v *view, err error) {
	if keyplane.ErrorCode(err) == keyplane.CodeNotFound {
		d.fail(w, r, http.StatusNotFound, "There is no such invitation: it was answered or revoked already.")
		return
	}
	d.userError(w, r, v, err)
}

// fieldErrors maps a validation error's details to the form fields they concern; nil when err is not
// a validation error.
func fieldErrors(err error) map[string]string {
	return formErrors(err, func(fe keyplane.FieldError) (string, string) {
		return strings.SplitN(fe.Field, ".", 2)[0], sentence(labelled(fe.Field, fe.Message))
	})
}

// formErrors maps a validation error's details to form fields, each detail's field and message as
// message says; a field's messages are joined, and an error of no details is the form's. Nil when err
// is not a validation error.
func formErrors(err error, message func(keyplane.FieldError) (field, msg string)) map[string]string {
	var e *keyplane.Error
	if !errors.As(err, &e) || e.Code != keyplane.CodeInvalidRequest {
		return nil
	}
	out := map[string]string{}
	for _, fe := range e.Details {
		field, msg := message(fe)
		if out[field] != "" {
			msg = out[field] + " " + msg
		}
		out[field] = msg
	}
	if len(out) == 0 {
		out["form"] = sentence(e.Message)
	}
	return out
}

// labels name the service's fields as the forms do.
var labels = map[string]string{
	"name": "Name", "description": "Description", "keyType": "Type", "environment": "Environment",
	"permissions": "Permissions", "ipAllowlist": "IP allowlist", "allowedOrigins": "Allowed origins",
	"meta": "Metadata", "expiresAt": "Expiry", "email": "Email", "role": "Role", "password": "Password",
	"rateLimit.limit": "Rate limit", "rateLimit.windowMs": "Rate limit window",
	"keyId": "Key", "tag": "Tag", "code": "Outcome", "source": "Source", "since": "From", "until": "To",
	"url": "URL", "eventTypes": "Events", "eventType": "Event type", "status": "Status", "deliveryId": "This attempt",
}

// labelled puts the field's name before a message that reads as its predicate ("is required").
func labelled(field, msg string) string {
	for _, p := range []string{"must ", "is ", "at most", "cannot", "only "} {
		if strings.HasPrefix(msg, p) {
			if l, ok := labels[field]; ok {
				return l + " " + msg
			}
			return "This " + msg
		}
	}
	return msg
}

// sentence makes a message read on its own: a capital first letter and a final stop.
func sentence(s string) string {
	if s == "" {
		return s
	}
	first, size := utf8.DecodeRuneInString(s)
	s = string(unicode.ToUpper(first)) + s[size:]
	if !strings.HasSuffix(s, ".") && !strings.HasSuffix(s, "?") && !strings.HasSuffix(s, "!") {
		s += "."
	}
	return s
}

func message(err error) string {
	var e *keyplane.Error
	if errors.As(err, &e) {
		return sentence(e.Message)
	}
	return "Something went wrong on our side."
}

// userError answers a service error with a page a person understands. Pages that show a validation
// error inline check for CodeInvalidRequest before calling it.
func (d *Dashboard) userError(w http.ResponseWriter, r *http.Request, v *view, err error) {
	switch keyplane.ErrorCode(err) {
	case keyplane.CodeInvalidRequest:
		d.fail(w, r, http.StatusBadRequest, message(err))
	case keyplane.CodeNotFound:
		d.fail(w, r, http.StatusNotFound, message(err))
	case keyplane.CodeForbidden:
		d.fail(w, r, http.StatusForbidden, forbiddenMessage(v, err))
	case keyplane.CodeKeyRevoked, keyplane.CodeKeyNotDeletable, keyplane.CodeKeyLimitReached, keyplane.CodeLiveModeDisabled, keyplane.CodeRateLimited, keyplane.CodeLastOwner,
		keyplane.CodeDeliveryNotRetryable:
		d.fail(w, r, http.StatusConflict, message(err))
	case keyplane.CodeEventPayloadDropped:
		d.fail(w, r, http.StatusGone, message(err))
	default:
		d.serverError(w, r, err)
	}
}

// forbiddenMessage explains a refusal of the key and member pages, which only owners and admins use.
func forbiddenMessage(v *view, err error) string {
	lacks := v.Caller != nil && v.Caller.Role != keyplane.RoleOwner && v.Caller.Role != keyplane.RoleAdmin
	return refusal(v, err, lacks, "Only owners and admins manage API keys, identities and members.")
}

// refusal is the message of a forbidden page. It names the person's role, and who may do this, only
// when that role really lacks the permission; a role that holds it was refused for another reason
// (a password not entered recently, a secret only some roles may see), which the service's own
// message gives.
func refusal(v *view, err error, roleLacks bool, who string) string {
	if v.Portal != nil && v.Caller != nil && roleLacks {
		// The portal's people are no members: who may do it is the platform's business.
		return "Your access here (" + string(v.Caller.Role) + ") does not allow this."
	}
	if v.Caller != nil && v.Caller.Role != "" && roleLacks {
		return "Your role in this workspace (" + string(v.Caller.Role) + ") does not allow this. " + who
	}
	var e *keyplane.Error
	if errors.As(err, &e) && e.Code == keyplane.CodeForbidden && e.Message != "" {
		return sentence(e.Message)
	}
	return "You are not allowed to do this."
}

func auditRowOf(e keyplane.AuditEntry) auditRow {
	var m map[string]any
	_ = json.Unmarshal(e.Body, &m)
	row := auditRow{Entry: m}
	if ch, ok := m["changes"].(map[string]any); ok {
		for field, c := range ch {
			cm, _ := c.(map[string]any)
			from, _ := json.Marshal(cm["from"])
			to, _ := json.Marshal(cm["to"])
			if cm["from"] == nil {
				row.Changes = append(row.Changes, field+" = "+string(to))
			} else {
				row.Changes = append(row.Changes, field+": "+string(from)+" → "+string(to))
			}
		}
		sort.Strings(row.Changes)
	}
	return row
}

// actorName is how the audit page names an entry's actor: a platform's user acting through the
// portal is named with the platform's own id for them, so that nobody takes them for a member.
func actorName(actor any) string {
	m, _ := actor.(map[string]any)
	name, _ := m["name"].(string)
	if typ, _ := m["type"].(string); typ == string(keyplane.ActorPortalUser) {
		id, _ := m["id"].(string)
		if name == "" {
			return "Portal user " + id
		}
		return name + " (portal user " + id + ")"
	}
	return name
}
