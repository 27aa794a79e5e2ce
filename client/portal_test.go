package client_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane/client"
)

// TestPortalSessions asks a real server for portal links, as an admin root key and as a workspace
// key holding portal:write, and brands the workspace.
func TestPortalSessions(t *testing.T) {
	ctx := context.Background()
	c, ws := newWorkspace(t, "portal")
	req := client.CreatePortalSessionRequest{User: client.PortalUser{ID: "cust_42", Email: "ada@shop.example"}, Role: client.RoleAdmin,
		ReturnURL: "https://shop.example/settings/api", ExpiresInSeconds: 120}
	link, err := c.CreatePortalSession(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(link.URL, shared.URL+"/portal/kp_portal_") || time.Until(link.ExpiresAt) > 2*time.Minute || time.Until(link.ExpiresAt) < time.Minute {
		t.Errorf("link %+v, want it under %s, for 2 minutes", link, shared.URL)
	}

	key, err := c.CreateAPIKey(ctx, client.CreateAPIKeyRequest{Name: "platform", KeyType: client.KeyTypeSecret, Permissions: []string{"portal:write"}})
	if err != nil {
		t.Fatal(err)
	}
	other, err := newClient(key.KeyValue).CreatePortalSession(ctx, client.CreatePortalSessionRequest{User: client.PortalUser{ID: "u2"}, Role: client.RoleViewer})
	if err != nil || other.URL == link.URL {
		t.Fatalf("a workspace key's link: %+v, %v", other, err)
	}
	_, err = c.CreatePortalSession(ctx, client.CreatePortalSessionRequest{User: client.PortalUser{ID: "u3"}, Role: client.RoleOwner})
	if e := apiError(t, err); e.StatusCode != 400 || e.Code != client.CodeInvalidRequest || len(e.Details) != 1 || e.Details[0].Field != "role" {
		t.Errorf("an owner's link: %v", err)
	}

	admin := newClient(shared.Admin)
	b := client.Branding{Name: "Shop", AccentColor: "#0a66c2", LogoURL: "https://shop.example/logo.svg"}
	upd, err := admin.UpdateWorkspace(ctx, ws.ID, client.UpdateWorkspaceRequest{Branding: client.Some(b)})
	if err != nil || upd.Branding == nil || *upd.Branding != b {
		t.Fatalf("branding: %+v, %v", upd, err)
	}
	if got, err := admin.GetWorkspace(ctx, ws.ID); err != nil || got.Branding == nil || *got.Branding != b {
		t.Errorf("branding read back: %+v, %v", got, err)
	}
	if upd, err := admin.UpdateWorkspace(ctx, ws.ID, client.UpdateWorkspaceRequest{Branding: client.Null[client.Branding]()}); err != nil || upd.Branding != nil {
		t.Errorf("branding cleared: %+v, %v", upd, err)
	}
	entries, err := c.ListAuditLogs(ctx, client.ListAuditLogsParams{Action: "portal_session.created"})
	if err != nil || len(entries.Items) != 2 {
		t.Fatalf("portal_session.created entries: %+v, %v", entries, err)
	}
}
