package dashboard_test

// The dashboard's forms over HTTP: every validation error shown next to its field, and the happy
// paths of the key, edit, reveal and members forms. Run by TestDashboardHTTP (dashboard_test.go).

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

var (
	reFormNotice = regexp.MustCompile(`(?s)<div class="notice bad" role="alert">(.*?)</div>`)
	reLiveOption = regexp.MustCompile(`<option value="live"[^>]*>[^<]*</option>`)
	reMaxTest    = regexp.MustCompile(`no later than (\d{4}-\d{2}-\d{2})`)
	reExpires    = regexp.MustCompile(`id="expiresAt" name="expiresAt" value="([^"]*)"`)
)

// secretPage checks the page that shows a key value and returns the value, marking the page as
// the one allowed to show it.
func secretPage(t *testing.T, e *exchange, prefix string) string {
	t.Helper()
	expect(t, e, http.StatusOK)
	v := first(reSecret, e.body)
	if !regexp.MustCompile(`^` + prefix + `[0-9A-Za-z]{38}$`).MatchString(v) {
		t.Fatalf("%s %s: the page shows %q, want a value starting %s", e.method, e.path, v, prefix)
	}
	e.secret = v
	if cc := e.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("%s %s: a page with a key value has Cache-Control %q, want no-store", e.method, e.path, cc)
	}
	return v
}

// fieldError returns the error shown inside the .field that holds the control with this id, and
// whether that .field is marked invalid; found is false when there is no such control. The .field is
// the <div class="field …"> around the control, up to its own </div> (nested divs balanced): an error
// just outside it, or in the next field, does not count.
func fieldError(body, field string) (msg string, invalid, found bool) {
	i := strings.Index(body, `id="`+field+`"`)
	if i < 0 {
		return "", false, false
	}
	start := strings.LastIndex(body[:i], `<div class="field`)
	if start < 0 {
		return "", false, false
	}
	end, depth := start, 0
	for {
		open, shut := strings.Index(body[end:], "<div"), strings.Index(body[end:], "</div>")
		if shut < 0 {
			return "", false, false
		}
		if open >= 0 && open < shut {
			depth++
			end += open + len("<div")
			continue
		}
		depth--
		end += shut + len("</div>")
		if depth == 0 {
			break
		}
	}
	if end < i {
		return "", false, false // the control is not inside that div
	}
	seg := body[start:end]
	return strings.TrimSpace(first(reErrorSpan, seg)), strings.HasPrefix(seg, `<div class="field invalid`), true
}

// fieldsetError returns the error of the permissions fieldset and whether it is marked invalid.
func fieldsetError(body string) (string, bool) {
	i := strings.Index(body, "<fieldset")
	if i < 0 {
		return "", false
	}
	j := strings.Index(body[i:], "</fieldset>")
	seg := body[i : i+j]
	return strings.TrimSpace(first(reErrorSpan, seg)), strings.HasPrefix(seg, `<fieldset class="invalid"`)
}

// formNotice is the message at the top of a form (between its heading and the form).
func formNotice(body, headingID string) string {
	i := strings.Index(body, `id="`+headingID+`"`)
	if i < 0 {
		return ""
	}
	j := strings.Index(body[i:], "<form")
	if j < 0 {
		return ""
	}
	return strings.TrimSpace(first(reFormNotice, body[i:i+j]))
}

// keyIDByName finds a key's id in the key table by its name.
func keyIDByName(body, name string) string {
	parts := strings.Split(body, `<tr data-key-id="`)
	for _, p := range parts[1:] {
		if strings.Contains(p[:strings.Index(p, "</tr>")], `<div class="name">`+html.EscapeString(name)+`</div>`) {
			return p[:strings.Index(p, `"`)]
		}
	}
	return ""
}

// row is a key's row in the key table; "" when it is not listed.
func row(body, keyID string) string {
	i := strings.Index(body, `<tr data-key-id="`+keyID+`"`)
	if i < 0 {
		return ""
	}
	return body[i : i+strings.Index(body[i:], "</tr>")]
}

// createKey posts the create form, filling in a name, secret and test unless set.
func (p *kpPerson) createKey(t *testing.T, slug string, set url.Values) *exchange {
	t.Helper()
	f := url.Values{"name": {"A key"}, "keyType": {"secret"}, "environment": {"test"}, "description": {""}}
	for k, v := range set {
		f[k] = v
	}
	return p.post(t, "/w/"+slug+"/settings/api", f)
}

// newKey creates a key through the form and returns its id and value.
func (p *kpPerson) newKey(t *testing.T, slug, prefix string, set url.Values) (string, string) {
	t.Helper()
	v := secretPage(t, p.createKey(t, slug, set), prefix)
	list := p.get(t, "/w/"+slug+"/settings/api")
	keyID := keyIDByName(list.body, set.Get("name"))
	if keyID == "" {
		t.Fatalf("the new key %q is not listed", set.Get("name"))
	}
	return keyID, v
}

func testCreateKeyValidation(t *testing.T, s *kpServer) {
	p := s.as(t, "admin")
	before := len(s.keys(t, "default"))
	inTenDays := time.Now().UTC().AddDate(0, 0, 10).Format("2006-01-02")
	cases := []struct {
		name  string
		set   url.Values
		field string // "permissions": the fieldset
		want  string
	}{
		{"empty name", url.Values{"name": {"   "}}, "name", "Name is required."},
		{"name of 101 characters", url.Values{"name": {strings.Repeat("n", 101)}}, "name", "Name must be at most 100 characters."},
		{"unknown type", url.Values{"keyType": {"root"}}, "keyType", "Type must be secret or publishable."},
		{"unknown environment", url.Values{"environment": {"staging"}}, "environment", "Environment must be live or test."},
		{"test key that never expires", url.Values{"neverExpire": {"on"}}, "expiresAt", "Test keys always expire"},
		{"expiry in the past", url.Values{"expiresAt": {"2020-01-01"}}, "expiresAt", "Expiry must be in the future."},
		{"test key expiring after its TTL", url.Values{"expiresAt": {inTenDays}}, "expiresAt", "Test keys expire at most 3 days after creation"},
		{"expiry that is not a date", url.Values{"expiresAt": {"next week"}}, "expiresAt", "Pick a date"},
		{"bad CIDR", url.Values{"ipAllowlist": {"203.0.113.7\n10.0.0.0/33"}}, "ipAllowlist", `"10.0.0.0/33"`},
		{"hostname in allowlist", url.Values{"ipAllowlist": {"api.example.com"}}, "ipAllowlist", `"api.example.com"`},
		{"origins on a secret key", url.Values{"allowedOrigins": {"https://shop.example.com"}}, "allowedOrigins", "secret keys cannot have allowed origins"},
		{"origin with a path", url.Values{"keyType": {"publishable"}, "allowedOrigins": {"https://shop.example.com/cart"}}, "allowedOrigins", "is not an origin such as https://shop.example.com"},
		{"meta that is not JSON", url.Values{"meta": {`{currency: fiat`}}, "meta", "Metadata must be a JSON object"},
		{"meta that is a JSON array", url.Values{"meta": {`["fiat"]`}}, "meta", "Metadata must be a JSON object."},
		{"permission not in the catalog", url.Values{"permissions": {"orders:read", "billing:admin"}}, "permissions", `"billing:admin" is not in the permission catalog`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !c.set.Has("name") {
				c.set.Set("name", "Invalid: "+c.name)
			}
			e := p.createKey(t, "default", c.set)
			expect(t, e, http.StatusBadRequest)
			var msg string
			var invalid bool
			if c.field == "permissions" {
				msg, invalid = fieldsetError(e.body)
				// What was ticked stays ticked.
				if !strings.Contains(e.body, `value="orders:read" checked`) {
					t.Errorf("the permissions ticked are not kept")
				}
			} else {
				var found bool
				msg, invalid, found = fieldError(e.body, c.field)
				if !found {
					t.Fatalf("no control with id %q on the page", c.field)
				}
			}
			if !strings.Contains(msg, c.want) {
				t.Errorf("error next to %s: %q, want %q (page: %s)", c.field, msg, c.want, e.summary())
			}
			if !invalid {
				t.Errorf("the %s field is not marked invalid", c.field)
			}
			if n := strings.Count(e.body, `class="error"`); n != 1 {
				t.Errorf("%d errors on the page, want the one next to %s", n, c.field)
			}
			if notice := formNotice(e.body, "new-key-title"); notice != "" {
				t.Errorf("a field's error also shows at the top of the form: %q", notice)
			}
			// What the person typed is kept.
			if !strings.Contains(e.body, `id="name" name="name" value="`+html.EscapeString(c.set.Get("name"))+`"`) {
				t.Errorf("the name typed is not kept")
			}
			if c.field != "permissions" && c.field != "keyType" && c.field != "environment" && c.set.Get(c.field) != "" &&
				!strings.Contains(e.text(), c.set.Get(c.field)) {
				t.Errorf("the %s typed is not kept", c.field)
			}
			if strings.Contains(e.body, `id="secret-value"`) {
				t.Errorf("an invalid form shows a key value")
			}
		})
	}
	if after := len(s.keys(t, "default")); after != before {
		t.Errorf("invalid forms created keys: %d → %d", before, after)
	}

	t.Run("NameOf100CharactersIsFine", func(t *testing.T) {
		name := strings.Repeat("é", 100)
		secretPage(t, p.createKey(t, "default", url.Values{"name": {name}}), "kp_sk_test_")
	})

	// Regression: the last day the form advertises for a test key was refused, because a date means
	// the end of that day, past creation + TTL. A date-only expiry is now capped at the limit.
	t.Run("AdvertisedLastDayIsAccepted", func(t *testing.T) {
		page := p.get(t, "/w/default/settings/api")
		last := first(reMaxTest, page.body)
		if last == "" {
			t.Fatalf("the create form does not say the last day a test key may expire")
		}
		e := p.createKey(t, "default", url.Values{"name": {"Expires on the last day"}, "expiresAt": {last}})
		if e.status != http.StatusOK {
			msg, _, _ := fieldError(e.body, "expiresAt")
			t.Fatalf("the form says test keys expire no later than %s, but that date is refused: %d %q", last, e.status, msg)
		}
		secretPage(t, e, "kp_sk_test_")
	})
}

func testLiveModeOff(t *testing.T, s *kpServer) {
	p := s.as(t, "admin")
	s.createWorkspace(t, "nolive")
	page := p.get(t, "/w/nolive/settings/api")
	expect(t, page, http.StatusOK)
	if opt := reLiveOption.FindString(page.body); opt == "" || strings.Contains(opt, "disabled") {
		t.Fatalf("with live mode on, the live option is %q", opt)
	}
	s.patchWorkspace(t, "nolive", map[string]any{"liveModeEnabled": false})

	page = p.get(t, "/w/nolive/settings/api")
	expect(t, page, http.StatusOK)
	opt := reLiveOption.FindString(page.body)
	if !strings.Contains(opt, "disabled") || !strings.Contains(opt, "not available") {
		t.Errorf("with live mode off, the live option is %q; want it disabled and saying so", opt)
	}
	expectText(t, page, "Live mode is turned off for this workspace")

	// A forced post is refused with the reason, at the top of the form, and nothing is made.
	e := p.createKey(t, "nolive", url.Values{"name": {"Forced live key"}, "environment": {"live"}})
	expect(t, e, http.StatusConflict)
	if msg := formNotice(e.body, "new-key-title"); !strings.Contains(msg, "Live mode is off for this workspace") {
		t.Errorf("the refusal says %q, want the reason", msg)
	}
	if strings.Contains(e.body, `id="secret-value"`) {
		t.Errorf("a refused live key shows a value")
	}
	if !strings.Contains(e.body, `value="Forced live key"`) {
		t.Errorf("the form is not kept")
	}
	if n := len(s.keys(t, "nolive")); n != 0 {
		t.Errorf("%d keys in a workspace without live mode after a forced live key", n)
	}
	// Test keys still work.
	secretPage(t, p.createKey(t, "nolive", url.Values{"name": {"Test key"}}), "kp_sk_test_")
}

func testKeyLimit(t *testing.T, s *kpServer) {
	p := s.as(t, "admin")
	s.createWorkspace(t, "limits")
	s.patchWorkspace(t, "limits", map[string]any{"maxKeys": 1})
	firstID, _ := p.newKey(t, "limits", "kp_sk_test_", url.Values{"name": {"The only key"}})
	expectText(t, p.get(t, "/w/limits/settings/api"), "1 of 1 keys in use")

	e := p.createKey(t, "limits", url.Values{"name": {"One too many"}})
	expect(t, e, http.StatusConflict)
	if msg := formNotice(e.body, "new-key-title"); !strings.Contains(msg, "already has 1 keys, its limit") {
		t.Errorf("message at the top of the form: %q, want the limit", msg)
	}
	if strings.Count(e.body, `class="error"`) != 0 {
		t.Errorf("the limit shows as a field's error")
	}
	if !strings.Contains(e.body, `value="One too many"`) {
		t.Errorf("the form is not kept")
	}
	if n := len(s.keys(t, "limits")); n != 1 {
		t.Errorf("%d keys, want 1", n)
	}
	// Revoked keys do not count.
	expectRedirect(t, p.post(t, "/w/limits/settings/api/"+firstID+"/revoke", nil), "/w/limits/settings/api")
	secretPage(t, p.createKey(t, "limits", url.Values{"name": {"One too many"}}), "kp_sk_test_")
}

func testKeyLifecycle(t *testing.T, s *kpServer) {
	p := s.as(t, "admin")
	base := "/w/default/settings/api/"
	set := url.Values{"name": {"Lifecycle key"}, "permissions": {"orders:read", "orders:write"}, "ipAllowlist": {"203.0.113.0/24"}, "meta": {`{"currency": "fiat"}`}}
	created := p.createKey(t, "default", set)
	value := secretPage(t, created, "kp_sk_test_")
	expectText(t, created, "Your new API key", "It will not be shown again")
	list := p.get(t, "/w/default/settings/api")
	keyID := keyIDByName(list.body, "Lifecycle key")
	r := row(list.body, keyID)
	if r == "" {
		t.Fatalf("the new key is not listed")
	}
	masked := value[:len("kp_sk_test_")+4] + "••••" + value[len(value)-4:]
	if !strings.Contains(r, masked) || first(reStatus, r) != "active" {
		t.Errorf("row: want the masked value %s and status active:\n%s", masked, r)
	}
	if strings.Contains(list.body, value) {
		t.Fatalf("the key list shows the secret")
	}
	if c := s.verifyCode(t, value, "203.0.113.7"); c != "VALID" {
		t.Errorf("new key verifies %s", c)
	}
	// The form's allowlist was applied: another address is refused.
	if c := s.verifyCode(t, value, "198.51.100.1"); c != "FORBIDDEN" {
		t.Errorf("new key from outside its allowlist verifies %s", c)
	}

	t.Run("EditValidation", func(t *testing.T) {
		page := p.get(t, base+keyID)
		expect(t, page, http.StatusOK)
		expDate := first(reExpires, page.body)
		if !strings.Contains(page.body, `value="Lifecycle key"`) || expDate == "" {
			t.Fatalf("the edit form is not filled in")
		}
		form := func(k, v string) url.Values {
			f := url.Values{"name": {"Lifecycle key"}, "description": {""}, "permissions": {"orders:read"}, "ipAllowlist": {"203.0.113.0/24"},
				"meta": {`{"currency":"fiat"}`}, "expiresAt": {expDate}, "enabled": {"on"}}
			f.Set(k, v)
			return f
		}
		for _, c := range []struct{ field, value, want string }{
			{"name", "", "Name is required."},
			{"name", strings.Repeat("x", 101), "Name must be at most 100 characters."},
			{"ipAllowlist", "10.0.0.0/33", `"10.0.0.0/33"`},
			{"ipAllowlist", "api.example.com", `"api.example.com"`},
			{"meta", "[1, 2]", "Metadata must be a JSON object."},
		} {
			e := p.post(t, base+keyID, form(c.field, c.value))
			expect(t, e, http.StatusBadRequest)
			msg, invalid, found := fieldError(e.body, c.field)
			if !found || !invalid || !strings.Contains(msg, c.want) {
				t.Errorf("edit %s=%q: error next to the field %q (invalid %v), want %q", c.field, c.value, msg, invalid, c.want)
			}
			if n := strings.Count(e.body, `class="error"`); n != 1 {
				t.Errorf("edit %s=%q: %d errors on the page, want 1", c.field, c.value, n)
			}
			if c.value != "" && !strings.Contains(e.text(), c.value) {
				t.Errorf("edit %s: the value typed is not kept", c.field)
			}
		}
		if k := s.key(t, "default", keyID); k["name"] != "Lifecycle key" || len(k["permissions"].([]any)) != 2 {
			t.Errorf("refused edits changed the key: %v", k)
		}
	})

	t.Run("Edit", func(t *testing.T) {
		page := p.get(t, base+keyID)
		f := url.Values{"name": {"Renamed <b>key</b>"}, "description": {"Used by the shop"}, "permissions": {"orders:read"},
			"ipAllowlist": {"203.0.113.0/24\n2001:db8::/32"}, "meta": {`{"currency":"fiat"}`}, "expiresAt": {first(reExpires, page.body)}, "enabled": {"on"}}
		e := p.post(t, base+keyID, f)
		expectRedirect(t, e, "/w/default/settings/api")
		list := p.get(t, "/w/default/settings/api")
		if got := first(reFlash, list.body); got != "Saved “Renamed <b>key</b>”." {
			t.Errorf("flash %q", got)
		}
		if strings.Contains(list.body, "<b>key</b>") {
			t.Errorf("a key's name is not escaped")
		}
		if !strings.Contains(row(list.body, keyID), "Renamed &lt;b&gt;key&lt;/b&gt;") {
			t.Errorf("the list does not show the new name")
		}
		if first(reFlash, p.get(t, "/w/default/settings/api").body) != "" {
			t.Errorf("the flash shows twice")
		}
		k := s.key(t, "default", keyID)
		if k["name"] != "Renamed <b>key</b>" || k["description"] != "Used by the shop" || len(k["permissions"].([]any)) != 1 || len(k["ipAllowlist"].([]any)) != 2 || k["enabled"] != true {
			t.Errorf("after edit: %v", k)
		}
	})

	t.Run("DisableEnable", func(t *testing.T) {
		e := p.post(t, base+keyID+"/enabled", url.Values{"enabled": {"false"}})
		expectRedirect(t, e, "/w/default/settings/api")
		list := p.get(t, "/w/default/settings/api")
		r := row(list.body, keyID)
		if first(reStatus, r) != "disabled" || !strings.Contains(r, "✗ disabled") || !strings.Contains(r, ">Enable</button>") {
			t.Errorf("disabled key's row:\n%s", r)
		}
		if !strings.Contains(first(reFlash, list.body), "is disabled") {
			t.Errorf("flash %q", first(reFlash, list.body))
		}
		if c := s.verifyCode(t, value, "203.0.113.7"); c != "DISABLED" {
			t.Errorf("disabled key verifies %s", c)
		}
		expectRedirect(t, p.post(t, base+keyID+"/enabled", url.Values{"enabled": {"true"}}), "/w/default/settings/api")
		r = row(p.get(t, "/w/default/settings/api").body, keyID)
		if first(reStatus, r) != "active" || !strings.Contains(r, "✓ Active") || !strings.Contains(r, ">Disable</button>") {
			t.Errorf("enabled key's row:\n%s", r)
		}
		if c := s.verifyCode(t, value, "203.0.113.7"); c != "VALID" {
			t.Errorf("enabled key verifies %s", c)
		}
	})

	t.Run("DeleteEnabledIsRefused", func(t *testing.T) {
		confirm := p.get(t, base+keyID+"/delete")
		expect(t, confirm, http.StatusOK)
		expectText(t, confirm, "Only disabled or revoked keys can be deleted")
		if strings.Contains(confirm.body, ">Delete</button>") {
			t.Errorf("the confirmation offers to delete an enabled key")
		}
		e := p.post(t, base+keyID+"/delete", nil)
		errorPage(t, e, http.StatusConflict, "Only disabled or revoked keys can be deleted")
		if s.key(t, "default", keyID) == nil {
			t.Fatalf("an enabled key was deleted")
		}
	})

	var newValue string
	t.Run("Regenerate", func(t *testing.T) {
		confirm := p.get(t, base+keyID+"/regenerate")
		expect(t, confirm, http.StatusOK)
		if !strings.Contains(confirm.body, `<select id="grace" name="grace">`) || !strings.Contains(confirm.body, ">Regenerate</button>") {
			t.Errorf("the regenerate confirmation has no grace choice or button")
		}
		e := p.post(t, base+keyID+"/regenerate", url.Values{"grace": {"0"}})
		newValue = secretPage(t, e, "kp_sk_test_")
		expectText(t, e, "New value for “Renamed <b>key</b>”", "It will not be shown again")
		if newValue == value {
			t.Fatalf("regenerate gave the same value")
		}
		if c := s.verifyCode(t, value, "203.0.113.7"); c != "EXPIRED" {
			t.Errorf("old value after regenerate without grace: %s, want EXPIRED", c)
		}
		if c := s.verifyCode(t, newValue, "203.0.113.7"); c != "VALID" {
			t.Errorf("new value: %s", c)
		}
		r := row(p.get(t, "/w/default/settings/api").body, keyID)
		if !strings.Contains(r, newValue[:len("kp_sk_test_")+4]+"••••"+newValue[len(newValue)-4:]) {
			t.Errorf("the row does not show the new value's mask:\n%s", r)
		}
	})

	// Regression: an out-of-range grace answered a blank 200 page. userError now always writes a
	// page, and regenerate shows its confirmation again with the reason.
	t.Run("RegenerateWithGraceOutOfRange", func(t *testing.T) {
		e := p.post(t, base+keyID+"/regenerate", url.Values{"grace": {"999999999"}})
		if e.status != http.StatusBadRequest || !strings.Contains(e.text(), "604800") {
			t.Errorf("grace of 999999999 s: status %d, %d bytes of body; want 400 and a page giving the range 0–604800", e.status, len(e.body))
		}
		if c := s.verifyCode(t, newValue, "203.0.113.7"); c != "VALID" {
			t.Errorf("a refused regenerate changed the key: %s", c)
		}
	})

	t.Run("Revoke", func(t *testing.T) {
		confirm := p.get(t, base+keyID+"/revoke")
		expect(t, confirm, http.StatusOK)
		expectText(t, confirm, "Revoking is permanent")
		e := p.post(t, base+keyID+"/revoke", nil)
		expectRedirect(t, e, "/w/default/settings/api")
		list := p.get(t, "/w/default/settings/api")
		r := row(list.body, keyID)
		if first(reStatus, r) != "revoked" || strings.Contains(r, ">Edit</a>") || !strings.Contains(r, ">Delete</a>") {
			t.Errorf("revoked key's row:\n%s", r)
		}
		if !strings.Contains(first(reFlash, list.body), "is revoked") {
			t.Errorf("flash %q", first(reFlash, list.body))
		}
		if c := s.verifyCode(t, newValue, "203.0.113.7"); c != "REVOKED" {
			t.Errorf("revoked key verifies %s", c)
		}
		// A revoked key cannot change.
		errorPage(t, p.post(t, base+keyID+"/enabled", url.Values{"enabled": {"false"}}), http.StatusConflict, "revoked")
		errorPage(t, p.post(t, base+keyID+"/regenerate", url.Values{"grace": {"0"}}), http.StatusConflict, "revoked")
	})

	t.Run("DeleteRevoked", func(t *testing.T) {
		e := p.post(t, base+keyID+"/delete", nil)
		expectRedirect(t, e, "/w/default/settings/api")
		list := p.get(t, "/w/default/settings/api")
		if row(list.body, keyID) != "" {
			t.Errorf("a deleted key is still listed")
		}
		if !strings.Contains(first(reFlash, list.body), "is deleted") {
			t.Errorf("flash %q", first(reFlash, list.body))
		}
		if s.key(t, "default", keyID) != nil {
			t.Errorf("the API still has the deleted key")
		}
		errorPage(t, p.get(t, base+keyID), http.StatusNotFound, "")
		if c := s.verifyCode(t, newValue, "203.0.113.7"); c != "NOT_FOUND" {
			t.Errorf("deleted key verifies %s", c)
		}
	})
}

func testReveal(t *testing.T, s *kpServer) {
	p := s.as(t, "admin")
	base := "/w/default/settings/api/"

	t.Run("Publishable", func(t *testing.T) {
		created := p.createKey(t, "default", url.Values{"name": {"Widget key"}, "keyType": {"publishable"}, "allowedOrigins": {"https://Shop.example.com"}})
		value := secretPage(t, created, "kp_pk_test_")
		if strings.Contains(created.text(), "It will not be shown again") {
			t.Errorf("a publishable key's page says it will not be shown again")
		}
		list := p.get(t, "/w/default/settings/api")
		keyID := keyIDByName(list.body, "Widget key")
		if !strings.Contains(row(list.body, keyID), `href="/w/default/settings/api/`+keyID+`/reveal"`) {
			t.Errorf("no Reveal link for a publishable key")
		}
		confirm := p.get(t, base+keyID+"/reveal")
		expect(t, confirm, http.StatusOK)
		if strings.Contains(confirm.body, `id="password"`) {
			t.Errorf("revealing a publishable key asks for the password")
		}
		if got := secretPage(t, p.post(t, base+keyID+"/reveal", nil), "kp_pk_test_"); got != value {
			t.Errorf("revealed %s…, created %s…", got[:14], value[:14])
		}
		if k := s.key(t, "default", keyID); len(k["allowedOrigins"].([]any)) != 1 || k["allowedOrigins"].([]any)[0] != "https://shop.example.com" {
			t.Errorf("allowed origins: %v", k["allowedOrigins"])
		}
	})

	t.Run("RecoverableSecret", func(t *testing.T) {
		created := p.createKey(t, "default", url.Values{"name": {"Recoverable key"}, "recoverable": {"on"}})
		value := secretPage(t, created, "kp_sk_test_")
		if strings.Contains(created.text(), "It will not be shown again") {
			t.Errorf("a recoverable key's page says it will not be shown again")
		}
		keyID := keyIDByName(p.get(t, "/w/default/settings/api").body, "Recoverable key")

		confirm := p.get(t, base+keyID+"/reveal")
		expect(t, confirm, http.StatusOK)
		if !strings.Contains(confirm.body, `<input type="password" id="password" name="password"`) {
			t.Fatalf("revealing a secret key right after sign-in does not ask for the password")
		}
		// With a wrong password: the error, and no value.
		for _, pw := range []string{"not my password"} {
			e := p.post(t, base+keyID+"/reveal", url.Values{"password": {pw}})
			expect(t, e, http.StatusBadRequest)
			if msg := first(regexp.MustCompile(`(?s)id="confirm-error">(.*?)</div>`), e.body); !strings.Contains(msg, "That password is not right") {
				t.Errorf("password %q: error %q", pw, msg)
			}
			if strings.Contains(e.body, `id="secret-value"`) || strings.Contains(e.body, value) {
				t.Fatalf("a wrong password revealed the key")
			}
			if !strings.Contains(e.body, `id="password"`) {
				t.Errorf("the password field is gone after a wrong password")
			}
		}
		got := secretPage(t, p.post(t, base+keyID+"/reveal", url.Values{"password": {thePassword}}), "kp_sk_test_")
		if got != value {
			t.Errorf("revealed another value")
		}
		// Within five minutes, no password again.
		confirm = p.get(t, base+keyID+"/reveal")
		if strings.Contains(confirm.body, `id="password"`) {
			t.Errorf("a second reveal within 5 minutes asks for the password again")
		}
		if got := secretPage(t, p.post(t, base+keyID+"/reveal", nil), "kp_sk_test_"); got != value {
			t.Errorf("second reveal: another value")
		}
		// The password entered in this workspace opens reveals here only: in another workspace of
		// the same session it is asked for again.
		secretPage(t, p.createKey(t, "second", url.Values{"name": {"Second's recoverable key"}, "recoverable": {"on"}}), "kp_sk_test_")
		secondID := keyIDByName(p.get(t, "/w/second/settings/api").body, "Second's recoverable key")
		if !strings.Contains(p.get(t, "/w/second/settings/api/"+secondID+"/reveal").body, `id="password"`) {
			t.Errorf("the password entered in one workspace opened reveals in another")
		}
		// Another person's session has not entered a password: it is asked for.
		other := s.as(t, "wsadmin")
		if !strings.Contains(other.get(t, base+keyID+"/reveal").body, `id="password"`) {
			t.Errorf("another session may reveal without the password")
		}
	})

	t.Run("NotRecoverable", func(t *testing.T) {
		// Even re-authenticated, a secret shown once stays unseen.
		keyID, _ := p.newKey(t, "default", "kp_sk_test_", url.Values{"name": {"Shown once"}})
		r := row(p.get(t, "/w/default/settings/api").body, keyID)
		if strings.Contains(r, "/reveal") {
			t.Errorf("a Reveal link for a key that is not recoverable")
		}
		e := p.post(t, base+keyID+"/reveal", url.Values{"password": {thePassword}})
		errorPage(t, e, http.StatusForbidden, "not recoverable")
		if strings.Contains(e.body, `id="secret-value"`) {
			t.Errorf("a key that is not recoverable was revealed")
		}
	})
}

func testMembers(t *testing.T, s *kpServer) {
	p := s.as(t, "admin")
	for _, c := range []struct {
		name, email, role, field, want string
	}{
		{"bad email", "not-an-email", "developer", "email", "Email must be an email address"},
		{"email with a name", "Ana <ana@example.com>", "developer", "email", "Email must be an email address"},
		{"bad role", "ana@example.com", "superuser", "role", "Role must be one of owner, admin, developer, viewer"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := p.post(t, "/w/default/members", url.Values{"email": {c.email}, "role": {c.role}})
			expect(t, e, http.StatusBadRequest)
			msg, invalid, found := fieldError(e.body, c.field)
			if !found || !invalid || !strings.Contains(msg, c.want) {
				t.Errorf("error next to %s: %q (invalid %v), want %q", c.field, msg, invalid, c.want)
			}
			if n := strings.Count(e.body, `class="error"`); n != 1 {
				t.Errorf("%d errors on the page, want 1", n)
			}
			if !strings.Contains(e.body, `id="email" name="email" value="`+html.EscapeString(c.email)+`"`) {
				t.Errorf("the email typed is not kept")
			}
		})
	}
	t.Run("AdminCannotMakeOwner", func(t *testing.T) {
		e := s.as(t, "wsadmin").post(t, "/w/default/members", url.Values{"email": {"ana@example.com"}, "role": {"owner"}})
		expect(t, e, http.StatusBadRequest)
		if msg, _, _ := fieldError(e.body, "role"); !strings.Contains(msg, "only an owner may make another owner") {
			t.Errorf("error next to role: %q", msg)
		}
	})
	t.Run("Add", func(t *testing.T) {
		e := p.post(t, "/w/default/members", url.Values{"email": {"New.Member@example.com"}, "role": {"developer"}})
		expectRedirect(t, e, "/w/default/members")
		page := p.get(t, "/w/default/members")
		if got := first(reFlash, page.body); !strings.Contains(got, "new.member@example.com is invited as developer") {
			t.Errorf("flash %q", got)
		}
		if !regexp.MustCompile(`new\.member@example\.com</td><td data-label="Role"><span class="badge">developer</span>`).MatchString(page.body) {
			t.Errorf("the new member is not listed as a developer")
		}
		if strings.Contains(page.body, "ana@example.com") {
			t.Errorf("a refused member was added")
		}
	})
}
