package dashboard

import (
	"encoding/json"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/service"
)

// Identities: the platform's customers, whose keys share credits and rate limits. The list pages
// like the others, newest first; an identity's page shows its settings, its credits and limits (the
// same forms as a key's), and its keys.

// identityForm is the create and edit form of an identity as filled in.
type identityForm struct {
	ExternalID string
	Meta       string
}

type identitiesData struct {
	Identities []keyplane.Identity
	Next       string
	Form       identityForm
	Errors     map[string]string
	CanEdit    bool
}

type identityData struct {
	Identity *keyplane.Identity
	Form     identityForm
	Errors   map[string]string
	Settings usageSettings
	Keys     []keyRow
	KeysNext string
	KeysSeen bool // the person may read keys
	CanEdit  bool
}

type identityConfirmData struct {
	Identity *keyplane.Identity
	Error    string
}

// short cuts a name a person typed for a message that quotes it.
func short(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}

func identityFormOf(i *keyplane.Identity) identityForm {
	f := identityForm{ExternalID: i.ExternalID}
	if m := strings.TrimSpace(string(i.Meta)); m != "" && m != "{}" {
		f.Meta = m
	}
	return f
}

func (d *Dashboard) identitiesPage(w http.ResponseWriter, r *http.Request, v *view) {
	d.showIdentities(w, r, v, http.StatusOK, identityForm{}, nil)
}

func (d *Dashboard) showIdentities(w http.ResponseWriter, r *http.Request, v *view, status int, f identityForm, errs map[string]string) {
	v.Title = "Identities"
	list, next, err := d.svc.ListIdentities(r.Context(), v.Caller, v.Workspace.ID, 50, r.URL.Query().Get("cursor"))
	if err != nil {
		d.userError(w, r, v, err)
		return
	}
	id := identitiesData{Identities: list, Form: f, Errors: errs, CanEdit: v.Can(keyplane.PermIdentitiesWrite)}
	if next != "" {
		id.Next = withQuery(r.URL, "cursor", next)
	}
	v.Data = id
	d.render(w, r, status, "identities", v)
}

func (d *Dashboard) createIdentity(w http.ResponseWriter, r *http.Request, v *view) {
	f := identityForm{ExternalID: r.PostFormValue("externalId"), Meta: r.PostFormValue("meta")}
	errs := map[string]string{}
	in := service.IdentityInput{ExternalID: strings.TrimSpace(f.ExternalID), Meta: meta(f.Meta, errs)}
	if len(errs) > 0 {
		d.showIdentities(w, r, v, http.StatusBadRequest, f, errs)
		return
	}
	i, err := d.svc.CreateIdentity(r.Context(), v.Caller, v.Workspace.ID, in)
	if err != nil {
		if fe := identityErrors(err, nil); fe != nil {
			d.showIdentities(w, r, v, statusOf(err), f, fe)
			return
		}
		d.userError(w, r, v, err)
		return
	}
	d.flash(w, r, "Identity “"+short(i.ExternalID, 80)+"” created.")
	http.Redirect(w, r, v.WS("/identities/"+i.ID), http.StatusSeeOther)
}

// identityErrors maps a refusal of an identity's fields to them: the field errors, and an
// externalId another identity has.
func identityErrors(err error, at []int) map[string]string {
	if keyplane.ErrorCode(err) == keyplane.CodeIdentityExists {
		return map[string]string{"externalId": message(err) + " Choose another external id, or open that identity."}
	}
	return usageFieldErrors(err, at)
}

func statusOf(err error) int {
	if keyplane.ErrorCode(err) == keyplane.CodeIdentityExists {
		return http.StatusConflict
	}
	return http.StatusBadRequest
}

func (d *Dashboard) identityPage(w http.ResponseWriter, r *http.Request, v *view) {
	i, err := d.svc.GetIdentity(r.Context(), v.Caller, v.Workspace.ID, r.PathValue("id"))
	if err != nil {
		d.userError(w, r, v, err)
		return
	}
	d.showIdentity(w, r, v, http.StatusOK, i, identityFormOf(i), nil, nil)
}

// showIdentity shows an identity's page; us, when not nil, is its usage forms as filled in.
func (d *Dashboard) showIdentity(w http.ResponseWriter, r *http.Request, v *view, status int, i *keyplane.Identity, f identityForm, errs map[string]string, us *usageSettings) {
	v.Title, v.Section = "Identity “"+short(i.ExternalID, 60)+"”", "identities"
	canEdit := v.Can(keyplane.PermIdentitiesWrite)
	id := identityData{Identity: i, Form: f, Errors: errs, CanEdit: canEdit,
		Settings: newUsageSettings(v, v.WS("/identities/"+i.ID), i.Credits, i.RateLimits, canEdit, false)}
	if us != nil {
		id.Settings = *us
	}
	if v.Can(keyplane.PermAPIKeysRead) {
		keys, next, err := d.svc.ListAPIKeysOf(r.Context(), v.Caller, v.Workspace.ID, keyplane.KeyFilter{Limit: 100, Cursor: r.URL.Query().Get("cursor")}, "", i.ID)
		if err != nil && keyplane.ErrorCode(err) != keyplane.CodeInvalidRequest {
			d.userError(w, r, v, err)
			return
		}
		id.KeysSeen = true
		for j := range keys {
			id.Keys = append(id.Keys, rowOf(&keys[j], v.Now))
		}
		if next != "" {
			id.KeysNext = withQuery(r.URL, "cursor", next)
		}
	}
	v.Data = id
	d.render(w, r, status, "identity", v)
}

// identityChange loads the identity, applies the patch read makes (with the form's own errors in
// errs, it is not sent), and shows the page again with the errors or goes back to it with a flash.
func (d *Dashboard) identityChange(w http.ResponseWriter, r *http.Request, v *view, read func(i *keyplane.Identity, f *identityForm, us *usageSettings, errs map[string]string) (service.IdentityPatch, []int, string)) {
	i, err := d.svc.GetIdentity(r.Context(), v.Caller, v.Workspace.ID, r.PathValue("id"))
	if err != nil {
		d.userError(w, r, v, err)
		return
	}
	if err := v.Caller.Authorize(v.Workspace.ID, keyplane.PermIdentitiesWrite); err != nil {
		d.userError(w, r, v, err)
		return
	}
	r.ParseForm()
	f := identityFormOf(i)
	us := newUsageSettings(v, v.WS("/identities/"+i.ID), i.Credits, i.RateLimits, true, false)
	errs := map[string]string{}
	p, at, done := read(i, &f, &us, errs)
	status := http.StatusBadRequest
	if len(errs) == 0 {
		if _, err = d.svc.UpdateIdentity(r.Context(), v.Caller, v.Workspace.ID, i.ID, p); err == nil {
			d.flash(w, r, done)
			http.Redirect(w, r, v.WS("/identities/"+i.ID), http.StatusSeeOther)
			return
		}
		if errs = identityErrors(err, at); errs == nil {
			d.userError(w, r, v, err)
			return
		}
		status = statusOf(err)
	}
	// The settings form and the usage forms show their errors in their own places: the field names
	// do not overlap.
	us.Errors = errs
	d.showIdentity(w, r, v, status, i, f, errs, &us)
}

func (d *Dashboard) editIdentity(w http.ResponseWriter, r *http.Request, v *view) {
	d.identityChange(w, r, v, func(_ *keyplane.Identity, f *identityForm, _ *usageSettings, errs map[string]string) (service.IdentityPatch, []int, string) {
		f.ExternalID, f.Meta = r.PostFormValue("externalId"), r.PostFormValue("meta")
		m := meta(f.Meta, errs)
		if m == nil {
			m = json.RawMessage("{}")
		}
		ext := strings.TrimSpace(f.ExternalID)
		return service.IdentityPatch{ExternalID: keyplane.Some(ext), Meta: keyplane.Some(m)}, nil, "Saved “" + short(ext, 80) + "”."
	})
}

func (d *Dashboard) identityCredits(w http.ResponseWriter, r *http.Request, v *view) {
	d.identityChange(w, r, v, func(_ *keyplane.Identity, _ *identityForm, us *usageSettings, errs map[string]string) (service.IdentityPatch, []int, string) {
		f, in := readCreditsForm(r, errs)
		us.Form = f
		p := service.IdentityPatch{Credits: keyplane.Optional[service.CreditsInput]{Set: true, Null: in == nil}}
		if in != nil {
			p.Credits.Value = *in
			return p, nil, "Credits saved."
		}
		return p, nil, "Credits saved: this identity is unlimited."
	})
}

func (d *Dashboard) identityLimits(w http.ResponseWriter, r *http.Request, v *view) {
	d.identityChange(w, r, v, func(_ *keyplane.Identity, _ *identityForm, us *usageSettings, errs map[string]string) (service.IdentityPatch, []int, string) {
		rows, list, at := readLimitsForm(r, errs)
		us.Rows = withNewRow(rows)
		if list == nil {
			list = []keyplane.NamedRateLimit{}
		}
		return service.IdentityPatch{RateLimits: keyplane.Some(list)}, at, "Rate limits saved."
	})
}

// identityDeletePage asks before an identity is deleted: what the Delete button leads to without
// JavaScript.
func (d *Dashboard) identityDeletePage(w http.ResponseWriter, r *http.Request, v *view) {
	i, err := d.svc.GetIdentity(r.Context(), v.Caller, v.Workspace.ID, r.PathValue("id"))
	if err != nil {
		d.userError(w, r, v, err)
		return
	}
	d.showIdentityConfirm(w, r, v, http.StatusOK, i, "")
}

func (d *Dashboard) showIdentityConfirm(w http.ResponseWriter, r *http.Request, v *view, status int, i *keyplane.Identity, msg string) {
	v.Title, v.Section, v.Data = "Delete “"+short(i.ExternalID, 60)+"”", "identities", identityConfirmData{Identity: i, Error: msg}
	d.render(w, r, status, "identity-confirm", v)
}

func (d *Dashboard) deleteIdentity(w http.ResponseWriter, r *http.Request, v *view) {
	i, err := d.svc.GetIdentity(r.Context(), v.Caller, v.Workspace.ID, r.PathValue("id"))
	if err == nil {
		err = d.svc.DeleteIdentity(r.Context(), v.Caller, v.Workspace.ID, i.ID)
	}
	if keyplane.ErrorCode(err) == keyplane.CodeIdentityInUse {
		d.showIdentityConfirm(w, r, v, http.StatusConflict, i, "This identity still has keys, so it cannot be deleted. Delete its keys for good (revoked keys count too), or move them to another identity on each key's page, then try again.")
		return
	}
	if err != nil {
		d.userError(w, r, v, err)
		return
	}
	d.flash(w, r, "Identity “"+short(i.ExternalID, 80)+"” is deleted. The audit trail keeps its history.")
	http.Redirect(w, r, v.WS("/identities"), http.StatusSeeOther)
}
