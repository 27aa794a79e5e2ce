package keyplane

import "time"

// Caller is who makes a service call and from where: the principal that is authorized, and the request
// facts that go into the audit trail.
type Caller struct {
	Actor Actor
	// Operator callers (a root key with the admin scope, an operator admin) act on every workspace.
	Operator bool
	// WorkspaceID is the only workspace a non-operator caller may act on.
	WorkspaceID string
	// Permissions of a workspace key; for a person, those of their role (RolePermissions).
	Permissions []string
	// Role of a person in WorkspaceID; empty for keys.
	Role Role
	// Portal is set for a platform's user acting through a portal session (service.PortalCaller):
	// besides its narrower permissions, the service refuses it what the platform manages (credits,
	// named rate limits, a key's identity, keyplane's own permissions on keys).
	Portal bool
	// Reauthenticated is set for a dashboard session whose password was entered in the last 5 minutes.
	Reauthenticated bool
	// Environment is that of the workspace key that calls (Actor.Type ActorAPIKey, Actor.ID its id);
	// empty for root keys and people. Such a key creates, changes and reveals keys of its own
	// environment only, within what it holds itself (see internal/service, apikeys.go).
	Environment Environment
	// ExpiresAt, IPAllowlist and RateLimit are those of the workspace key that calls (nil or empty
	// when it has none): they bound the key, and so every key it creates or changes, which must be
	// at least as bounded (see internal/service, apikeys.go).
	ExpiresAt   *time.Time
	IPAllowlist []string
	RateLimit   *RateLimit

	IP        string
	UserAgent string
	RequestID string
}

// System is the caller of jobs and commands run by keyplane itself.
func System(name string) *Caller {
	return &Caller{Actor: Actor{Type: ActorSystem, ID: "system", Name: name}, Operator: true}
}

// Authorize checks that c may use perm in workspaceID. Another workspace answers not found, never
// forbidden, so that a caller learns nothing of resources it cannot see.
func (c *Caller) Authorize(workspaceID, perm string) error {
	if c.Operator {
		return nil
	}
	if workspaceID == "" || workspaceID != c.WorkspaceID {
		return NotFound("workspace")
	}
	for _, p := range c.Permissions {
		if p == perm {
			return nil
		}
	}
	return Errorf(CodeForbidden, "this credential lacks the %s permission", perm)
}

// RequireOperator checks that c acts for the operator.
func (c *Caller) RequireOperator() error {
	if c.Operator {
		return nil
	}
	return Errorf(CodeForbidden, "only the operator (a root key with the admin scope) may do this")
}

// RolePermissions maps a workspace role to keyplane's own permissions. Only owners and admins see API
// keys; developers work with webhooks and logs; viewers read.
func RolePermissions(r Role) []string {
	switch r {
	case RoleOwner, RoleAdmin:
		return []string{PermAPIKeysRead, PermAPIKeysWrite, PermIdentitiesRead, PermIdentitiesWrite, PermWebhooksRead, PermWebhooksWrite, PermEventsWrite, PermAuditRead, PermLogsRead}
	case RoleDeveloper:
		return []string{PermWebhooksRead, PermWebhooksWrite, PermEventsWrite, PermAuditRead, PermLogsRead}
	case RoleViewer:
		return []string{PermWebhooksRead, PermAuditRead, PermLogsRead}
	}
	return nil
}
