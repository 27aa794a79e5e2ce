package service

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/id"
	"github.com/keyplane/keyplane/internal/store"
)

// This file is the portal's contract between the service and its callers (the API's
// POST /v1/portal/sessions and the dashboard's portal mode), and its rules: links used once, sessions
// bounded to one workspace and role, every step audited in the workspace's chain.

// PortalTokenPrefix starts every portal token, a link's and a session's: internal/redact knows it,
// so that no log keeps one.
const PortalTokenPrefix = "kp_portal_"

// portalTokenLen is the length of a portal token: the prefix and 32 random bytes in base64url.
var portalTokenLen = len(PortalTokenPrefix) + base64.RawURLEncoding.EncodedLen(32)

// Bounds of a portal request's fields.
const (
	maxPortalUserID    = 255
	maxPortalUserName  = 255
	maxPortalUserEmail = 254
	maxPortalReturnURL = 2048
)

// idPortalSession is the prefix of a portal session's id.
const idPortalSession = "ps"

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

// newPortalToken returns a fresh portal token: kp_portal_ and 43 base64url characters.
func newPortalToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return PortalTokenPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// portalTokenShape reports whether t has a portal token's shape; anything else was never one.
func portalTokenShape(t string) bool {
	if len(t) != portalTokenLen || !strings.HasPrefix(t, PortalTokenPrefix) {
		return false
	}
	_, err := base64.RawURLEncoding.Strict().DecodeString(t[len(PortalTokenPrefix):])
	return err == nil
}

// validPortalRequest checks every field of req, naming each bad one.
func validPortalRequest(req *PortalRequest) error {
	var v keyplane.Validation
	if n := utf8.RuneCountInString(req.User.ID); n < 1 || n > maxPortalUserID || !printable(req.User.ID) {
		v.Add("user.id", "must be 1 to %d printable characters", maxPortalUserID)
	}
	if e := req.User.Email; e != "" {
		a, err := mail.ParseAddress(e)
		if err != nil || a.Address != e || a.Name != "" || len(e) > maxPortalUserEmail {
			v.Add("user.email", "must be an email address (at most %d characters)", maxPortalUserEmail)
		}
	}
	if n := utf8.RuneCountInString(req.User.Name); n > maxPortalUserName || !printable(req.User.Name) {
		v.Add("user.name", "must be at most %d printable characters", maxPortalUserName)
	}
	switch req.Role {
	case keyplane.RoleAdmin, keyplane.RoleDeveloper, keyplane.RoleViewer:
	case keyplane.RoleOwner:
		v.Add("role", "must be admin, developer or viewer: a portal session cannot own the workspace")
	default:
		v.Add("role", "must be admin, developer or viewer")
	}
	if u := req.ReturnURL; u != "" {
		p, err := url.Parse(u)
		if err != nil || len(u) > maxPortalReturnURL || p.Scheme != "https" && p.Scheme != "http" || p.Host == "" || p.User != nil {
			v.Add("returnUrl", "must be an http or https URL of at most %d characters, without credentials", maxPortalReturnURL)
		}
	}
	if req.ExpiresIn == 0 {
		req.ExpiresIn = keyplane.DefaultPortalLinkTTL
	}
	if req.ExpiresIn < keyplane.MinPortalLinkTTL || req.ExpiresIn > keyplane.MaxPortalLinkTTL || req.ExpiresIn%time.Second != 0 {
		v.Add("expiresInSeconds", "must be a whole number of seconds from %d to %d",
			int(keyplane.MinPortalLinkTTL.Seconds()), int(keyplane.MaxPortalLinkTTL.Seconds()))
	}
	return v.Err()
}

// printable: no control characters, which would reach the audit trail and the portal's pages.
func printable(s string) bool {
	return utf8.ValidString(s) && strings.IndexFunc(s, unicode.IsControl) < 0
}

// portalActor is the audit trail's name of the platform's user: their id, and their email or name.
func portalActor(u keyplane.PortalUser) keyplane.Actor {
	name := u.Email
	if name == "" {
		name = u.Name
	}
	return keyplane.Actor{Type: keyplane.ActorPortalUser, ID: u.ID, Name: name}
}

// CreatePortalSession makes a one-time link into workspace wsID's portal for the platform's user.
// The caller is a root key with the admin scope, or a workspace key of wsID holding
// keyplane.PermPortalWrite. Audited (portal_session.created).
func (s *Service) CreatePortalSession(ctx context.Context, c *keyplane.Caller, wsID string, req PortalRequest) (*PortalLink, error) {
	if err := c.Authorize(wsID, keyplane.PermPortalWrite); err != nil {
		return nil, err
	}
	if c.Portal {
		// A portal session holds no portal:write; this keeps it so whatever its permissions say.
		return nil, keyplane.Errorf(keyplane.CodeForbidden, "a portal session cannot make portal links")
	}
	if err := validPortalRequest(&req); err != nil {
		return nil, err
	}
	token := newPortalToken()
	var ps *keyplane.PortalSession
	err := s.change(ctx, c, wsID, func(tx store.Tx, now time.Time) (*outcome, error) {
		if _, err := tx.GetWorkspace(ctx, wsID); err != nil {
			return nil, notFound(err, "workspace")
		}
		ps = &keyplane.PortalSession{
			ID: id.NewAt(idPortalSession, now), WorkspaceID: wsID, Role: req.Role, User: req.User, ReturnURL: req.ReturnURL,
			CreatedAt: now, LinkExpiresAt: now.Add(req.ExpiresIn), CreatedBy: c.Actor,
		}
		if err := tx.InsertPortalSession(ctx, ps, SessionToken(token)); err != nil {
			return nil, err
		}
		changes := map[string]keyplane.Change{
			"user": {To: req.User}, "role": {To: req.Role}, "linkExpiresAt": {To: ps.LinkExpiresAt},
		}
		if req.ReturnURL != "" {
			changes["returnUrl"] = keyplane.Change{To: req.ReturnURL}
		}
		return &outcome{audit: &keyplane.AuditRecord{Action: "portal_session.created",
			Target: keyplane.Target{Type: "portal_session", ID: ps.ID}, Changes: changes}}, nil
	})
	if err != nil {
		return nil, err
	}
	return &PortalLink{URL: strings.TrimSuffix(s.publicURL, "/") + "/portal/" + token, ExpiresAt: ps.LinkExpiresAt}, nil
}

// errPortalLinkEnded is the answer for a link already used or past its expiry.
func errPortalLinkEnded() error {
	return keyplane.Errorf(keyplane.CodePortalLinkEnded, "this portal link was already used or has expired; ask for a new one")
}

// OpenPortalLink uses a link's token, once: it answers the session's own secret token (for the
// cookie) and the session. A token that never was a link: keyplane.CodeNotFound. A link already
// used or past its expiry: keyplane.CodePortalLinkEnded (the session is answered too, so that the
// page can offer its return URL). c carries the browser's IP, user agent and request id.
//
// The use is one UPDATE that matches only an unopened, unexpired link (store.Tx.OpenPortalLink), so
// that of two requests with one link, on any number of nodes, exactly one gets a session. It is
// audited (portal_session.opened) with the platform's user as the actor, in the same transaction.
func (s *Service) OpenPortalLink(ctx context.Context, c *keyplane.Caller, linkToken string) (sessionToken string, ps *keyplane.PortalSession, err error) {
	if !portalTokenShape(linkToken) {
		return "", nil, keyplane.NotFound("portal link")
	}
	linkHash := SessionToken(linkToken)
	ps, err = s.store.GetPortalLink(ctx, linkHash)
	if err != nil {
		return "", nil, notFound(err, "portal link")
	}
	if !ps.OpenedAt.IsZero() || !s.clock().Before(ps.LinkExpiresAt) {
		return "", ps, errPortalLinkEnded()
	}
	sessionToken = newPortalToken()
	ac := *c
	ac.Actor = portalActor(ps.User)
	var opened *keyplane.PortalSession
	err = s.change(ctx, &ac, ps.WorkspaceID, func(tx store.Tx, now time.Time) (*outcome, error) {
		var err error
		opened, err = tx.OpenPortalLink(ctx, linkHash, SessionToken(sessionToken), now, now.Add(s.portalTTL), c.IP, c.UserAgent)
		if errors.Is(err, store.ErrNotFound) {
			return nil, errPortalLinkEnded()
		}
		if err != nil {
			return nil, err
		}
		return &outcome{audit: &keyplane.AuditRecord{Action: "portal_session.opened",
			Target:  keyplane.Target{Type: "portal_session", ID: ps.ID},
			Changes: map[string]keyplane.Change{"role": {To: ps.Role}, "expiresAt": {To: opened.ExpiresAt}}}}, nil
	})
	if err != nil {
		if keyplane.ErrorCode(err) == keyplane.CodePortalLinkEnded {
			return "", ps, err
		}
		return "", nil, fmt.Errorf("open portal link: %w", err)
	}
	return sessionToken, opened, nil
}

// PortalSessionOf returns the live portal session of a session token, with its workspace. An unknown
// token: keyplane.CodeUnauthorized with a nil session; an expired or ended one: CodeUnauthorized with
// the session (for its return URL).
func (s *Service) PortalSessionOf(ctx context.Context, sessionToken string) (*keyplane.PortalSession, *keyplane.Workspace, error) {
	if !portalTokenShape(sessionToken) {
		return nil, nil, keyplane.Errorf(keyplane.CodeUnauthorized, "no portal session")
	}
	ps, err := s.store.GetPortalSession(ctx, SessionToken(sessionToken))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, keyplane.Errorf(keyplane.CodeUnauthorized, "no portal session")
	}
	if err != nil {
		return nil, nil, err
	}
	if !ps.EndedAt.IsZero() || !s.clock().Before(ps.ExpiresAt) {
		return ps, nil, keyplane.Errorf(keyplane.CodeUnauthorized, "this portal session has ended")
	}
	w, err := s.store.GetWorkspace(ctx, ps.WorkspaceID)
	if err != nil {
		return nil, nil, notFound(err, "workspace")
	}
	return ps, w, nil
}

// portalPermissions are what a portal session may ever hold: the keys, webhooks and logs pages.
// Identities, the audit trail and members are the platform's, not its users'.
var portalPermissions = []string{keyplane.PermAPIKeysRead, keyplane.PermAPIKeysWrite, keyplane.PermWebhooksRead,
	keyplane.PermWebhooksWrite, keyplane.PermEventsWrite, keyplane.PermLogsRead}

// PortalCaller is the caller of a live portal session: its workspace, its role's permissions within
// what the portal offers, and the platform's user as the actor. Reveals are open in the first
// keyplane.ReauthWindow after the link was opened: the platform authenticated its user to make it.
func PortalCaller(ps *keyplane.PortalSession, now time.Time) *keyplane.Caller {
	c := &keyplane.Caller{
		Actor:           portalActor(ps.User),
		WorkspaceID:     ps.WorkspaceID,
		Role:            ps.Role,
		Portal:          true,
		Reauthenticated: !ps.OpenedAt.IsZero() && now.Sub(ps.OpenedAt) < keyplane.ReauthWindow,
		Permissions:     []string{},
	}
	for _, p := range keyplane.RolePermissions(ps.Role) {
		for _, q := range portalPermissions {
			if p == q {
				c.Permissions = append(c.Permissions, p)
			}
		}
	}
	return c
}

// EndPortalSession ends a portal session at the person's request (audited). A session already
// ended is left as it is, without a second entry.
func (s *Service) EndPortalSession(ctx context.Context, c *keyplane.Caller, ps *keyplane.PortalSession) error {
	if !c.Operator && c.WorkspaceID != ps.WorkspaceID {
		return keyplane.NotFound("portal session")
	}
	var ended time.Time
	err := s.change(ctx, c, ps.WorkspaceID, func(tx store.Tx, now time.Time) (*outcome, error) {
		err := tx.EndPortalSession(ctx, ps.WorkspaceID, ps.ID, now)
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		ended = now
		return &outcome{audit: &keyplane.AuditRecord{Action: "portal_session.ended",
			Target: keyplane.Target{Type: "portal_session", ID: ps.ID}}}, nil
	})
	if err != nil {
		return err
	}
	if !ended.IsZero() {
		ps.EndedAt = ended
	}
	return nil
}

// portalKeep is how long a portal session's row stays after its link and session both ended: a day,
// so that a person coming back to an ended session still gets its page with the way back.
const portalKeep = 24 * time.Hour

// PrunePortalSessions deletes the portal sessions whose link and session both ended over a day ago.
func (s *Service) PrunePortalSessions(ctx context.Context) (int64, error) {
	var n int64
	err := s.store.InTx(ctx, store.OperatorChain, func(tx store.Tx) error {
		var err error
		n, err = tx.DeletePortalSessions(ctx, s.clock().Add(-portalKeep))
		return err
	})
	return n, err
}
