package keyplane

import "time"

// The filters of the lists. They are what a caller asks for, plain data shared by the REST API, the
// dashboard, the service that checks them and the store that applies them. Empty fields do not
// filter; Limit (1–100) has been validated by the caller, and Cursor is opaque, from a previous
// page's next cursor ("" for the first page).

// KeyFilter selects API keys of one workspace. Status is derived from the key's fields at the time
// of the listing, exactly as APIKey.Status does; the service supplies that time, not the caller.
type KeyFilter struct {
	Environment Environment
	KeyType     KeyType
	Status      Status
	IdentityID  string // keys of this identity only
	Limit       int
	Cursor      string
}

// AuditFilter selects entries of one audit chain. Since is inclusive, Until exclusive.
type AuditFilter struct {
	Action   string
	ActorID  string
	TargetID string
	Since    *time.Time
	Until    *time.Time
	Limit    int
	Cursor   string
}

// LogFilter selects entries of one workspace's request log. Since is inclusive, Until exclusive.
type LogFilter struct {
	KeyID  string
	Code   VerifyCode
	Source LogSource
	Tag    string // entries that carry this tag
	Since  *time.Time
	Until  *time.Time
	Limit  int
	Cursor string
}

// EventFilter selects events of one workspace. Since is inclusive, Until exclusive, both to the
// millisecond of the event's id (which is its creation time).
type EventFilter struct {
	Type   string
	Since  *time.Time
	Until  *time.Time
	Limit  int
	Cursor string
}

// DeliveryFilter selects attempts of one endpoint's deliveries log.
type DeliveryFilter struct {
	Status DeliveryStatus
	Limit  int
	Cursor string
}

// UsageGroup says what the usage export sums by.
type UsageGroup string

// Usage export groupings of the contract.
const (
	GroupByKey      UsageGroup = "key"
	GroupByIdentity UsageGroup = "identity"
)

// Valid reports whether g is a known grouping.
func (g UsageGroup) Valid() bool { return g == GroupByKey || g == GroupByIdentity }

// ExportFilter selects a workspace's usage export: sums per key (or per identity; keys without one
// are left out) and per period of Granularity (hour, day or month, UTC) whose start lies in
// [Since, Until).
type ExportFilter struct {
	GroupBy     UsageGroup
	Granularity Granularity
	Since       time.Time
	Until       time.Time
}
