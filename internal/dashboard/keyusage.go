package dashboard

import (
	"net/http"
	"strings"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/service"
)

// A key's credits, named rate limits and identity, on its page: three small forms beside the edit
// form, each a PATCH of its own fields, so that saving one never resends the others.

// keyIdentity is the identity part of a key's page.
type keyIdentity struct {
	ID         string // "" without one
	ExternalID string
	Link       string // the identity's page, for people who may read identities
	Form       string // the externalId field as filled in
	Error      string
}

func (d *Dashboard) keyPageOf(v *view, k *keyplane.APIKey) (usageSettings, keyIdentity) {
	// Credits, rate limits and identity are the platform's billing: the portal shows them only.
	canEdit := v.Can(keyplane.PermAPIKeysWrite) && k.RevokedAt == nil && v.Portal == nil
	us := newUsageSettings(v, v.WS("/settings/api/"+k.ID), k.Credits, keyplane.KeyRateLimits(k.RateLimit, k.RateLimits), canEdit, true)
	ki := keyIdentity{ID: k.IdentityID}
	if k.Identity != nil {
		ki.ExternalID = k.Identity.ExternalID
	}
	if ki.ID != "" && v.Can(keyplane.PermIdentitiesRead) {
		ki.Link = v.WS("/identities/" + ki.ID)
	}
	ki.Form = ki.ExternalID
	return us, ki
}

// keyUsageChange loads the key, applies a patch made by read (nil patch: the form's own errors),
// and shows the page again with the errors, or goes back to it with a flash.
func (d *Dashboard) keyUsageChange(w http.ResponseWriter, r *http.Request, v *view, read func(us *usageSettings, ki *keyIdentity) (*service.KeyPatch, []int, string)) {
	k, err := d.svc.GetAPIKey(r.Context(), v.Caller, v.Workspace.ID, r.PathValue("id"))
	if err != nil {
		d.userError(w, r, v, err)
		return
	}
	us, ki := d.keyPageOf(v, k)
	us.Errors = map[string]string{}
	r.ParseForm()
	p, at, done := read(&us, &ki)
	if len(us.Errors) == 0 {
		_, err = d.svc.UpdateAPIKey(r.Context(), v.Caller, v.Workspace.ID, k.ID, *p)
		if err == nil {
			d.flash(w, r, done)
			http.Redirect(w, r, v.WS("/settings/api/"+k.ID), http.StatusSeeOther)
			return
		}
		if us.Errors = usageFieldErrors(err, at); us.Errors == nil {
			d.userError(w, r, v, err)
			return
		}
	}
	ki.Error = us.Errors["externalId"]
	d.showKeyWith(w, r, v, http.StatusBadRequest, k, formOf(k), nil, &us, &ki)
}

func (d *Dashboard) keyCredits(w http.ResponseWriter, r *http.Request, v *view) {
	d.keyUsageChange(w, r, v, func(us *usageSettings, _ *keyIdentity) (*service.KeyPatch, []int, string) {
		f, in := readCreditsForm(r, us.Errors)
		us.Form = f
		p := &service.KeyPatch{Credits: keyplane.Optional[service.CreditsInput]{Set: true, Null: in == nil}}
		if in != nil {
			p.Credits.Value = *in
			return p, nil, "Credits saved."
		}
		return p, nil, "Credits saved: this key is unlimited."
	})
}

func (d *Dashboard) keyLimits(w http.ResponseWriter, r *http.Request, v *view) {
	d.keyUsageChange(w, r, v, func(us *usageSettings, _ *keyIdentity) (*service.KeyPatch, []int, string) {
		rows, list, at := readLimitsForm(r, us.Errors)
		us.Rows = withNewRow(rows)
		if list == nil {
			list = []keyplane.NamedRateLimit{}
		}
		return &service.KeyPatch{RateLimits: keyplane.Some(list)}, at, "Rate limits saved."
	})
}

func (d *Dashboard) keyIdentityChange(w http.ResponseWriter, r *http.Request, v *view) {
	d.keyUsageChange(w, r, v, func(_ *usageSettings, ki *keyIdentity) (*service.KeyPatch, []int, string) {
		ki.Form = r.PostFormValue("externalId")
		ext := strings.TrimSpace(ki.Form)
		if ext == "" {
			return &service.KeyPatch{ExternalID: keyplane.Optional[string]{Set: true, Null: true}}, nil, "This key belongs to no identity now."
		}
		return &service.KeyPatch{ExternalID: keyplane.Some(ext)}, nil, "This key belongs to the identity “" + short(ext, 80) + "” now."
	})
}
