package dashboard

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/service"
)

// keyForm is the create and edit form as the person filled it in, kept to show it again with errors.
type keyForm struct {
	Name        string
	Description string
	KeyType     string
	Environment string
	Permissions []string
	IPAllowlist string
	Origins     string
	Meta        string
	NeverExpire bool
	ExpiresAt   string // a date, yyyy-mm-dd
	Recoverable bool
	Enabled     bool
}

type keyRow struct {
	Key    *keyplane.APIKey
	Status keyplane.Status
	Masked string
	// Platforms: in the portal, a key holding keyplane's own permissions, which the platform
	// manages: shown, never changed there (the service refuses it).
	Platforms bool
}

type keysData struct {
	Keys         []keyRow
	Next         string
	Form         keyForm
	Errors       map[string]string
	Catalog      []keyplane.CatalogEntry
	LiveDisabled bool
	TestTTL      string
	MaxTestDate  string
	Today        string
	Count        int
	Max          int
}

func rowOf(k *keyplane.APIKey, now time.Time) keyRow {
	return keyRow{Key: k, Status: k.Status(now), Masked: k.Start + "••••" + k.End}
}

func (d *Dashboard) keysPage(w http.ResponseWriter, r *http.Request, v *view) {
	d.showKeys(w, r, v, http.StatusOK, keyForm{KeyType: "secret", Environment: "test", Enabled: true}, nil)
}

func (d *Dashboard) showKeys(w http.ResponseWriter, r *http.Request, v *view, status int, form keyForm, errs map[string]string) {
	v.Title = "API keys"
	keys, next, err := d.svc.ListAPIKeys(r.Context(), v.Caller, v.Workspace.ID, keyplane.KeyFilter{Limit: 100, Cursor: r.URL.Query().Get("cursor")})
	if err != nil {
		d.userError(w, r, v, err)
		return
	}
	kd := keysData{Next: next, Form: form, Errors: errs, Catalog: d.catalog(v), LiveDisabled: !v.Workspace.LiveModeEnabled,
		TestTTL: human(time.Duration(v.Workspace.TestKeyTTLSeconds) * time.Second), Max: v.Workspace.MaxKeys,
		Today: v.Now.UTC().Format("2006-01-02"), MaxTestDate: v.Now.Add(time.Duration(v.Workspace.TestKeyTTLSeconds) * time.Second).UTC().Format("2006-01-02")}
	for i := range keys {
		row := rowOf(&keys[i], v.Now)
		row.Platforms = v.Portal != nil && len(keyplaneOnly(keys[i].Permissions)) > 0
		kd.Keys = append(kd.Keys, row)
		if keys[i].RevokedAt == nil {
			kd.Count++
		}
	}
	v.Data = kd
	d.render(w, r, status, "keys", v)
}

func human(d time.Duration) string {
	switch {
	case d%(24*time.Hour) == 0:
		return count(int(d/(24*time.Hour)), "day")
	case d%time.Hour == 0:
		return count(int(d/time.Hour), "hour")
	}
	return count(int(d/time.Minute), "minute")
}

func (d *Dashboard) readKeyForm(r *http.Request) keyForm {
	r.ParseForm()
	return keyForm{
		Name: r.PostFormValue("name"), Description: r.PostFormValue("description"), KeyType: r.PostFormValue("keyType"),
		Environment: r.PostFormValue("environment"), Permissions: r.PostForm["permissions"], IPAllowlist: r.PostFormValue("ipAllowlist"),
		Origins: r.PostFormValue("allowedOrigins"), Meta: r.PostFormValue("meta"), NeverExpire: r.PostFormValue("neverExpire") == "on",
		ExpiresAt: r.PostFormValue("expiresAt"), Recoverable: r.PostFormValue("recoverable") == "on", Enabled: r.PostFormValue("enabled") == "on",
	}
}

// lines splits a text area into entries: one per line or comma-separated.
func lines(s string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == ',' || r == '\r' }) {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// expiry turns the form's expiry choice into the service's: "never", a date (the end of that day,
// UTC), or nothing (the default: test keys get the workspace's TTL, live keys never expire).
func expiry(f keyForm, errs map[string]string) keyplane.Optional[time.Time] {
	if f.NeverExpire {
		return keyplane.Optional[time.Time]{Set: true, Null: true}
	}
	if f.ExpiresAt == "" {
		return keyplane.Optional[time.Time]{}
	}
	t, err := time.Parse("2006-01-02", f.ExpiresAt)
	if err != nil {
		if t, err = time.Parse("2006-01-02T15:04", f.ExpiresAt); err != nil {
			errs["expiresAt"] = "Pick a date, or tick “Never expire”."
			return keyplane.Optional[time.Time]{}
		}
		return keyplane.Some(t)
	}
	return keyplane.Some(t.Add(24*time.Hour - time.Second))
}

// capTestExpiry keeps a date-only expiry of a test key within its limit: a date means the end of that
// day, which for the last allowed day lies past creation + TTL.
func capTestExpiry(exp keyplane.Optional[time.Time], env string, limit time.Time) keyplane.Optional[time.Time] {
	if env == string(keyplane.EnvTest) && exp.Set && !exp.Null && exp.Value.After(limit) && exp.Value.Sub(limit) < 24*time.Hour {
		exp.Value = limit
	}
	return exp
}

func meta(s string, errs map[string]string) json.RawMessage {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil
	}
	if !json.Valid([]byte(s)) {
		errs["meta"] = `Metadata must be a JSON object, such as {"currency": "fiat"}.`
		return nil
	}
	return json.RawMessage(s)
}

func (d *Dashboard) createKey(w http.ResponseWriter, r *http.Request, v *view) {
	f := d.readKeyForm(r)
	errs := map[string]string{}
	in := service.CreateKeyInput{
		Name: f.Name, Description: f.Description, KeyType: keyplane.KeyType(f.KeyType), Environment: keyplane.Environment(f.Environment),
		Permissions: f.Permissions, IPAllowlist: lines(f.IPAllowlist), AllowedOrigins: lines(f.Origins),
		Meta: meta(f.Meta, errs), Recoverable: f.Recoverable,
	}
	ttl := time.Duration(v.Workspace.TestKeyTTLSeconds) * time.Second
	in.ExpiresAt = capTestExpiry(expiry(f, errs), f.Environment, d.now().Add(ttl))
	if len(errs) > 0 {
		d.showKeys(w, r, v, http.StatusBadRequest, f, errs)
		return
	}
	k, value, err := d.svc.CreateAPIKey(r.Context(), v.Caller, v.Workspace.ID, in)
	if err != nil {
		if fe := fieldErrors(err); fe != nil {
			d.showKeys(w, r, v, http.StatusBadRequest, f, fe)
		} else if keyplane.ErrorCode(err) == keyplane.CodeKeyLimitReached || keyplane.ErrorCode(err) == keyplane.CodeLiveModeDisabled {
			d.showKeys(w, r, v, http.StatusConflict, f, map[string]string{"form": message(err)})
		} else {
			d.userError(w, r, v, err)
		}
		return
	}
	d.showSecret(w, r, v, k, value, "Your new API key", true)
}

type secretData struct {
	Key      keyRow
	Value    string
	Heading  string
	OnceOnly bool
}

// showSecret renders a key's value right in the answer to the POST that made or revealed it: it is
// never stored anywhere it could be shown again.
func (d *Dashboard) showSecret(w http.ResponseWriter, r *http.Request, v *view, k *keyplane.APIKey, value, heading string, once bool) {
	v.Title = heading
	v.Data = secretData{Key: rowOf(k, v.Now), Value: value, Heading: heading, OnceOnly: once && k.KeyType == keyplane.KeyTypeSecret && !k.Recoverable}
	d.render(w, r, http.StatusOK, "secret", v)
}

type keyPageData struct {
	Row     keyRow
	Form    keyForm
	Errors  map[string]string
	Catalog []keyplane.CatalogEntry
	TestTTL string
	MaxDate string
	Usage   *chart // nil for people who may not read logs
	LogsURL string
	// Settings are the key's credits and rate limits, Identity the identity it belongs to.
	Settings usageSettings
	Identity keyIdentity
	// Leaks are the key's leak reports, newest first: the page's banner says where, when and what
	// was done.
	Leaks []leakNotice
	// Brand names the platform on the page of a key it manages (Row.Platforms).
	Brand string
}

// leakNotice is one leak report of a key, as its page says it.
type leakNotice struct {
	Source, URL string
	// Link: URL is an http(s) address, shown as a link (rel=noreferrer, the report's own words).
	Link       bool
	ReportedAt time.Time
	Done       string
}

func leakNotices(ls []keyplane.KeyLeak) []leakNotice {
	out := make([]leakNotice, 0, len(ls))
	for _, l := range ls {
		done := map[keyplane.LeakAction]string{
			keyplane.LeakRevoked:  "the key was revoked",
			keyplane.LeakDisabled: "the key was disabled",
			keyplane.LeakNotified: "the key was left active, as the workspace's leak policy says (notify)",
		}[l.Action]
		if done == "" {
			done = "nothing needed doing (the key was already revoked or disabled, or the value had expired)"
		}
		link := strings.HasPrefix(l.URL, "https://") || strings.HasPrefix(l.URL, "http://")
		out = append(out, leakNotice{Source: l.Source, URL: l.URL, Link: link, ReportedAt: l.ReportedAt, Done: done})
	}
	return out
}

func formOf(k *keyplane.APIKey) keyForm {
	f := keyForm{Name: k.Name, Description: k.Description, KeyType: string(k.KeyType), Environment: string(k.Environment), Permissions: k.Permissions,
		IPAllowlist: strings.Join(k.IPAllowlist, "\n"), Origins: strings.Join(k.AllowedOrigins, "\n"), NeverExpire: k.ExpiresAt == nil,
		Recoverable: k.Recoverable, Enabled: k.Enabled}
	if string(k.Meta) != "{}" {
		f.Meta = string(k.Meta)
	}
	if k.ExpiresAt != nil {
		f.ExpiresAt = k.ExpiresAt.UTC().Format("2006-01-02")
	}
	return f
}

func (d *Dashboard) editKeyPage(w http.ResponseWriter, r *http.Request, v *view) {
	k, err := d.svc.GetAPIKey(r.Context(), v.Caller, v.Workspace.ID, r.PathValue("id"))
	if err != nil {
		d.userError(w, r, v, err)
		return
	}
	d.showKey(w, r, v, http.StatusOK, k, formOf(k), nil)
}

func (d *Dashboard) showKey(w http.ResponseWriter, r *http.Request, v *view, status int, k *keyplane.APIKey, f keyForm, errs map[string]string) {
	d.showKeyWith(w, r, v, status, k, f, errs, nil, nil)
}

// showKeyWith shows a key's page; us and ki, when not nil, are its usage forms as filled in.
func (d *Dashboard) showKeyWith(w http.ResponseWriter, r *http.Request, v *view, status int, k *keyplane.APIKey, f keyForm, errs map[string]string, us *usageSettings, ki *keyIdentity) {
	v.Title = k.Name
	kd := keyPageData{Row: rowOf(k, v.Now), Form: f, Errors: errs, Catalog: d.catalog(v),
		TestTTL: human(time.Duration(v.Workspace.TestKeyTTLSeconds) * time.Second),
		MaxDate: k.CreatedAt.Add(time.Duration(v.Workspace.TestKeyTTLSeconds) * time.Second).UTC().Format("2006-01-02")}
	kd.Settings, kd.Identity = d.keyPageOf(v, k)
	if v.Portal != nil && len(keyplaneOnly(k.Permissions)) > 0 {
		kd.Row.Platforms, kd.Brand = true, v.Portal.Brand
	}
	if leaks, err := d.svc.KeyLeaks(r.Context(), v.Caller, v.Workspace.ID, k.ID); err == nil {
		kd.Leaks = leakNotices(leaks)
	} else {
		// The page is still worth showing without the banner; the log says why it is missing.
		d.log.ErrorContext(r.Context(), "key page: leak reports", "err", err)
	}
	if us != nil {
		kd.Settings = *us
	}
	if ki != nil {
		kd.Identity = *ki
	}
	v.Data = kd
	if v.Can(keyplane.PermLogsRead) {
		data := v.Data.(keyPageData)
		rg := rangeNamed(r.URL.Query().Get("range"))
		buckets, err := d.usage(r, v, k.ID, rg)
		if err != nil {
			d.serverError(w, r, err)
			return
		}
		c := usageChart("Requests per "+string(rg.Granularity)+", "+lower(rg.Label), buckets, rg.Granularity)
		c.Range, c.Links = rg.Name, rangeLinks(r.URL, rg)
		data.Usage, data.LogsURL = &c, v.WS("/logs?key="+url.QueryEscape(k.ID))
		v.Data = data
	}
	d.render(w, r, status, "key", v)
}

func (d *Dashboard) editKey(w http.ResponseWriter, r *http.Request, v *view) {
	k, err := d.svc.GetAPIKey(r.Context(), v.Caller, v.Workspace.ID, r.PathValue("id"))
	if err != nil {
		d.userError(w, r, v, err)
		return
	}
	f := d.readKeyForm(r)
	errs := map[string]string{}
	p := service.KeyPatch{
		Name: keyplane.Some(f.Name), Description: keyplane.Some(f.Description), Permissions: keyplane.Some(f.Permissions),
		IPAllowlist: keyplane.Some(lines(f.IPAllowlist)), Meta: keyplane.Some(meta(f.Meta, errs)), Enabled: keyplane.Some(f.Enabled),
	}
	if k.KeyType == keyplane.KeyTypePublishable {
		p.AllowedOrigins = keyplane.Some(lines(f.Origins))
	}
	// The expiry changes only when the person changed it, so that saving a name does not trip over a
	// test key's expiry rules.
	if exp := expiry(f, errs); !(formOf(k).NeverExpire == f.NeverExpire && formOf(k).ExpiresAt == f.ExpiresAt) {
		p.ExpiresAt = capTestExpiry(exp, string(k.Environment), k.CreatedAt.Add(time.Duration(v.Workspace.TestKeyTTLSeconds)*time.Second))
		if !exp.Set {
			p.ExpiresAt = keyplane.Optional[time.Time]{Set: true, Null: true}
		}
	}
	if len(errs) > 0 {
		d.showKey(w, r, v, http.StatusBadRequest, k, f, errs)
		return
	}
	if _, err := d.svc.UpdateAPIKey(r.Context(), v.Caller, v.Workspace.ID, k.ID, p); err != nil {
		if fe := fieldErrors(err); fe != nil {
			d.showKey(w, r, v, http.StatusBadRequest, k, f, fe)
			return
		}
		d.userError(w, r, v, err)
		return
	}
	d.flash(w, r, "Saved “"+strings.TrimSpace(f.Name)+"”.")
	http.Redirect(w, r, v.WS("/settings/api"), http.StatusSeeOther)
}

func (d *Dashboard) toggleKey(w http.ResponseWriter, r *http.Request, v *view) {
	on := r.PostFormValue("enabled") == "true"
	k, err := d.svc.UpdateAPIKey(r.Context(), v.Caller, v.Workspace.ID, r.PathValue("id"), service.KeyPatch{Enabled: keyplane.Some(on)})
	if err != nil {
		d.userError(w, r, v, err)
		return
	}
	if on {
		d.flash(w, r, "“"+k.Name+"” is enabled: it works again.")
	} else {
		d.flash(w, r, "“"+k.Name+"” is disabled: requests with it are refused until you enable it.")
	}
	http.Redirect(w, r, v.WS("/settings/api"), http.StatusSeeOther)
}

type confirmData struct {
	Row         keyRow
	Action      string
	NeedsPasswd bool
	Error       string
}

// confirmPage asks before a destructive or sensitive action; it is what the buttons lead to without
// JavaScript (with it, the page's script asks in a dialog and posts directly).
func (d *Dashboard) confirmPage(w http.ResponseWriter, r *http.Request, v *view) {
	action := r.PathValue("action")
	if action != "regenerate" && action != "revoke" && action != "delete" && action != "reveal" {
		d.fail(w, r, http.StatusNotFound, "There is no page here.")
		return
	}
	k, err := d.svc.GetAPIKey(r.Context(), v.Caller, v.Workspace.ID, r.PathValue("id"))
	if err != nil {
		d.userError(w, r, v, err)
		return
	}
	d.showConfirm(w, r, v, http.StatusOK, k, action, "")
}

func (d *Dashboard) showConfirm(w http.ResponseWriter, r *http.Request, v *view, status int, k *keyplane.APIKey, action, errMsg string) {
	titles := map[string]string{"regenerate": "Regenerate", "revoke": "Revoke", "delete": "Delete", "reveal": "Reveal"}
	v.Title = titles[action] + " “" + k.Name + "”"
	v.Data = confirmData{Row: rowOf(k, v.Now), Action: action, Error: errMsg,
		NeedsPasswd: action == "reveal" && k.KeyType == keyplane.KeyTypeSecret && !v.Caller.Reauthenticated}
	d.render(w, r, status, "confirm", v)
}

func (d *Dashboard) rotateKey(w http.ResponseWriter, r *http.Request, v *view) {
	grace, err := strconv.Atoi(r.PostFormValue("grace"))
	if err != nil || grace < 0 {
		grace = 0
	}
	k, value, err := d.svc.RotateAPIKey(r.Context(), v.Caller, v.Workspace.ID, r.PathValue("id"), time.Duration(grace)*time.Second)
	if keyplane.ErrorCode(err) == keyplane.CodeInvalidRequest {
		if cur, gerr := d.svc.GetAPIKey(r.Context(), v.Caller, v.Workspace.ID, r.PathValue("id")); gerr == nil {
			d.showConfirm(w, r, v, http.StatusBadRequest, cur, "regenerate", message(err))
			return
		}
	}
	if err != nil {
		d.userError(w, r, v, err)
		return
	}
	d.showSecret(w, r, v, k, value, "New value for “"+k.Name+"”", true)
}

func (d *Dashboard) revokeKey(w http.ResponseWriter, r *http.Request, v *view) {
	k, err := d.svc.RevokeAPIKey(r.Context(), v.Caller, v.Workspace.ID, r.PathValue("id"))
	if err != nil {
		d.userError(w, r, v, err)
		return
	}
	d.flash(w, r, "“"+k.Name+"” is revoked. Requests with it are refused from now on.")
	http.Redirect(w, r, v.WS("/settings/api"), http.StatusSeeOther)
}

func (d *Dashboard) deleteKey(w http.ResponseWriter, r *http.Request, v *view) {
	k, err := d.svc.GetAPIKey(r.Context(), v.Caller, v.Workspace.ID, r.PathValue("id"))
	if err == nil {
		err = d.svc.DeleteAPIKey(r.Context(), v.Caller, v.Workspace.ID, k.ID)
	}
	if err != nil {
		d.userError(w, r, v, err)
		return
	}
	d.flash(w, r, "“"+k.Name+"” is deleted. The audit trail keeps its history.")
	http.Redirect(w, r, v.WS("/settings/api"), http.StatusSeeOther)
}

func (d *Dashboard) revealKey(w http.ResponseWriter, r *http.Request, v *view) {
	k, err := d.svc.GetAPIKey(r.Context(), v.Caller, v.Workspace.ID, r.PathValue("id"))
	if err != nil {
		d.userError(w, r, v, err)
		return
	}
	if k.KeyType == keyplane.KeyTypeSecret && !v.Caller.Reauthenticated && v.Portal != nil {
		// No password to ask for: the platform vouched for its user when the link was made, for
		// the first minutes of the session only.
		d.showConfirm(w, r, v, http.StatusForbidden, k, "reveal", "")
		return
	}
	if k.KeyType == keyplane.KeyTypeSecret && !v.Caller.Reauthenticated {
		if err := d.svc.Reauthenticate(r.Context(), v.Caller, v.Session, v.User, r.PostFormValue("password")); err != nil {
			switch keyplane.ErrorCode(err) {
			case keyplane.CodeInvalidRequest:
				d.showConfirm(w, r, v, http.StatusBadRequest, k, "reveal", message(err))
				return
			case keyplane.CodeRateLimited, keyplane.CodeUnavailable:
				d.showConfirm(w, r, v, retryLater(w, err), k, "reveal", message(err))
				return
			}
			d.serverError(w, r, err)
			return
		}
	}
	_, value, err := d.svc.RevealAPIKey(r.Context(), v.Caller, v.Workspace.ID, k.ID)
	if err != nil {
		if keyplane.ErrorCode(err) == keyplane.CodeForbidden {
			d.fail(w, r, http.StatusForbidden, message(err))
			return
		}
		d.userError(w, r, v, err)
		return
	}
	d.showSecret(w, r, v, k, value, "“"+k.Name+"”", false)
}

// keyplaneOnly is the keyplane permissions among perms.
func keyplaneOnly(perms []string) []string {
	var out []string
	for _, p := range perms {
		if keyplane.IsBuiltinPermission(p) {
			out = append(out, p)
		}
	}
	return out
}
