package keyplane

import (
	"regexp"
	"time"
)

// Workspace settings defaults of the contract.
const (
	DefaultMaxKeys           = 20
	DefaultTestKeyTTLSeconds = 259200  // three days
	MaxTestKeyTTLSeconds     = 2592000 // thirty days: a workspace may lengthen the default, within reason
	MinTestKeyTTLSeconds     = 60
	MaxMaxKeys               = 100000
)

// Workspace is a tenant of the platform: a store, a merchant, a program.
type Workspace struct {
	ID                string
	Name              string
	Slug              string
	MaxKeys           int
	TestKeyTTLSeconds int64
	LiveModeEnabled   bool
	// LeakPolicy is what is done to a secret key of the workspace found leaked; empty reads as
	// DefaultLeakPolicy.
	LeakPolicy LeakPolicy
	// Branding is the look of the workspace's portal (PATCH /v1/workspaces/{id} {"branding"}).
	Branding  Branding
	CreatedAt time.Time
	UpdatedAt time.Time
}

// BrandName is how the portal names the platform: the brand's name (stored trimmed), else the
// workspace's.
func (w *Workspace) BrandName() string {
	if w.Branding.Name != "" {
		return w.Branding.Name
	}
	return w.Name
}

var slugPattern = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$`)

// ValidSlug reports whether s may be a workspace slug: lower-case letters, digits and inner dashes,
// 1–63 characters, so that it is safe in a URL path segment.
func ValidSlug(s string) bool { return slugPattern.MatchString(s) }

// Role is a person's role in a workspace.
type Role string

// Roles of workspace members.
const (
	RoleOwner     Role = "owner"
	RoleAdmin     Role = "admin"
	RoleDeveloper Role = "developer"
	RoleViewer    Role = "viewer"
)

// Valid reports whether r is one of the known roles.
func (r Role) Valid() bool {
	switch r {
	case RoleOwner, RoleAdmin, RoleDeveloper, RoleViewer:
		return true
	}
	return false
}

// User is a person who signs in to the dashboard.
type User struct {
	ID           string
	Email        string
	PasswordHash string // argon2id in PHC string form; empty until a password is set
	Operator     bool   // operator admins see every workspace
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// MemberStatus says whether a member may open the workspace.
type MemberStatus string

// Member statuses. An invited person has no access at all to the workspace, not even its name in
// their workspace list, until they accept: an owner could otherwise make any account a member of
// their workspace without its holder knowing.
const (
	MemberActive  MemberStatus = "active"
	MemberInvited MemberStatus = "invited"
)

// Member is a user's role in one workspace.
type Member struct {
	WorkspaceID string
	UserID      string
	Email       string
	Role        Role
	Status      MemberStatus // empty is read as MemberActive when stored
	CreatedAt   time.Time
}

// RootKey is an operator credential. Only the SHA-256 digest of its value is stored.
type RootKey struct {
	ID        string
	Name      string
	Hash      []byte
	Scopes    []string
	CreatedAt time.Time
	RevokedAt *time.Time
}

// Root key scopes.
const (
	ScopeAdmin  = "admin"
	ScopeVerify = "verify"
)

// HasScope reports whether the root key carries scope.
func (r *RootKey) HasScope(scope string) bool {
	for _, s := range r.Scopes {
		if s == scope {
			return true
		}
	}
	return false
}

// Policy returns the workspace's leak policy, the default when none was chosen.
func (w *Workspace) Policy() LeakPolicy {
	if w.LeakPolicy == "" {
		return DefaultLeakPolicy
	}
	return w.LeakPolicy
}
