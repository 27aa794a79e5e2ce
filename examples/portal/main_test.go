package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyplane/keyplane/client"
	"github.com/keyplane/keyplane/internal/kptest"
)

// fakeLinker answers links without keyplane, and remembers whom it was asked for.
type fakeLinker struct {
	mu    sync.Mutex
	asked []user
	back  []string
	err   error
}

func (f *fakeLinker) PortalLink(_ context.Context, u user, returnURL string) (link, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked, f.back = append(f.asked, u), append(f.back, returnURL)
	if f.err != nil {
		return link{}, f.err
	}
	return link{URL: "https://keys.example.test/portal/kp_portal_" + strings.Repeat("A", 43), ExpiresAt: time.Now().Add(5 * time.Minute)}, nil
}

func TestConfig(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	if _, err := parseConfig(nil, env(nil), io.Discard); err == nil || !strings.Contains(err.Error(), "KEYPLANE_KEY") {
		t.Errorf("no key: %v", err)
	}
	c, err := parseConfig([]string{"-addr", "127.0.0.1:9999"}, env(map[string]string{"KEYPLANE_KEY": "kp_root_x", "KEYPLANE_URL": "http://127.0.0.1:1"}), io.Discard)
	if err != nil || c.PublicURL != "http://localhost:9999" || c.KeyplaneURL != "http://127.0.0.1:1" || c.Workspace != "default" {
		t.Errorf("defaults: %+v %v", c, err)
	}
	c, err = parseConfig([]string{"-public-url", "https://acme.test/"}, env(map[string]string{"KEYPLANE_KEY": "k"}), io.Discard)
	if err != nil || c.PublicURL != "https://acme.test" {
		t.Errorf("public url: %+v %v", c, err)
	}
}

// TestPlatformPages drives the platform's own pages with a fake keyplane: sign-in, the framed portal
// and its headers, a forged cookie, keyplane failing, and a post from another origin.
func TestPlatformPages(t *testing.T) {
	links := &fakeLinker{}
	var logs strings.Builder
	h, err := newPlatform(config{PublicURL: "http://localhost:8090", Brand: "Acme Cloud"}, links, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	get := func(what string, want int) (string, http.Header) {
		t.Helper()
		res, err := c.Get(srv.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != want {
			t.Fatalf("%s: %d, want %d: %s", what, res.StatusCode, want, b)
		}
		return string(b), res.Header
	}
	signIn := func(form url.Values, want int) string {
		t.Helper()
		res, err := c.PostForm(srv.URL+"/signin", form)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != want {
			t.Fatalf("sign in %v: %d, want %d: %s", form, res.StatusCode, want, b)
		}
		return string(b)
	}

	page, _ := get("signed out", 200)
	if !strings.Contains(page, `<label for="email">Email</label>`) || strings.Contains(page, "<iframe") || len(links.asked) != 0 {
		t.Fatalf("the sign-in page: %s", page)
	}
	if page := signIn(url.Values{"name": {""}, "email": {"not an email"}, "role": {"owner"}}, 400); !strings.Contains(page, "Enter your name") ||
		!strings.Contains(page, "Enter an email address") || !strings.Contains(page, "Choose a role") {
		t.Errorf("refused sign-in: %s", page)
	}
	signIn(url.Values{"name": {"Ana Lima"}, "email": {"ana@example.com"}, "role": {"developer"}}, 200) // follows the 303 to /

	page, hdr := get("signed in", 200)
	for _, want := range []string{
		`<iframe id="portal" src="https://keys.example.test/portal/kp_portal_AAAA`, `width="900"`, `allow="clipboard-write"`,
		"Signed in as <strong>Ana Lima</strong>", `title="API keys, by keyplane"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the settings page lacks %s: %s", want, page)
		}
	}
	if csp := hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-src https://keys.example.test") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP: %s", csp)
	}
	if cc := hdr.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q: a page with a one-time link must not be kept", cc)
	}
	links.mu.Lock()
	u, back := links.asked[len(links.asked)-1], links.back[len(links.back)-1]
	links.mu.Unlock()
	if u.Name != "Ana Lima" || u.Email != "ana@example.com" || u.Role != "developer" || !strings.HasPrefix(u.ID, "user_") || back != "http://localhost:8090/" {
		t.Errorf("asked for %+v, back to %q", u, back)
	}

	// Each view asks for a new link: a link works once.
	before := len(links.asked)
	get("again", 200)
	if len(links.asked) != before+1 {
		t.Errorf("%d links asked for one more view", len(links.asked)-before)
	}

	// keyplane failing: a page that says so, and a log line, but no session of keyplane's.
	links.mu.Lock()
	links.err = errors.New("keyplane: 403 forbidden")
	links.mu.Unlock()
	if page, _ := get("keyplane fails", 502); !strings.Contains(page, "not available right now") || strings.Contains(page, "<iframe") {
		t.Errorf("keyplane failing: %s", page)
	}
	if !strings.Contains(logs.String(), "403 forbidden") {
		t.Errorf("the failure is not logged: %s", logs.String())
	}

	// A cookie that the platform did not sign is nobody's.
	su, _ := url.Parse(srv.URL)
	for _, ck := range jar.Cookies(su) {
		body, _, _ := strings.Cut(ck.Value, ".")
		jar.SetCookies(su, []*http.Cookie{{Name: ck.Name, Value: body + ".forged", Path: "/"}})
	}
	if page, _ := get("forged cookie", 200); !strings.Contains(page, "Sign in to Acme Cloud") {
		t.Errorf("a forged cookie is taken: %s", page)
	}

	// The platform's own forms refuse a post from another origin.
	req, _ := http.NewRequest("POST", srv.URL+"/signin", strings.NewReader("name=Eve&email=eve%40example.com&role=admin"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "http://evil.example.test")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden || len(res.Cookies()) != 0 {
		t.Errorf("a cross-site sign-in: %d %v", res.StatusCode, res.Cookies())
	}
}

// TestSDKLinker asks a real keyplane for links as run does: a root key finding its workspace by
// slug, a workspace key with portal:write, and one without it, whose refusal the platform reports.
func TestSDKLinker(t *testing.T) {
	kp := kptest.StartT(t, nil)
	ctx := context.Background()
	root := client.New(kp.URL, kp.Admin)
	ws, err := root.CreateWorkspace(ctx, client.CreateWorkspaceRequest{Name: "Shop", Slug: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := workspaceID(ctx, root, "no-such-shop"); err == nil {
		t.Error("an unknown slug was found")
	}
	id, err := workspaceID(ctx, root, "shop")
	if err != nil || id != ws.ID {
		t.Fatalf("the slug shop: %q %v", id, err)
	}
	ana := user{ID: "user_1", Name: "Ana", Email: "ana@example.com", Role: "developer"}
	check := func(what string, kp *client.Client) {
		t.Helper()
		l, err := sdkLinker{kp}.PortalLink(ctx, ana, "http://localhost:8090/")
		if err != nil || !strings.Contains(l.URL, "/portal/kp_portal_") || time.Until(l.ExpiresAt) < 4*time.Minute {
			t.Errorf("%s: %+v %v", what, l, err)
		}
	}
	check("a root key", root.InWorkspace(id))

	inWS := root.InWorkspace(id)
	withPortal, err := inWS.CreateAPIKey(ctx, client.CreateAPIKeyRequest{Name: "platform", KeyType: client.KeyTypeSecret, Environment: client.EnvLive, Permissions: []string{"portal:write"}})
	if err != nil {
		t.Fatal(err)
	}
	check("a workspace key with portal:write", client.New(kp.URL, withPortal.KeyValue))

	without, err := inWS.CreateAPIKey(ctx, client.CreateAPIKeyRequest{Name: "other", KeyType: client.KeyTypeSecret, Environment: client.EnvLive, Permissions: []string{"api_keys:read"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = sdkLinker{client.New(kp.URL, without.KeyValue)}.PortalLink(ctx, ana, "")
	var apiErr *client.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusForbidden {
		t.Errorf("a key without portal:write: %v", err)
	}
}
