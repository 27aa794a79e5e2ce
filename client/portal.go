package client

import (
	"context"
	"time"
)

// Portal sessions

// PortalUser is the platform's own user a portal link is for: no keyplane account. ID is required;
// the audit trail names the user by it, and by Email (else Name).
type PortalUser struct {
	ID    string `json:"id"`
	Email string `json:"email,omitempty"`
	Name  string `json:"name,omitempty"`
}

// CreatePortalSessionRequest is the body of POST /v1/portal/sessions. Role is RoleAdmin,
// RoleDeveloper or RoleViewer; ReturnURL, an http(s) URL, is the portal's way back to the platform;
// ExpiresInSeconds (60–3600) is how long the link may be opened, 0 for the server's 300.
type CreatePortalSessionRequest struct {
	User             PortalUser `json:"user"`
	Role             Role       `json:"role"`
	ReturnURL        string     `json:"returnUrl,omitempty"`
	ExpiresInSeconds int        `json:"expiresInSeconds,omitempty"`
}

// PortalLink is a one-time link into a workspace's portal. URL is a secret: hand it to the user's
// browser (a redirect, or a frame's src) at once, and nowhere else. It opens a session once, before
// ExpiresAt.
type PortalLink struct {
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// CreatePortalSession asks for a one-time link into the workspace's portal for one of the
// platform's users (the Portal.CreateSession; named, as every call of the client, after its
// operation). The client's credential is an admin root key with the workspace set (WithWorkspace,
// InWorkspace), or a workspace key holding portal:write.
func (c *Client) CreatePortalSession(ctx context.Context, req CreatePortalSessionRequest) (*PortalLink, error) {
	var out PortalLink
	if err := c.post(ctx, "/v1/portal/sessions", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
