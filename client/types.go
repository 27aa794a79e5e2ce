package client

import (
	"encoding/json"
	"time"
)

// KeyType is an API key's type.
type KeyType string

// Key types.
const (
	KeyTypeSecret      KeyType = "secret"
	KeyTypePublishable KeyType = "publishable"
)

// Environment is an API key's environment.
type Environment string

// Environments.
const (
	EnvLive Environment = "live"
	EnvTest Environment = "test"
)

// KeyStatus is an API key's status, derived by the server: revoked if revoked, else expired if past
// expiresAt, else disabled if not enabled, else active.
type KeyStatus string

// Key statuses.
const (
	StatusActive   KeyStatus = "active"
	StatusDisabled KeyStatus = "disabled"
	StatusExpired  KeyStatus = "expired"
	StatusRevoked  KeyStatus = "revoked"
)

// VerifyCode is a verification's outcome.
type VerifyCode string

// Verification codes.
const (
	VerifyValid                   VerifyCode = "VALID"
	VerifyNotFound                VerifyCode = "NOT_FOUND"
	VerifyDisabled                VerifyCode = "DISABLED"
	VerifyExpired                 VerifyCode = "EXPIRED"
	VerifyRevoked                 VerifyCode = "REVOKED"
	VerifyForbidden               VerifyCode = "FORBIDDEN"
	VerifyInsufficientPermissions VerifyCode = "INSUFFICIENT_PERMISSIONS"
	VerifyRateLimited             VerifyCode = "RATE_LIMITED"
	VerifyUsageExceeded           VerifyCode = "USAGE_EXCEEDED" // fewer credits left than the cost
	VerifyInvalidSignature        VerifyCode = "INVALID_SIGNATURE"
)

// LogSource is where a request log entry comes from.
type LogSource string

// Log sources.
const (
	SourceVerify     LogSource = "verify"     // POST /v1/verify
	SourceSignature  LogSource = "signature"  // POST /v1/verify/signature
	SourceJWT        LogSource = "jwt"        // POST /v1/verify/jwt
	SourceAuth       LogSource = "auth"       // forward auth, /v1/auth
	SourceManagement LogSource = "management" // a management call made with a workspace key
)

// Role is a person's role in a workspace.
type Role string

// Roles.
const (
	RoleOwner     Role = "owner"
	RoleAdmin     Role = "admin"
	RoleDeveloper Role = "developer"
	RoleViewer    Role = "viewer"
)

// ActorType is who did something.
type ActorType string

// Actor types.
const (
	ActorUser    ActorType = "user"
	ActorAPIKey  ActorType = "api_key"
	ActorRootKey ActorType = "root_key"
	ActorSystem  ActorType = "system"
	// ActorPortalUser is a platform's own user acting through a portal session: the id and name are
	// those the platform gave when it asked for the link (Client.CreatePortalSession).
	ActorPortalUser ActorType = "portal_user"
)

// DeliveryStatus is a webhook delivery attempt's status.
type DeliveryStatus string

// Delivery statuses.
const (
	DeliveryPending   DeliveryStatus = "pending"
	DeliverySucceeded DeliveryStatus = "succeeded"
	DeliveryFailed    DeliveryStatus = "failed"
)

// Granularity is the width of a usage bucket.
type Granularity string

// Granularities.
const (
	GranularityHour Granularity = "hour"
	GranularityDay  Granularity = "day"
	// GranularityMonth is for the usage export only (ExportUsage).
	GranularityMonth Granularity = "month"
)

// Page is one page of a list. NextCursor is "" on the last page; otherwise pass it as the next
// call's Cursor (or range over the All… iterator, which does).
type Page[T any] struct {
	Items      []T
	NextCursor string
}

// ListParams are the paging parameters of a list without filters.
type ListParams struct {
	// Limit is the page size, 1–100; 0 means the server's default (50).
	Limit int
	// Cursor is the NextCursor of the previous page; "" for the first.
	Cursor string
}

// Workspaces

// Workspace is a tenant and its settings.
type Workspace struct {
	ID                string `json:"id"`
	Name              string `json:"name"`
	Slug              string `json:"slug"`
	MaxKeys           int    `json:"maxKeys"`
	TestKeyTTLSeconds int64  `json:"testKeyTtlSeconds"`
	LiveModeEnabled   bool   `json:"liveModeEnabled"`
	// LeakPolicy: what is done to a secret key of the workspace found leaked.
	LeakPolicy LeakPolicy `json:"leakPolicy"`
	// Branding is the look of the workspace's portal; nil when it has none.
	Branding  *Branding `json:"branding"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// Branding is how a workspace's portal looks: the platform's name (empty: the workspace's), an
// accent colour (#rrggbb) and a logo (https only). Empty fields are none.
type Branding struct {
	Name        string `json:"name,omitempty"`
	AccentColor string `json:"accentColor,omitempty"`
	LogoURL     string `json:"logoUrl,omitempty"`
}

// CreateWorkspaceRequest is the body of POST /v1/workspaces. Nil fields take the server's defaults
// (maxKeys 20, testKeyTtlSeconds 259200, liveModeEnabled true).
type CreateWorkspaceRequest struct {
	Name              string     `json:"name"`
	Slug              string     `json:"slug"`
	MaxKeys           *int       `json:"maxKeys,omitempty"`
	TestKeyTTLSeconds *int64     `json:"testKeyTtlSeconds,omitempty"`
	LiveModeEnabled   *bool      `json:"liveModeEnabled,omitempty"`
	LeakPolicy        LeakPolicy `json:"leakPolicy,omitempty"`
	Branding          *Branding  `json:"branding,omitempty"`
}

// UpdateWorkspaceRequest is the body of PATCH /v1/workspaces/{id}: only the fields that are not nil
// change (null is refused for every workspace field but Branding, so there is nothing else to
// clear). Branding replaces the whole branding; Null[Branding]() clears it.
type UpdateWorkspaceRequest struct {
	Name              *string            `json:"name,omitempty"`
	Slug              *string            `json:"slug,omitempty"`
	MaxKeys           *int               `json:"maxKeys,omitempty"`
	TestKeyTTLSeconds *int64             `json:"testKeyTtlSeconds,omitempty"`
	LiveModeEnabled   *bool              `json:"liveModeEnabled,omitempty"`
	LeakPolicy        LeakPolicy         `json:"leakPolicy,omitempty"`
	Branding          Optional[Branding] `json:"branding,omitzero"`
}

// Member is a person's role in a workspace.
type Member struct {
	UserID    string       `json:"userId"`
	Email     string       `json:"email"`
	Role      Role         `json:"role"`
	Status    MemberStatus `json:"status"`
	CreatedAt time.Time    `json:"createdAt"`
}

// MemberStatus says whether a member may open the workspace.
type MemberStatus string

// Member statuses: an invited person has no access until they accept.
const (
	MemberActive  MemberStatus = "active"
	MemberInvited MemberStatus = "invited"
)

// AddMemberRequest is the body of POST /v1/workspaces/{id}/members.
type AddMemberRequest struct {
	Email string `json:"email"`
	Role  Role   `json:"role"`
}

// API keys

// RateLimit is at most Limit verifications per WindowMs milliseconds (a smoothed window).
type RateLimit struct {
	Limit    int64 `json:"limit"`
	WindowMs int64 `json:"windowMs"`
}

// ActorRef names who created something.
type ActorRef struct {
	Type ActorType `json:"type"`
	ID   string    `json:"id"`
}

// APIKey is the key object. It never holds the key's value, except KeyValue in the answers of
// CreateAPIKey, RotateAPIKey and PublishableAPIKey.
type APIKey struct {
	ID             string          `json:"id"`
	WorkspaceID    string          `json:"workspaceId"`
	Name           string          `json:"name"`
	Description    string          `json:"description"`
	KeyType        KeyType         `json:"keyType"`
	Environment    Environment     `json:"environment"`
	Prefix         string          `json:"prefix"`
	Start          string          `json:"start"`
	End            string          `json:"end"`
	Status         KeyStatus       `json:"status"`
	Enabled        bool            `json:"enabled"`
	Permissions    []string        `json:"permissions"`
	IPAllowlist    []string        `json:"ipAllowlist"`
	AllowedOrigins []string        `json:"allowedOrigins"`
	Meta           json.RawMessage `json:"meta"`
	RateLimit      *RateLimit      `json:"rateLimit"`
	Recoverable    bool            `json:"recoverable"`
	ExpiresAt      *time.Time      `json:"expiresAt"`
	LastUsedAt     *time.Time      `json:"lastUsedAt"`
	CreatedAt      time.Time       `json:"createdAt"`
	UpdatedAt      time.Time       `json:"updatedAt"`
	DisabledAt     *time.Time      `json:"disabledAt"`
	RevokedAt      *time.Time      `json:"revokedAt"`
	CreatedBy      ActorRef        `json:"createdBy"`
	// RateLimits are every limit of the key: RateLimit as the one named "default" (AutoApply true)
	// first, then its named ones.
	RateLimits []NamedRateLimit `json:"rateLimits"`
	// Credits is the key's own balance; nil: unlimited (an identity's balance is on the identity).
	Credits *Credits `json:"credits"`
	// IdentityID and ExternalID name the identity the key belongs to; nil without one.
	IdentityID *string `json:"identityId"`
	ExternalID *string `json:"externalId"`
	// KeyValue is the key's full value: only in the answers of create, rotate and the publishable
	// key. For a secret key that is not recoverable, the answer of create is the only time it is
	// ever shown.
	KeyValue string `json:"keyValue,omitempty"`
}

// CreateAPIKeyRequest is the body of POST /v1/api-keys. Name and KeyType are required.
type CreateAPIKeyRequest struct {
	Name        string      `json:"name"`
	KeyType     KeyType     `json:"keyType"`
	Environment Environment `json:"environment,omitempty"` // default live
	Description string      `json:"description,omitempty"`
	// Permissions are names of the catalog (Client.Permissions).
	Permissions []string `json:"permissions,omitempty"`
	// ExpiresAt must lie in the future. A test key always expires: nil means creation time + the
	// workspace's testKeyTtlSeconds. A live key with nil never expires.
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
	// IPAllowlist holds IPv4/IPv6 addresses or CIDRs.
	IPAllowlist []string `json:"ipAllowlist,omitempty"`
	// AllowedOrigins holds web origins (https://shop.example.com); publishable keys only.
	AllowedOrigins []string `json:"allowedOrigins,omitempty"`
	// Meta is any JSON object of at most 4096 bytes.
	Meta      json.RawMessage `json:"meta,omitempty"`
	RateLimit *RateLimit      `json:"rateLimit,omitempty"`
	// Recoverable keeps the value sealed so that an admin root key can reveal it, and so that the
	// key can sign requests and JWTs. Publishable keys always are.
	Recoverable bool `json:"recoverable,omitempty"`
	// Credits is the key's own balance; nil: unlimited.
	Credits *CreditsRequest `json:"credits,omitempty"`
	// RateLimits are named limits; one named "default" is the key's RateLimit (AutoApply must be
	// true, and RateLimit must then be nil). At most 10 in all.
	RateLimits []NamedRateLimit `json:"rateLimits,omitempty"`
	// ExternalID puts the key in the identity of this externalId, made on first use; IdentityID in
	// this identity. Not both.
	ExternalID string `json:"externalId,omitempty"`
	IdentityID string `json:"identityId,omitempty"`
}

// UpdateAPIKeyRequest is the body of PATCH /v1/api-keys/{id}. Fields left zero are left alone; an
// Optional set with Null clears its field; lists replace the old list. Name and Enabled cannot be
// null, so they are plain pointers.
type UpdateAPIKeyRequest struct {
	Name           *string                   `json:"name,omitempty"`
	Description    Optional[string]          `json:"description,omitzero"`
	Permissions    Optional[[]string]        `json:"permissions,omitzero"`
	IPAllowlist    Optional[[]string]        `json:"ipAllowlist,omitzero"`
	AllowedOrigins Optional[[]string]        `json:"allowedOrigins,omitzero"`
	Meta           Optional[json.RawMessage] `json:"meta,omitzero"` // null means {}
	RateLimit      Optional[RateLimit]       `json:"rateLimit,omitzero"`
	// ExpiresAt: null (live keys only) means never; a test key's expiry cannot be null.
	ExpiresAt Optional[time.Time] `json:"expiresAt,omitzero"`
	Enabled   *bool               `json:"enabled,omitempty"`
	// Credits replaces the key's balance; Null makes it unlimited. To add or take credits, use
	// ChangeAPIKeyCredits.
	Credits Optional[CreditsRequest] `json:"credits,omitzero"`
	// RateLimits replaces every limit of the key, RateLimit included (as the entry named "default")
	// unless RateLimit is set too; Null removes them all but RateLimit.
	RateLimits Optional[[]NamedRateLimit] `json:"rateLimits,omitzero"`
	// ExternalID or IdentityID moves the key to that identity; Null takes it out of its identity.
	ExternalID Optional[string] `json:"externalId,omitzero"`
	IdentityID Optional[string] `json:"identityId,omitzero"`
}

// RotateAPIKeyRequest is the body of POST /v1/api-keys/{id}/rotate.
type RotateAPIKeyRequest struct {
	// ExpireOldAfterSeconds is how long the old value keeps working (0–604800); 0 stops it at once.
	ExpireOldAfterSeconds int64 `json:"expireOldAfterSeconds"`
}

// RevokedAPIKey is the answer of a revocation.
type RevokedAPIKey struct {
	ID        string    `json:"id"`
	RevokedAt time.Time `json:"revokedAt"`
}

// DeletedAPIKey is the answer of a permanent delete.
type DeletedAPIKey struct {
	ID      string `json:"id"`
	Deleted bool   `json:"deleted"`
}

// RevealedAPIKey is the answer of a reveal.
type RevealedAPIKey struct {
	ID       string `json:"id"`
	KeyValue string `json:"keyValue"`
}

// ListAPIKeysParams are the filters and paging of GET /v1/api-keys; empty filters are not applied.
type ListAPIKeysParams struct {
	Environment Environment
	KeyType     KeyType
	Status      KeyStatus
	// ExternalID or IdentityID: only the keys of that identity (not both).
	ExternalID string
	IdentityID string
	Limit      int
	Cursor     string
}

// UsageParams are the query of GET /v1/api-keys/{id}/usage; zero values take the server's defaults
// (hourly buckets, the last 24 hours or 30 days).
type UsageParams struct {
	Granularity Granularity
	Since       time.Time
	Until       time.Time
}

// UsageBucket is a key's requests in one UTC hour or day.
type UsageBucket struct {
	Start time.Time            `json:"start"`
	Total int64                `json:"total"`
	Valid int64                `json:"valid"`
	Codes map[VerifyCode]int64 `json:"codes"`
}

// Usage-based keys: credits, named rate limits, identities

// NamedRateLimit is one of a key's or an identity's limits: Limit verifications (or units of cost)
// per WindowMs. An AutoApply limit applies to every verification; the others only to those that
// name it (VerifyRequest.RateLimits).
type NamedRateLimit struct {
	Name      string `json:"name"` // [a-z0-9_.:-]{1,64}, unique per key or identity
	Limit     int64  `json:"limit"`
	WindowMs  int64  `json:"windowMs"`
	AutoApply bool   `json:"autoApply"`
}

// RefillInterval is how often credits are refilled.
type RefillInterval string

// Refill intervals.
const (
	RefillDaily   RefillInterval = "daily"
	RefillMonthly RefillInterval = "monthly"
)

// Refill sets a balance back to Amount at 00:00 UTC of each day it is due: every day, or each
// month on RefillDay (1–31, clamped to the month's last day; 0 when sending means 1).
type Refill struct {
	Interval  RefillInterval `json:"interval"`
	Amount    int64          `json:"amount"`
	RefillDay int            `json:"refillDay,omitempty"` // monthly only
}

// Credits is a balance that verifications spend.
type Credits struct {
	Remaining int64   `json:"remaining"`
	Refill    *Refill `json:"refill"`
	// LastRefillAt is 00:00 UTC of the day of the last refill; nil before the first.
	LastRefillAt *time.Time `json:"lastRefillAt"`
}

// CreditsRequest sets a balance. Remaining nil with a Refill starts the balance at the refill's
// amount.
type CreditsRequest struct {
	Remaining *int64  `json:"remaining,omitempty"`
	Refill    *Refill `json:"refill,omitempty"`
}

// CreditOp is an operation of ChangeAPIKeyCredits and ChangeIdentityCredits.
type CreditOp string

// Credit operations.
const (
	CreditSet       CreditOp = "set"
	CreditIncrement CreditOp = "increment"
	CreditDecrement CreditOp = "decrement"
)

// CreditsOperation is the body of POST /v1/api-keys/{id}/credits and /v1/identities/{id}/credits.
type CreditsOperation struct {
	Op    CreditOp `json:"op"`
	Value int64    `json:"value"` // 0–10^12
}

// Identity is a customer of the platform, by the platform's own id for it: its keys share its
// credits and its rate limits.
type Identity struct {
	ID         string           `json:"id"`
	ExternalID string           `json:"externalId"`
	Meta       json.RawMessage  `json:"meta"`
	Credits    *Credits         `json:"credits"`
	RateLimits []NamedRateLimit `json:"rateLimits"`
	CreatedAt  time.Time        `json:"createdAt"`
	UpdatedAt  time.Time        `json:"updatedAt"`
}

// CreateIdentityRequest is the body of POST /v1/identities. ExternalID is required.
type CreateIdentityRequest struct {
	ExternalID string           `json:"externalId"`
	Meta       json.RawMessage  `json:"meta,omitempty"`
	Credits    *CreditsRequest  `json:"credits,omitempty"` // nil: unlimited
	RateLimits []NamedRateLimit `json:"rateLimits,omitempty"`
}

// UpdateIdentityRequest is the body of PATCH /v1/identities/{id}: zero fields are left alone.
type UpdateIdentityRequest struct {
	ExternalID *string                    `json:"externalId,omitempty"`
	Meta       Optional[json.RawMessage]  `json:"meta,omitzero"`       // null means {}
	Credits    Optional[CreditsRequest]   `json:"credits,omitzero"`    // null: unlimited
	RateLimits Optional[[]NamedRateLimit] `json:"rateLimits,omitzero"` // replaces the list
}

// DeletedIdentity is the answer of an identity's delete.
type DeletedIdentity struct {
	ID      string `json:"id"`
	Deleted bool   `json:"deleted"`
}

// UsageGroup says what a usage export row sums.
type UsageGroup string

// Usage export groupings.
const (
	GroupByKey      UsageGroup = "key"
	GroupByIdentity UsageGroup = "identity"
)

// ExportUsageParams are the query of GET /v1/usage; zero values take the server's defaults
// (grouped by key, per day, from the start of the current UTC month until now).
type ExportUsageParams struct {
	GroupBy     UsageGroup
	Granularity Granularity // hour, day or month
	Since       time.Time
	Until       time.Time
}

// UsageRow is a key's (or an identity's) requests in one period: KeyID is set when grouped by
// key, IdentityID when grouped by identity.
type UsageRow struct {
	KeyID        string               `json:"keyId,omitempty"`
	IdentityID   string               `json:"identityId,omitempty"`
	ExternalID   *string              `json:"externalId"`
	Start        time.Time            `json:"start"`
	Total        int64                `json:"total"`
	Valid        int64                `json:"valid"`
	CreditsSpent int64                `json:"creditsSpent"`
	Codes        map[VerifyCode]int64 `json:"codes"`
}

// Audit trail

// AuditActor is who made a change.
type AuditActor struct {
	Type ActorType `json:"type"`
	ID   string    `json:"id"`
	Name string    `json:"name"`
}

// AuditTarget is what a change was made to.
type AuditTarget struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// Change is a field's value before and after a change, as the API shows it (From is null for a new
// value).
type Change struct {
	From json.RawMessage `json:"from"`
	To   json.RawMessage `json:"to"`
}

// AuditEntry is an entry of the audit trail.
type AuditEntry struct {
	ID        string            `json:"id"`
	Timestamp time.Time         `json:"timestamp"`
	Action    string            `json:"action"`
	Actor     AuditActor        `json:"actor"`
	Target    AuditTarget       `json:"target"`
	IP        string            `json:"ip"`
	UserAgent string            `json:"userAgent"`
	RequestID string            `json:"requestId"`
	Changes   map[string]Change `json:"changes"`
	PrevHash  string            `json:"prevHash"`
	Hash      string            `json:"hash"`
	// Raw is the entry exactly as the API returned it: what the hash chain is computed over (see
	// docs/api.md, "Checking the chain from the API alone"). Never sent.
	Raw json.RawMessage `json:"-"`
}

// UnmarshalJSON decodes the entry and keeps its bytes in Raw.
func (e *AuditEntry) UnmarshalJSON(b []byte) error {
	type plain AuditEntry
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*e = AuditEntry(p)
	e.Raw = append(json.RawMessage(nil), b...)
	return nil
}

// ListAuditLogsParams are the filters and paging of GET /v1/audit-logs; empty filters are not
// applied. Since is inclusive, Until exclusive.
type ListAuditLogsParams struct {
	Action   string
	ActorID  string
	TargetID string
	Since    time.Time
	Until    time.Time
	Limit    int
	Cursor   string
}

// AuditVerification is the server's check of a workspace's hash chain.
type AuditVerification struct {
	Valid   bool `json:"valid"`
	Entries int  `json:"entries"`
	// FirstBadID names the first entry that does not check out; nil when all do.
	FirstBadID *string `json:"firstBadId"`
}

// Request log

// RequestLog is an entry of the request log: a verification of one of the workspace's keys, or a
// management call made with one.
type RequestLog struct {
	ID            string     `json:"id"`
	Timestamp     time.Time  `json:"timestamp"`
	KeyID         string     `json:"keyId"`
	Code          VerifyCode `json:"code"`
	Source        LogSource  `json:"source"`
	Method        string     `json:"method"`
	Path          string     `json:"path"`
	IP            string     `json:"ip"`
	UserAgent     string     `json:"userAgent"`
	LatencyMicros int64      `json:"latencyMicros"`
	IdentityID    *string    `json:"identityId"`   // nil when the key had no identity
	CreditsSpent  int64      `json:"creditsSpent"` // credits the verification took
	Tags          []string   `json:"tags"`
}

// ListRequestLogsParams are the filters and paging of GET /v1/logs; empty filters are not applied.
type ListRequestLogsParams struct {
	KeyID  string
	Code   VerifyCode
	Source LogSource
	Tag    string // only verifications whose request carried this tag
	Since  time.Time
	Until  time.Time
	Limit  int
	Cursor string
}

// Webhooks and events

// Webhook is a webhook endpoint. Secret is set only in the answers of create, rotate-secret and
// reveal-secret; PreviousSecretExpiresAt only after a rotation.
type Webhook struct {
	ID                      string     `json:"id"`
	URL                     string     `json:"url"`
	Description             string     `json:"description"`
	EventTypes              []string   `json:"eventTypes"`
	Enabled                 bool       `json:"enabled"`
	DisabledReason          *string    `json:"disabledReason"`
	CreatedAt               time.Time  `json:"createdAt"`
	UpdatedAt               time.Time  `json:"updatedAt"`
	Secret                  string     `json:"secret,omitempty"`
	PreviousSecretExpiresAt *time.Time `json:"previousSecretExpiresAt,omitempty"`
}

// CreateWebhookRequest is the body of POST /v1/webhooks. Enabled nil means true.
type CreateWebhookRequest struct {
	URL         string   `json:"url"`
	EventTypes  []string `json:"eventTypes"` // event type names, or "*"
	Description string   `json:"description,omitempty"`
	Enabled     *bool    `json:"enabled,omitempty"`
}

// UpdateWebhookRequest is the body of PATCH /v1/webhooks/{id}: zero fields are left alone;
// Description may be Null to clear it.
type UpdateWebhookRequest struct {
	URL         *string          `json:"url,omitempty"`
	Description Optional[string] `json:"description,omitzero"`
	EventTypes  []string         `json:"eventTypes,omitempty"`
	Enabled     *bool            `json:"enabled,omitempty"` // true also clears DisabledReason
}

// DeletedWebhook is the answer of a webhook delete.
type DeletedWebhook struct {
	ID      string `json:"id"`
	Deleted bool   `json:"deleted"`
}

// WebhookTestResult is what the endpoint answered a test send.
type WebhookTestResult struct {
	StatusCode   *int    `json:"statusCode"` // nil when no answer came
	ResponseBody string  `json:"responseBody"`
	Error        *string `json:"error"` // nil on a 2xx
	DurationMs   int64   `json:"durationMs"`
}

// Delivery is one delivery attempt of an event to an endpoint.
type Delivery struct {
	ID            string         `json:"id"`
	EventID       string         `json:"eventId"`
	EventType     string         `json:"eventType"`
	Attempt       int            `json:"attempt"`
	Status        DeliveryStatus `json:"status"`
	StatusCode    *int           `json:"statusCode"`
	ResponseBody  string         `json:"responseBody"`
	Error         *string        `json:"error"`
	DurationMs    *int64         `json:"durationMs"`
	CreatedAt     time.Time      `json:"createdAt"`
	NextAttemptAt *time.Time     `json:"nextAttemptAt"`
}

// ListDeliveriesParams are the filter and paging of GET /v1/webhooks/{id}/deliveries.
type ListDeliveriesParams struct {
	Status DeliveryStatus
	Limit  int
	Cursor string
}

// SendEventRequest is the body of POST /v1/events: a custom event type of the deployment's
// configuration, and an object (nil means {}).
type SendEventRequest struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data,omitempty"`
}

// SentEvent is the answer of POST /v1/events.
type SentEvent struct {
	ID        string    `json:"id"`
	Type      string    `json:"type"`
	CreatedAt time.Time `json:"createdAt"`
	// Endpoints is how many enabled endpoints the event was queued for.
	Endpoints int `json:"endpoints"`
}

// Catalog and status

// CatalogEntry is a permission or an event type.
type CatalogEntry struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

// Status is the answer of GET /v1/status.
type Status struct {
	Status        string `json:"status"` // "ok" or "degraded"
	Version       string `json:"version"`
	UptimeSeconds int64  `json:"uptimeSeconds"`
	Store         struct {
		Driver string `json:"driver"`
		OK     bool   `json:"ok"`
	} `json:"store"`
}

// LeakPolicy is what a workspace does to its secret keys found leaked.
type LeakPolicy string

// Leak policies.
const (
	LeakRevoke  LeakPolicy = "revoke"
	LeakDisable LeakPolicy = "disable"
	LeakNotify  LeakPolicy = "notify"
)

// LeakAction is what a leak report did to a value's key.
type LeakAction string

// Leak actions.
const (
	LeakRevoked         LeakAction = "revoked"
	LeakDisabled        LeakAction = "disabled"
	LeakNotified        LeakAction = "notified"
	LeakAlreadyReported LeakAction = "already_reported" // the value was reported before: nothing more done
	LeakNone            LeakAction = "none"             // no key, a publishable key, or nothing left to do
)

// LeakReport is the body of POST /v1/leaks: up to 1,000 values and where they were found.
type LeakReport struct {
	Keys   []string `json:"keys"`
	Source string   `json:"source,omitempty"`
	URL    string   `json:"url,omitempty"`
}

// LeakResult is what a report did with one value.
type LeakResult struct {
	Found  bool       `json:"found"`
	KeyID  string     `json:"keyId,omitempty"`
	Action LeakAction `json:"action"`
}

// ImportAPIKeysRequest is the body of POST /v1/api-keys/import: at most 1,000 keys.
type ImportAPIKeysRequest struct {
	Keys []ImportAPIKey `json:"keys"`
}

// ImportAPIKey is one key migrated in: exactly one of Value (the existing value, in any format:
// 16 to 256 printable ASCII characters without spaces) and Hash (its SHA-256 digest), and a created
// key's settings but Recoverable (an imported value is kept as its digest only) and AllowedOrigins
// (imported keys are secret keys). A test key's expiry counts from the import.
type ImportAPIKey struct {
	Value       string           `json:"value,omitempty"`
	Hash        *ImportHash      `json:"hash,omitempty"`
	Name        string           `json:"name"`
	KeyType     KeyType          `json:"keyType,omitempty"`     // secret when empty
	Environment Environment      `json:"environment,omitempty"` // default live
	Description string           `json:"description,omitempty"`
	Permissions []string         `json:"permissions,omitempty"`
	ExpiresAt   *time.Time       `json:"expiresAt,omitempty"`
	IPAllowlist []string         `json:"ipAllowlist,omitempty"`
	Meta        json.RawMessage  `json:"meta,omitempty"`
	RateLimit   *RateLimit       `json:"rateLimit,omitempty"`
	Credits     *CreditsRequest  `json:"credits,omitempty"`
	RateLimits  []NamedRateLimit `json:"rateLimits,omitempty"`
	ExternalID  string           `json:"externalId,omitempty"`
	IdentityID  string           `json:"identityId,omitempty"`
	// CreatedAt is when the other system made the key; nil: the import's time.
	CreatedAt *time.Time `json:"createdAt,omitempty"`
}

// ImportHash is an existing value given by its digest.
type ImportHash struct {
	Algorithm string `json:"algorithm"` // "sha256"
	Digest    string `json:"digest"`    // hex
}

// ImportAPIKeysResult is the answer of an import: one result per key, in order.
type ImportAPIKeysResult struct {
	Imported int                  `json:"imported"`
	Failed   int                  `json:"failed"`
	Results  []ImportAPIKeyResult `json:"results"`
}

// ImportAPIKeyResult is one key's outcome: ID when it was imported, else Error.
type ImportAPIKeyResult struct {
	Index int              `json:"index"`
	ID    string           `json:"id,omitempty"`
	Error *ImportItemError `json:"error,omitempty"`
}

// ImportItemError is why one key was not imported: the API's error, without a request id.
type ImportItemError struct {
	Code    string       `json:"code"`
	Message string       `json:"message"`
	Details []FieldError `json:"details,omitempty"`
}
