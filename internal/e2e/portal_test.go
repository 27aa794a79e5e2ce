package e2e

import (
	"strings"
	"testing"
)

// TestPortalLinks: the links of POST /v1/portal/sessions are made under --public-url, or, without
// it, under the address serve listens on (with a warning), and the token reaches no log (the leak
// check, at the test's end, searches for it).
func TestPortalLinks(t *testing.T) {
	body := map[string]any{"user": map[string]any{"id": "cust_42", "email": "ada@shop.example"}, "role": "admin", "returnUrl": "https://shop.example/settings"}
	t.Run("Derived", func(t *testing.T) {
		eachDriver(t, func(t *testing.T, driver string) {
			n := start(t, driver, nil)
			ws := n.workspace("portal", map[string]any{"branding": map[string]any{"name": "Shop", "accentColor": "#0A66C2"}})
			link := n.must(201, req{method: "POST", path: "/v1/portal/sessions", cred: n.admin, ws: ws, body: body}).data()
			url, _ := link["url"].(string)
			if !strings.HasPrefix(url, n.url+"/portal/kp_portal_") || len(strings.TrimPrefix(url, n.url+"/portal/")) != 53 || link["expiresAt"] == nil {
				t.Errorf("link without --public-url: %v, want it under %s", link, n.url)
			}
			if !strings.Contains(n.logs.String(), "no --public-url") {
				t.Errorf("no warning that links work on this machine only:\n%s", n.logs.String())
			}
			// A second link is another token.
			if again := n.must(201, req{method: "POST", path: "/v1/portal/sessions", cred: n.admin, ws: ws, body: body}).data()["url"]; again == url {
				t.Error("two links share a token")
			}
			if b := n.must(200, req{method: "GET", path: "/v1/workspaces/" + ws, cred: n.admin}).data()["branding"].(map[string]any); b["accentColor"] != "#0a66c2" {
				t.Errorf("branding made with the workspace: %v", b)
			}
			entries := n.must(200, req{method: "GET", path: "/v1/audit-logs?action=portal_session.created", cred: n.admin, ws: ws}).list()
			if len(entries) != 2 {
				t.Errorf("portal_session.created entries: %v", entries)
			}
		})
	})
	t.Run("Given", func(t *testing.T) {
		eachDriver(t, func(t *testing.T, driver string) {
			m := start(t, driver, map[string]string{"KEYPLANE_PUBLIC_URL": "https://keys.example.com/"})
			ws := m.workspace("portal", nil)
			link := m.must(201, req{method: "POST", path: "/v1/portal/sessions", cred: m.admin, ws: ws, body: body}).data()
			if url, _ := link["url"].(string); !strings.HasPrefix(url, "https://keys.example.com/portal/kp_portal_") {
				t.Errorf("link with --public-url: %v", link)
			}
			if strings.Contains(m.logs.String(), "no --public-url") {
				t.Error("a warning about the public URL, which was given")
			}
		})
	})
}
