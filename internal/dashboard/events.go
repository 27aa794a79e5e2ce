package dashboard

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/keyplane/keyplane"
)

// Webhook recovery and the recent events, on the webhooks page: a form that sends again what an
// endpoint missed since a time (after a confirmation page), and the workspace's newest events, each
// with a Resend button that queues it again for every endpoint subscribed to it.

// eventsPerPage is how many events the webhooks page lists at a time.
const eventsPerPage = 20

// recoverForm is the recovery form as the person filled it in.
type recoverForm struct {
	EndpointID string
	Since      string // as the datetime-local input sends it: 2030-01-07T09:00, in UTC
	Error      string
}

// sinceLayouts are what a datetime-local input sends, without and with seconds, and RFC 3339.
var sinceLayouts = []string{"2006-01-02T15:04", "2006-01-02T15:04:05", time.RFC3339}

// parseSince reads the form's time as UTC.
func parseSince(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	for _, l := range sinceLayouts {
		if t, err := time.ParseInLocation(l, s, time.UTC); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// recentEvents fills the page's events list: the newest, or the page the query's cursor names.
func (d *Dashboard) recentEvents(r *http.Request, v *view, hd *hooksData) error {
	var cursor string
	if r.Method == http.MethodGet {
		cursor = r.URL.Query().Get("events")
	}
	evs, next, err := d.svc.ListEvents(r.Context(), v.Caller, v.Workspace.ID, keyplane.EventFilter{Limit: eventsPerPage, Cursor: cursor})
	if err != nil {
		if keyplane.ErrorCode(err) != keyplane.CodeInvalidRequest {
			return err
		}
		hd.EventsError = "This page's link is not valid (the cursor was not made by this list): start again from the newest events."
	}
	hd.RecentEvents = evs
	if next != "" {
		hd.OlderEvents = v.WS("/settings/webhooks") + "?events=" + url.QueryEscape(next) + "#events"
	}
	if cursor != "" {
		hd.NewestEvents = v.WS("/settings/webhooks") + "#events"
	}
	return nil
}

type recoverConfirmData struct {
	Hook  *keyplane.WebhookEndpoint
	Since time.Time
	Form  recoverForm
}

// recoverHooks is the recovery form's two steps: the form posts here and gets a confirmation page,
// whose button posts here again with confirm=yes; then the service queues the attempts and the
// webhooks page says how many. Without JavaScript as with it: nothing is queued unasked.
func (d *Dashboard) recoverHooks(w http.ResponseWriter, r *http.Request, v *view) {
	f := recoverForm{EndpointID: r.PostFormValue("endpointId"), Since: strings.TrimSpace(r.PostFormValue("since"))}
	if !v.Can(keyplane.PermWebhooksWrite) {
		d.hookError(w, r, v, keyplane.Errorf(keyplane.CodeForbidden, "this credential lacks the %s permission", keyplane.PermWebhooksWrite))
		return
	}
	since, ok := parseSince(f.Since)
	switch {
	case f.EndpointID == "":
		f.Error = "Choose the endpoint whose failed deliveries to send again."
	case f.Since == "":
		f.Error = "Enter the time (UTC) from which to send failed deliveries again."
	case !ok:
		f.Error = "The time must be a date and time such as 2030-01-07T09:00 (UTC)."
	}
	if f.Error != "" {
		d.showHooksRecover(w, r, v, http.StatusBadRequest, f)
		return
	}
	e, err := d.svc.GetWebhook(r.Context(), v.Caller, v.Workspace.ID, f.EndpointID)
	if err != nil {
		if keyplane.ErrorCode(err) == keyplane.CodeNotFound {
			f.Error = "That endpoint does not exist (any more): choose another."
			d.showHooksRecover(w, r, v, http.StatusBadRequest, f)
			return
		}
		d.hookError(w, r, v, err)
		return
	}
	if r.PostFormValue("confirm") != "yes" {
		v.Title, v.Section = "Recover failed deliveries", "webhooks"
		v.Data = recoverConfirmData{Hook: e, Since: since, Form: f}
		d.render(w, r, http.StatusOK, "webhook-recover", v)
		return
	}
	n, err := d.svc.RecoverWebhook(r.Context(), v.Caller, v.Workspace.ID, e.ID, since, nil)
	if err != nil {
		if keyplane.ErrorCode(err) == keyplane.CodeInvalidRequest {
			f.Error = oneLine(recoverErrors(err))
			d.showHooksRecover(w, r, v, http.StatusBadRequest, f)
			return
		}
		d.hookError(w, r, v, err)
		return
	}
	msg := "Queued " + plural(n, "failed delivery", "failed deliveries") + " of " + ellipsis(e.URL, 120) + " since " + since.Format("2 Jan 2006 15:04 UTC") +
		" to be sent again."
	if n == 0 {
		msg = "Nothing to send again: no event since " + since.Format("2 Jan 2006 15:04 UTC") + " has a last delivery to " + ellipsis(e.URL, 120) +
			" that failed (those still being retried are left to their schedule)."
	}
	d.flash(w, r, msg)
	http.Redirect(w, r, v.WS("/settings/webhooks")+"#recover", http.StatusSeeOther)
}

// recoverErrors words the service's refusals of a recovery for the form.
func recoverErrors(err error) map[string]string {
	return formErrors(err, func(fe keyplane.FieldError) (string, string) {
		switch fe.Field {
		case "since":
			return "since", sentence("The time " + fe.Message)
		case "endpointId":
			return "endpointId", "The endpoint is disabled: enable it first, then recover its failed deliveries."
		}
		return fe.Field, sentence(labelled(fe.Field, fe.Message))
	})
}

func (d *Dashboard) showHooksRecover(w http.ResponseWriter, r *http.Request, v *view, status int, f recoverForm) {
	d.renderHooks(w, r, v, status, hookForm{Enabled: true}, nil, f)
}

// resendEvent queues an event again for every enabled endpoint subscribed to its type.
func (d *Dashboard) resendEvent(w http.ResponseWriter, r *http.Request, v *view) {
	evID := r.PathValue("id")
	n, err := d.svc.ResendEvent(r.Context(), v.Caller, v.Workspace.ID, evID, "")
	if err != nil {
		d.hookError(w, r, v, err)
		return
	}
	msg := "Event " + evID + " is queued for " + plural(n, "endpoint", "endpoints") + ": it is sent within a few seconds."
	if n == 0 {
		msg = "Event " + evID + " was not queued: no enabled endpoint wants it, or each has an attempt of it still pending."
	}
	d.flash(w, r, msg)
	http.Redirect(w, r, v.WS("/settings/webhooks")+"#events", http.StatusSeeOther)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// retentionText says a retention in days, or hours when shorter than two days.
func retentionText(d time.Duration) string {
	if d >= 48*time.Hour {
		return strconv.Itoa(int(d/(24*time.Hour))) + " days"
	}
	return plural(int(d/time.Hour), "hour", "hours")
}
