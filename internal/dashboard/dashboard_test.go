package dashboard_test

// HTTP tests of the dashboard: the real program runs in process on a free port, on SQLite and on
// PostgreSQL, and each person is an http.Client with a cookie jar of their own that does not follow
// redirects, so that every 303 can be checked. Pages are read with regular expressions: the module
// does not depend on an HTML parser. Every answer is kept, so that the last subtest can check that no
// page but the one that shows a key value contains it, that every HTML page has the security
// headers, and that the program's own output holds no secret.
//
// The form tests (key, edit, members and reveal forms) are in forms_test.go.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/cli"
	"github.com/keyplane/keyplane/internal/id"
	"github.com/keyplane/keyplane/internal/kptest"
	"github.com/keyplane/keyplane/internal/kptest/leakcheck"
	"github.com/keyplane/keyplane/internal/password"
	"github.com/keyplane/keyplane/internal/service/servicetest"
)

// thePassword is every test person's password, the operator admin's included.
const thePassword = "correct horse battery staple"

// The people of the deployment. admin is the operator admin made at first start and owner of the
// "default" workspace; owner2 owns "second"; loner has an account and no workspace; locked is there
// to be locked out.
var emails = map[string]string{
	"admin":     "admin@localhost",
	"viewer":    "viewer@example.com",
	"developer": "dev@example.com",
	"wsadmin":   "wsadmin@example.com",
	"owner2":    "owner2@example.com",
	"loner":     "loner@example.com",
	"locked":    "locked@example.com",
}

// syncLog collects the program's output.
type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// kpServer is a running keyplane with its root keys, its workspaces' ids, its signed-in people and
// every dashboard answer it gave.
type kpServer struct {
	driver          string
	url             string
	dataDir, dbURL  string
	admin, verifier string // root keys: admin scope, verify scope
	logs            *syncLog

	mu     sync.Mutex
	seen   []*exchange
	values []string // key values made outside the dashboard (REST, root keys): no page may show them
	tokens []string // portal links' tokens: no page, log or row may hold them
	shown  []string // values the browser tests read from the pages that show them, for the leak check
	people map[string]*kpPerson
	ws     map[string]string // slug → workspace id
}

// exchange is one dashboard request and its answer.
type exchange struct {
	method, path string
	status       int
	header       http.Header
	body         string
	cookies      []*http.Cookie
	// secret is the key value or webhook signing secret this answer is allowed to show: set on the
	// pages that show a new, regenerated, rotated or revealed value.
	secret string
	// portal: the answer of a request in portal mode (a portal cookie, or a portal link), which
	// carries the portal's headers (portalSecurityHeaders).
	portal bool
}

func (e *exchange) loc() string  { return e.header.Get("Location") }
func (e *exchange) text() string { return html.UnescapeString(e.body) }

func (e *exchange) cookie(name string) *http.Cookie {
	for _, c := range e.cookies {
		if c.Name == name {
			return c
		}
	}
	return nil
}

var (
	reMeta       = regexp.MustCompile(`<meta name="csrf" content="([^"]+)">`)
	reLoginToken = regexp.MustCompile(`<input type="hidden" name="csrf" value="([^"]*)">`)
	reNext       = regexp.MustCompile(`<input type="hidden" name="next" value="([^"]*)">`)
	reErrorMsg   = regexp.MustCompile(`(?s)id="error-message">(.*?)</p>`)
	reLoginError = regexp.MustCompile(`(?s)id="login-error">(.*?)</div>`)
	reFlash      = regexp.MustCompile(`(?s)<div class="notice ok" role="status">(.*?)</div>`)
	reSecret     = regexp.MustCompile(`id="secret-value" value="([^"]*)"`)
	reKeyValue   = regexp.MustCompile(`kp_(?:(?:sk|pk)_(?:live|test)|root)_[0-9A-Za-z]{38}`)
	reErrorSpan  = regexp.MustCompile(`(?s)<span class="error"[^>]*>(.*?)</span>`)
	reOption     = regexp.MustCompile(`<option value="([^"]*)"`)
	reStatus     = regexp.MustCompile(`data-status="([a-z]+)"`)
	reHookSecret = regexp.MustCompile(`whsec_[0-9A-Za-z+/]{40,}={0,2}`)
)

func first(re *regexp.Regexp, s string) string {
	if m := re.FindStringSubmatch(s); m != nil {
		return html.UnescapeString(m[1])
	}
	return ""
}

// summary says what a page is about, for failure messages: its error or notice, else its start.
func (e *exchange) summary() string {
	for _, re := range []*regexp.Regexp{reErrorMsg, reLoginError, reFlash} {
		if m := first(re, e.body); m != "" {
			return strings.TrimSpace(m)
		}
	}
	b := e.body
	if i := strings.Index(b, "<main"); i >= 0 {
		b = b[i:]
	}
	if len(b) > 300 {
		b = b[:300]
	}
	return b
}

func (s *kpServer) getenv(k string) string {
	switch k {
	case "KEYPLANE_DATA_DIR":
		return s.dataDir
	case "KEYPLANE_DATABASE_URL":
		return s.dbURL
	case "KEYPLANE_ADMIN_PASSWORD":
		return thePassword
	case "KEYPLANE_CONFIG":
		return "../../examples/keyplane.json"
	case "KEYPLANE_LOG_LEVEL":
		return "debug"
	case "KEYPLANE_LOG_FLUSH_INTERVAL":
		return "50ms" // request log entries show on the logs page at once
	case "KEYPLANE_USAGE_FLUSH_INTERVAL":
		return "50ms" // and their counts in the charts
	case "KEYPLANE_WEBHOOK_ALLOW_PRIVATE":
		return "true" // the webhook tests' receivers listen on 127.0.0.1
	case "KEYPLANE_WEBHOOK_RETRY_SCHEDULE":
		return "0s,100ms,100ms" // a failing receiver's attempts are all made within a second or two
	case "KEYPLANE_TRUSTED_PROXIES":
		return "127.0.0.1/8,::1/128" // the tests play a TLS proxy and give each sign-in case an address of its own
	}
	return ""
}

// cli runs one keyplane command to completion and returns its stdout; its stderr joins the logs.
func (s *kpServer) cli(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	p := &cli.Program{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb, Getenv: s.getenv, WebhookGuard: kptest.Guard(t),
		PasswordParams: password.Cheap()}
	err := p.Run(context.Background(), args)
	s.logs.Write(errb.Bytes())
	if err != nil {
		t.Fatalf("keyplane %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return strings.TrimSpace(out.String())
}

// addLoner writes a person with a password and no workspace straight to the store: the CLI always
// makes a member or an operator.
func (s *kpServer) addLoner(t *testing.T) {
	t.Helper()
	db := servicetest.AttachDB(t, s.dataDir, s.dbURL)
	defer db.Close()
	now := time.Now().UTC().Truncate(time.Microsecond)
	u := &keyplane.User{ID: id.NewAt(id.User, now), Email: emails["loner"], PasswordHash: password.HashWith(thePassword, password.Cheap()), CreatedAt: now, UpdatedAt: now}
	if err := db.InsertUser(context.Background(), u); err != nil {
		t.Fatalf("create loner: %v", err)
	}
}

// startKP makes the root keys, starts serve, and adds the second workspace and the people.
func startKP(t *testing.T, driver string) *kpServer {
	t.Helper()
	s := &kpServer{driver: driver, dataDir: t.TempDir(), logs: &syncLog{}, people: map[string]*kpPerson{}, ws: map[string]string{}}
	if driver == "postgres" {
		s.dbURL = servicetest.PostgresURL(t)
	} else if err := os.MkdirAll(s.dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	// Registered before serve's stop, so run after it (cleanups run last registered first), and after
	// the data dir and the database were made, so run before they are removed.
	t.Cleanup(func() { s.checkLeaks(t) })
	s.admin = s.cli(t, "", "root-keys", "create", "--name", "dashboard tests admin", "--scopes", "admin")
	s.verifier = s.cli(t, "", "root-keys", "create", "--name", "dashboard tests verify", "--scopes", "verify")
	s.values = append(s.values, s.admin, s.verifier)
	s.addLoner(t)

	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan string, 1), make(chan error, 1)
	p := &cli.Program{Stdin: strings.NewReader(""), Stdout: s.logs, Stderr: s.logs, Getenv: s.getenv, Ready: func(a string) { ready <- a },
		WebhookGuard: kptest.Guard(t), PasswordParams: password.Cheap()}
	go func() { done <- p.Run(ctx, []string{"serve", "--addr", "127.0.0.1:0"}) }()
	select {
	case a := <-ready:
		s.url = "http://" + a
	case err := <-done:
		cancel()
		t.Fatalf("serve exited before listening: %v\n%s", err, s.logs.String())
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("serve did not listen within 60s")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve returned %v", err)
		}
	})

	s.ws["second"] = s.cli(t, "", "workspaces", "create", "--name", "Second", "--slug", "second")
	for _, u := range []struct{ who, role, ws string }{
		{"viewer", "viewer", "default"}, {"developer", "developer", "default"}, {"wsadmin", "admin", "default"},
		{"locked", "viewer", "default"}, {"owner2", "owner", "second"},
	} {
		s.cli(t, thePassword+"\n", "users", "create", "--email", emails[u.who], "--role", u.role, "--workspace", u.ws)
	}
	st, body := s.call(t, s.admin, "GET", "/v1/workspaces?limit=100", "", nil)
	if st != 200 {
		t.Fatalf("list workspaces: %d %v", st, body)
	}
	for _, w := range list(body) {
		s.ws[w["slug"].(string)] = w["id"].(string)
	}
	if s.ws["default"] == "" {
		t.Fatalf("no default workspace: %v", body)
	}
	return s
}

// checkLeaks searches the program's output (every level), every file of the data dir and every row of
// the database for every secret the test saw: the root keys and the values made through the REST API,
// the values and signing secrets the pages showed, the people's password, and their session tokens.
func (s *kpServer) checkLeaks(t *testing.T) {
	c := leakcheck.New()
	s.mu.Lock()
	for _, v := range s.values {
		c.Secret(leakcheck.Password, "a value made outside the dashboard", v)
	}
	for _, v := range s.shown {
		c.Secret(leakcheck.Password, "a value a page showed the browser", v)
	}
	for _, e := range s.seen {
		if e.secret != "" {
			c.Secret(leakcheck.Password, "the value shown by "+e.method+" "+e.path, e.secret)
		}
		for _, ck := range e.cookies {
			if (ck.Name == "kp_session" || ck.Name == "kp_portal") && ck.Value != "" {
				c.Secret(leakcheck.Token, "a session token", ck.Value)
			}
		}
	}
	for _, v := range s.tokens {
		c.Secret(leakcheck.Token, "a portal link's token", v)
	}
	s.mu.Unlock()
	c.Secret(leakcheck.Password, "the people's password", thePassword)
	c.Output("the program's output", s.logs)
	c.Store(s.dataDir, s.dbURL)
	found, st := c.Scan()
	for _, err := range st.ReadErrors {
		t.Error(err)
	}
	for _, f := range found {
		t.Error(f)
	}
	t.Logf("leak check: %s: %d found", st, len(found))
}

// --- the REST API, with root keys ---

func (s *kpServer) call(t *testing.T, cred, method, path, wsID string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+cred)
	if wsID != "" {
		req.Header.Set("X-Workspace-Id", wsID)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(res.Body).Decode(&out)
	return res.StatusCode, out
}

func data(body map[string]any) map[string]any { d, _ := body["data"].(map[string]any); return d }

func list(body map[string]any) []map[string]any {
	raw, _ := body["data"].([]any)
	out := make([]map[string]any, 0, len(raw))
	for _, x := range raw {
		if m, ok := x.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// keys lists a workspace's keys through the API.
func (s *kpServer) keys(t *testing.T, slug string) []map[string]any {
	t.Helper()
	st, body := s.call(t, s.admin, "GET", "/v1/api-keys?limit=100", s.ws[slug], nil)
	if st != 200 {
		t.Fatalf("list keys of %s: %d %v", slug, st, body)
	}
	return list(body)
}

// key reads one key through the API; nil when it does not exist.
func (s *kpServer) key(t *testing.T, slug, keyID string) map[string]any {
	t.Helper()
	st, body := s.call(t, s.admin, "GET", "/v1/api-keys/"+keyID, s.ws[slug], nil)
	if st == 404 {
		return nil
	}
	if st != 200 {
		t.Fatalf("get key %s: %d %v", keyID, st, body)
	}
	return data(body)
}

// restKey creates a key through the API; its value must never appear on a page.
func (s *kpServer) restKey(t *testing.T, slug string, body map[string]any) (string, string) {
	t.Helper()
	st, res := s.call(t, s.admin, "POST", "/v1/api-keys", s.ws[slug], body)
	if st != 201 {
		t.Fatalf("create key: %d %v", st, res)
	}
	d := data(res)
	s.mu.Lock()
	s.values = append(s.values, d["keyValue"].(string))
	s.mu.Unlock()
	return d["id"].(string), d["keyValue"].(string)
}

// verifyCode asks POST /v1/verify about a value, from ip when it is not empty.
func (s *kpServer) verifyCode(t *testing.T, value, ip string) string {
	t.Helper()
	req := map[string]any{"key": value}
	if ip != "" {
		req["ip"] = ip
	}
	st, body := s.call(t, s.verifier, "POST", "/v1/verify", "", req)
	if st != 200 {
		t.Fatalf("verify: %d %v", st, body)
	}
	c, _ := data(body)["code"].(string)
	return c
}

// createWorkspace makes a workspace through the API.
func (s *kpServer) createWorkspace(t *testing.T, slug string) string {
	t.Helper()
	st, body := s.call(t, s.admin, "POST", "/v1/workspaces", "", map[string]any{"name": "Workspace " + slug, "slug": slug})
	if st != 201 {
		t.Fatalf("create workspace %s: %d %v", slug, st, body)
	}
	s.mu.Lock()
	s.ws[slug] = data(body)["id"].(string)
	s.mu.Unlock()
	return s.ws[slug]
}

func (s *kpServer) patchWorkspace(t *testing.T, slug string, body map[string]any) {
	t.Helper()
	if st, res := s.call(t, s.admin, "PATCH", "/v1/workspaces/"+s.ws[slug], "", body); st != 200 {
		t.Fatalf("patch workspace %s: %d %v", slug, st, res)
	}
}

// --- people ---

// kpPerson is one browser: a cookie jar, and the form token of its session once signed in.
type kpPerson struct {
	s     *kpServer
	email string
	c     *http.Client
	csrf  string
	raw   bool // send through the transport, without the client's redirect handling
	// portal is the portal session's cookie, sent by hand: the jar keeps a Secure cookie for https
	// only, and the portal's cookie is always Secure.
	portal string
}

func (s *kpServer) newPerson(email string) *kpPerson {
	jar, _ := cookiejar.New(nil)
	return &kpPerson{s: s, email: email, c: &http.Client{
		Jar:           jar,
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// do sends a request as a browser would: a form body, and on POST the page's own Origin. hdr are
// name/value pairs; an empty value removes the header.
func (p *kpPerson) do(t *testing.T, method, path string, form url.Values, hdr ...string) *exchange {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, p.s.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if method == http.MethodPost {
		req.Header.Set("Origin", p.s.url)
	}
	req.Header.Set("User-Agent", "dashboard-test")
	if p.portal != "" {
		req.AddCookie(&http.Cookie{Name: "kp_portal", Value: p.portal})
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	var res *http.Response
	if p.raw {
		// Straight to the transport: http.Client refuses a Location it cannot parse, a browser
		// does not.
		for _, c := range p.c.Jar.Cookies(req.URL) {
			req.AddCookie(c)
		}
		if res, err = http.DefaultTransport.RoundTrip(req); err == nil {
			p.c.Jar.SetCookies(req.URL, res.Cookies())
		}
	} else {
		res, err = p.c.Do(req)
	}
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read: %v", method, path, err)
	}
	e := &exchange{method: method, path: path, status: res.StatusCode, header: res.Header, body: string(b), cookies: res.Cookies(),
		portal: method == http.MethodGet && strings.HasPrefix(path, "/portal/") && len(path) > len("/portal/") ||
			p.portal != "" && !strings.HasPrefix(path, "/login") && !strings.HasPrefix(path, "/static/")}
	p.s.mu.Lock()
	p.s.seen = append(p.s.seen, e)
	p.s.mu.Unlock()
	return e
}

func (p *kpPerson) get(t *testing.T, path string, hdr ...string) *exchange {
	t.Helper()
	return p.do(t, http.MethodGet, path, nil, hdr...)
}

// post sends a form with the session's token, unless the form brings its own csrf field.
func (p *kpPerson) post(t *testing.T, path string, form url.Values, hdr ...string) *exchange {
	t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if !form.Has("csrf") {
		form.Set("csrf", p.csrf)
	}
	return p.do(t, http.MethodPost, path, form, hdr...)
}

// login fills in the sign-in form reached at /login?next=next, as a browser would, and posts it.
func (p *kpPerson) login(t *testing.T, email, pw, next string, hdr ...string) *exchange {
	t.Helper()
	lp := p.get(t, "/login?next="+url.QueryEscape(next))
	expect(t, lp, http.StatusOK)
	tok := first(reLoginToken, lp.body)
	if tok == "" {
		t.Fatalf("the sign-in page has no token:\n%s", lp.body)
	}
	form := url.Values{"csrf": {tok}, "email": {email}, "password": {pw}, "next": {first(reNext, lp.body)}}
	if next != "" && form.Get("next") == "/" {
		form.Set("next", next) // a forged form: the page refused next, the post tries it anyway
	}
	return p.do(t, http.MethodPost, "/login", form, hdr...)
}

// loadCSRF reads the session's form token from a page's <meta name="csrf">.
func (p *kpPerson) loadCSRF(t *testing.T) {
	t.Helper()
	e := p.get(t, "/status")
	expect(t, e, http.StatusOK)
	if p.csrf = first(reMeta, e.body); p.csrf == "" {
		t.Fatalf("no csrf meta on /status:\n%s", e.body)
	}
}

// as returns a signed-in person, signing them in the first time.
func (s *kpServer) as(t *testing.T, who string) *kpPerson {
	t.Helper()
	s.mu.Lock()
	p := s.people[who]
	s.mu.Unlock()
	if p != nil {
		return p
	}
	p = s.newPerson(emails[who])
	e := p.login(t, p.email, thePassword, "/status")
	if e.status != http.StatusSeeOther {
		t.Fatalf("sign in as %s: %d %s", who, e.status, e.summary())
	}
	p.loadCSRF(t)
	s.remember(who, p)
	return p
}

func (s *kpServer) remember(who string, p *kpPerson) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.people[who] == nil {
		s.people[who] = p
	}
}

// --- assertions ---

func expect(t *testing.T, e *exchange, status int) {
	t.Helper()
	if e.status != status {
		t.Fatalf("%s %s: status %d, want %d: %s", e.method, e.path, e.status, status, e.summary())
	}
}

func expectText(t *testing.T, e *exchange, want ...string) {
	t.Helper()
	txt := e.text()
	for _, w := range want {
		if !strings.Contains(txt, w) {
			t.Errorf("%s %s (%d): page does not say %q: %s", e.method, e.path, e.status, w, e.summary())
		}
	}
}

// expectRedirect checks a 303 and returns the Location's path and query.
func expectRedirect(t *testing.T, e *exchange, path string) *url.URL {
	t.Helper()
	if e.status != http.StatusSeeOther {
		t.Fatalf("%s %s: status %d, want 303 to %s: %s", e.method, e.path, e.status, path, e.summary())
	}
	u, err := url.Parse(e.loc())
	if err != nil || u.Host != "" || u.Path != path {
		t.Fatalf("%s %s: redirect to %q, want %s", e.method, e.path, e.loc(), path)
	}
	return u
}

// errorPage checks an error page: status and the message a person reads.
func errorPage(t *testing.T, e *exchange, status int, msg string) {
	t.Helper()
	expect(t, e, status)
	if got := first(reErrorMsg, e.body); !strings.Contains(got, msg) {
		t.Errorf("%s %s: error page says %q, want %q", e.method, e.path, got, msg)
	}
	if ct := e.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("%s %s: Content-Type %q, want an HTML page", e.method, e.path, ct)
	}
}

// nav is the workspace navigation of a page.
func nav(body string) string {
	i := strings.Index(body, `<nav aria-label="Workspace">`)
	if i < 0 {
		return ""
	}
	j := strings.Index(body[i:], "</nav>")
	return body[i : i+j]
}

// switcher lists the workspace slugs the switcher offers.
func switcher(body string) []string {
	i := strings.Index(body, `<select id="workspace-switch"`)
	if i < 0 {
		return nil
	}
	j := strings.Index(body[i:], "</select>")
	var out []string
	for _, m := range reOption.FindAllStringSubmatch(body[i:i+j], -1) {
		out = append(out, m[1])
	}
	return out
}

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// --- the tests ---

func TestDashboardHTTP(t *testing.T) {
	for _, driver := range servicetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			s := startKP(t, driver)
			// In order: later ones rely on the people and workspaces earlier ones made, and the last
			// one looks at everything the others saw.
			for _, c := range []struct {
				name string
				fn   func(*testing.T, *kpServer)
			}{
				{"SignIn", testSignIn},
				{"SignInOddUserAgent", testSignInOddUserAgent},
				{"Authorization", testAuthorization},
				{"CSRF", testCSRF},
				{"CreateKeyValidation", testCreateKeyValidation},
				{"LiveModeOff", testLiveModeOff},
				{"KeyLimit", testKeyLimit},
				{"KeyLifecycle", testKeyLifecycle},
				{"Reveal", testReveal},
				{"Members", testMembers},
				{"MemberFlows", testMemberFlows},
				{"Logs", testLogs},
				{"Webhooks", testWebhooks},
				{"Recovery", testRecovery},
				{"KeyUsageSettings", testKeyUsageSettings},
				{"Identities", testIdentities},
				{"LogsTagAndExport", testLogsTagAndExport},
				{"Pages", testPages},
				{"CSRFEveryRoute", testCSRFEveryRoute},
				{"Portal", testPortal}, // before Isolation, whose control posts delete A's resources
				{"Isolation", testIsolation},
				{"Sessions", testSessions},
				{"CookieFlags", testCookieFlags},
				{"BruteForce", testBruteForce},
				{"SignOut", testSignOut},
				{"NoSecretsAnywhere", testNoSecretsAnywhere},
			} {
				t.Run(c.name, func(t *testing.T) { c.fn(t, s) })
			}
		})
	}
}

func testSignIn(t *testing.T, s *kpServer) {
	t.Run("RightPasswordGoesToNext", func(t *testing.T) {
		p := s.newPerson(emails["admin"])
		// A page that needs a session sends the person to sign in, and back afterwards.
		e := p.get(t, "/w/default/settings/api")
		u := expectRedirect(t, e, "/login")
		next := u.Query().Get("next")
		if next != "/w/default/settings/api" {
			t.Fatalf("next = %q, want /w/default/settings/api", next)
		}
		lp := p.get(t, e.loc())
		expect(t, lp, http.StatusOK)
		expectText(t, lp, "Email", "Password", "Sign in")
		if got := first(reNext, lp.body); got != next {
			t.Errorf("hidden next = %q, want %q", got, next)
		}
		if c := lp.cookie("kp_login"); c == nil || !c.HttpOnly || c.Value == "" {
			t.Errorf("sign-in form cookie: %+v", c)
		}
		e = p.login(t, p.email, thePassword, next)
		expectRedirect(t, e, next)
		c := e.cookie("kp_session")
		if c == nil || c.Value == "" {
			t.Fatalf("no session cookie: %v", e.cookies)
		}
		if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Secure || c.MaxAge <= 0 {
			t.Errorf("session cookie: HttpOnly %v SameSite %v Path %q Secure %v MaxAge %d; want HttpOnly, Lax, /, not Secure over HTTP, a lifetime",
				c.HttpOnly, c.SameSite, c.Path, c.Secure, c.MaxAge)
		}
		if l := e.cookie("kp_login"); l == nil || l.MaxAge >= 0 {
			t.Errorf("the sign-in form's cookie is not cleared after sign-in: %+v", l)
		}
		page := p.get(t, next)
		expect(t, page, http.StatusOK)
		expectText(t, page, "API keys", emails["admin"])
		p.loadCSRF(t)
		s.remember("admin", p)
	})

	t.Run("SecureBehindTLSProxy", func(t *testing.T) {
		p := s.newPerson(emails["admin"])
		lp := p.get(t, "/login", "X-Forwarded-Proto", "https")
		lc := lp.cookie("kp_login")
		if lc == nil || !lc.Secure {
			t.Fatalf("sign-in form cookie over https is not Secure: %+v", lc)
		}
		// The jar keeps Secure cookies for https: send it by hand, as the browser would over TLS.
		form := url.Values{"csrf": {first(reLoginToken, lp.body)}, "email": {p.email}, "password": {thePassword}, "next": {"/"}}
		e := p.do(t, http.MethodPost, "/login", form, "X-Forwarded-Proto", "https", "Cookie", "kp_login="+lc.Value)
		expectRedirect(t, e, "/")
		c := e.cookie("kp_session")
		if c == nil || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" {
			t.Errorf("session cookie behind a TLS proxy: %+v; want Secure, HttpOnly, Lax, /", c)
		}
		// HSTS on every answer over TLS, pages and API alike; none over plain HTTP.
		const hsts = "max-age=63072000; includeSubDomains"
		for _, x := range []*exchange{lp, e, p.get(t, "/v1/status", "X-Forwarded-Proto", "https"), p.get(t, "/nowhere", "X-Forwarded-Proto", "https")} {
			if got := x.header.Get("Strict-Transport-Security"); got != hsts {
				t.Errorf("%s %s behind a TLS proxy: Strict-Transport-Security %q, want %q", x.method, x.path, got, hsts)
			}
		}
		for _, x := range []*exchange{p.get(t, "/login"), p.get(t, "/v1/status")} {
			if got := x.header.Get("Strict-Transport-Security"); got != "" {
				t.Errorf("%s %s over plain HTTP: Strict-Transport-Security %q, want none", x.method, x.path, got)
			}
		}
	})

	t.Run("WrongPassword", func(t *testing.T) {
		p := s.newPerson(emails["admin"])
		e := p.login(t, p.email, "not the password at all", "/")
		expect(t, e, http.StatusUnauthorized)
		if msg := first(reLoginError, e.body); !strings.Contains(msg, "do not match") {
			t.Errorf("error = %q, want it to say the email and password do not match", msg)
		}
		if c := e.cookie("kp_session"); c != nil && c.Value != "" {
			t.Errorf("a failed sign-in set a session cookie")
		}
		if !strings.Contains(e.body, `value="`+emails["admin"]+`"`) || strings.Contains(e.body, "not the password at all") {
			t.Errorf("the form should keep the email and never echo the password")
		}
		expectRedirect(t, p.get(t, "/w/default/audit"), "/login")
	})

	t.Run("MissingFields", func(t *testing.T) {
		for _, f := range []struct{ name, email, pw string }{
			{"no password", emails["admin"], ""},
			{"no email", "", thePassword},
			{"blank email", "   ", thePassword},
			{"nothing", "", ""},
		} {
			t.Run(f.name, func(t *testing.T) {
				p := s.newPerson(f.email)
				e := p.login(t, f.email, f.pw, "/")
				expect(t, e, http.StatusBadRequest)
				if msg := first(reLoginError, e.body); !strings.Contains(msg, "Enter your email and your password") {
					t.Errorf("error = %q", msg)
				}
				if c := e.cookie("kp_session"); c != nil && c.Value != "" {
					t.Errorf("session cookie set")
				}
			})
		}
	})

	t.Run("LoginTokenMissingOrWrong", func(t *testing.T) {
		good := url.Values{"email": {emails["admin"]}, "password": {thePassword}, "next": {"/"}}
		for _, c := range []struct {
			name   string
			cookie string // kp_login cookie sent; "" none
			token  string // csrf field
		}{
			{"no cookie, no field", "", ""},
			{"no cookie", "", randomToken()},
			{"cookie, no field", randomToken(), ""},
			{"cookie and another field", randomToken(), randomToken()},
		} {
			t.Run(c.name, func(t *testing.T) {
				p := s.newPerson("")
				form := url.Values{}
				for k, v := range good {
					form[k] = v
				}
				form.Set("csrf", c.token)
				var hdr []string
				if c.cookie != "" {
					hdr = []string{"Cookie", "kp_login=" + c.cookie}
				}
				e := p.do(t, http.MethodPost, "/login", form, hdr...)
				expect(t, e, http.StatusForbidden)
				if msg := first(reLoginError, e.body); !strings.Contains(msg, "expired") {
					t.Errorf("error = %q, want the form to have expired", msg)
				}
				if ck := e.cookie("kp_session"); ck != nil && ck.Value != "" {
					t.Errorf("session cookie set without a valid sign-in form")
				}
				// A fresh form comes with the refusal, so the person can simply try again.
				if first(reLoginToken, e.body) == "" || e.cookie("kp_login") == nil {
					t.Errorf("the refusal has no fresh sign-in form")
				}
			})
		}
	})

	t.Run("OpenRedirectRefused", func(t *testing.T) {
		// The page itself never carries a foreign next...
		for _, next := range []string{"//evil.example", "https://evil.example", `/\evil.example`, "evil.example", "javascript:alert(1)"} {
			lp := s.newPerson("").get(t, "/login?next="+url.QueryEscape(next))
			if got := first(reNext, lp.body); got != "/" {
				t.Errorf("next=%q: the sign-in page carries next %q, want /", next, got)
			}
		}
		// ...and a forged form is sent home.
		for _, next := range []string{"//evil.example", "https://evil.example"} {
			p := s.newPerson(emails["admin"])
			e := p.login(t, p.email, thePassword, next)
			expectRedirect(t, e, "/")
			if e.loc() != "/" {
				t.Errorf("next=%q: Location %q, want /", next, e.loc())
			}
		}
	})

	// Regression: a tab in next made url.Parse fail, so the Location went out as given and browsers,
	// which strip tabs, followed "//evil.example". safeNext now refuses control characters.
	t.Run("NextWithTabStaysOnSite", func(t *testing.T) {
		for _, next := range []string{"/\t/evil.example"} {
			p := s.newPerson(emails["admin"])
			p.raw = true
			e := p.login(t, p.email, thePassword, next)
			if e.status != http.StatusSeeOther {
				t.Fatalf("sign in: %d %s", e.status, e.summary())
			}
			base, _ := url.Parse(s.url)
			// What a browser makes of the Location: tabs and newlines removed, \ read as /.
			loc := strings.NewReplacer("\t", "", "\n", "", "\r", "", `\`, "/").Replace(e.loc())
			ref, err := url.Parse(loc)
			if err != nil {
				t.Fatalf("Location %q: %v", e.loc(), err)
			}
			if got := base.ResolveReference(ref); got.Host != base.Host {
				t.Errorf("next=%q: Location %q takes a browser to %s, another site", next, e.loc(), got)
			}
		}
	})

	t.Run("SixthFailureIsThrottled", func(t *testing.T) {
		p := s.newPerson(emails["locked"])
		for i := 1; i <= 5; i++ {
			e := p.login(t, p.email, "wrong password number "+string(rune('0'+i)), "/")
			expect(t, e, http.StatusUnauthorized)
		}
		e := p.login(t, p.email, "wrong password number 6", "/")
		expect(t, e, http.StatusTooManyRequests)
		if msg := first(reLoginError, e.body); !strings.Contains(msg, "try again in") {
			t.Errorf("error = %q, want it to say when to try again", msg)
		}
		// Locked means locked: the right password does not get in either.
		e = p.login(t, p.email, thePassword, "/")
		expect(t, e, http.StatusTooManyRequests)
		expectText(t, e, "try again in")
		if c := e.cookie("kp_session"); c != nil && c.Value != "" {
			t.Errorf("a throttled account got a session")
		}
		// Other accounts are not locked out: the admin signed in above, the viewer signs in below.
	})

	t.Run("SessionFixation", func(t *testing.T) {
		planted := randomToken()
		base, _ := url.Parse(s.url)
		p := s.newPerson(emails["viewer"])
		p.c.Jar.SetCookies(base, []*http.Cookie{{Name: "kp_session", Value: planted, Path: "/"}})
		expectRedirect(t, p.get(t, "/w/default/audit"), "/login")
		e := p.login(t, p.email, thePassword, "/w/default/audit")
		expectRedirect(t, e, "/w/default/audit")
		c := e.cookie("kp_session")
		if c == nil || c.Value == "" || c.Value == planted {
			t.Fatalf("sign-in kept the planted session id: %+v", c)
		}
		expect(t, p.get(t, "/w/default/audit"), http.StatusOK)
		// The planted value is worth nothing, before or after the sign-in.
		attacker := s.newPerson("")
		attacker.c.Jar.SetCookies(base, []*http.Cookie{{Name: "kp_session", Value: planted, Path: "/"}})
		expectRedirect(t, attacker.get(t, "/w/default/audit"), "/login")
		p.loadCSRF(t)
		s.remember("viewer", p)
	})
}

func testAuthorization(t *testing.T, s *kpServer) {
	probeID, _ := s.restKey(t, "default", map[string]any{"name": "Authorization probe", "keyType": "secret", "environment": "test"})
	secondID, _ := s.restKey(t, "second", map[string]any{"name": "Second's key", "keyType": "secret", "environment": "test"})

	t.Run("NoSession", func(t *testing.T) {
		p := s.newPerson("")
		for _, path := range []string{"/w/default/settings/api", "/w/default/audit", "/w/default/members", "/status", "/logout", "/w/default/settings/api/" + probeID} {
			u := expectRedirect(t, p.get(t, path), "/login")
			if got := u.Query().Get("next"); got != path {
				t.Errorf("GET %s: next = %q", path, got)
			}
		}
		// A form posted without a session goes to sign in and then home, never replays the post.
		u := expectRedirect(t, p.do(t, http.MethodPost, "/w/default/settings/api/"+probeID+"/revoke", url.Values{}), "/login")
		if got := u.Query().Get("next"); got != "/" {
			t.Errorf("POST without session: next = %q, want /", got)
		}
		if k := s.key(t, "default", probeID); k["status"] != "active" {
			t.Errorf("the probe key is %v after a post without session", k["status"])
		}
	})

	for _, who := range []string{"viewer", "developer"} {
		t.Run(who, func(t *testing.T) {
			p := s.as(t, who)
			e := p.get(t, "/w/default/settings/api")
			errorPage(t, e, http.StatusForbidden, "Your role in this workspace ("+who+") does not allow this")
			errorPage(t, p.get(t, "/w/default/settings/api/"+probeID), http.StatusForbidden, "("+who+")")
			errorPage(t, p.get(t, "/w/default/settings/api/"+probeID+"/reveal"), http.StatusForbidden, "("+who+")")
			// Home is the logs, not a page they may not open; so is the workspace's own address.
			expectRedirect(t, p.get(t, "/"), "/w/default/logs")
			expectRedirect(t, p.get(t, "/w/default"), "/w/default/logs")
			expectRedirect(t, p.get(t, "/w?slug=default"), "/w/default/logs")
			audit := p.get(t, "/w/default/audit")
			expect(t, audit, http.StatusOK)
			// The workspace's trail holds its members' arrivals; their sign-ins are in the
			// operator's chain only.
			expectText(t, audit, "Audit trail", "member.added")
			if strings.Contains(audit.body, "user.signed_in") || strings.Contains(audit.body, "user.sign_in_failed") {
				t.Errorf("a workspace's audit trail shows sign-ins")
			}
			// The trail's entries about keys, without the keys' names and settings: README says
			// developers and viewers see no API keys.
			probeName := s.key(t, "default", probeID)["name"].(string)
			if !strings.Contains(audit.body, probeID) || strings.Contains(audit.body, html.EscapeString(probeName)) || !strings.Contains(audit.body, `id="keys-hidden"`) {
				t.Errorf("%s's audit page: probe id shown %v, its name %q shown %v, the notice shown %v", who,
					strings.Contains(audit.body, probeID), probeName, strings.Contains(audit.body, html.EscapeString(probeName)), strings.Contains(audit.body, `id="keys-hidden"`))
			}
			// The page does not check the chain by itself; "Verify chain" does, and may be pressed by all.
			e = p.post(t, "/w/default/audit/verify", nil)
			expectRedirect(t, e, "/w/default/audit")
			if after := p.get(t, "/w/default/audit"); !strings.Contains(first(reFlash, after.body), "Chain verified") || !strings.Contains(after.body, "✓ Chain verified") {
				t.Errorf("%s: after Verify chain, flash %q", who, first(reFlash, after.body))
			}
			n := nav(audit.body)
			if n == "" || strings.Contains(n, "API keys") || !strings.Contains(n, "Logs") || !strings.Contains(n, "Audit trail") || !strings.Contains(n, "Members") {
				t.Errorf("%s's navigation: %q; want Logs, Audit trail and Members, no API keys", who, n)
			}
			members := p.get(t, "/w/default/members")
			expect(t, members, http.StatusOK)
			expectText(t, members, emails["admin"], emails["viewer"], emails["developer"])
			if strings.Contains(members.body, `action="/w/default/members"`) {
				t.Errorf("%s sees the add-member form", who)
			}
			// Posting anyway changes nothing.
			before := len(s.keys(t, "default"))
			e = p.post(t, "/w/default/settings/api", url.Values{"name": {"sneaky"}, "keyType": {"secret"}, "environment": {"test"}})
			errorPage(t, e, http.StatusForbidden, "does not allow this")
			errorPage(t, p.post(t, "/w/default/settings/api/"+probeID+"/revoke", nil), http.StatusForbidden, "does not allow this")
			errorPage(t, p.post(t, "/w/default/members", url.Values{"email": {"mallory@example.com"}, "role": {"owner"}}), http.StatusForbidden, "does not allow this")
			if after := len(s.keys(t, "default")); after != before {
				t.Errorf("%s created a key: %d → %d", who, before, after)
			}
			if k := s.key(t, "default", probeID); k["status"] != "active" {
				t.Errorf("%s revoked the probe key", who)
			}
			if strings.Contains(p.get(t, "/w/default/members").body, "mallory@example.com") {
				t.Errorf("%s added a member", who)
			}
		})
	}

	t.Run("AdminNav", func(t *testing.T) {
		p := s.as(t, "admin")
		e := p.get(t, "/w/default/audit")
		expect(t, e, http.StatusOK)
		if !strings.Contains(nav(e.body), `href="/w/default/settings/api"`) {
			t.Errorf("the owner's navigation has no API keys link: %q", nav(e.body))
		}
		expectRedirect(t, p.get(t, "/"), "/w/default/settings/api")
		if !strings.Contains(p.get(t, "/w/default/members").body, `action="/w/default/members"`) {
			t.Errorf("the owner has no add-member form")
		}
	})

	t.Run("OtherWorkspaceIsNotFound", func(t *testing.T) {
		p := s.as(t, "owner2")
		expect(t, p.get(t, "/w/second/settings/api"), http.StatusOK)
		ghost := p.get(t, "/w/no-such-workspace/audit")
		errorPage(t, ghost, http.StatusNotFound, "There is no workspace here")
		for _, path := range []string{
			"/w/default/settings/api", "/w/default/audit", "/w/default/members", "/w/default",
			"/w/default/settings/api/" + probeID, "/w/default/settings/api/" + probeID + "/revoke",
		} {
			e := p.get(t, path)
			errorPage(t, e, http.StatusNotFound, "There is no workspace here")
			// Nothing tells an existing workspace from one that does not exist.
			if first(reErrorMsg, e.body) != first(reErrorMsg, ghost.body) {
				t.Errorf("GET %s: %q differs from a missing workspace's %q", path, first(reErrorMsg, e.body), first(reErrorMsg, ghost.body))
			}
		}
		errorPage(t, p.post(t, "/w/default/settings/api/"+probeID+"/revoke", nil), http.StatusNotFound, "There is no workspace here")
		// A key of another workspace, through one's own workspace's pages.
		errorPage(t, p.get(t, "/w/second/settings/api/"+probeID), http.StatusNotFound, "")
		errorPage(t, p.post(t, "/w/second/settings/api/"+probeID+"/revoke", nil), http.StatusNotFound, "")
		errorPage(t, p.post(t, "/w/second/settings/api/"+probeID+"/enabled", url.Values{"enabled": {"false"}}), http.StatusNotFound, "")
		if k := s.key(t, "default", probeID); k["status"] != "active" {
			t.Errorf("owner2 changed a key of another workspace: %v", k["status"])
		}
		if sw := switcher(p.get(t, "/w/second/audit").body); !slices.Equal(sw, []string{"second"}) {
			t.Errorf("owner2's switcher: %v, want only second", sw)
		}
		// And the other way round: default's admin, who is no operator, does not see second.
		wa := s.as(t, "wsadmin")
		errorPage(t, wa.get(t, "/w/second/settings/api"), http.StatusNotFound, "There is no workspace here")
		errorPage(t, wa.get(t, "/w/default/settings/api/"+secondID), http.StatusNotFound, "")
		if sw := switcher(wa.get(t, "/w/default/audit").body); !slices.Equal(sw, []string{"default"}) {
			t.Errorf("wsadmin's switcher: %v, want only default", sw)
		}
	})

	t.Run("NoMembership", func(t *testing.T) {
		p := s.as(t, "loner")
		e := p.get(t, "/")
		expect(t, e, http.StatusOK)
		expectText(t, e, "You are not a member of any workspace yet")
		if nav(e.body) != "" || len(switcher(e.body)) != 0 {
			t.Errorf("a person without workspace sees a workspace navigation or switcher")
		}
		for _, path := range []string{"/w/default/settings/api", "/w/default/audit", "/w/default/members", "/w/second/audit"} {
			errorPage(t, p.get(t, path), http.StatusNotFound, "There is no workspace here")
		}
		expect(t, p.get(t, "/status"), http.StatusOK)
	})

	t.Run("OperatorSeesEveryWorkspace", func(t *testing.T) {
		p := s.as(t, "admin")
		sw := switcher(p.get(t, "/w/default/audit").body)
		for slug := range s.ws {
			if !slices.Contains(sw, slug) {
				t.Errorf("the operator's switcher %v lacks %s", sw, slug)
			}
		}
		// Not a member of second, yet may open it: as its owner.
		e := p.get(t, "/w/second/settings/api")
		expect(t, e, http.StatusOK)
		if !strings.Contains(e.body, `data-key-id="`+secondID+`"`) {
			t.Errorf("the operator does not see second's key")
		}
		expectRedirect(t, p.get(t, "/w?slug=second"), "/w/second/settings/api")
	})
}

func testCSRF(t *testing.T, s *kpServer) {
	admin, other := s.as(t, "admin"), s.as(t, "wsadmin")
	if admin.csrf == other.csrf {
		t.Fatal("two sessions share a form token")
	}
	probeID, _ := s.restKey(t, "default", map[string]any{"name": "CSRF probe", "keyType": "secret", "environment": "test"})
	form := func() url.Values {
		return url.Values{"name": {"Forged key"}, "keyType": {"secret"}, "environment": {"test"}}
	}
	before := s.keys(t, "default")

	cases := []struct {
		name  string
		token string   // "" none
		hdr   []string // extra headers
		msg   string
	}{
		{"no token", "", nil, "This form has expired or was not sent from this site"},
		{"another session's token", other.csrf, nil, "This form has expired or was not sent from this site"},
		{"a made-up token", randomToken(), nil, "This form has expired or was not sent from this site"},
		{"cross-site fetch", admin.csrf, []string{"Sec-Fetch-Site", "cross-site"}, "sent from another site"},
		{"same-site, other origin", admin.csrf, []string{"Sec-Fetch-Site", "same-site"}, "sent from another site"},
		{"foreign Origin", admin.csrf, []string{"Origin", "https://evil.example"}, "sent from another site"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			send := func(path string, f url.Values) *exchange {
				if c.token != "" {
					f.Set("csrf", c.token)
				}
				return admin.do(t, http.MethodPost, path, f, c.hdr...)
			}
			errorPage(t, send("/w/default/settings/api", form()), http.StatusForbidden, c.msg)
			errorPage(t, send("/w/default/settings/api/"+probeID+"/enabled", url.Values{"enabled": {"false"}}), http.StatusForbidden, c.msg)
			errorPage(t, send("/w/default/settings/api/"+probeID+"/revoke", url.Values{}), http.StatusForbidden, c.msg)
			errorPage(t, send("/w/default/members", url.Values{"email": {"forged@example.com"}, "role": {"owner"}}), http.StatusForbidden, c.msg)
			errorPage(t, send("/logout", url.Values{}), http.StatusForbidden, c.msg)
		})
	}
	after := s.keys(t, "default")
	if len(after) != len(before) {
		t.Errorf("refused forms changed the key list: %d → %d keys", len(before), len(after))
	}
	if k := s.key(t, "default", probeID); k["status"] != "active" || k["enabled"] != true {
		t.Errorf("refused forms changed the probe key: %v", k)
	}
	if strings.Contains(admin.get(t, "/w/default/members").body, "forged@example.com") {
		t.Errorf("a refused form added a member")
	}
	expect(t, admin.get(t, "/w/default/settings/api"), http.StatusOK) // the refused sign-out did not end the session

	t.Run("ValidTokenWorks", func(t *testing.T) {
		// The control: the same form, from the page, with the session's token, goes through.
		e := admin.post(t, "/w/default/settings/api", form())
		secretPage(t, e, "kp_sk_test_")
		if n := len(s.keys(t, "default")); n != len(after)+1 {
			t.Errorf("a valid form did not create one key: %d → %d", len(after), n)
		}
		// A browser without Sec-Fetch-Site and Origin (older ones) still gets in with the token.
		e = admin.post(t, "/w/default/settings/api/"+probeID+"/enabled", url.Values{"enabled": {"false"}}, "Origin", "")
		expectRedirect(t, e, "/w/default/settings/api")
		if k := s.key(t, "default", probeID); k["enabled"] != false {
			t.Errorf("toggle with a valid token did not disable the key")
		}
	})

	t.Run("CrossSiteSignIn", func(t *testing.T) {
		p := s.newPerson(emails["admin"])
		e := p.login(t, p.email, thePassword, "/", "Sec-Fetch-Site", "cross-site")
		expect(t, e, http.StatusForbidden)
		if c := e.cookie("kp_session"); c != nil && c.Value != "" {
			t.Errorf("a cross-site sign-in got a session")
		}
	})
}

func testPages(t *testing.T, s *kpServer) {
	admin := s.as(t, "admin")
	t.Run("Status", func(t *testing.T) {
		e := admin.get(t, "/status")
		expect(t, e, http.StatusOK)
		expectText(t, e, "Service status", "Operational", cli.Version, s.driver+" (reachable)")
		expectRedirect(t, s.newPerson("").get(t, "/status"), "/login")
	})
	t.Run("NotFound", func(t *testing.T) {
		for _, p := range []*kpPerson{admin, s.newPerson("")} {
			errorPage(t, p.get(t, "/no/such/page"), http.StatusNotFound, "There is no page here.")
		}
		errorPage(t, admin.get(t, "/w/default/settings/api/apk_nothing/explode"), http.StatusNotFound, "There is no page here.")
		errorPage(t, admin.get(t, "/w/default/settings/api/apk_00000000000000000000000000"), http.StatusNotFound, "")
	})
	t.Run("Headers", func(t *testing.T) {
		// Spot checks here; the last subtest checks every HTML answer of the run.
		for _, path := range []string{"/login", "/status", "/w/default/settings/api", "/nope"} {
			e := admin.get(t, path)
			securityHeaders(t, e)
		}
	})
}

func testSignOut(t *testing.T, s *kpServer) {
	p := s.as(t, "developer")
	base, _ := url.Parse(s.url)
	var old string
	for _, c := range p.c.Jar.Cookies(base) {
		if c.Name == "kp_session" {
			old = c.Value
		}
	}
	if old == "" {
		t.Fatal("the developer has no session cookie")
	}
	// GET /logout asks; it does not sign out.
	e := p.get(t, "/logout")
	expect(t, e, http.StatusOK)
	expectText(t, e, "Sign out", "You are signed in as "+p.email)
	if !strings.Contains(e.body, `<form method="post" action="/logout">`) || !strings.Contains(e.body, `name="csrf" value="`+p.csrf+`"`) {
		t.Errorf("the sign-out page has no form posting to /logout with the token")
	}
	expect(t, p.get(t, "/w/default/audit"), http.StatusOK)

	e = p.post(t, "/logout", nil)
	expectRedirect(t, e, "/login")
	if c := e.cookie("kp_session"); c == nil || c.MaxAge >= 0 {
		t.Errorf("sign-out does not clear the session cookie: %+v", c)
	}
	expectRedirect(t, p.get(t, "/w/default/audit"), "/login")
	// The old cookie, kept by someone, no longer works.
	thief := s.newPerson("")
	thief.c.Jar.SetCookies(base, []*http.Cookie{{Name: "kp_session", Value: old, Path: "/"}})
	expectRedirect(t, thief.get(t, "/w/default/audit"), "/login")
	expectRedirect(t, thief.get(t, "/status"), "/login")
	s.mu.Lock()
	delete(s.people, "developer")
	s.mu.Unlock()
}

// securityHeaders checks the headers every dashboard page carries.
func securityHeaders(t *testing.T, e *exchange) {
	t.Helper()
	checkHeaders(t, e, "", []string{"default-src 'self'", "frame-ancestors 'none'", "form-action 'self'"}, "DENY")
}

// checkHeaders: the Content-Security-Policy holds each directive of csp, X-Frame-Options is xfo
// (empty: none) and nosniff is set. what names the kind of page in the messages.
func checkHeaders(t *testing.T, e *exchange, what string, csp []string, xfo string) {
	t.Helper()
	got := e.header.Get("Content-Security-Policy")
	for _, d := range csp {
		if !strings.Contains(got, d) {
			t.Errorf("%s %s%s: Content-Security-Policy %q lacks %q", e.method, e.path, what, got, d)
		}
	}
	if got := e.header.Get("X-Frame-Options"); got != xfo {
		t.Errorf("%s %s%s: X-Frame-Options %q, want %q", e.method, e.path, what, got, xfo)
	}
	if got := e.header.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("%s %s%s: X-Content-Type-Options %q", e.method, e.path, what, got)
	}
}

// testNoSecretsAnywhere looks at every answer of the run and at the program's output.
func testNoSecretsAnywhere(t *testing.T, s *kpServer) {
	s.mu.Lock()
	seen := slices.Clone(s.seen)
	values := slices.Clone(s.values)
	s.mu.Unlock()
	var sessions []string
	shown := 0
	for _, e := range seen {
		if e.secret != "" {
			values = append(values, e.secret)
			shown++
		}
		for _, c := range e.cookies {
			if (c.Name == "kp_session" || c.Name == "kp_portal") && c.Value != "" {
				sessions = append(sessions, c.Value)
			}
		}
	}
	values = append(values, s.tokens...)
	if shown < 5 || len(seen) < 100 {
		t.Fatalf("only %d answers and %d secret pages were seen: the other subtests did not run", len(seen), shown)
	}
	for _, e := range seen {
		for _, m := range reKeyValue.FindAllString(e.body, -1) {
			if m != e.secret {
				t.Errorf("%s %s (%d) shows a key value (%s…)", e.method, e.path, e.status, m[:14])
			}
		}
		// Webhook signing secrets are base64, whose "+" a page escapes: look at the text too.
		for _, m := range reHookSecret.FindAllString(e.text(), -1) {
			if m != e.secret {
				t.Errorf("%s %s (%d) shows a webhook signing secret (%s…)", e.method, e.path, e.status, m[:10])
			}
		}
		for _, v := range values {
			if v != e.secret && (strings.Contains(e.body+e.loc(), v) || strings.Contains(e.text(), v)) {
				t.Errorf("%s %s (%d) shows the value of %s…", e.method, e.path, e.status, v[:14])
			}
		}
		if e.portal {
			portalSecurityHeaders(t, e, "'none'")
		} else if strings.HasPrefix(e.header.Get("Content-Type"), "text/html") || e.status == http.StatusSeeOther {
			securityHeaders(t, e)
		}
		if e.secret != "" && e.header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s %s shows a key value with Cache-Control %q", e.method, e.path, e.header.Get("Cache-Control"))
		}
	}
	logs := s.logs.String()
	if !strings.Contains(logs, "keyplane started") {
		t.Fatalf("the program's log was not captured: %.300s", logs)
	}
	if m := reKeyValue.FindString(logs); m != "" {
		t.Errorf("the program's output holds a key value (%s…)", m[:14])
	}
	for _, v := range values {
		if strings.Contains(logs, v) {
			t.Errorf("the program's output holds the value of %s…", v[:14])
		}
	}
	if strings.Contains(logs, thePassword) {
		t.Errorf("the program's output holds a password")
	}
	for _, sess := range sessions {
		if strings.Contains(logs, sess) {
			t.Errorf("the program's output holds a session token")
		}
	}
}
