package keyplane

import "time"

// Session is a person's signed-in dashboard session. Only the SHA-256 digest of its token is stored:
// the token lives in the person's cookie alone.
type Session struct {
	Hash      []byte
	UserID    string
	CreatedAt time.Time
	ExpiresAt time.Time
	// ReauthAt is when the person last entered their password again in this session (sign-in does
	// not count; the Unix epoch means never): revealing a secret needs it within ReauthWindow.
	ReauthAt time.Time
	// ReauthWorkspaceID is the workspace the password was entered again in: the window opens reveals
	// there only.
	ReauthWorkspaceID string
	IP                string
	UserAgent         string
}

// Session lifetimes.
const (
	SessionLifetime = 12 * time.Hour
	ReauthWindow    = 5 * time.Minute
)

// Membership is a workspace a person belongs to, with their role there.
type Membership struct {
	Workspace Workspace
	Role      Role
}
