package dashboard

import (
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/service"
)

// The webhooks pages: the workspace's endpoints and a form to add one, and each endpoint's own page
// with its settings, a test send, its deliveries log and its secret. As everywhere in the dashboard,
// the handlers translate forms into service calls; the service decides what is allowed.

// deliveriesPerPage is how many attempts the endpoint page lists at a time.
const deliveriesPerPage = 25

// hookForm is the add and edit form as the person filled it in, kept to show it again with errors.
type hookForm struct {
	URL         string
	Description string
	EventTypes  []string
	Enabled     bool
}

type hooksData struct {
	Hooks  []keyplane.WebhookEndpoint
	Next   string
	Form   hookForm
	Errors map[string]string
	Events []keyplane.CatalogEntry // the checkboxes: "*" and the catalog

	// The recovery form and the recent events (events.go).
	Recover      recoverForm
	RecentEvents []service.EventView
	OlderEvents  string // the link to older events, or ""
	NewestEvents string // the link back to the newest events, or ""
	EventsError  string
	// The recovery form's time input: its bounds (the event retention, now) and its value when the
	// person has not chosen one (a day ago), as datetime-local values in UTC.
	SinceMin, SinceMax, SinceDefault string
	RetentionText                    string // the event retention in words
}

// testView is a test send's outcome as the endpoint page shows it.
type testView struct {
	EventType  string
	StatusCode int
	StatusText string
	OK         bool
	Duration   string
	Error      string
	Body       string
}

type deliveryRow struct {
	D        keyplane.Delivery
	Duration string
	Retry    bool // a failed attempt of a real event, which the person may queue again
}

type hookPageData struct {
	Hook     *keyplane.WebhookEndpoint
	Base     string // the endpoint page's path
	Form     hookForm
	Errors   map[string]string
	Events   []keyplane.CatalogEntry
	CanWrite bool
	// CanEdit: CanWrite, and the endpoint receives no api_key events or the person may read keys
	// (the service refuses the others any change to it).
	CanEdit   bool
	CanReveal bool

	TestTypes []keyplane.CatalogEntry
	TestType  string
	Test      *testView
	TestError string

	Deliveries []deliveryRow
	Status     string
	Statuses   []keyplane.DeliveryStatus
	Older      string // the link to older attempts, or ""
	Newest     string // the link back to the newest attempts when on an older page, or ""
	LogError   string
}

// eventChoices are the event type checkboxes: every event, then the catalog. Those who may not read
// keys are not offered * and the api_key events, which the service refuses them (and they see no
// form for an endpoint that has them, see CanEdit).
func (d *Dashboard) eventChoices(v *view) []keyplane.CatalogEntry {
	all := append([]keyplane.CatalogEntry{{Name: keyplane.AllEvents, Description: "Every event type, those added later included."}}, d.svc.Catalog().EventTypes()...)
	if v.Can(keyplane.PermAPIKeysRead) {
		return all
	}
	out := make([]keyplane.CatalogEntry, 0, len(all))
	for _, e := range all {
		if !service.CarriesKeyEvents([]string{e.Name}) {
			out = append(out, e)
		}
	}
	return out
}

func (d *Dashboard) readHookForm(r *http.Request) hookForm {
	r.ParseForm()
	return hookForm{URL: strings.TrimSpace(r.PostFormValue("url")), Description: r.PostFormValue("description"),
		EventTypes: r.PostForm["eventTypes"], Enabled: r.PostFormValue("enabled") == "on"}
}

func hookPath(v *view, endpointID string) string {
	return v.WS("/settings/webhooks/" + url.PathEscape(endpointID))
}

func (d *Dashboard) hooksPage(w http.ResponseWriter, r *http.Request, v *view) {
	d.showHooks(w, r, v, http.StatusOK, hookForm{Enabled: true}, nil)
}

func (d *Dashboard) showHooks(w http.ResponseWriter, r *http.Request, v *view, status int, f hookForm, errs map[string]string) {
	d.renderHooks(w, r, v, status, f, errs, recoverForm{})
}

// renderHooks renders the webhooks page with the add form f and errs, and the recovery form rf.
func (d *Dashboard) renderHooks(w http.ResponseWriter, r *http.Request, v *view, status int, f hookForm, errs map[string]string, rf recoverForm) {
	v.Title, v.Section = "Webhooks", "webhooks"
	hooks, next, err := d.svc.ListWebhooks(r.Context(), v.Caller, v.Workspace.ID, 100, r.URL.Query().Get("cursor"))
	if err != nil {
		d.hookError(w, r, v, err)
		return
	}
	hd := hooksData{Hooks: hooks, Form: f, Errors: errs, Events: d.eventChoices(v), Recover: rf}
	now := v.Now.UTC()
	hd.SinceMin = now.Add(-d.svc.EventRetention()).Add(time.Minute).Format(localMinute)
	hd.SinceMax, hd.SinceDefault = now.Format(localMinute), now.Add(-24*time.Hour).Format(localMinute)
	hd.RetentionText = retentionText(d.svc.EventRetention())
	if next != "" {
		hd.Next = withQuery(r.URL, "cursor", next)
	}
	if err := d.recentEvents(r, v, &hd); err != nil {
		d.hookError(w, r, v, err)
		return
	}
	v.Data = hd
	d.render(w, r, status, "webhooks", v)
}

func (d *Dashboard) createHook(w http.ResponseWriter, r *http.Request, v *view) {
	f := d.readHookForm(r)
	e, secret, err := d.svc.CreateWebhook(r.Context(), v.Caller, v.Workspace.ID,
		service.WebhookInput{URL: f.URL, Description: f.Description, EventTypes: f.EventTypes, Enabled: &f.Enabled})
	if err != nil {
		if fe := hookFieldErrors(err, f.EventTypes); fe != nil {
			d.showHooks(w, r, v, http.StatusBadRequest, f, fe)
			return
		}
		d.hookError(w, r, v, err)
		return
	}
	d.showHookSecret(w, r, v, e, secret, "created")
}

func (d *Dashboard) hookPage(w http.ResponseWriter, r *http.Request, v *view) {
	e, err := d.svc.GetWebhook(r.Context(), v.Caller, v.Workspace.ID, r.PathValue("id"))
	if err != nil {
		d.hookError(w, r, v, err)
		return
	}
	d.showHook(w, r, v, http.StatusOK, e, formOfHook(e), nil, nil)
}

func formOfHook(e *keyplane.WebhookEndpoint) hookForm {
	return hookForm{URL: e.URL, Description: e.Description, EventTypes: e.EventTypes, Enabled: e.Enabled}
}

// showHook renders an endpoint's page: f and errs are its settings form; test, when not nil, puts the
// outcome of a test send just made (or its refusal) into the page's data.
func (d *Dashboard) showHook(w http.ResponseWriter, r *http.Request, v *view, status int, e *keyplane.WebhookEndpoint, f hookForm, errs map[string]string, test func(*hookPageData)) {
	v.Title, v.Section = e.URL, "webhooks"
	hd := hookPageData{Hook: e, Base: hookPath(v, e.ID), Form: f, Errors: errs, Events: d.eventChoices(v),
		CanWrite: v.Can(keyplane.PermWebhooksWrite), CanReveal: mayReveal(v.Caller),
		CanEdit:   v.Can(keyplane.PermWebhooksWrite) && (v.Can(keyplane.PermAPIKeysRead) || !service.CarriesKeyEvents(e.EventTypes)),
		TestTypes: d.svc.Catalog().EventTypes(), TestType: keyplane.EventWebhookTest,
		Statuses: []keyplane.DeliveryStatus{keyplane.DeliveryPending, keyplane.DeliverySucceeded, keyplane.DeliveryFailed}}
	if test != nil {
		test(&hd)
	}
	// The deliveries log: the page's own query on a GET; the newest attempts after a test send.
	var q url.Values
	if r.Method == http.MethodGet {
		q = r.URL.Query()
	}
	hd.Status = q.Get("status")
	cursor := q.Get("cursor")
	ds, next, err := d.svc.ListDeliveries(r.Context(), v.Caller, v.Workspace.ID, e.ID,
		keyplane.DeliveryFilter{Status: keyplane.DeliveryStatus(hd.Status), Limit: deliveriesPerPage, Cursor: cursor})
	if err != nil {
		if keyplane.ErrorCode(err) != keyplane.CodeInvalidRequest {
			d.hookError(w, r, v, err)
			return
		}
		fe := hookFieldErrors(err, nil)
		if _, ok := fe["cursor"]; ok {
			fe["cursor"] = "This page's link is not valid (the cursor was not made by this log): start again from the newest attempts."
		}
		hd.LogError = oneLine(fe)
	}
	for _, dl := range ds {
		hd.Deliveries = append(hd.Deliveries, deliveryRow{D: dl, Duration: durationMs(dl.DurationMs),
			Retry: hd.CanWrite && e.Enabled && dl.Status == keyplane.DeliveryFailed && dl.EventType != keyplane.EventWebhookTest})
	}
	if next != "" {
		hd.Older = logLink(hd.Base, hd.Status, next)
	}
	if cursor != "" {
		hd.Newest = logLink(hd.Base, hd.Status, "")
	}
	v.Data = hd
	d.render(w, r, status, "webhook", v)
}

// logLink is the endpoint page at a page of its deliveries log.
func logLink(base, status, cursor string) string {
	q := url.Values{}
	if status != "" {
		q.Set("status", status)
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	if len(q) == 0 {
		return base + "#deliveries"
	}
	return base + "?" + q.Encode() + "#deliveries"
}

func durationMs(ms *int64) string {
	if ms == nil {
		return ""
	}
	return strconv.FormatInt(*ms, 10) + " ms"
}

// mayReveal says whether to offer Reveal: the service lets owners and admins (and the operator) see
// a signing secret again, and refuses the others itself.
func mayReveal(c *keyplane.Caller) bool {
	return c != nil && (c.Operator || c.Role == keyplane.RoleOwner || c.Role == keyplane.RoleAdmin)
}

func (d *Dashboard) editHook(w http.ResponseWriter, r *http.Request, v *view) {
	e, err := d.svc.GetWebhook(r.Context(), v.Caller, v.Workspace.ID, r.PathValue("id"))
	if err != nil {
		d.hookError(w, r, v, err)
		return
	}
	f := d.readHookForm(r)
	p := service.WebhookPatch{Description: keyplane.Some(f.Description), EventTypes: keyplane.Some(f.EventTypes), Enabled: keyplane.Some(f.Enabled)}
	// The URL is sent only when it changed: the service checks (and resolves) a URL it is given, which
	// saving other settings should not depend on.
	if f.URL != e.URL {
		p.URL = keyplane.Some(f.URL)
	}
	if _, err := d.svc.UpdateWebhook(r.Context(), v.Caller, v.Workspace.ID, e.ID, p); err != nil {
		if fe := hookFieldErrors(err, f.EventTypes); fe != nil {
			d.showHook(w, r, v, http.StatusBadRequest, e, f, fe, nil)
			return
		}
		d.hookError(w, r, v, err)
		return
	}
	d.flash(w, r, "Saved the endpoint’s settings.")
	http.Redirect(w, r, hookPath(v, e.ID), http.StatusSeeOther)
}

func (d *Dashboard) toggleHook(w http.ResponseWriter, r *http.Request, v *view) {
	on := r.PostFormValue("enabled") == "true"
	e, err := d.svc.UpdateWebhook(r.Context(), v.Caller, v.Workspace.ID, r.PathValue("id"), service.WebhookPatch{Enabled: keyplane.Some(on)})
	if err != nil {
		d.hookError(w, r, v, err)
		return
	}
	if on {
		d.flash(w, r, "The endpoint is enabled: events are delivered to it again.")
	} else {
		d.flash(w, r, "The endpoint is disabled: no events are delivered to it until you enable it.")
	}
	http.Redirect(w, r, hookPath(v, e.ID), http.StatusSeeOther)
}

func (d *Dashboard) testHook(w http.ResponseWriter, r *http.Request, v *view) {
	e, err := d.svc.GetWebhook(r.Context(), v.Caller, v.Workspace.ID, r.PathValue("id"))
	if err != nil {
		d.hookError(w, r, v, err)
		return
	}
	eventType := r.PostFormValue("eventType")
	res, err := d.svc.TestWebhook(r.Context(), v.Caller, v.Workspace.ID, e.ID, eventType)
	if err != nil {
		if keyplane.ErrorCode(err) != keyplane.CodeInvalidRequest {
			d.hookError(w, r, v, err)
			return
		}
		d.showHook(w, r, v, http.StatusBadRequest, e, formOfHook(e), nil, func(hd *hookPageData) {
			hd.TestType, hd.TestError = eventType, oneLine(hookFieldErrors(err, nil))
		})
		return
	}
	if eventType == "" {
		eventType = keyplane.EventWebhookTest
	}
	tv := &testView{EventType: eventType, StatusCode: res.StatusCode, StatusText: http.StatusText(res.StatusCode),
		OK: res.Error == "" && res.StatusCode >= 200 && res.StatusCode < 300, Duration: strconv.FormatInt(res.Duration.Milliseconds(), 10) + " ms",
		Error: res.Error, Body: res.Body}
	d.showHook(w, r, v, http.StatusOK, e, formOfHook(e), nil, func(hd *hookPageData) { hd.TestType, hd.Test = eventType, tv })
}

func (d *Dashboard) retryDelivery(w http.ResponseWriter, r *http.Request, v *view) {
	endpointID := r.PathValue("id")
	dl, err := d.svc.RetryDelivery(r.Context(), v.Caller, v.Workspace.ID, endpointID, r.PathValue("delivery"))
	if err != nil {
		d.hookError(w, r, v, err)
		return
	}
	d.flash(w, r, "Attempt "+strconv.Itoa(dl.Attempt)+" of event "+dl.EventID+" is queued: it is sent within a few seconds.")
	http.Redirect(w, r, hookPath(v, endpointID)+"#deliveries", http.StatusSeeOther)
}

type hookConfirmData struct {
	Hook   *keyplane.WebhookEndpoint
	Base   string
	Action string
	// AskPassword: revealing needs the password, entered in the last five minutes.
	AskPassword bool
	Error       string
}

// hookConfirmPage asks before deleting an endpoint or rotating its secret; it is where the buttons
// lead without JavaScript (with it, a dialog asks and the page posts directly). Revealing the secret
// always goes through it, with or without JavaScript, as revealing a key does: it asks for the
// password unless the session entered it in the last five minutes.
func (d *Dashboard) hookConfirmPage(w http.ResponseWriter, r *http.Request, v *view) {
	action := r.PathValue("action")
	titles := map[string]string{"delete": "Delete this endpoint", "rotate": "Rotate the signing secret", "reveal": "Reveal the signing secret"}
	if titles[action] == "" {
		d.fail(w, r, http.StatusNotFound, "There is no page here.")
		return
	}
	e, err := d.svc.GetWebhook(r.Context(), v.Caller, v.Workspace.ID, r.PathValue("id"))
	if err == nil && !v.Can(keyplane.PermWebhooksWrite) {
		// No form that the service would refuse: the same answer as posting it.
		err = keyplane.Errorf(keyplane.CodeForbidden, "this credential lacks the %s permission", keyplane.PermWebhooksWrite)
	} else if err == nil && action == "reveal" && !mayReveal(v.Caller) {
		// A developer changes endpoints but may not see a secret again: no password form either.
		err = keyplane.Errorf(keyplane.CodeForbidden, "only owners and admins may reveal a signing secret")
	}
	if err != nil {
		d.hookError(w, r, v, err)
		return
	}
	d.showHookConfirm(w, r, v, http.StatusOK, e, action, titles[action], "")
}

func (d *Dashboard) showHookConfirm(w http.ResponseWriter, r *http.Request, v *view, status int, e *keyplane.WebhookEndpoint, action, title, errMsg string) {
	v.Title, v.Section = title, "webhooks"
	v.Data = hookConfirmData{Hook: e, Base: hookPath(v, e.ID), Action: action, AskPassword: action == "reveal" && !v.Caller.Reauthenticated, Error: errMsg}
	d.render(w, r, status, "webhook-confirm", v)
}

func (d *Dashboard) deleteHook(w http.ResponseWriter, r *http.Request, v *view) {
	e, err := d.svc.GetWebhook(r.Context(), v.Caller, v.Workspace.ID, r.PathValue("id"))
	if err == nil {
		err = d.svc.DeleteWebhook(r.Context(), v.Caller, v.Workspace.ID, e.ID)
	}
	if err != nil {
		d.hookError(w, r, v, err)
		return
	}
	d.flash(w, r, "The endpoint "+ellipsis(e.URL, 120)+" is deleted, with its deliveries log. The audit trail keeps its history.")
	http.Redirect(w, r, v.WS("/settings/webhooks"), http.StatusSeeOther)
}

func (d *Dashboard) rotateHook(w http.ResponseWriter, r *http.Request, v *view) {
	e, secret, err := d.svc.RotateWebhookSecret(r.Context(), v.Caller, v.Workspace.ID, r.PathValue("id"))
	if err != nil {
		d.hookError(w, r, v, err)
		return
	}
	d.showHookSecret(w, r, v, e, secret, "rotated")
}

// revealHook shows the signing secret once the person has entered their password (in the last five
// minutes), as revealing a key does: a wrong password, or too many of them, shows the confirmation
// page again with the reason. Those whose role may not reveal are not asked for their password: the
// service refuses them (and records the refusal) whatever they send.
func (d *Dashboard) revealHook(w http.ResponseWriter, r *http.Request, v *view) {
	e, err := d.svc.GetWebhook(r.Context(), v.Caller, v.Workspace.ID, r.PathValue("id"))
	if err != nil {
		d.hookError(w, r, v, err)
		return
	}
	if !v.Caller.Reauthenticated && mayReveal(v.Caller) && v.Portal != nil {
		d.showHookConfirm(w, r, v, http.StatusForbidden, e, "reveal", "Reveal the signing secret", "")
		return
	}
	if !v.Caller.Reauthenticated && mayReveal(v.Caller) {
		if err := d.svc.Reauthenticate(r.Context(), v.Caller, v.Session, v.User, r.PostFormValue("password")); err != nil {
			switch keyplane.ErrorCode(err) {
			case keyplane.CodeInvalidRequest:
				d.showHookConfirm(w, r, v, http.StatusBadRequest, e, "reveal", "Reveal the signing secret", message(err))
				return
			case keyplane.CodeRateLimited, keyplane.CodeUnavailable:
				d.showHookConfirm(w, r, v, retryLater(w, err), e, "reveal", "Reveal the signing secret", message(err))
				return
			}
			d.serverError(w, r, err)
			return
		}
	}
	e, secret, err := d.svc.RevealWebhookSecret(r.Context(), v.Caller, v.Workspace.ID, e.ID)
	if err != nil {
		d.hookError(w, r, v, err)
		return
	}
	d.showHookSecret(w, r, v, e, secret, "revealed")
}

type hookSecretData struct {
	Hook  *keyplane.WebhookEndpoint
	Base  string
	Value string
	Why   string // created, rotated or revealed
	Until *time.Time
}

// showHookSecret renders a signing secret right in the answer to the POST that made or revealed it,
// as the key pages do: no other page ever holds it.
func (d *Dashboard) showHookSecret(w http.ResponseWriter, r *http.Request, v *view, e *keyplane.WebhookEndpoint, secret, why string) {
	v.Title = map[string]string{"created": "Your new webhook endpoint", "rotated": "New signing secret", "revealed": "Signing secret"}[why]
	v.Section = "webhooks"
	hd := hookSecretData{Hook: e, Base: hookPath(v, e.ID), Value: secret, Why: why}
	if why == "rotated" {
		hd.Until = e.PreviousSecretUntil
	}
	v.Data = hd
	d.render(w, r, http.StatusOK, "webhook-secret", v)
}

// ellipsis shortens s to at most n runes, for a message that must stay short (a flash).
func ellipsis(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// hookFieldErrors maps a validation error of the webhook calls to the form's fields; nil when err is
// not one. The service names an unknown event type by its place in the list ("eventTypes[2]"): the
// dashboard names it by the value the person sent, next to the events.
func hookFieldErrors(err error, types []string) map[string]string {
	return formErrors(err, func(fe keyplane.FieldError) (string, string) {
		field, msg := fe.Field, ""
		if rest, ok := strings.CutPrefix(field, "eventTypes["); ok {
			field = "eventTypes"
			if i, err := strconv.Atoi(strings.TrimSuffix(rest, "]")); err == nil && i >= 0 && i < len(types) {
				msg = sentence("“" + types[i] + "” " + fe.Message)
			}
		}
		if msg == "" {
			// The service's messages about these fields read as their predicates ("must be…",
			// "could not be resolved…"): the field's name goes first.
			if l, ok := labels[field]; ok {
				msg = sentence(l + " " + fe.Message)
			} else {
				msg = sentence(labelled(field, fe.Message))
			}
		}
		return field, msg
	})
}

// oneLine joins a form's errors into one message, in a stable order.
func oneLine(errs map[string]string) string {
	var msgs []string
	for _, f := range slices.Sorted(maps.Keys(errs)) {
		msgs = append(msgs, errs[f])
	}
	return strings.Join(msgs, " ")
}

// hookError answers a service error of the webhook pages. A refusal says which roles may do what was
// asked, read from the roles' permissions, when the person's role lacks the permission; when it holds
// it (an admin asked for a secret without a recent password), the service's own reason is shown.
func (d *Dashboard) hookError(w http.ResponseWriter, r *http.Request, v *view, err error) {
	switch keyplane.ErrorCode(err) {
	case keyplane.CodeForbidden:
		d.fail(w, r, http.StatusForbidden, refusal(v, err, !v.Can(keyplane.PermWebhooksWrite),
			"Only "+rolesWith(keyplane.PermWebhooksWrite)+" change webhook endpoints."))
	case keyplane.CodeInvalidRequest:
		if fe := hookFieldErrors(err, nil); fe != nil {
			d.fail(w, r, http.StatusBadRequest, oneLine(fe))
			return
		}
		d.userError(w, r, v, err)
	default:
		d.userError(w, r, v, err)
	}
}

// rolesWith names the roles that hold perm, as a sentence: "owners, admins and developers".
func rolesWith(perm string) string {
	var names []string
	for _, role := range []keyplane.Role{keyplane.RoleOwner, keyplane.RoleAdmin, keyplane.RoleDeveloper, keyplane.RoleViewer} {
		if slices.Contains(keyplane.RolePermissions(role), perm) {
			names = append(names, string(role)+"s")
		}
	}
	switch len(names) {
	case 0:
		return "the operator"
	case 1:
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}
