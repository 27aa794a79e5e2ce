package api_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/service"
)

// newPortalAPI is usageAPI's harness with a public URL, answering the service too: the test opens
// links as the dashboard does.
func newPortalAPI(t *testing.T) (*usageAPI, *service.Service) {
	t.Helper()
	return newUsageAPIWith(t, service.Options{PublicURL: "https://keys.example.com"})
}

// as runs fn with cred as the harness's credential.
func (a *usageAPI) as(cred string, fn func()) {
	admin := a.admin
	a.admin = cred
	defer func() { a.admin = admin }()
	fn()
}

// portalToken is the token of a link's URL under the harness's public URL.
func portalToken(t *testing.T, link map[string]any) string {
	t.Helper()
	u, _ := link["url"].(string)
	p, err := url.Parse(u)
	if err != nil || p.Scheme != "https" || p.Host != "keys.example.com" || !strings.HasPrefix(p.Path, "/portal/kp_portal_") {
		t.Fatalf("link %v", link)
	}
	return strings.TrimPrefix(p.Path, "/portal/")
}

func TestPortalSessionsAPI(t *testing.T) {
	a, svc := newPortalAPI(t)
	ctx := context.Background()
	const path = "/v1/portal/sessions"
	body := `{"user": {"id": "cust_42", "email": "ada@shop.example", "name": "Ada"}, "role": "admin", "returnUrl": "https://shop.example/settings", "expiresInSeconds": 120}`

	// The operator, naming the workspace.
	link := a.ok(201, "POST", path, body)
	if _, ps, err := svc.OpenPortalLink(ctx, &keyplane.Caller{}, portalToken(t, link)); err != nil || ps.WorkspaceID != a.ws || ps.Role != keyplane.RoleAdmin || ps.ReturnURL != "https://shop.example/settings" {
		t.Fatalf("the operator's link: %v %+v", err, ps)
	}
	// The token appears in no header of the answer (an access log, a proxy, keeps those).
	for k, v := range a.last.Header() {
		if strings.Contains(strings.Join(v, " "), "kp_portal_") {
			t.Errorf("header %s holds the token", k)
		}
	}

	// Workspace keys: with portal:write, a link into its own workspace whatever X-Workspace-Id says;
	// without it, 403.
	key := func(ws string, perms ...string) string {
		_, v, err := svc.CreateAPIKey(ctx, keyplane.System("test"), ws, service.CreateKeyInput{Name: "platform", KeyType: keyplane.KeyTypeSecret, Permissions: perms})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	withPortal, without := key(a.other, keyplane.PermPortalWrite), key(a.ws, keyplane.PermAPIKeysWrite, keyplane.PermAPIKeysRead)
	a.as(withPortal, func() {
		code, env := a.call(a.ws, "POST", path, `{"user": {"id": "u1"}, "role": "viewer"}`)
		if code != 201 {
			t.Fatalf("a key with portal:write: %d %v", code, env)
		}
		_, ps, err := svc.OpenPortalLink(ctx, &keyplane.Caller{}, portalToken(t, env["data"].(map[string]any)))
		if err != nil || ps.WorkspaceID != a.other {
			t.Errorf("a key of the other workspace naming this one made a link into %+v (%v), want its own", ps, err)
		}
	})
	a.as(without, func() {
		a.refused(a.ws, "POST", path, `{"user": {"id": "u1"}, "role": "viewer"}`, 403, "forbidden")
	})

	// Each bad field, named.
	for _, c := range []struct {
		body   string
		fields []string
	}{
		{`{"role": "viewer"}`, []string{"user.id"}},
		{`{"user": {"id": ""}, "role": "viewer"}`, []string{"user.id"}},
		{`{"user": {"id": "` + strings.Repeat("x", 256) + `"}, "role": "viewer"}`, []string{"user.id"}},
		{`{"user": {"id": "u", "email": "not an email"}, "role": "viewer"}`, []string{"user.email"}},
		{`{"user": {"id": "u", "name": "` + strings.Repeat("n", 256) + `"}, "role": "viewer"}`, []string{"user.name"}},
		{`{"user": {"id": "u"}, "role": "owner"}`, []string{"role"}},
		{`{"user": {"id": "u"}}`, []string{"role"}},
		{`{"user": {"id": "u"}, "role": "viewer", "returnUrl": "ftp://shop.example/"}`, []string{"returnUrl"}},
		{`{"user": {"id": "u"}, "role": "viewer", "returnUrl": "https://shop.example/` + strings.Repeat("a", 2048) + `"}`, []string{"returnUrl"}},
		{`{"user": {"id": "u"}, "role": "viewer", "expiresInSeconds": 59}`, []string{"expiresInSeconds"}},
		{`{"user": {"id": "u"}, "role": "viewer", "expiresInSeconds": 0}`, []string{"expiresInSeconds"}},
		{`{"user": {"id": "u"}, "role": "viewer", "expiresInSeconds": 3601}`, []string{"expiresInSeconds"}},
		{`{"user": {"id": "u"}, "role": "viewer", "expiresInSeconds": 9223372036854775807}`, []string{"expiresInSeconds"}},
		{`{"user": {"id": ""}, "role": "owner", "expiresInSeconds": 1}`, []string{"user.id", "role", "expiresInSeconds"}},
	} {
		a.refused(a.ws, "POST", path, c.body, 400, "invalid_request", c.fields...)
	}
	a.refused(a.ws, "POST", path, `{"user": {"id": "u"}, "role": "viewer", "workspaceId": "`+a.other+`"}`, 400, "invalid_request")

	// What the platform's user does in the portal is theirs in the audit API: actor portal_user.
	_, ps, err := svc.OpenPortalLink(ctx, &keyplane.Caller{IP: "192.0.2.5"}, portalToken(t, a.ok(201, "POST", path, body)))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.CreateAPIKey(ctx, service.PortalCaller(ps, ps.OpenedAt), a.ws, service.CreateKeyInput{Name: "made in the portal", KeyType: keyplane.KeyTypeSecret}); err != nil {
		t.Fatal(err)
	}
	code, env := a.call(a.ws, "GET", "/v1/audit-logs?actorId=cust_42", "")
	entries, _ := env["data"].([]any)
	var actions []string
	for _, e := range entries {
		m := e.(map[string]any)
		if actor := m["actor"].(map[string]any); actor["type"] != "portal_user" || actor["name"] != "ada@shop.example" {
			t.Errorf("actor %v", actor)
		}
		actions = append(actions, m["action"].(string))
	}
	if code != 200 || strings.Join(actions, " ") != "api_key.created portal_session.opened portal_session.opened" {
		t.Errorf("the portal user's entries: %d %v", code, actions)
	}
}

func TestWorkspaceBrandingAPI(t *testing.T) {
	a, svc := newPortalAPI(t)
	ws := "/v1/workspaces/" + a.ws
	if w := a.ok(200, "GET", ws, ""); w["branding"] != nil {
		t.Fatalf("a new workspace's branding: %v", w["branding"])
	}
	w := a.ok(200, "PATCH", ws, `{"branding": {"name": "Shop", "accentColor": "#0A66C2", "logoUrl": "https://shop.example/logo.svg"}}`)
	want := map[string]any{"name": "Shop", "accentColor": "#0a66c2", "logoUrl": "https://shop.example/logo.svg"}
	if b, _ := w["branding"].(map[string]any); len(b) != 3 || b["name"] != want["name"] || b["accentColor"] != want["accentColor"] || b["logoUrl"] != want["logoUrl"] {
		t.Errorf("branding after PATCH: %v, want %v", w["branding"], want)
	}
	if got, _ := a.ok(200, "GET", ws, "")["branding"].(map[string]any); got["accentColor"] != "#0a66c2" {
		t.Errorf("GET after PATCH: %v", got)
	}
	// Replaced whole: a field left out is none.
	if b, _ := a.ok(200, "PATCH", ws, `{"branding": {"accentColor": "#112233"}}`)["branding"].(map[string]any); len(b) != 1 {
		t.Errorf("branding replaced: %v", b)
	}
	a.refused(a.ws, "PATCH", ws, `{"branding": {"name": "", "accentColor": "blue", "logoUrl": "http://shop.example/logo.svg"}}`, 400, "invalid_request",
		"branding.name", "branding.accentColor", "branding.logoUrl")
	a.refused(a.ws, "PATCH", ws, `{"branding": {"logoUrl": "javascript:alert(1)"}}`, 400, "invalid_request", "branding.logoUrl")
	a.refused(a.ws, "PATCH", ws, `{"branding": {"name": "`+strings.Repeat("n", 101)+`"}}`, 400, "invalid_request", "branding.name")
	a.refused(a.ws, "PATCH", ws, `{"branding": {"logoUrl": "https://shop.example/`+strings.Repeat("l", 2048)+`"}}`, 400, "invalid_request", "branding.logoUrl")
	a.refused(a.ws, "PATCH", ws, `{"branding": {"colour": "#112233"}}`, 400, "invalid_request")
	// Operator only, as every workspace PATCH.
	_, v, err := svc.CreateAPIKey(context.Background(), keyplane.System("test"), a.ws, service.CreateKeyInput{Name: "k", KeyType: keyplane.KeyTypeSecret, Permissions: []string{keyplane.PermPortalWrite}})
	if err != nil {
		t.Fatal(err)
	}
	a.as(v, func() {
		a.refused(a.ws, "PATCH", ws, `{"branding": {"name": "Mine"}}`, 403, "forbidden")
		if got, _ := a.ok(200, "GET", ws, "")["branding"].(map[string]any); got["accentColor"] != "#112233" {
			t.Errorf("the workspace's key reads its branding: %v", got)
		}
	})
	if w := a.ok(200, "PATCH", ws, `{"branding": null}`); w["branding"] != nil {
		t.Errorf("branding null: %v", w["branding"])
	}
}
