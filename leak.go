package keyplane

import "time"

// LeakPolicy is what a workspace has done to one of its secret keys found leaked: revoked (the
// default: a leaked secret is compromised for good), disabled (it can be enabled again once the
// owner has looked) or left alone with a notice (an audit entry and an api_key.leaked event).
type LeakPolicy string

// Leak policies of the contract.
const (
	LeakRevoke  LeakPolicy = "revoke"
	LeakDisable LeakPolicy = "disable"
	LeakNotify  LeakPolicy = "notify"
)

// DefaultLeakPolicy is a workspace's policy until it chooses another.
const DefaultLeakPolicy = LeakRevoke

// Valid reports whether p is one of the policies.
func (p LeakPolicy) Valid() bool {
	switch p {
	case LeakRevoke, LeakDisable, LeakNotify:
		return true
	}
	return false
}

// LeakAction is what a leak report did to the key a value belongs to.
type LeakAction string

// Leak actions, as POST /v1/leaks answers them and api_key.leaked events name them.
const (
	// LeakRevoked, LeakDisabled, LeakNotified: the workspace's policy was applied now.
	LeakRevoked  LeakAction = "revoked"
	LeakDisabled LeakAction = "disabled"
	LeakNotified LeakAction = "notified"
	// LeakAlreadyReported: this value was reported before; nothing more was done.
	LeakAlreadyReported LeakAction = "already_reported"
	// LeakNone: nothing to do: no key has this value, it is a publishable key's (public by design),
	// or the key already was in the state the policy asks for (revoked; disabled for "disable"), or
	// the value is an old one whose rotation grace period is over. Found keys are still recorded.
	LeakNone LeakAction = "none"
)

// Leak sources and limits of leak reports.
const (
	// LeakSourceGitHub is the source of reports that came through GitHub's secret scanning.
	LeakSourceGitHub = "github"
	// MaxLeakBatch bounds the values of one report (POST /v1/leaks, a GitHub batch).
	MaxLeakBatch = 1000
	// MaxLeakSourceLen and MaxLeakURLLen bound what a report says of where a value was found.
	MaxLeakSourceLen = 100
	MaxLeakURLLen    = 2048
)

// KeyLeak is the durable record of one leaked value of a secret key: where it was found, when it was
// reported, and what was done. One per value: the same value reported again changes nothing more.
type KeyLeak struct {
	Hash        []byte // the value's SHA-256 digest, as the secrets table holds it
	KeyID       string
	WorkspaceID string
	Source      string
	URL         string
	Action      LeakAction
	ReportedAt  time.Time
}

// LeakResult is what a report says of one value, in the order the values were given.
type LeakResult struct {
	Found  bool
	KeyID  string // when Found
	Action LeakAction
	// TokenType says what the value looked like: "secret", "publishable", "root" (never looked up:
	// root keys are not workspace keys) or "unknown" (malformed), for GitHub's token_type.
	TokenType string
}

// KeyLeakView is the API's leak record of a key.
type KeyLeakView struct {
	KeyID      string     `json:"keyId"`
	Source     string     `json:"source"`
	URL        string     `json:"url"`
	Action     LeakAction `json:"action"`
	ReportedAt string     `json:"reportedAt"`
}

// View returns the API's representation of l.
func (l *KeyLeak) View() *KeyLeakView {
	return &KeyLeakView{KeyID: l.KeyID, Source: l.Source, URL: l.URL, Action: l.Action, ReportedAt: FormatTime(l.ReportedAt)}
}

// LeakResultView is POST /v1/leaks's answer for one value.
type LeakResultView struct {
	Found  bool       `json:"found"`
	KeyID  string     `json:"keyId,omitempty"`
	Action LeakAction `json:"action"`
}
