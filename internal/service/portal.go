package service

import (
	"context"
	"errors"
	"time"

	"github.com/keyplane/keyplane"
)

// This file is the portal's contract between the service and its callers (the API's
// POST /v1/portal/sessions and the dashboard's portal mode). The bodies are being built.

var errPortalNotBuilt = errors.New("portal: not built yet")

// PortalRequest is a request for a portal link (POST /v1/portal/sessions).
type PortalRequest struct {
	User      keyplane.PortalUser
	Role      keyplane.Role // admin, developer or viewer
	ReturnURL string
	// ExpiresIn is the link's lifetime; zero: keyplane.DefaultPortalLinkTTL.
	ExpiresIn time.Duration
}

// PortalLink is the answer: the one-time URL under the public URL, and when it stops working.
type PortalLink struct {
	URL       string
	ExpiresAt time.Time
}

// CreatePortalSession makes a one-time link into workspace wsID's portal for the platform's user.
// The caller is a root key with the admin scope, or a workspace key of wsID holding
// keyplane.PermPortalWrite. Audited (portal_session.created).
func (s *Service) CreatePortalSession(ctx context.Context, c *keyplane.Caller, wsID string, req PortalRequest) (*PortalLink, error) {
	return nil, errPortalNotBuilt
}

// OpenPortalLink uses a link's token, once: it answers the session's own secret token (for the
// cookie) and the session. A token that never was a link: keyplane.CodeNotFound. A link already
// used or past its expiry: keyplane.CodePortalLinkEnded (the session is answered too, so that the
// page can offer its return URL). c carries the browser's IP, user agent and request id.
func (s *Service) OpenPortalLink(ctx context.Context, c *keyplane.Caller, linkToken string) (sessionToken string, ps *keyplane.PortalSession, err error) {
	return "", nil, errPortalNotBuilt
}

// PortalSessionOf returns the live portal session of a session token, with its workspace. An unknown
// token: keyplane.CodeUnauthorized with a nil session; an expired or ended one: CodeUnauthorized with
// the session (for its return URL).
func (s *Service) PortalSessionOf(ctx context.Context, sessionToken string) (*keyplane.PortalSession, *keyplane.Workspace, error) {
	return nil, nil, errPortalNotBuilt
}

// PortalCaller is the caller of a live portal session: its workspace, its role's permissions within
// what the portal offers, and the platform's user as the actor. Reveals are open in the first
// keyplane.ReauthWindow after the link was opened: the platform authenticated its user to make it.
func PortalCaller(ps *keyplane.PortalSession, now time.Time) *keyplane.Caller {
	return nil
}

// EndPortalSession ends a portal session at the person's request (audited).
func (s *Service) EndPortalSession(ctx context.Context, c *keyplane.Caller, ps *keyplane.PortalSession) error {
	return errPortalNotBuilt
}
