package dashboard_test

// HTTP tests of the pages of usage-based keys: a key's credits, rate limits and identity, the
// identities pages, the logs page's tag filter and the usage export. Workspace isolation and CSRF of
// the new routes are in isolation_test.go, generated from the route table like every route's.

import (
	"crypto/rand"
	"encoding/csv"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane/internal/testkit"
)

var reIdentityLink = regexp.MustCompile(`href="(/w/[^/]+/identities/(idn_[0-9A-Za-z]+))" id="identity-link"`)

func testKeyUsageSettings(t *testing.T, s *kpServer) {
	slug := "usage-" + strings.ToLower(rand.Text()[:6])
	s.createWorkspace(t, slug)
	admin := s.as(t, "admin")
	keyID, _ := s.restKey(t, slug, map[string]any{"name": "Metered", "keyType": "secret", "environment": "test",
		"rateLimit": map[string]any{"limit": 100, "windowMs": 60000}})
	page := "/w/" + slug + "/settings/api/" + keyID

	e := admin.get(t, page)
	expect(t, e, http.StatusOK)
	expectText(t, e, "Unlimited: verifications spend no credits", "This key belongs to no identity.", "Save credits", "Save rate limits", "Save identity")
	if v := first(regexp.MustCompile(`id="limit-0-name" name="limit-0-name" value="([^"]*)"`), e.body); v != "default" {
		t.Errorf("the first limit row is %q, want the key's rateLimit as default", v)
	}

	t.Run("Credits", func(t *testing.T) {
		expectRedirect(t, admin.post(t, page+"/credits", url.Values{"credits": {"limited"}, "remaining": {"500"},
			"refillInterval": {"monthly"}, "refillAmount": {"1000"}, "refillDay": {"31"}}), page)
		k := s.key(t, slug, keyID)
		c, _ := k["credits"].(map[string]any)
		ref, _ := c["refill"].(map[string]any)
		if c["remaining"] != float64(500) || ref["interval"] != "monthly" || ref["amount"] != float64(1000) || ref["refillDay"] != float64(31) {
			t.Fatalf("credits after the form: %v", k["credits"])
		}
		e := admin.get(t, page)
		expectText(t, e, "Credits saved.", "Every month on day 31 at 00:00 UTC, back to 1000 credits", "Not yet")
		if !strings.Contains(e.body, `id="credits-remaining">500<`) {
			t.Error("the page does not show 500 remaining")
		}

		// Bad input: a field that is no number, then every field's error next to it; nothing changed.
		e = admin.post(t, page+"/credits", url.Values{"credits": {"limited"}, "remaining": {"lots"}})
		expect(t, e, http.StatusBadRequest)
		if msg, invalid, _ := fieldError(e.body, "remaining"); !invalid || !strings.Contains(msg, "whole number") {
			t.Errorf("remaining lots: %q", msg)
		}
		if !strings.Contains(e.body, `value="lots"`) {
			t.Error("the form is not kept")
		}
		e = admin.post(t, page+"/credits", url.Values{"credits": {"limited"}, "remaining": {"-1"}, "refillInterval": {"monthly"},
			"refillAmount": {"0"}, "refillDay": {"32"}})
		expect(t, e, http.StatusBadRequest)
		for field, want := range map[string]string{"remaining": "from 0", "refillAmount": "from 1", "refillDay": "from 1 to 31"} {
			if msg, invalid, found := fieldError(e.body, field); !found || !invalid || !strings.Contains(msg, want) {
				t.Errorf("%s: error %q (invalid %v, found %v), want %q", field, msg, invalid, found, want)
			}
			if !strings.Contains(e.body, `aria-describedby="`+field+`-hint `+field+`-error"`) {
				t.Errorf("%s: its error is not tied to it with aria-describedby", field)
			}
		}
		// The service's own checks, past the form's: day 0.
		e = admin.post(t, page+"/credits", url.Values{"credits": {"limited"}, "remaining": {"1"}, "refillInterval": {"monthly"}, "refillAmount": {"5"}, "refillDay": {"0"}})
		expect(t, e, http.StatusBadRequest)
		if msg, _, _ := fieldError(e.body, "refillDay"); !strings.Contains(msg, "The refill day must be from 1 to 31") {
			t.Errorf("refill day 0: %q", msg)
		}
		if c, _ := s.key(t, slug, keyID)["credits"].(map[string]any); c["remaining"] != float64(500) {
			t.Errorf("a refused form changed the credits: %v", c)
		}
		// Unlimited again.
		expectRedirect(t, admin.post(t, page+"/credits", url.Values{"credits": {"unlimited"}, "remaining": {"7"}}), page)
		if k := s.key(t, slug, keyID); k["credits"] != nil {
			t.Errorf("credits after unlimited: %v", k["credits"])
		}
		expectRedirect(t, admin.post(t, page+"/credits", url.Values{"credits": {"limited"}, "remaining": {"3"}}), page)
	})

	t.Run("RateLimits", func(t *testing.T) {
		// Edit default, add one.
		expectRedirect(t, admin.post(t, page+"/limits", url.Values{"rows": {"2"},
			"limit-0-name": {"default"}, "limit-0-limit": {"50"}, "limit-0-window": {"30"}, "limit-0-auto": {"on"},
			"limit-1-new": {"true"}, "limit-1-name": {"tokens"}, "limit-1-limit": {"5000"}, "limit-1-window": {"60"}}), page)
		k := s.key(t, slug, keyID)
		rl, _ := k["rateLimits"].([]any)
		if len(rl) != 2 {
			t.Fatalf("rate limits: %v", k["rateLimits"])
		}
		d, tok := rl[0].(map[string]any), rl[1].(map[string]any)
		if d["name"] != "default" || d["limit"] != float64(50) || d["windowMs"] != float64(30000) || tok["name"] != "tokens" || tok["autoApply"] != false || tok["windowMs"] != float64(60000) {
			t.Fatalf("rate limits: %v", rl)
		}
		// Bad input on both rows: each row's errors by its fields; a new empty row is ignored.
		e := admin.post(t, page+"/limits", url.Values{"rows": {"3"},
			"limit-0-name": {"default"}, "limit-0-limit": {"50"}, "limit-0-window": {"30"},
			"limit-1-name": {"Bad Name"}, "limit-1-limit": {"0"}, "limit-1-window": {"999999"},
			"limit-2-new": {"true"}, "limit-2-auto": {"on"}})
		expect(t, e, http.StatusBadRequest)
		for field, want := range map[string]string{"limit-0-auto": "always applies", "limit-1-name": "a-z", "limit-1-limit": "from 1", "limit-1-window": "86400"} {
			if msg, invalid, found := fieldError(e.body, field); !found || !invalid || !strings.Contains(msg, want) {
				t.Errorf("%s: error %q (invalid %v, found %v), want %q", field, msg, invalid, found, want)
			}
		}
		// Remove tokens.
		expectRedirect(t, admin.post(t, page+"/limits", url.Values{"rows": {"2"},
			"limit-0-name": {"default"}, "limit-0-limit": {"50"}, "limit-0-window": {"30"}, "limit-0-auto": {"on"},
			"limit-1-name": {"tokens"}, "limit-1-limit": {"5000"}, "limit-1-window": {"60"}, "limit-1-remove": {"on"}}), page)
		if rl, _ := s.key(t, slug, keyID)["rateLimits"].([]any); len(rl) != 1 {
			t.Errorf("after removing: %v", rl)
		}
	})

	t.Run("Identity", func(t *testing.T) {
		expectRedirect(t, admin.post(t, page+"/identity", url.Values{"externalId": {"customer_42"}}), page)
		k := s.key(t, slug, keyID)
		if k["externalId"] != "customer_42" || k["identityId"] == nil {
			t.Fatalf("identity after the form: %v %v", k["externalId"], k["identityId"])
		}
		e := admin.get(t, page)
		m := reIdentityLink.FindStringSubmatch(e.body)
		if m == nil || m[2] != k["identityId"] {
			t.Fatalf("no link to the identity's page: %s", e.summary())
		}
		expectText(t, admin.get(t, m[1]), "customer_42", "Metered")
		// Too long: the error next to the field.
		e = admin.post(t, page+"/identity", url.Values{"externalId": {strings.Repeat("x", 256)}})
		expect(t, e, http.StatusBadRequest)
		if msg, invalid, _ := fieldError(e.body, "externalId"); !invalid || !strings.Contains(msg, "1 to 255") {
			t.Errorf("externalId too long: %q", msg)
		}
		// Empty: out of its identity.
		expectRedirect(t, admin.post(t, page+"/identity", url.Values{"externalId": {""}}), page)
		if k := s.key(t, slug, keyID); k["identityId"] != nil {
			t.Errorf("identity after clearing: %v", k["identityId"])
		}
	})

	t.Run("OddInput", func(t *testing.T) {
		// Never a 500: numbers out of range, not numbers, too many rows, a missing token.
		for _, f := range []url.Values{
			{"credits": {"limited"}, "remaining": {"99999999999999999999999"}},
			{"credits": {"limited"}, "remaining": {"1"}, "refillInterval": {"weekly"}, "refillAmount": {"1"}},
			{"credits": {"limited"}, "refillInterval": {"monthly"}, "refillAmount": {"1"}, "refillDay": {"-99999999999"}},
			{"credits": {"sometimes"}},
		} {
			if e := admin.post(t, page+"/credits", f); e.status != http.StatusBadRequest && e.status != http.StatusSeeOther {
				t.Errorf("credits %v: %d %s", f, e.status, e.summary())
			}
		}
		for _, f := range []url.Values{
			{"rows": {"99999"}},
			{"rows": {"-1"}},
			{"rows": {"1"}, "limit-0-name": {"x"}, "limit-0-limit": {"1"}, "limit-0-window": {"NaN"}},
			{"rows": {"1"}, "limit-0-name": {"x"}, "limit-0-limit": {"1"}, "limit-0-window": {"1e308"}},
			{"rows": {"1"}, "limit-0-name": {strings.Repeat("é", 100)}, "limit-0-limit": {"-5"}, "limit-0-window": {"-1"}},
		} {
			if e := admin.post(t, page+"/limits", f); e.status != http.StatusBadRequest && e.status != http.StatusSeeOther {
				t.Errorf("limits %v: %d %s", f, e.status, e.summary())
			}
		}
		many := url.Values{"rows": {"11"}}
		for i := range 11 {
			p := "limit-" + string(rune('0'+i%10)) + "-"
			if i == 10 {
				p = "limit-10-"
			}
			many.Set(p+"name", "l"+string(rune('a'+i)))
			many.Set(p+"limit", "1")
			many.Set(p+"window", "1")
			many.Set(p+"auto", "on")
		}
		e := admin.post(t, page+"/limits", many)
		expect(t, e, http.StatusBadRequest)
		if !strings.Contains(e.text(), "at most 10") {
			t.Errorf("11 limits: %s", e.summary())
		}
		errorPage(t, admin.post(t, page+"/credits", url.Values{"csrf": {"made-up"}, "credits": {"unlimited"}}), http.StatusForbidden, "This form has expired")
	})

	t.Run("Roles", func(t *testing.T) {
		// In the default workspace, where the viewer and the developer are members: neither may read
		// keys or identities, so neither may change them; a workspace admin may.
		dk, _ := s.restKey(t, "default", map[string]any{"name": "Roles usage", "keyType": "secret", "environment": "test"})
		base := "/w/default/settings/api/" + dk
		for _, who := range []string{"viewer", "developer"} {
			p := s.as(t, who)
			for path, form := range map[string]url.Values{
				base + "/credits":       {"credits": {"limited"}, "remaining": {"1"}},
				base + "/limits":        {"rows": {"1"}, "limit-0-name": {"x"}, "limit-0-limit": {"1"}, "limit-0-window": {"1"}},
				base + "/identity":      {"externalId": {"planted"}},
				"/w/default/identities": {"externalId": {"planted by " + who}},
			} {
				errorPage(t, p.post(t, path, form), http.StatusForbidden, "does not allow this")
			}
			errorPage(t, p.get(t, "/w/default/identities"), http.StatusForbidden, "does not allow this")
			if strings.Contains(nav(p.get(t, "/w/default/logs").body), "Identities") {
				t.Errorf("the %s's navigation offers Identities", who)
			}
		}
		if k := s.key(t, "default", dk); k["credits"] != nil || k["identityId"] != nil {
			t.Errorf("a refused form changed the key: %v", k)
		}
		wa := s.as(t, "wsadmin")
		if !strings.Contains(nav(wa.get(t, "/w/default/logs").body), "Identities") {
			t.Error("a workspace admin's navigation lacks Identities")
		}
		expectRedirect(t, wa.post(t, base+"/credits", url.Values{"credits": {"limited"}, "remaining": {"9"}}), base)
	})
}

func testIdentities(t *testing.T, s *kpServer) {
	slug := "idn-" + strings.ToLower(rand.Text()[:6])
	s.createWorkspace(t, slug)
	admin := s.as(t, "admin")
	base := "/w/" + slug + "/identities"

	e := admin.get(t, base)
	expect(t, e, http.StatusOK)
	expectText(t, e, "No identities yet.")
	if !strings.Contains(nav(e.body), `aria-current="page">Identities`) {
		t.Error("the navigation does not mark Identities as the current page")
	}

	// Create: bad input, then a good one, then the same externalId again.
	e = admin.post(t, base, url.Values{"externalId": {""}, "meta": {"{not json"}})
	expect(t, e, http.StatusBadRequest)
	if msg, invalid, _ := fieldError(e.body, "meta"); !invalid || !strings.Contains(msg, "JSON") {
		t.Errorf("meta: %q", msg)
	}
	e = admin.post(t, base, url.Values{"externalId": {""}})
	expect(t, e, http.StatusBadRequest)
	if msg, invalid, _ := fieldError(e.body, "externalId"); !invalid || !strings.Contains(msg, "1 to 255") {
		t.Errorf("empty externalId: %q", msg)
	}
	e = admin.post(t, base, url.Values{"externalId": {"acme <corp>"}, "meta": {`{"plan": "pro"}`}})
	loc := e.loc()
	if e.status != http.StatusSeeOther || !strings.HasPrefix(loc, base+"/idn_") {
		t.Fatalf("create: %d %s %s", e.status, loc, e.summary())
	}
	idnID := strings.TrimPrefix(loc, base+"/")
	e = admin.get(t, loc)
	expect(t, e, http.StatusOK)
	expectText(t, e, "Identity “acme <corp>” created.", "acme <corp>", "No keys belong to this identity.", "Save credits", "Save rate limits")
	if strings.Contains(e.body, "acme <corp>") {
		t.Error("the externalId is not escaped")
	}
	e = admin.post(t, base, url.Values{"externalId": {"acme <corp>"}})
	expect(t, e, http.StatusConflict)
	if msg, invalid, _ := fieldError(e.body, "externalId"); !invalid || !strings.Contains(msg, "already has an identity") {
		t.Errorf("duplicate externalId: %q", msg)
	}

	// Edit, credits, limits, bad input.
	expectRedirect(t, admin.post(t, loc, url.Values{"externalId": {"acme"}, "meta": {`{"plan": "team"}`}}), loc)
	expectRedirect(t, admin.post(t, loc+"/credits", url.Values{"credits": {"limited"}, "refillInterval": {"daily"}, "refillAmount": {"250"}}), loc)
	expectRedirect(t, admin.post(t, loc+"/limits", url.Values{"rows": {"1"}, "limit-0-new": {"true"}, "limit-0-name": {"requests"},
		"limit-0-limit": {"10"}, "limit-0-window": {"1"}, "limit-0-auto": {"on"}}), loc)
	st, body := s.call(t, s.admin, "GET", "/v1/identities/"+idnID, s.ws[slug], nil)
	d := data(body)
	c, _ := d["credits"].(map[string]any)
	rl, _ := d["rateLimits"].([]any)
	if st != 200 || d["externalId"] != "acme" || c["remaining"] != float64(250) || len(rl) != 1 {
		t.Fatalf("identity after the forms: %d %v", st, body)
	}
	// A daily refill's day is not read: the form sends it for monthly refills only.
	expectRedirect(t, admin.post(t, loc+"/credits", url.Values{"credits": {"limited"}, "refillInterval": {"daily"}, "refillAmount": {"250"}, "refillDay": {"3"}}), loc)
	e = admin.post(t, loc+"/limits", url.Values{"rows": {"2"}, "limit-0-name": {"a"}, "limit-0-limit": {"1"}, "limit-0-window": {"1"},
		"limit-1-name": {"a"}, "limit-1-limit": {"1"}, "limit-1-window": {"x"}})
	expect(t, e, http.StatusBadRequest)
	if msg, _, _ := fieldError(e.body, "limit-1-window"); !strings.Contains(msg, "seconds") {
		t.Errorf("window x: %q", msg)
	}

	// A key of the identity is listed with a link; delete is refused while it has it.
	keyID, _ := s.restKey(t, slug, map[string]any{"name": "Acme's key", "keyType": "secret", "environment": "test", "identityId": idnID})
	e = admin.get(t, loc)
	expectText(t, e, "Acme's key")
	if !strings.Contains(e.body, `href="/w/`+slug+`/settings/api/`+keyID+`"`) {
		t.Error("the identity's key has no link")
	}
	expectText(t, admin.get(t, loc+"/delete"), "Delete “acme”")
	e = admin.post(t, loc+"/delete", nil)
	expect(t, e, http.StatusConflict)
	expectText(t, e, "still has keys")
	if st, _ := s.call(t, s.admin, "GET", "/v1/identities/"+idnID, s.ws[slug], nil); st != 200 {
		t.Fatal("the identity in use was deleted")
	}

	// Paging: newest first, 50 a page.
	for i := range 51 {
		if st, body := s.call(t, s.admin, "POST", "/v1/identities", s.ws[slug], map[string]any{"externalId": "bulk-" + string(rune('a'+i/26)) + string(rune('a'+i%26))}); st != 201 {
			t.Fatalf("create identity: %d %v", st, body)
		}
	}
	e = admin.get(t, base)
	if n := strings.Count(e.body, `<tr data-identity-id=`); n != 50 {
		t.Errorf("first page: %d identities, want 50", n)
	}
	older := first(reOlder, e.body)
	if older == "" {
		t.Fatal("no link to older identities")
	}
	e = admin.get(t, older)
	if n := strings.Count(e.body, `<tr data-identity-id=`); n != 2 || !strings.Contains(e.body, ">acme<") {
		t.Errorf("second page: %d identities: %s", n, e.summary())
	}

	// Delete once its key is gone.
	expectRedirect(t, admin.post(t, "/w/"+slug+"/settings/api/"+keyID+"/identity", url.Values{"externalId": {""}}), "/w/"+slug+"/settings/api/"+keyID)
	expectRedirect(t, admin.post(t, loc+"/delete", nil), base)
	errorPage(t, admin.get(t, loc), http.StatusNotFound, "not found")
}

func testLogsTagAndExport(t *testing.T, s *kpServer) {
	slug := "tags-" + strings.ToLower(rand.Text()[:6])
	s.createWorkspace(t, slug)
	admin := s.as(t, "admin")
	keyID, value := s.restKey(t, slug, map[string]any{"name": "Tagged", "keyType": "secret", "environment": "test", "externalId": "cust-7"})
	for _, tags := range [][]string{{"checkout", "eu"}, {"search"}, nil} {
		req := map[string]any{"key": value}
		if tags != nil {
			req["tags"] = tags
		}
		if st, body := s.call(t, s.verifier, "POST", "/v1/verify", "", req); st != 200 {
			t.Fatalf("verify: %d %v", st, body)
		}
	}
	base := "/w/" + slug + "/logs"
	e := waitLogs(t, admin, base, 3)
	if !strings.Contains(e.body, `id="tag"`) || !strings.Contains(e.body, `<label for="tag">Tag</label>`) {
		t.Error("no labelled tag filter")
	}
	rows := logRows(e.body)
	if !strings.Contains(rows[1], "search") || !strings.Contains(rows[2], "checkout eu") {
		t.Errorf("rows do not show their tags: %q", rows)
	}
	for q, n := range map[string]int{"checkout": 1, "eu": 1, "search": 1, "nothing": 0} {
		e := admin.get(t, base+"?tag="+q)
		expect(t, e, http.StatusOK)
		if got := len(logRows(e.body)); got != n {
			t.Errorf("tag %s: %d rows, want %d", q, got, n)
		}
	}
	e = admin.get(t, base+"?tag="+strings.Repeat("t", 129))
	expect(t, e, http.StatusOK)
	if !strings.Contains(first(regexp.MustCompile(`(?s)id="filter-error">(.*?)</div>`), e.body), "at most 128") {
		t.Errorf("a tag too long: %s", e.summary())
	}

	// The export: the CSV of this month, by key or identity, as an attachment.
	expectText(t, e, "Export usage")
	var recs [][]string
	testkit.Eventually(t, 10*time.Second, "the export to count the 3 requests", func() bool {
		x := admin.get(t, base+"/export?groupBy=key&granularity=month")
		if x.status != http.StatusOK {
			t.Fatalf("export: %d %s", x.status, x.summary())
		}
		if ct, cd := x.header.Get("Content-Type"), x.header.Get("Content-Disposition"); ct != "text/csv; charset=utf-8" || !strings.HasPrefix(cd, `attachment; filename="usage-`+slug) {
			t.Fatalf("export headers: %q %q", ct, cd)
		}
		var err error
		if recs, err = csv.NewReader(strings.NewReader(x.body)).ReadAll(); err != nil {
			t.Fatalf("export is no CSV: %v", err)
		}
		return len(recs) == 2 && recs[1][3] == "3"
	})
	if strings.Join(recs[0][:6], ",") != "keyId,externalId,start,total,valid,creditsSpent" || recs[1][0] != keyID || recs[1][4] != "3" {
		t.Errorf("export by key: %q", recs)
	}
	// By identity: the header names the group. (The rows by identity come from the hourly rollups,
	// which the request logger writes; their identity is the logger's to carry, not the page's.)
	x := admin.get(t, base+"/export?groupBy=identity&granularity=day")
	r, err := csv.NewReader(strings.NewReader(x.body)).ReadAll()
	if err != nil || len(r) < 1 || r[0][0] != "identityId" || !strings.HasPrefix(x.header.Get("Content-Disposition"), `attachment; filename="usage-`+slug+`-`) ||
		!strings.HasSuffix(x.header.Get("Content-Disposition"), `-by-identity-day.csv"`) {
		t.Errorf("export by identity: %q %v %q", r, err, x.header.Get("Content-Disposition"))
	}
	errorPage(t, admin.get(t, base+"/export?groupBy=customer&granularity=week"), http.StatusBadRequest, "cannot be made")
	// Roles: every role may read logs, so every role may export; another workspace is not found.
	if x := s.as(t, "viewer").get(t, "/w/default/logs/export"); x.status != http.StatusOK || !strings.HasPrefix(x.body, "keyId,") {
		t.Errorf("the viewer's export: %d %s", x.status, x.summary())
	}
	errorPage(t, s.as(t, "viewer").get(t, base+"/export"), http.StatusNotFound, "no workspace here")
}
