package keyplane

import "time"

// LogSource says which kind of request a request log entry records.
type LogSource string

// Request log sources of the contract. Each verification endpoint logs under its own source; requests
// to the management API authenticated by a workspace key log as management.
const (
	SourceVerify     LogSource = "verify"     // POST /v1/verify
	SourceSignature  LogSource = "signature"  // POST /v1/verify/signature
	SourceJWT        LogSource = "jwt"        // POST /v1/verify/jwt
	SourceAuth       LogSource = "auth"       // forward auth, /v1/auth
	SourceManagement LogSource = "management" // the management API, called with a workspace key
)

// LogSources lists every source, in the contract's order.
var LogSources = []LogSource{SourceVerify, SourceSignature, SourceJWT, SourceAuth, SourceManagement}

// Valid reports whether s is a known source.
func (s LogSource) Valid() bool {
	switch s {
	case SourceVerify, SourceSignature, SourceJWT, SourceAuth, SourceManagement:
		return true
	}
	return false
}

// VerifyCodes lists every verification outcome of the contract.
var VerifyCodes = []VerifyCode{
	VerifyValid, VerifyNotFound, VerifyDisabled, VerifyExpired, VerifyRevoked, VerifyForbidden,
	VerifyInsufficientPermissions, VerifyRateLimited, VerifyUsageExceeded, VerifyInvalidSignature,
}

// Valid reports whether c is a verification outcome of the contract.
func (c VerifyCode) Valid() bool {
	switch c {
	case VerifyValid, VerifyNotFound, VerifyDisabled, VerifyExpired, VerifyRevoked, VerifyForbidden,
		VerifyInsufficientPermissions, VerifyRateLimited, VerifyUsageExceeded, VerifyInvalidSignature:
		return true
	}
	return false
}

// RequestLog is one entry of a workspace's request log: a use of one of its keys, by a verification or
// as the credential of a management request. Only uses of keys that were found are logged: an unknown
// key belongs to no workspace, so its NOT_FOUND is in no workspace's log.
type RequestLog struct {
	ID          string // req_…, assigned when the entry is written
	WorkspaceID string
	KeyID       string
	// Code is the verification outcome. For a management request it is the credential's: VALID when
	// it was accepted, INSUFFICIENT_PERMISSIONS when the call was refused for a missing permission,
	// or the code that made authentication fail (DISABLED, EXPIRED, REVOKED, FORBIDDEN).
	Code   VerifyCode
	Source LogSource
	Method string
	Path   string // without the query string
	// IP of a verification is the address the request named (its ip field, or the client address
	// forward auth trusted), else empty: never the address of the backend that asked. IP of a
	// management request is its caller's.
	IP            string
	UserAgent     string
	LatencyMicros int64     // from the request's arrival to its answer
	Timestamp     time.Time // when the request arrived
	// IdentityID is the key's identity at the time, "" without one.
	IdentityID string
	// CreditsSpent is what the verification spent of the key's (or its identity's) credits.
	CreditsSpent int64
	// Tags are the verification request's tags (at most MaxTags of MaxTagLen bytes).
	Tags []string
}

// Granularity is the width of a usage bucket.
type Granularity string

// Usage granularities. Buckets are aligned on UTC hours and days.
const (
	GranularityHour Granularity = "hour"
	GranularityDay  Granularity = "day"
	// GranularityMonth is for the usage export only (a key's usage is by hour or day).
	GranularityMonth Granularity = "month"
)

// Valid reports whether g is a granularity of a key's usage: hour or day.
func (g Granularity) Valid() bool { return g == GranularityHour || g == GranularityDay }

// Start returns the start of the UTC period of g that t falls in.
func (g Granularity) Start(t time.Time) time.Time {
	t = t.UTC()
	switch g {
	case GranularityMonth:
		return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	case GranularityDay:
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	}
	return t.Truncate(time.Hour)
}

// Duration returns the width of a bucket of g.
func (g Granularity) Duration() time.Duration {
	if g == GranularityDay {
		return 24 * time.Hour
	}
	return time.Hour
}

// UsageBucket counts a key's logged requests in one bucket of time: all of them, the VALID ones, and
// each code's (codes without requests are absent).
type UsageBucket struct {
	Start time.Time
	Total int64
	Valid int64
	Codes map[VerifyCode]int64
}

// Add counts n requests of code into b.
func (b *UsageBucket) Add(code VerifyCode, n int64) {
	if b.Codes == nil {
		b.Codes = map[VerifyCode]int64{}
	}
	b.Codes[code] += n
	b.Total += n
	if code == VerifyValid {
		b.Valid += n
	}
}

// UsageRow is one line of the usage export: a key's (or an identity's) requests in one period, the
// VALID ones, each code's, and the credits they spent.
type UsageRow struct {
	KeyID        string // empty when grouped by identity
	IdentityID   string // the key's identity, or the group's
	ExternalID   string // the identity's externalId, empty without one
	Start        time.Time
	Total        int64
	Valid        int64
	CreditsSpent int64
	Codes        map[VerifyCode]int64
}
