package keyplane

import (
	"encoding/json"
	"strconv"
	"time"
)

// FormatTime writes a time as the API does: RFC 3339 in UTC, with as many fractional digits as needed.
func FormatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func formatTimePtr(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := FormatTime(*t)
	return &s
}

// APIKeyView is the API's key object. It is also the data of key events, so that webhook receivers see
// exactly what the API shows. KeyValue is set only in the answers that reveal a value.
type APIKeyView struct {
	ID             string           `json:"id"`
	WorkspaceID    string           `json:"workspaceId"`
	Name           string           `json:"name"`
	Description    string           `json:"description"`
	KeyType        KeyType          `json:"keyType"`
	Environment    Environment      `json:"environment"`
	Prefix         string           `json:"prefix"`
	Start          string           `json:"start"`
	End            string           `json:"end"`
	Status         Status           `json:"status"`
	Enabled        bool             `json:"enabled"`
	Permissions    []string         `json:"permissions"`
	IPAllowlist    []string         `json:"ipAllowlist"`
	AllowedOrigins []string         `json:"allowedOrigins"`
	Meta           json.RawMessage  `json:"meta"`
	RateLimit      *RateLimit       `json:"rateLimit"`
	RateLimits     []NamedRateLimit `json:"rateLimits"` // rateLimit as "default" first, then the named ones
	Credits        *CreditsView     `json:"credits"`
	IdentityID     *string          `json:"identityId"`
	ExternalID     *string          `json:"externalId"`
	Recoverable    bool             `json:"recoverable"`
	ExpiresAt      *string          `json:"expiresAt"`
	LastUsedAt     *string          `json:"lastUsedAt"`
	CreatedAt      string           `json:"createdAt"`
	UpdatedAt      string           `json:"updatedAt"`
	DisabledAt     *string          `json:"disabledAt"`
	RevokedAt      *string          `json:"revokedAt"`
	CreatedBy      ActorRef         `json:"createdBy"`
	KeyValue       string           `json:"keyValue,omitempty"`
}

// ActorRef is who created something, without the name (names change; ids do not).
type ActorRef struct {
	Type ActorType `json:"type"`
	ID   string    `json:"id"`
}

// View returns the API's representation of k at now.
func (k *APIKey) View(now time.Time) *APIKeyView {
	meta := k.Meta
	if len(meta) == 0 {
		meta = json.RawMessage("{}")
	}
	v := &APIKeyView{
		ID: k.ID, WorkspaceID: k.WorkspaceID, Name: k.Name, Description: k.Description,
		KeyType: k.KeyType, Environment: k.Environment, Prefix: k.Prefix, Start: k.Start, End: k.End,
		Status: k.Status(now), Enabled: k.Enabled,
		Permissions: nonNil(k.Permissions), IPAllowlist: nonNil(k.IPAllowlist), AllowedOrigins: nonNil(k.AllowedOrigins),
		Meta: meta, RateLimit: k.RateLimit, RateLimits: KeyRateLimits(k.RateLimit, k.RateLimits),
		Credits: k.Credits.View(), Recoverable: k.Recoverable,
		ExpiresAt: formatTimePtr(k.ExpiresAt), LastUsedAt: formatTimePtr(k.LastUsedAt),
		CreatedAt: FormatTime(k.CreatedAt), UpdatedAt: FormatTime(k.UpdatedAt),
		DisabledAt: formatTimePtr(k.DisabledAt), RevokedAt: formatTimePtr(k.RevokedAt),
		CreatedBy: ActorRef{Type: k.CreatedBy.Type, ID: k.CreatedBy.ID},
	}
	if k.IdentityID != "" {
		v.IdentityID = &k.IdentityID
		if k.Identity != nil {
			v.ExternalID = &k.Identity.ExternalID
		}
	}
	return v
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// WorkspaceView is the API's workspace object, settings as top-level fields.
type WorkspaceView struct {
	ID                string `json:"id"`
	Name              string `json:"name"`
	Slug              string `json:"slug"`
	MaxKeys           int    `json:"maxKeys"`
	TestKeyTTLSeconds int64  `json:"testKeyTtlSeconds"`
	LiveModeEnabled   bool   `json:"liveModeEnabled"`
	// LeakPolicy: what is done to a secret key of the workspace found leaked.
	LeakPolicy LeakPolicy `json:"leakPolicy"`
	// Branding is the portal's look; null when the workspace has none.
	Branding  *Branding `json:"branding"`
	CreatedAt string    `json:"createdAt"`
	UpdatedAt string    `json:"updatedAt"`
}

// View returns the API's representation of w.
func (w *Workspace) View() *WorkspaceView {
	v := &WorkspaceView{
		ID: w.ID, Name: w.Name, Slug: w.Slug, MaxKeys: w.MaxKeys, TestKeyTTLSeconds: w.TestKeyTTLSeconds,
		LiveModeEnabled: w.LiveModeEnabled, LeakPolicy: w.Policy(), CreatedAt: FormatTime(w.CreatedAt), UpdatedAt: FormatTime(w.UpdatedAt),
	}
	if w.Branding != (Branding{}) {
		b := w.Branding
		v.Branding = &b
	}
	return v
}

// MemberView is the API's member object.
type MemberView struct {
	UserID    string       `json:"userId"`
	Email     string       `json:"email"`
	Role      Role         `json:"role"`
	Status    MemberStatus `json:"status"`
	CreatedAt string       `json:"createdAt"`
}

// View returns the API's representation of m.
func (m *Member) View() *MemberView {
	return &MemberView{UserID: m.UserID, Email: m.Email, Role: m.Role, Status: m.Status, CreatedAt: FormatTime(m.CreatedAt)}
}

// RequestLogView is the API's request log entry.
type RequestLogView struct {
	ID            string     `json:"id"`
	Timestamp     string     `json:"timestamp"`
	KeyID         string     `json:"keyId"`
	Code          VerifyCode `json:"code"`
	Source        LogSource  `json:"source"`
	Method        string     `json:"method"`
	Path          string     `json:"path"`
	IP            string     `json:"ip"`
	UserAgent     string     `json:"userAgent"`
	LatencyMicros int64      `json:"latencyMicros"`
	// IdentityID, CreditsSpent and Tags are what a usage-based verification adds: the entry is
	// filtered by tag, and a bill is checked against it, so it shows them.
	IdentityID   *string  `json:"identityId"`
	CreditsSpent int64    `json:"creditsSpent"`
	Tags         []string `json:"tags"`
}

// View returns the API's representation of e.
func (e *RequestLog) View() *RequestLogView {
	v := &RequestLogView{
		ID: e.ID, Timestamp: FormatTime(e.Timestamp), KeyID: e.KeyID, Code: e.Code, Source: e.Source,
		Method: e.Method, Path: e.Path, IP: e.IP, UserAgent: e.UserAgent, LatencyMicros: e.LatencyMicros,
		CreditsSpent: e.CreditsSpent, Tags: nonNil(e.Tags),
	}
	if e.IdentityID != "" {
		v.IdentityID = &e.IdentityID
	}
	return v
}

// UsageBucketView is the API's usage bucket. Codes is {} for a bucket without requests.
type UsageBucketView struct {
	Start string               `json:"start"`
	Total int64                `json:"total"`
	Valid int64                `json:"valid"`
	Codes map[VerifyCode]int64 `json:"codes"`
}

// View returns the API's representation of b.
func (b *UsageBucket) View() *UsageBucketView {
	codes := b.Codes
	if codes == nil {
		codes = map[VerifyCode]int64{}
	}
	return &UsageBucketView{Start: FormatTime(b.Start), Total: b.Total, Valid: b.Valid, Codes: codes}
}

// UsageCSVHeader is the header row of the usage export's CSV, grouped by g: the group's id (keyId or
// identityId), externalId, start, total, valid, creditsSpent, then one column per verification code.
func UsageCSVHeader(g UsageGroup) []string {
	head := []string{"keyId", "externalId", "start", "total", "valid", "creditsSpent"}
	if g == GroupByIdentity {
		head[0] = "identityId"
	}
	for _, code := range VerifyCodes {
		head = append(head, string(code))
	}
	return head
}

// CSV returns the row as the usage export's CSV has it, grouped by g (see UsageCSVHeader).
func (r *UsageRow) CSV(g UsageGroup) []string {
	itoa := func(n int64) string { return strconv.FormatInt(n, 10) }
	rec := []string{r.KeyID, r.ExternalID, FormatTime(r.Start), itoa(r.Total), itoa(r.Valid), itoa(r.CreditsSpent)}
	if g == GroupByIdentity {
		rec[0] = r.IdentityID
	}
	for _, code := range VerifyCodes {
		rec = append(rec, itoa(r.Codes[code]))
	}
	return rec
}
