package dashboard_test

// Security tests generated from the dashboard's own route table (dashboard.Routes, the patterns as
// registered on its ServeMux): workspace isolation, CSRF on every state-changing route, session
// fixation and sign-out, brute-force throttling, and cookie flags. The server-backed ones run in
// TestDashboardHTTP (dashboard_test.go) with a workspace and people of their own;
// TestDashboardRouteTable and TestDashboardCookiesOverTLS need no server.
//
// What "not found" means here: the dashboard answers a resource of another workspace exactly as it
// answers one that does not exist, 404 with the same message, as the contract asks of the API ("a
// resource of another workspace is 404 not_found, never 403: nothing tells a caller that it
// exists"). A workspace the person is not a member of is a 404 too, the same page as a workspace that
// does not exist. Nothing redirects to the person's own workspace instead.

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/dashboard"
	"github.com/keyplane/keyplane/internal/id"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/service/servicetest"
	"github.com/keyplane/keyplane/internal/testkit"
)

// --- the route table ---

// routePattern is one pattern of the dashboard's ServeMux, taken apart.
type routePattern struct {
	pattern, method, path string
	wildcards             []string // in order, without {$}
}

var (
	reWildcard     = regexp.MustCompile(`\{([^}]*)\}`)
	reChartSummary = regexp.MustCompile(`id="chart-summary">([^<]*)<`)
)

func routeTable() []routePattern {
	var out []routePattern
	for _, p := range dashboard.Routes() {
		r := routePattern{pattern: p, path: p}
		if m, rest, ok := strings.Cut(p, " "); ok {
			r.method, r.path = m, rest
		}
		for _, m := range reWildcard.FindAllStringSubmatch(r.path, -1) {
			if name := strings.TrimSuffix(m[1], "..."); name != "$" {
				r.wildcards = append(r.wildcards, name)
			}
		}
		out = append(out, r)
	}
	return out
}

func (r routePattern) inWorkspace() bool { return slices.Contains(r.wildcards, "slug") }

// takesID: a wildcard other than the workspace's slug names something in the workspace.
func (r routePattern) takesID() bool {
	return slices.ContainsFunc(r.wildcards, func(w string) bool { return w != "slug" })
}

// changes: every method but GET and HEAD may change something, so must carry the form token. The
// catch-all pattern, which has no method, is the not-found page.
func (r routePattern) changes() bool {
	return r.method != "" && r.method != http.MethodGet && r.method != http.MethodHead
}

func (r routePattern) fill(vars map[string]string) string {
	return reWildcard.ReplaceAllStringFunc(r.path, func(m string) string {
		name := strings.TrimSuffix(strings.Trim(m, "{}"), "...")
		if name == "$" {
			return ""
		}
		return url.PathEscape(vars[name])
	})
}

// outsideWorkspaces are the routes that name no workspace, and why none can show or change what a
// workspace holds. A new route without {slug} fails TestDashboardRouteTable until it is listed here,
// after someone has decided it needs no isolation test.
var outsideWorkspaces = map[string]string{
	"GET /static/":     "embedded CSS, script and images",
	"GET /{$}":         "redirects to the person's own first workspace",
	"GET /login":       "the sign-in form",
	"POST /login":      "signs in; tested with the brute-force and CSRF tests",
	"GET /logout":      "asks before signing out",
	"POST /logout":     "ends the session itself",
	"GET /status":      "the service's version and health",
	"GET /w":           "the switcher: redirects to /w/{slug}, which checks membership (tested below)",
	"GET /invitations": "the person's own invitations, read by their user id from the session",
	"POST /invitations/accept": "answers the session's person's own invitation to the workspace in the form; " +
		"anyone else's, or none, is not found (testInvitations)",
	"POST /invitations/decline": "as accept",
	"/":                         "the not-found page, for every method",
	"GET /portal/{token}": "opens a portal link: the session it starts is bound to the link's workspace, and every " +
		"workspace route checks it (testPortalIsolation)",
	"POST /portal/end": "ends the request's own portal session",
}

// TestDashboardRouteTable: every route either names a workspace or is one of the few that do not,
// every route that takes an id has an isolation fixture, and no fixture is left for a route that is
// gone. Only GET and POST are registered today; a route with another method is still covered by the
// CSRF test, which takes every method but GET and HEAD from the table.
func TestDashboardRouteTable(t *testing.T) {
	routes := routeTable()
	if len(routes) < 30 {
		t.Fatalf("the route table has %d routes: dashboard.Routes did not see the registrations", len(routes))
	}
	fixtures := (&isoFixture{}).idTargets()
	seen := map[string]bool{}
	for _, r := range routes {
		seen[r.pattern] = true
		switch {
		case r.inWorkspace() && r.takesID():
			if _, ok := fixtures[r.pattern]; !ok {
				t.Errorf("%q takes %v: give it targets in isoFixture.idTargets (isolation_test.go), so that another workspace's ids are tried on it", r.pattern, r.wildcards)
			}
		case r.inWorkspace():
		default:
			if _, ok := outsideWorkspaces[r.pattern]; !ok {
				t.Errorf("%q names no workspace: say in outsideWorkspaces why it cannot show or change another workspace's data, or give it {slug}", r.pattern)
			}
		}
		if r.method == "" && r.path != "/" {
			t.Errorf("%q takes every method: the CSRF test cannot tell whether it changes anything", r.pattern)
		}
	}
	for p := range fixtures {
		if !seen[p] {
			t.Errorf("isoFixture.idTargets has targets for %q, which is no longer a route", p)
		}
	}
}

// --- workspace A, with one of everything ---

type isoKey struct {
	id, name string
	enabled  bool
}

type isoHook struct {
	id, url string
	enabled bool
}

// isoFixture is workspace A ("iso-a"), its owner, and the people of workspace B ("second") who try to
// reach it. Every name, description and URL path of A holds marker, which no answer to B may contain.
type isoFixture struct {
	marker     string
	slugA, wsA string
	slugB      string
	ownerAID   string
	ownerA     *kpPerson // A's owner
	ownerB     *kpPerson // B's owner (owner2)
	adminB     *kpPerson // an admin of B only
	emailA     string
	emailB     string // adminB's
	keys       []isoKey
	hooks      []isoHook
	identities []string  // an identity with keys[0], and one without keys
	deliveries []string  // of hooks[0]: a failed real event, a test send
	hookB      string    // an endpoint of B
	events     []string  // A's events: the one its endpoint failed to take
	second     *kpPerson // A's owner signed in a second time, made on first use
	receiver   *receiver
	ids        map[string]bool   // every id of A
	ghosts     map[string]string // id prefix → an id of that type that exists nowhere
}

var isoFixtures sync.Map // *kpServer → *isoFixture

// isolationFixture builds A once per server; later subtests reuse it.
func isolationFixture(t *testing.T, s *kpServer) *isoFixture {
	t.Helper()
	if fx, ok := isoFixtures.Load(s); ok {
		return fx.(*isoFixture)
	}
	marker := "isoa" + strings.ToLower(rand.Text()[:10])
	fx := &isoFixture{marker: marker, slugA: "iso-a", slugB: "second", emailA: "owner-" + marker + "@example.com",
		emailB: "iso-b-admin@example.com", ids: map[string]bool{}, ghosts: map[string]string{}}
	for _, p := range []string{id.APIKey, id.Webhook, id.Delivery, id.User, id.Identity, id.Event} {
		fx.ghosts[p] = id.New(p)
	}
	fx.wsA = s.createWorkspace(t, fx.slugA)
	fx.ownerAID = s.cli(t, thePassword+"\n", "users", "create", "--email", fx.emailA, "--role", "owner", "--workspace", fx.slugA)
	s.cli(t, thePassword+"\n", "users", "create", "--email", fx.emailB, "--role", "admin", "--workspace", fx.slugB)

	// One key of each kind, and one in each state a key page can show.
	var values []string
	for _, k := range []struct {
		name string
		body map[string]any
	}{
		{"secret test", map[string]any{"keyType": "secret", "environment": "test"}},
		{"secret live recoverable", map[string]any{"keyType": "secret", "environment": "live", "recoverable": true}},
		{"publishable test", map[string]any{"keyType": "publishable", "environment": "test", "allowedOrigins": []string{"https://a.example"}}},
		{"publishable live", map[string]any{"keyType": "publishable", "environment": "live", "allowedOrigins": []string{"https://a.example"}}},
		{"disabled", map[string]any{"keyType": "secret", "environment": "test"}},
		{"revoked", map[string]any{"keyType": "secret", "environment": "live"}},
	} {
		k.body["name"] = marker + " " + k.name
		k.body["description"] = "Workspace A's " + k.name + " key " + marker
		kid, value := s.restKey(t, fx.slugA, k.body)
		fx.keys = append(fx.keys, isoKey{id: kid, name: k.body["name"].(string), enabled: k.name != "disabled"})
		values = append(values, value)
	}
	if st, body := s.call(t, s.admin, "PATCH", "/v1/api-keys/"+fx.keys[4].id, fx.wsA, map[string]any{"enabled": false}); st != 200 {
		t.Fatalf("disable: %d %v", st, body)
	}
	if st, body := s.call(t, s.admin, "DELETE", "/v1/api-keys/"+fx.keys[5].id, fx.wsA, nil); st != 200 {
		t.Fatalf("revoke: %d %v", st, body)
	}
	// Two identities, with credits and a limit: the first has the first key, the second none.
	for i, ext := range []string{marker + " customer", marker + " lonely"} {
		st, body := s.call(t, s.admin, "POST", "/v1/identities", fx.wsA, map[string]any{"externalId": ext, "meta": map[string]any{"note": marker},
			"credits": map[string]any{"remaining": 100}, "rateLimits": []map[string]any{{"name": "tokens", "limit": 10, "windowMs": 60000, "autoApply": false}}})
		if st != 201 {
			t.Fatalf("create identity: %d %v", st, body)
		}
		fx.identities = append(fx.identities, data(body)["id"].(string))
		if i == 0 {
			if st, body := s.call(t, s.admin, "PATCH", "/v1/api-keys/"+fx.keys[0].id, fx.wsA, map[string]any{"identityId": fx.identities[0]}); st != 200 {
				t.Fatalf("give the key an identity: %d %v", st, body)
			}
		}
	}
	// Request log entries and usage for the logs page and the key pages.
	for _, v := range values[:2] {
		if c := s.verifyCode(t, v, ""); c != "VALID" {
			t.Fatalf("verify a key of A: %s", c)
		}
	}

	// Two endpoints: one enabled, whose receiver fails, with a failed delivery of a real event and a
	// test send; one disabled. B gets an endpoint of its own, to pair with A's deliveries.
	fx.receiver = newReceiver(t, 500, "down")
	newHook := func(wsID, path string, enabled bool) (string, string) {
		t.Helper()
		st, body := s.call(t, s.admin, "POST", "/v1/webhooks", wsID, map[string]any{"url": fx.receiver.srv.URL + path,
			"eventTypes": []string{"order.created"}, "description": "An endpoint " + path, "enabled": enabled})
		if st != 201 {
			t.Fatalf("create webhook: %d %v", st, body)
		}
		s.mu.Lock()
		s.values = append(s.values, data(body)["secret"].(string))
		s.mu.Unlock()
		return data(body)["id"].(string), fx.receiver.srv.URL + path
	}
	for i, enabled := range []bool{true, false} {
		hid, u := newHook(fx.wsA, "/"+marker+"/"+strconv.Itoa(i), enabled)
		fx.hooks = append(fx.hooks, isoHook{id: hid, url: u, enabled: enabled})
	}
	fx.hookB, _ = newHook(s.ws[fx.slugB], "/b", true)
	if st, body := s.call(t, s.admin, "POST", "/v1/events", fx.wsA, map[string]any{"type": "order.created", "data": map[string]any{"order": marker}}); st != 202 {
		t.Fatalf("send event: %d %v", st, body)
	} else {
		fx.events = append(fx.events, data(body)["id"].(string))
	}
	if st, body := s.call(t, s.admin, "POST", "/v1/webhooks/"+fx.hooks[0].id+"/test", fx.wsA, map[string]any{}); st != 200 {
		t.Fatalf("test send: %d %v", st, body)
	}
	testkit.Eventually(t, 15*time.Second, "A's deliveries to finish", func() bool {
		st, body := s.call(t, s.admin, "GET", "/v1/webhooks/"+fx.hooks[0].id+"/deliveries?limit=100", fx.wsA, nil)
		if st != 200 {
			t.Fatalf("deliveries: %d %v", st, body)
		}
		fx.deliveries = fx.deliveries[:0]
		var real, test bool
		for _, d := range list(body) {
			if d["status"] == "pending" {
				return false
			}
			real = real || d["eventType"] == "order.created" && d["status"] == "failed"
			test = test || d["eventType"] == keyplane.EventWebhookTest
			fx.deliveries = append(fx.deliveries, d["id"].(string))
		}
		return real && test
	})
	for _, k := range fx.keys {
		fx.ids[k.id] = true
	}
	for _, h := range fx.hooks {
		fx.ids[h.id] = true
	}
	for _, d := range fx.deliveries {
		fx.ids[d] = true
	}
	for _, i := range fx.identities {
		fx.ids[i] = true
	}
	for _, e := range fx.events {
		fx.ids[e] = true
	}
	fx.ids[fx.ownerAID] = true

	signIn := func(email string) *kpPerson {
		t.Helper()
		p := s.newPerson(email)
		if e := p.login(t, email, thePassword, "/status"); e.status != http.StatusSeeOther {
			t.Fatalf("sign in as %s: %d %s", email, e.status, e.summary())
		}
		p.loadCSRF(t)
		return p
	}
	fx.ownerA, fx.adminB, fx.ownerB = signIn(fx.emailA), signIn(fx.emailB), s.as(t, "owner2")
	isoFixtures.Store(s, fx)
	return fx
}

// secondSession is A's owner in a second browser: another session of the same person.
func (fx *isoFixture) secondSession(t *testing.T, s *kpServer) *kpPerson {
	t.Helper()
	if fx.second == nil {
		p := s.newPerson(fx.emailA)
		expectRedirect(t, p.login(t, fx.emailA, thePassword, "/status"), "/status")
		p.loadCSRF(t)
		fx.second = p
	}
	return fx.second
}

// isoTarget is one request to a route: its wildcards (all but slug) and, for a POST, its form.
type isoTarget struct {
	vars map[string]string
	form url.Values
}

// idTargets says, for every route that takes an id, which of A's resources fill it, and the form a
// POST sends: one that would change A's resource if it reached it (the opposite enabled state, a new
// name, the right password). The keys of the map are checked against the route table even for an
// empty fixture.
func (fx *isoFixture) idTargets() map[string][]isoTarget {
	perKey := func(actions []string, form func(k isoKey) url.Values) []isoTarget {
		var out []isoTarget
		for _, k := range fx.keys {
			for _, a := range orNone(actions) {
				tg := isoTarget{vars: map[string]string{"id": k.id, "action": a}}
				if form != nil {
					tg.form = form(k)
				}
				out = append(out, tg)
			}
		}
		return out
	}
	perHook := func(actions []string, form func(h isoHook) url.Values) []isoTarget {
		var out []isoTarget
		for _, h := range fx.hooks {
			for _, a := range orNone(actions) {
				tg := isoTarget{vars: map[string]string{"id": h.id, "action": a}}
				if form != nil {
					tg.form = form(h)
				}
				out = append(out, tg)
			}
		}
		return out
	}
	perIdentity := func(form func() url.Values) []isoTarget {
		var out []isoTarget
		for _, i := range fx.identities {
			tg := isoTarget{vars: map[string]string{"id": i}}
			if form != nil {
				tg.form = form()
			}
			out = append(out, tg)
		}
		return out
	}
	credits := func() url.Values { return url.Values{"credits": {"limited"}, "remaining": {"5"}} }
	limits := func() url.Values {
		return url.Values{"rows": {"1"}, "limit-0-name": {"planted"}, "limit-0-limit": {"1"}, "limit-0-window": {"1"}, "limit-0-auto": {"on"}}
	}
	empty := func() url.Values { return url.Values{} }
	reveal := func() url.Values { return url.Values{"password": {thePassword}} }
	var retries []isoTarget
	if len(fx.hooks) > 0 {
		for _, d := range fx.deliveries {
			// Through A's endpoint, and through B's own one.
			retries = append(retries, isoTarget{vars: map[string]string{"id": fx.hooks[0].id, "delivery": d}, form: empty()},
				isoTarget{vars: map[string]string{"id": fx.hookB, "delivery": d}, form: empty()})
		}
	}
	var resends []isoTarget
	for _, e := range fx.events {
		resends = append(resends, isoTarget{vars: map[string]string{"id": e}, form: empty()})
	}
	return map[string][]isoTarget{
		"GET /w/{slug}/settings/api/{id}": perKey(nil, nil),
		"POST /w/{slug}/settings/api/{id}": perKey(nil, func(k isoKey) url.Values {
			return url.Values{"name": {"Renamed from elsewhere"}, "description": {"changed"}, "permissions": {"orders:read"}, "enabled": {"on"}}
		}),
		"POST /w/{slug}/settings/api/{id}/enabled": perKey(nil, func(k isoKey) url.Values {
			return url.Values{"enabled": {strconv.FormatBool(!k.enabled)}}
		}),
		"GET /w/{slug}/settings/api/{id}/{action}":      perKey([]string{"regenerate", "revoke", "delete", "reveal"}, nil),
		"POST /w/{slug}/settings/api/{id}/regenerate":   perKey(nil, func(isoKey) url.Values { return url.Values{"grace": {"0"}} }),
		"POST /w/{slug}/settings/api/{id}/revoke":       perKey(nil, func(isoKey) url.Values { return empty() }),
		"POST /w/{slug}/settings/api/{id}/delete":       perKey(nil, func(isoKey) url.Values { return empty() }),
		"POST /w/{slug}/settings/api/{id}/reveal":       perKey(nil, func(isoKey) url.Values { return reveal() }),
		"POST /w/{slug}/settings/api/{id}/credits":      perKey(nil, func(isoKey) url.Values { return credits() }),
		"POST /w/{slug}/settings/api/{id}/limits":       perKey(nil, func(isoKey) url.Values { return limits() }),
		"POST /w/{slug}/settings/api/{id}/identity":     perKey(nil, func(isoKey) url.Values { return url.Values{"externalId": {"planted"}} }),
		"GET /w/{slug}/identities/{id}":                 perIdentity(nil),
		"POST /w/{slug}/identities/{id}":                perIdentity(func() url.Values { return url.Values{"externalId": {"Renamed from elsewhere"}} }),
		"POST /w/{slug}/identities/{id}/credits":        perIdentity(credits),
		"POST /w/{slug}/identities/{id}/limits":         perIdentity(limits),
		"GET /w/{slug}/identities/{id}/delete":          perIdentity(nil),
		"POST /w/{slug}/identities/{id}/delete":         perIdentity(empty),
		"GET /w/{slug}/settings/webhooks/{id}":          perHook(nil, nil),
		"GET /w/{slug}/settings/webhooks/{id}/{action}": perHook([]string{"delete", "rotate", "reveal"}, nil),
		"POST /w/{slug}/settings/webhooks/{id}": perHook(nil, func(h isoHook) url.Values {
			return url.Values{"url": {h.url + "/moved"}, "description": {"changed"}, "eventTypes": {"*"}, "enabled": {"on"}}
		}),
		"POST /w/{slug}/settings/webhooks/{id}/enabled": perHook(nil, func(h isoHook) url.Values {
			return url.Values{"enabled": {strconv.FormatBool(!h.enabled)}}
		}),
		"POST /w/{slug}/settings/webhooks/{id}/test": perHook(nil, func(isoHook) url.Values {
			return url.Values{"eventType": {keyplane.EventWebhookTest}}
		}),
		"POST /w/{slug}/settings/webhooks/{id}/delete":                      perHook(nil, func(isoHook) url.Values { return empty() }),
		"POST /w/{slug}/settings/webhooks/{id}/rotate":                      perHook(nil, func(isoHook) url.Values { return empty() }),
		"POST /w/{slug}/settings/webhooks/{id}/reveal":                      perHook(nil, func(isoHook) url.Values { return reveal() }),
		"POST /w/{slug}/settings/webhooks/{id}/deliveries/{delivery}/retry": retries,
		"POST /w/{slug}/settings/webhooks/events/{id}/resend":               resends,
		// A's owner: removing them is refused for A's owner too (the last owner), never not found.
		"GET /w/{slug}/members/{id}/remove":  {{vars: map[string]string{"id": fx.ownerAID}}},
		"POST /w/{slug}/members/{id}/remove": {{vars: map[string]string{"id": fx.ownerAID}, form: empty()}},
	}
}

// orNone is the values of {action}: a route without it gets one target per resource.
func orNone(actions []string) []string {
	if len(actions) == 0 {
		return []string{""}
	}
	return actions
}

// workspaceForm is what a POST to a route without an id sends: something that would land in A.
func (fx *isoFixture) workspaceForm(pattern string) url.Values {
	switch pattern {
	case "POST /w/{slug}/settings/api":
		return url.Values{"name": {"Planted key"}, "keyType": {"secret"}, "environment": {"test"}}
	case "POST /w/{slug}/settings/webhooks":
		return url.Values{"url": {fx.receiver.srv.URL + "/planted"}, "eventTypes": {"*"}, "enabled": {"on"}}
	case "POST /w/{slug}/members":
		return url.Values{"email": {fx.emailB}, "role": {"owner"}}
	case "POST /w/{slug}/identities":
		return url.Values{"externalId": {"planted"}}
	case "POST /w/{slug}/settings/webhooks/recover":
		// A's endpoint, which a recovery sent through B must not find.
		hook := ""
		if len(fx.hooks) > 0 {
			hook = fx.hooks[0].id
		}
		return url.Values{"endpointId": {hook}, "since": {time.Now().UTC().Add(-time.Hour).Format("2006-01-02T15:04")}, "confirm": {"yes"}}
	}
	return url.Values{}
}

// targets are the requests to make to a route in A: its id targets, or one for a route without ids.
func (fx *isoFixture) targets(t *testing.T, r routePattern) []isoTarget {
	t.Helper()
	if !r.takesID() {
		return []isoTarget{{vars: map[string]string{}, form: fx.workspaceForm(r.pattern)}}
	}
	tgs, ok := fx.idTargets()[r.pattern]
	if !ok || len(tgs) == 0 {
		t.Errorf("%s: no isolation targets", r.pattern)
	}
	return tgs
}

// onlyA reports whether every id a target names is A's (not B's endpoint).
func (fx *isoFixture) onlyA(tg isoTarget) bool {
	for k, v := range tg.vars {
		if k != "action" && v != "" && !fx.ids[v] {
			return false
		}
	}
	return true
}

// ghostOf is the target with A's ids replaced by ids of the same types that exist nowhere.
func (fx *isoFixture) ghostOf(tg isoTarget) isoTarget {
	g := isoTarget{vars: map[string]string{}, form: tg.form}
	for k, v := range tg.vars {
		if fx.ids[v] {
			v = fx.ghosts[v[:strings.IndexByte(v, '_')]]
		}
		g.vars[k] = v
	}
	return g
}

func (p *kpPerson) send(t *testing.T, r routePattern, slug string, tg isoTarget) *exchange {
	t.Helper()
	vars := map[string]string{"slug": slug}
	for k, v := range tg.vars {
		vars[k] = v
	}
	path := r.fill(vars)
	if r.method == http.MethodGet {
		return p.get(t, path)
	}
	form := url.Values{}
	for k, v := range tg.form {
		form[k] = slices.Clone(v)
	}
	return p.post(t, path, form)
}

// snapshot is everything the API tells about A, as one string: the workspace and its members, its
// keys (revoked ones too), endpoints, deliveries, audit trail and request log.
func (fx *isoFixture) snapshot(t *testing.T, s *kpServer) string {
	t.Helper()
	get := func(path, ws string) any {
		t.Helper()
		st, body := s.call(t, s.admin, "GET", path, ws, nil)
		if st == http.StatusNotFound {
			return "not found"
		}
		if st != http.StatusOK {
			t.Fatalf("GET %s: %d %v", path, st, body)
		}
		return body["data"]
	}
	all := func(path string) []any {
		t.Helper()
		var out []any
		for cursor := ""; ; {
			p := path
			if cursor != "" {
				p += "&cursor=" + url.QueryEscape(cursor)
			}
			st, body := s.call(t, s.admin, "GET", p, fx.wsA, nil)
			if st != http.StatusOK {
				t.Fatalf("GET %s: %d %v", p, st, body)
			}
			items, _ := body["data"].([]any)
			out = append(out, items...)
			if cursor, _ = body["nextCursor"].(string); cursor == "" {
				return out
			}
		}
	}
	snap := map[string]any{
		"workspace":  get("/v1/workspaces/"+fx.wsA, ""),
		"members":    get("/v1/workspaces/"+fx.wsA+"/members", ""),
		"keys":       all("/v1/api-keys?limit=100"),
		"webhooks":   all("/v1/webhooks?limit=100"),
		"audit":      all("/v1/audit-logs?limit=100"),
		"logs":       all("/v1/logs?limit=100"),
		"identities": all("/v1/identities?limit=100"),
	}
	for _, i := range fx.identities {
		snap["identity "+i] = get("/v1/identities/"+i, fx.wsA)
	}
	for _, k := range fx.keys {
		snap["key "+k.id] = get("/v1/api-keys/"+k.id, fx.wsA)
	}
	for _, h := range fx.hooks {
		snap["webhook "+h.id] = get("/v1/webhooks/"+h.id, fx.wsA)
		snap["deliveries "+h.id] = all("/v1/webhooks/" + h.id + "/deliveries?limit=100")
	}
	b, err := json.MarshalIndent(snap, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// settled waits until A's snapshot stops changing (the request log is written in batches) and
// returns it.
func (fx *isoFixture) settled(t *testing.T, s *kpServer) string {
	t.Helper()
	// Holding still is the same snapshot twice, 200 ms apart.
	const still = 200 * time.Millisecond
	prev, prevAt := fx.snapshot(t, s), time.Now()
	var before, cur string
	if !testkit.Wait(15*time.Second, func() bool {
		if time.Since(prevAt) < still {
			return false
		}
		cur = fx.snapshot(t, s)
		before, prev, prevAt = prev, cur, time.Now()
		return cur == before && !strings.Contains(cur, `"status": "pending"`)
	}) {
		t.Fatalf("workspace A keeps changing on its own: %s", firstDiff(before, cur))
	}
	return cur
}

// firstDiff shows where two snapshots part.
func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			from := max(0, i-6)
			ctx := strings.Join(al[from:min(i, len(al))], "\n")
			return fmt.Sprintf("line %d:\n%s\n- %s\n+ %s", i+1, ctx, x, y)
		}
	}
	return "(no difference)"
}

// normalized is an error page's message with ids replaced, so that the answers for a real id and a
// ghost can be compared.
func (fx *isoFixture) normalized(e *exchange) string {
	msg := first(reErrorMsg, e.body)
	for v := range fx.ids {
		msg = strings.ReplaceAll(msg, v, "{id}")
	}
	for _, v := range fx.ghosts {
		msg = strings.ReplaceAll(msg, v, "{id}")
	}
	return msg
}

// hidden checks an answer to B about A: the 404 that a thing that does not exist gets (ghost), none
// of A's names, and no secret.
func (fx *isoFixture) hidden(t *testing.T, e, ghost *exchange) {
	t.Helper()
	if e.status != http.StatusNotFound {
		t.Errorf("%s %s: %d, want 404: %s", e.method, e.path, e.status, e.summary())
	}
	if e.status != ghost.status || fx.normalized(e) != fx.normalized(ghost) {
		t.Errorf("%s %s: %d %q, but something that does not exist (%s) is %d %q", e.method, e.path, e.status, fx.normalized(e),
			ghost.path, ghost.status, fx.normalized(ghost))
	}
	if strings.Contains(e.body, fx.marker) || strings.Contains(e.loc(), fx.marker) {
		t.Errorf("%s %s: the answer shows something of workspace A", e.method, e.path)
	}
	if m := reKeyValue.FindString(e.body); m != "" {
		t.Errorf("%s %s: the answer shows a key value", e.method, e.path)
	}
	if reHookSecret.MatchString(e.text()) {
		t.Errorf("%s %s: the answer shows a signing secret", e.method, e.path)
	}
}

// --- isolation ---

// testIsolation: as B's owner and as an admin of B only, every route of the table that names a
// workspace is tried in A (where B is no member) and, for routes that take an id, in B with A's ids,
// GET pages and POST forms with B's valid token alike. Every answer is the 404 of something that does
// not exist, and A is the same afterwards (snapshot through the API). A's owner gets 200 from the
// same GETs, so every id was real, and at the end sends each POST route's first form and is not told
// that anything is missing, so the forms would have reached A's resources.
func testIsolation(t *testing.T, s *kpServer) {
	fx := isolationFixture(t, s)
	routes := routeTable()
	var idRoutes, wsRoutes, requests int
	for _, r := range routes {
		if r.inWorkspace() && r.takesID() {
			idRoutes++
		} else if r.inWorkspace() {
			wsRoutes++
		}
	}

	t.Run("OwnerOfAGetsEveryPage", func(t *testing.T) {
		for _, r := range routes {
			if !r.inWorkspace() || r.method != http.MethodGet {
				continue
			}
			for _, tg := range fx.targets(t, r) {
				if !fx.onlyA(tg) {
					continue
				}
				e := fx.ownerA.send(t, r, fx.slugA, tg)
				switch {
				case e.status == http.StatusSeeOther && strings.HasPrefix(e.loc(), "/w/"+fx.slugA+"/"):
				case e.status != http.StatusOK:
					t.Errorf("A's owner: %s %s: %d, want 200: %s", e.method, e.path, e.status, e.summary())
				case r.takesID() && !strings.Contains(e.body, fx.marker):
					t.Errorf("A's owner: %s %s does not show the resource", e.method, e.path)
				}
			}
		}
		// The retry route has no page: A's deliveries are in its endpoint's log.
		listed := map[string]bool{}
		for _, d := range deliveries(fx.ownerA.get(t, "/w/"+fx.slugA+"/settings/webhooks/"+fx.hooks[0].id).body) {
			listed[d.id] = true
		}
		for _, d := range fx.deliveries {
			if !listed[d] {
				t.Errorf("A's owner does not see delivery %s on its endpoint's page", d)
			}
		}
	})

	before := fx.settled(t, s)
	posts := len(fx.receiver.posts(""))
	for _, who := range []struct {
		name string
		p    *kpPerson
	}{{"OwnerOfB", fx.ownerB}, {"AdminOfB", fx.adminB}} {
		t.Run(who.name, func(t *testing.T) {
			ghosts := map[string]*exchange{}
			ghost := func(r routePattern, slug string, tg isoTarget) *exchange {
				t.Helper()
				key := r.method + " " + r.fill(tg.vars) + " " + slug
				if ghosts[key] == nil {
					ghosts[key] = who.p.send(t, r, slug, tg)
				}
				return ghosts[key]
			}
			for _, r := range routes {
				if !r.inWorkspace() {
					continue
				}
				tgs := fx.targets(t, r)
				if len(tgs) == 0 {
					continue
				}
				// In A, of which B's people are not members: as a workspace that does not exist. The
				// membership check comes before any id is read, so one target per route is enough.
				fx.hidden(t, who.p.send(t, r, fx.slugA, tgs[0]), ghost(r, "no-such-workspace", tgs[0]))
				requests++
				if !r.takesID() {
					continue
				}
				// In B, with each of A's ids: as ids that exist nowhere.
				for _, tg := range tgs {
					fx.hidden(t, who.p.send(t, r, fx.slugB, tg), ghost(r, fx.slugB, fx.ghostOf(tg)))
					requests++
				}
			}

			// Ids in query strings, which the route table cannot show: the logs and audit filters of B's
			// own pages, given A's ids, show none of A's entries; the switcher sends to A's address,
			// which answers as above, exactly as for a workspace that does not exist.
			for _, q := range []struct{ param, id, empty string }{
				{"/logs?key=", fx.keys[0].id, "No entries match these filters."},
				{"/audit?target=", fx.keys[0].id, "No entries match."},
				{"/audit?actor=", fx.ownerAID, "No entries match."},
			} {
				e := who.p.get(t, "/w/"+fx.slugB+q.param+q.id)
				expect(t, e, http.StatusOK)
				if strings.Contains(e.body, fx.marker) || len(logRows(e.body)) > 0 || !strings.Contains(e.text(), q.empty) {
					t.Errorf("GET %s shows entries of A: %s", e.path, e.summary())
				}
				// The usage chart of the logs page counts nothing of A's key either.
				g := who.p.get(t, "/w/"+fx.slugB+q.param+fx.ghosts[q.id[:strings.IndexByte(q.id, '_')]])
				if a, b := first(reChartSummary, e.body), first(reChartSummary, g.body); a != b {
					t.Errorf("GET %s: the chart says %q, for an id that exists nowhere %q", e.path, a, b)
				}
				requests += 2
			}
			for _, slug := range []string{fx.slugA, "no-such-workspace"} {
				expectRedirect(t, who.p.get(t, "/w?slug="+slug), "/w/"+slug)
			}
			requests += 2 + len(ghosts)
		})
	}
	t.Logf("%d workspace routes with ids and %d without, tried from B with %d requests", idRoutes, wsRoutes, requests)

	if after := fx.snapshot(t, s); after != before {
		t.Errorf("B's requests changed workspace A: %s", firstDiff(before, after))
	}
	if n := len(fx.receiver.posts("")); n != posts {
		t.Errorf("B's requests made A's endpoint receive %d posts", n-posts)
	}
	// The logs and audit filters do find A's entries for A's owner: the ids above were real.
	waitLogs(t, fx.ownerA, "/w/"+fx.slugA+"/logs?key="+fx.keys[0].id, 1)
	if e := fx.ownerA.get(t, "/w/"+fx.slugA+"/audit?target="+fx.keys[0].id); !strings.Contains(e.body, fx.marker) {
		t.Errorf("A's owner finds no audit entry of A's first key: %s", e.summary())
	}

	t.Run("OwnerOfAPostsEveryForm", func(t *testing.T) {
		// The control, which changes A and so comes last: A's owner sends the same forms and is not
		// told that anything is missing. Deletes go last, so that each form meets its resource.
		var last []routePattern
		for _, r := range routes {
			if !r.inWorkspace() || !r.takesID() || r.method != http.MethodPost {
				continue
			}
			if strings.HasSuffix(r.path, "/delete") {
				last = append(last, r)
				continue
			}
			fx.controlPosts(t, r)
		}
		for _, r := range last {
			fx.controlPosts(t, r)
		}
	})
}

// controlPosts sends a route's first target as A's owner: the GETs already showed every id to be real.
func (fx *isoFixture) controlPosts(t *testing.T, r routePattern) {
	t.Helper()
	for _, tg := range fx.targets(t, r)[:1] {
		e := fx.ownerA.send(t, r, fx.slugA, tg)
		if e.status == http.StatusNotFound || e.status >= 500 {
			t.Errorf("A's owner: %s %s: %d: %s", e.method, e.path, e.status, e.summary())
		}
		// Pages that show a new or revealed value are allowed to (testNoSecretsAnywhere).
		if v := first(reSecret, e.body); v != "" {
			e.secret = v
		}
	}
}

// --- CSRF ---

// testCSRFEveryRoute: every route of the table whose method may change something refuses a form
// without the session's token, with a wrong one, with another session's (another person's, or the
// same person's other session), with the token only in the query string, and with the right token
// from another site (Sec-Fetch-Site, or Origin without it). Each is a form that would work with the
// token: A's owner on A's resources. Nothing changes, and the session is not ended.
func testCSRFEveryRoute(t *testing.T, s *kpServer) {
	fx := isolationFixture(t, s)
	a := fx.ownerA
	again := fx.secondSession(t, s)
	if again.csrf == a.csrf || fx.adminB.csrf == a.csrf {
		t.Fatal("two sessions share a form token")
	}
	const (
		badToken = "This form has expired or was not sent from this site"
		crossed  = "sent from another site"
	)
	type csrfCase struct {
		name    string
		token   string // the csrf field; "" none
		inQuery string // a csrf parameter in the URL instead
		hdr     []string
		msg     string
	}
	cases := []csrfCase{
		{"NoToken", "", "", nil, badToken},
		{"MadeUpToken", randomToken(), "", nil, badToken},
		{"AnotherPersonsToken", fx.adminB.csrf, "", nil, badToken},
		{"SamePersonsOtherSession", again.csrf, "", nil, badToken},
		{"TokenInQueryOnly", "", a.csrf, nil, badToken},
		{"CrossSiteFetch", a.csrf, "", []string{"Sec-Fetch-Site", "cross-site"}, crossed},
		{"SameSiteFetch", a.csrf, "", []string{"Sec-Fetch-Site", "same-site"}, crossed},
		{"ForeignOrigin", a.csrf, "", []string{"Origin", "https://evil.example"}, crossed},
		{"NullOrigin", a.csrf, "", []string{"Origin", "null"}, crossed},
	}
	before := fx.settled(t, s)
	routes := routeTable()
	// Sign-out last: were its check missing, it would end the session the other routes are tried with.
	ordered := slices.Clone(routes)
	slices.SortStableFunc(ordered, func(x, y routePattern) int { return cmpBool(x.path == "/logout", y.path == "/logout") })
	n := 0
	for _, r := range ordered {
		if !r.changes() {
			continue
		}
		n++
		if r.pattern == "POST /login" {
			testLoginCSRF(t, s, fx)
			continue
		}
		// A request that would go through with the token: A's owner, A's resource.
		path, form := r.fill(nil), url.Values{}
		if r.inWorkspace() {
			tg := fx.targets(t, r)[0]
			vars := map[string]string{"slug": fx.slugA}
			for k, v := range tg.vars {
				vars[k] = v
			}
			path, form = r.fill(vars), tg.form
		}
		t.Run(strings.ReplaceAll(r.pattern, "/", "_"), func(t *testing.T) {
			for _, c := range cases {
				f := url.Values{}
				for k, v := range form {
					f[k] = slices.Clone(v)
				}
				if c.token != "" {
					f.Set("csrf", c.token)
				}
				p := path
				if c.inQuery != "" {
					p += "?csrf=" + url.QueryEscape(c.inQuery)
				}
				e := a.do(t, r.method, p, f, c.hdr...)
				if e.status != http.StatusForbidden || !strings.Contains(first(reErrorMsg, e.body), c.msg) {
					t.Errorf("%s: %s %s: %d %q, want 403 %q", c.name, e.method, e.path, e.status, e.summary(), c.msg)
				}
			}
		})
	}
	if n < 15 {
		t.Errorf("only %d state-changing routes in the table", n)
	}

	// Methods the table does not register are the not-found page, token or not.
	paths := map[string]bool{}
	for _, r := range routes {
		path := r.fill(map[string]string{"slug": fx.slugA, "id": fx.keys[0].id, "action": "revoke", "delivery": fx.deliveries[0]})
		if strings.Contains(r.path, "/webhooks/{id}") {
			path = r.fill(map[string]string{"slug": fx.slugA, "id": fx.hooks[0].id, "action": "delete", "delivery": fx.deliveries[0]})
		}
		if paths[path] {
			continue
		}
		paths[path] = true
		for _, m := range []string{http.MethodPut, http.MethodPatch, http.MethodDelete} {
			if slices.ContainsFunc(routes, func(o routePattern) bool { return o.method == m && o.path == r.path }) {
				continue // registered: tested above
			}
			e := a.do(t, m, path, url.Values{"csrf": {a.csrf}}, "Origin", s.url)
			errorPage(t, e, http.StatusNotFound, "There is no page here.")
		}
	}

	if after := fx.snapshot(t, s); after != before {
		t.Errorf("refused forms changed workspace A: %s", firstDiff(before, after))
	}
	expect(t, a.get(t, "/w/"+fx.slugA+"/settings/api"), http.StatusOK) // no refused sign-out ended it
	expect(t, again.get(t, "/w/"+fx.slugA+"/settings/api"), http.StatusOK)
}

func cmpBool(x, y bool) int {
	switch {
	case x == y:
		return 0
	case x:
		return 1
	}
	return -1
}

// testLoginCSRF: the sign-in form, which has no session yet, carries a token of its own (a cookie and
// the same value in the form). A sign-in with the right password is refused without it, with another
// browser's, or from another site, and opens no session.
func testLoginCSRF(t *testing.T, s *kpServer, fx *isoFixture) {
	t.Run("POST _login", func(t *testing.T) {
		other := first(reLoginToken, s.newPerson("").get(t, "/login").body)
		for _, c := range []struct {
			name  string
			token func(own string) string
			hdr   []string
			msg   string
		}{
			{"NoToken", func(string) string { return "" }, nil, "expired"},
			{"MadeUpToken", func(string) string { return randomToken() }, nil, "expired"},
			{"AnotherBrowsersToken", func(string) string { return other }, nil, "expired"},
			{"CrossSiteFetch", func(own string) string { return own }, []string{"Sec-Fetch-Site", "cross-site"}, "sent from another site"},
			{"ForeignOrigin", func(own string) string { return own }, []string{"Origin", "https://evil.example"}, "sent from another site"},
		} {
			p := s.newPerson(fx.emailA)
			own := first(reLoginToken, p.get(t, "/login").body)
			form := url.Values{"email": {fx.emailA}, "password": {thePassword}, "next": {"/"}}
			if tok := c.token(own); tok != "" {
				form.Set("csrf", tok)
			}
			e := p.do(t, http.MethodPost, "/login", form, c.hdr...)
			msg := first(reLoginError, e.body) + first(reErrorMsg, e.body)
			if e.status != http.StatusForbidden || !strings.Contains(msg, c.msg) {
				t.Errorf("%s: %d %q, want 403 %q", c.name, e.status, e.summary(), c.msg)
			}
			if ck := e.cookie("kp_session"); ck != nil && ck.Value != "" {
				t.Errorf("%s: a refused sign-in opened a session", c.name)
			}
		}
	})
}

// --- sessions ---

func sessionOf(t *testing.T, s *kpServer, p *kpPerson) string {
	t.Helper()
	base, _ := url.Parse(s.url)
	for _, c := range p.c.Jar.Cookies(base) {
		if c.Name == "kp_session" {
			return c.Value
		}
	}
	t.Fatalf("%s has no session cookie", p.email)
	return ""
}

// testSessions: a session id planted before sign-in, even a live one of someone else, is not the
// session after it; signing out ends the session on the server, so a copy of its cookie and its form
// token are worth nothing, while the person's other sessions go on.
//
// Changing a password: the dashboard has no such form. An operator sets a new password with
// `keyplane users create` for an existing email, which does not end that person's sessions (see the
// report of this change); there is nothing to test here until it does.
func testSessions(t *testing.T, s *kpServer) {
	fx := isolationFixture(t, s)
	base, _ := url.Parse(s.url)

	t.Run("PlantedLiveSessionIsReplaced", func(t *testing.T) {
		planted := sessionOf(t, s, fx.adminB) // the attacker's own, live session
		victim := s.newPerson(fx.emailA)
		victim.c.Jar.SetCookies(base, []*http.Cookie{{Name: "kp_session", Value: planted, Path: "/"}})
		next := "/w/" + fx.slugA + "/settings/api"
		e := victim.login(t, fx.emailA, thePassword, next)
		expectRedirect(t, e, next)
		c := e.cookie("kp_session")
		if c == nil || c.Value == "" || c.Value == planted {
			t.Fatalf("sign-in kept the planted session id: %+v", c)
		}
		expect(t, victim.get(t, next), http.StatusOK)
		// The planted session is still only the attacker's: it did not become the victim's.
		fx.hidden(t, fx.adminB.get(t, next), fx.adminB.get(t, "/w/no-such-workspace/settings/api"))
		st := fx.adminB.get(t, "/status")
		if !strings.Contains(st.body, fx.emailB) || strings.Contains(st.body, fx.emailA) {
			t.Errorf("the planted session changed hands: %s", st.summary())
		}
		victim.loadCSRF(t)
		if victim.csrf == fx.adminB.csrf {
			t.Errorf("the new session kept the planted session's form token")
		}
	})

	t.Run("SignOutEndsTheSessionOnTheServer", func(t *testing.T) {
		p := fx.secondSession(t, s)
		fx.second = nil // signed out below
		token, csrf := sessionOf(t, s, p), p.csrf
		key, _ := s.restKey(t, fx.slugA, map[string]any{"name": "Sign-out probe", "keyType": "secret", "environment": "test"})
		before := s.key(t, fx.slugA, key)
		e := p.post(t, "/logout", nil)
		expectRedirect(t, e, "/login")
		if c := e.cookie("kp_session"); c == nil || c.MaxAge >= 0 {
			t.Errorf("sign-out does not clear the session cookie: %+v", c)
		}
		// A copy of the cookie, with the form token it had, no longer opens a page or sends a form.
		thief := s.newPerson("")
		thief.csrf = csrf
		thief.c.Jar.SetCookies(base, []*http.Cookie{{Name: "kp_session", Value: token, Path: "/"}})
		expectRedirect(t, thief.get(t, "/w/"+fx.slugA+"/settings/api"), "/login")
		expectRedirect(t, thief.post(t, "/w/"+fx.slugA+"/settings/api/"+key+"/enabled", url.Values{"enabled": {"false"}}), "/login")
		expectRedirect(t, thief.post(t, "/logout", nil), "/login")
		if after := s.key(t, fx.slugA, key); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Errorf("a signed-out session changed a key: %v → %v", before, after)
		}
		// Only that session ended.
		expect(t, fx.ownerA.get(t, "/w/"+fx.slugA+"/settings/api"), http.StatusOK)
	})
}

// --- cookies ---

// testCookieFlags: every cookie the dashboard set during the whole run so far is HttpOnly,
// SameSite=Lax and for the whole site; the flash cookie, which the other tests do not look at, is
// Secure behind a TLS proxy and not over plain HTTP. (The session and sign-in cookies' Secure flag is
// tested in testSignIn, and over real TLS in TestDashboardCookiesOverTLS.)
func testCookieFlags(t *testing.T, s *kpServer) {
	fx := isolationFixture(t, s)
	kid, _ := s.restKey(t, fx.slugB, map[string]any{"name": "Flash probe", "keyType": "secret", "environment": "test"})
	for _, tls := range []bool{false, true} {
		var hdr []string
		if tls {
			hdr = []string{"X-Forwarded-Proto", "https"}
		}
		e := fx.adminB.post(t, "/w/"+fx.slugB+"/settings/api/"+kid+"/enabled", url.Values{"enabled": {strconv.FormatBool(tls)}}, hdr...)
		expectRedirect(t, e, "/w/"+fx.slugB+"/settings/api")
		c := e.cookie("kp_flash")
		if c == nil || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Secure != tls {
			t.Errorf("flash cookie (TLS %v): %+v; want HttpOnly, Lax, /, Secure %v", tls, c, tls)
		}
	}
	s.mu.Lock()
	seen := slices.Clone(s.seen)
	s.mu.Unlock()
	n := 0
	for _, e := range seen {
		for _, c := range e.cookies {
			n++
			if c.Partitioned {
				// The portal's, made for the platform's frame (testPortal checks each).
				if !c.HttpOnly || c.SameSite != http.SameSiteNoneMode || !c.Secure || c.Path != "/" {
					t.Errorf("%s %s sets %s, Partitioned, without HttpOnly, SameSite=None, Secure and Path=/: %+v", e.method, e.path, c.Name, c)
				}
				continue
			}
			if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" {
				t.Errorf("%s %s sets %s without HttpOnly, SameSite=Lax and Path=/: %+v", e.method, e.path, c.Name, c)
			}
		}
	}
	if n < 10 {
		t.Errorf("only %d cookies were set in the whole run", n)
	}
}

// TestDashboardCookiesOverTLS: served over TLS itself, the dashboard marks every cookie Secure; over
// plain HTTP, an X-Forwarded-Proto from a peer that is not a trusted proxy does not.
func TestDashboardCookiesOverTLS(t *testing.T) {
	svc, _ := servicetest.Open(t, "sqlite", service.Options{})
	const email = "tls@example.com"
	if _, err := svc.CreateUser(t.Context(), keyplane.System("test"), service.UserInput{Email: email, Password: thePassword, Operator: true}); err != nil {
		t.Fatal(err)
	}
	d, err := dashboard.New(dashboard.Options{Service: svc})
	if err != nil {
		t.Fatal(err)
	}
	secure := httptest.NewTLSServer(d)
	defer secure.Close()
	plain := httptest.NewServer(d)
	defer plain.Close()

	client := func(srv *httptest.Server) *http.Client {
		jar, _ := cookiejar.New(nil)
		c := srv.Client()
		c.Jar = jar
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		return c
	}
	// do sends a request and returns its answer's status, cookies and body.
	do := func(c *http.Client, method, u string, form url.Values, hdr ...string) (int, []*http.Cookie, string) {
		t.Helper()
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, err := http.NewRequest(method, u, body)
		if err != nil {
			t.Fatal(err)
		}
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		res, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, u, err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res.StatusCode, res.Cookies(), string(b)
	}
	flags := func(what string, cookies []*http.Cookie, name string, wantSecure bool) {
		t.Helper()
		for _, c := range cookies {
			if c.Name == name {
				if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Secure != wantSecure {
					t.Errorf("%s: %s cookie %+v; want HttpOnly, SameSite=Lax, Path=/, Secure %v", what, name, c, wantSecure)
				}
				return
			}
		}
		t.Errorf("%s: no %s cookie", what, name)
	}

	c := client(secure)
	_, cookies, body := do(c, "GET", secure.URL+"/login", nil)
	flags("sign-in form over TLS", cookies, "kp_login", true)
	form := url.Values{"csrf": {first(reLoginToken, body)}, "email": {email}, "password": {thePassword}, "next": {"/status"}}
	st, cookies, _ := do(c, "POST", secure.URL+"/login", form, "Origin", secure.URL)
	if st != http.StatusSeeOther {
		t.Fatalf("sign in over TLS: %d", st)
	}
	flags("sign-in over TLS", cookies, "kp_session", true)
	_, _, body = do(c, "GET", secure.URL+"/status", nil)
	st, cookies, _ = do(c, "POST", secure.URL+"/logout", url.Values{"csrf": {first(reMeta, body)}}, "Origin", secure.URL)
	if st != http.StatusSeeOther {
		t.Fatalf("sign out over TLS: %d", st)
	}
	flags("sign-out over TLS", cookies, "kp_session", true)

	_, cookies, _ = do(client(plain), "GET", plain.URL+"/login", nil, "X-Forwarded-Proto", "https")
	flags("plain HTTP, X-Forwarded-Proto from a peer that is no trusted proxy", cookies, "kp_login", false)
}

// --- brute force ---

// retryAfter checks a throttled sign-in's Retry-After (the contract's 429 carries one): the rest of
// the 15-minute window, in seconds.
func retryAfter(t *testing.T, e *exchange) {
	t.Helper()
	if n, err := strconv.Atoi(e.header.Get("Retry-After")); err != nil || n < 1 || n > 15*60 {
		t.Errorf("%s %s: Retry-After %q, want the seconds left of the 15-minute window", e.method, e.path, e.header.Get("Retry-After"))
	}
}

// testBruteForce: the documented throttle (README: 5 failures per account, 20 per address, per 15
// minutes, with a message saying when to try again). A locked account is refused even with the right
// password, from any address; an email without an account gets the very same answers as one with an
// account, failure by failure and once locked; a locked address is refused whatever account it tries,
// and that account still signs in from elsewhere. Each case comes from an address of its own
// (X-Forwarded-For, which the test deployment is told to trust from loopback), so that the run's other sign-ins
// from 127.0.0.1 are not throttled. After the first failure, the failures use a password longer than
// any password may be: it counts as a failure like any other (checked) but costs no argon2 hash, which
// keeps the test fast.
func testBruteForce(t *testing.T, s *kpServer) {
	fx := isolationFixture(t, s)
	ip := func(n int) []string { return []string{"X-Forwarded-For", "203.0.113." + strconv.Itoa(n)} }
	tooLong := strings.Repeat("x", 1025)
	unknown := "nobody-" + fx.marker + "@example.com"
	known := fx.emailA
	answer := func(e *exchange, email string) string {
		b := reLoginToken.ReplaceAllString(e.body, "")
		b = strings.ReplaceAll(b, html.EscapeString(email), "{email}")
		var names []string
		for _, c := range e.cookies {
			names = append(names, c.Name)
		}
		return fmt.Sprintf("%d %v\n%s", e.status, names, b)
	}
	same := func(what string, k, u *exchange) {
		t.Helper()
		if a, b := answer(k, known), answer(u, unknown); a != b {
			t.Errorf("%s: the answer for an email with an account differs from one without: %s", what, firstDiff(a, b))
		}
	}

	t.Run("PerAccount", func(t *testing.T) {
		p := s.newPerson("")
		// The same account however its email is written.
		variants := []string{known, strings.ToUpper(known), known, " " + known + " ", known}
		for i, email := range variants {
			pw := tooLong
			if i == 0 {
				pw = "not the password"
			}
			k := p.login(t, email, pw, "/", ip(1)...)
			u := p.login(t, unknown, pw, "/", ip(1)...)
			expect(t, k, http.StatusUnauthorized)
			if email == known {
				same("failure "+strconv.Itoa(i+1), k, u)
			}
			if !strings.Contains(first(reLoginError, u.body), "do not match") {
				t.Errorf("failure %d of an unknown email: %s", i+1, u.summary())
			}
		}
		// The sixth attempt, with the right password, and from another address: refused.
		for _, from := range [][]string{ip(1), ip(2)} {
			k := p.login(t, known, thePassword, "/", from...)
			u := p.login(t, unknown, thePassword, "/", from...)
			expect(t, k, http.StatusTooManyRequests)
			if msg := first(reLoginError, k.body); !strings.Contains(msg, "for this account") || !strings.Contains(msg, "try again in") {
				t.Errorf("locked account: %q, want it to say the account is locked and when to try again", msg)
			}
			same("locked", k, u)
			retryAfter(t, k)
			if c := k.cookie("kp_session"); c != nil && c.Value != "" {
				t.Errorf("a locked account got a session")
			}
		}
		// The sessions it already had go on.
		expect(t, fx.ownerA.get(t, "/w/"+fx.slugA+"/settings/api"), http.StatusOK)
	})

	t.Run("PerAddress", func(t *testing.T) {
		p := s.newPerson("")
		for i := 1; i <= 20; i++ {
			e := p.login(t, "nobody-"+strconv.Itoa(i)+"-"+fx.marker+"@example.com", tooLong, "/", ip(3)...)
			expect(t, e, http.StatusUnauthorized)
		}
		e := p.login(t, fx.emailB, thePassword, "/", ip(3)...)
		expect(t, e, http.StatusTooManyRequests)
		if msg := first(reLoginError, e.body); !strings.Contains(msg, "from your network") || !strings.Contains(msg, "try again in") {
			t.Errorf("locked address: %q, want it to say the address is locked and when to try again", msg)
		}
		retryAfter(t, e)
		if c := e.cookie("kp_session"); c != nil && c.Value != "" {
			t.Errorf("a locked address got a session")
		}
		// The account itself is not locked.
		expectRedirect(t, s.newPerson(fx.emailB).login(t, fx.emailB, thePassword, "/status", ip(4)...), "/status")
	})
}
