package keyplane

import (
	"encoding/json"
	"math"
	"regexp"
	"time"
)

// Usage-based keys: credits with refill, named rate limits and identities (API.md, "Usage-based
// keys"). The rules that need no I/O live here; the spending of credits is in internal/credits.

// Bounds of usage-based keys.
const (
	MaxCredits        = 1_000_000_000_000 // a remaining or refill amount: 10^12
	MaxCost           = 1000              // of one verification, in credits or against one limit
	MaxNamedLimits    = 10                // per key, and per identity
	MaxExternalIDLen  = 255
	MaxTags           = 10
	MaxTagLen         = 128
	DefaultLimitName  = "default" // the name of the limit a key's rateLimit field is
	MaxLimitNameLen   = 64
	DefaultCreditCost = 1
)

// RefillInterval is how often credits are refilled.
type RefillInterval string

// Refill intervals of the contract.
const (
	RefillDaily   RefillInterval = "daily"
	RefillMonthly RefillInterval = "monthly"
)

// Valid reports whether i is a known interval.
func (i RefillInterval) Valid() bool { return i == RefillDaily || i == RefillMonthly }

// Refill sets a credit balance back to Amount at 00:00 UTC of each day it is due: every day, or each
// month on RefillDay (1–31, clamped to the month's last day).
type Refill struct {
	Interval  RefillInterval `json:"interval"`
	Amount    int64          `json:"amount"`
	RefillDay int            `json:"refillDay,omitempty"` // monthly only
}

// Next returns the first refill instant strictly after t.
func (r *Refill) Next(t time.Time) time.Time {
	t = t.UTC()
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	if r.Interval == RefillDaily {
		return day.AddDate(0, 0, 1)
	}
	// This month's refill day, or, when it is not after t, next month's.
	first := time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 2; i++ {
		m := first.AddDate(0, i, 0)
		if at := m.AddDate(0, 0, min(max(r.RefillDay, 1), DaysIn(m))-1); at.After(t) {
			return at
		}
	}
	// Unreachable: next month's refill day is always after t.
	return first.AddDate(0, 2, 0)
}

// DaysIn returns the number of days of the month m is in.
func DaysIn(m time.Time) int {
	return time.Date(m.Year(), m.Month()+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// Credits is a balance that verifications spend: a key's own, or an identity's, which all its keys
// share. Nil credits mean unlimited.
type Credits struct {
	Remaining int64
	Refill    *Refill
	// LastRefillAt is the instant of the last refill (00:00 UTC of its day), nil before the first.
	LastRefillAt *time.Time
	// NextRefillAt is when the next refill is due, nil without a refill. It is computed when the
	// credits are set and at each refill (Refill.Next), so that the refill job finds the due balances
	// by an index, and a refill applies exactly once however many nodes see it due.
	NextRefillAt *time.Time
	// Epoch moves on at every set and every refill: credits a node took from the balance before it
	// moved are not given back to it (see internal/credits).
	Epoch int64
	// ExhaustedAt is when the balance was last found empty, for one api_key.credits_exhausted event
	// per exhaustion; a set, an increment or a refill clears it.
	ExhaustedAt *time.Time
}

// CreditsView is the API's credits object.
type CreditsView struct {
	Remaining    int64   `json:"remaining"`
	Refill       *Refill `json:"refill"`
	LastRefillAt *string `json:"lastRefillAt"`
}

// View returns the API's representation of c; nil for nil (unlimited).
func (c *Credits) View() *CreditsView {
	if c == nil {
		return nil
	}
	return &CreditsView{Remaining: c.Remaining, Refill: c.Refill, LastRefillAt: formatTimePtr(c.LastRefillAt)}
}

// CreditOp is an operation of POST …/credits.
type CreditOp string

// Credit operations of the contract.
const (
	CreditSet       CreditOp = "set"
	CreditIncrement CreditOp = "increment"
	CreditDecrement CreditOp = "decrement"
)

// Valid reports whether o is a known operation.
func (o CreditOp) Valid() bool {
	return o == CreditSet || o == CreditIncrement || o == CreditDecrement
}

// CreditAccount names a balance: a key's (KeyID) or an identity's (IdentityID), exactly one.
type CreditAccount struct {
	WorkspaceID string
	KeyID       string
	IdentityID  string
}

// ID is the account's own id: the key's or the identity's.
func (a CreditAccount) ID() string {
	if a.IdentityID != "" {
		return a.IdentityID
	}
	return a.KeyID
}

// CreditTake is what a node asks of a balance: Need credits, all or none, and beyond them up to
// Want in all (Want ≥ Need ≥ 0). When Share is set (0 < Share ≤ 1), what is taken beyond Need is
// also at most that fraction of the balance the take finds (rounded down): a node's block of a
// balance is bounded by the balance itself, not by what the node last saw of it.
type CreditTake struct {
	Need, Want int64
	Share      float64
}

// ShareDivisor is Share as the divisor of the balance that bounds a take beyond Need: 1 (no bound
// beyond the balance) when Share is 0 or out of range.
func (t CreditTake) ShareDivisor() int64 {
	if t.Share <= 0 || t.Share >= 1 {
		return 1
	}
	return max(1, int64(math.Round(1/t.Share)))
}

// CreditGrant is what a take of credits got: Got credits (0: fewer than needed were left, nothing
// was taken), the Remaining balance after it, the balance's Epoch, and its NextRefillAt.
type CreditGrant struct {
	Got       int64
	Remaining int64
	Epoch     int64
	// NextRefillAt is when the balance's next refill is due, as the take found it (nil: no refill):
	// a take from a balance whose refill is past due took from the balance before the refill.
	NextRefillAt *time.Time
}

// NamedRateLimit is one of a key's or an identity's limits: Limit requests (or units of cost) per
// WindowMs. An AutoApply limit applies to every verification; the others only to a verification that
// names them.
type NamedRateLimit struct {
	Name      string `json:"name"`
	Limit     int64  `json:"limit"`
	WindowMs  int64  `json:"windowMs"`
	AutoApply bool   `json:"autoApply"`
}

var limitNamePattern = regexp.MustCompile(`^[a-z0-9_.:-]{1,64}$`)

// ValidLimitName reports whether s may name a rate limit: [a-z0-9_.:-]{1,64}.
func ValidLimitName(s string) bool { return limitNamePattern.MatchString(s) }

// KeyRateLimits returns a key's limits as the API lists them: its rateLimit as the limit named
// "default" (auto-applied) first, then its named ones.
func KeyRateLimits(def *RateLimit, named []NamedRateLimit) []NamedRateLimit {
	out := make([]NamedRateLimit, 0, len(named)+1)
	if def != nil {
		out = append(out, NamedRateLimit{Name: DefaultLimitName, Limit: def.Limit, WindowMs: def.WindowMs, AutoApply: true})
	}
	return append(out, named...)
}

// Identity is a customer of the platform, by the platform's own id for it (ExternalID): its keys
// share its credits and its rate limits.
type Identity struct {
	ID          string
	WorkspaceID string
	ExternalID  string
	Meta        json.RawMessage // a JSON object, "{}" when empty
	Credits     *Credits
	RateLimits  []NamedRateLimit
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// IdentityView is the API's identity object.
type IdentityView struct {
	ID         string           `json:"id"`
	ExternalID string           `json:"externalId"`
	Meta       json.RawMessage  `json:"meta"`
	Credits    *CreditsView     `json:"credits"`
	RateLimits []NamedRateLimit `json:"rateLimits"`
	CreatedAt  string           `json:"createdAt"`
	UpdatedAt  string           `json:"updatedAt"`
}

// View returns the API's representation of i.
func (i *Identity) View() *IdentityView {
	meta := i.Meta
	if len(meta) == 0 {
		meta = json.RawMessage("{}")
	}
	rl := i.RateLimits
	if rl == nil {
		rl = []NamedRateLimit{}
	}
	return &IdentityView{ID: i.ID, ExternalID: i.ExternalID, Meta: meta, Credits: i.Credits.View(), RateLimits: rl,
		CreatedAt: FormatTime(i.CreatedAt), UpdatedAt: FormatTime(i.UpdatedAt)}
}

// IdentityRef is what a verification answer says of a key's identity.
type IdentityRef struct {
	ID         string          `json:"id"`
	ExternalID string          `json:"externalId"`
	Meta       json.RawMessage `json:"meta"`
}
