package keyplane

import (
	"regexp"
	"time"
)

// ActorPortalUser is a platform's own user acting through a portal session: no keyplane account,
// named by the platform when it asked for the link (POST /v1/portal/sessions).
const ActorPortalUser ActorType = "portal_user"

// PermPortalWrite lets a workspace key ask for portal links of its own workspace.
const PermPortalWrite = "portal:write"

// Branding is how a workspace's portal looks: its name, an accent colour (#rrggbb) and a logo
// (https only). Empty fields fall back to the workspace's name and keyplane's look.
type Branding struct {
	Name        string `json:"name,omitempty"`
	AccentColor string `json:"accentColor,omitempty"`
	LogoURL     string `json:"logoUrl,omitempty"`
}

var accentPattern = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)

// ValidAccentColor reports whether c is an accent colour as Branding holds it: #rrggbb. The portal's
// pages put it in a <style>, so nothing else may pass.
func ValidAccentColor(c string) bool { return accentPattern.MatchString(c) }

// PortalUser is the platform's user a portal session acts for, as the platform named them.
type PortalUser struct {
	ID    string `json:"id"`
	Email string `json:"email,omitempty"`
	Name  string `json:"name,omitempty"`
}

// PortalSession is one portal link and, once the link is opened, the browser session it started.
type PortalSession struct {
	ID          string
	WorkspaceID string
	Role        Role
	User        PortalUser
	ReturnURL   string
	CreatedAt   time.Time
	// LinkExpiresAt: the link opens a session only before this, and only once.
	LinkExpiresAt time.Time
	// OpenedAt is when the link was used (zero: not yet); the session ends at ExpiresAt.
	OpenedAt  time.Time
	ExpiresAt time.Time
	// EndedAt is set when the person ended the session themselves.
	EndedAt   time.Time
	IP        string
	UserAgent string
	// CreatedBy is the credential that asked for the link (a root key or a workspace key).
	CreatedBy Actor
}

// Portal session bounds of the contract.
const (
	DefaultPortalLinkTTL    = 5 * time.Minute
	MinPortalLinkTTL        = time.Minute
	MaxPortalLinkTTL        = time.Hour
	DefaultPortalSessionTTL = time.Hour
)
