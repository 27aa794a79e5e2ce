package service

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/keyplane/keyplane"
)

// The rules of usage-based keys' settings (API.md, "Usage-based keys"): a balance of credits with an
// optional refill, named rate limits, and the identity a key belongs to. Keys and identities share
// them.

// CreditsInput is a credits object as a create or a change gives it. Pointers tell an absent field
// from a zero: a monthly refill without an amount is refused, not read as 0.
type CreditsInput struct {
	Remaining *int64       `json:"remaining"`
	Refill    *RefillInput `json:"refill"`
}

// RefillInput is a refill as a create or a change gives it.
type RefillInput struct {
	Interval  keyplane.RefillInterval `json:"interval"`
	Amount    *int64                  `json:"amount"`
	RefillDay *int                    `json:"refillDay"`
}

// checkCredits turns in into a balance due for its first refill after now, naming every bad field
// under field. remaining may be left out when there is a refill: the balance then starts full.
func checkCredits(v *keyplane.Validation, field string, in *CreditsInput, now time.Time) *keyplane.Credits {
	if in == nil {
		return nil
	}
	c := &keyplane.Credits{}
	bad := false
	if r := in.Refill; r != nil {
		ref := &keyplane.Refill{Interval: r.Interval}
		if !r.Interval.Valid() {
			v.Add(field+".refill.interval", "must be daily or monthly")
			bad = true
		}
		switch {
		case r.Amount == nil:
			v.Add(field+".refill.amount", "is required: how many credits each refill sets the balance to")
			bad = true
		case *r.Amount < 1 || *r.Amount > keyplane.MaxCredits:
			v.Add(field+".refill.amount", "must be from 1 to %d", int64(keyplane.MaxCredits))
			bad = true
		default:
			ref.Amount = *r.Amount
		}
		switch {
		case r.Interval == keyplane.RefillMonthly && r.RefillDay == nil:
			ref.RefillDay = 1
		case r.Interval == keyplane.RefillMonthly && (*r.RefillDay < 1 || *r.RefillDay > 31):
			v.Add(field+".refill.refillDay", "must be from 1 to 31 (a day past the month's end refills on its last day)")
			bad = true
		case r.Interval == keyplane.RefillMonthly:
			ref.RefillDay = *r.RefillDay
		case r.RefillDay != nil:
			v.Add(field+".refill.refillDay", "only monthly refills have a refill day; a daily refill is due every day at 00:00 UTC")
			bad = true
		}
		c.Refill = ref
	}
	switch {
	case in.Remaining == nil && c.Refill != nil:
		c.Remaining = c.Refill.Amount // a new balance with a refill starts full
	case in.Remaining == nil:
		v.Add(field+".remaining", "is required (or give a refill, whose amount the balance then starts with); null credits mean unlimited")
		bad = true
	case *in.Remaining < 0 || *in.Remaining > keyplane.MaxCredits:
		v.Add(field+".remaining", "must be from 0 to %d", int64(keyplane.MaxCredits))
		bad = true
	default:
		c.Remaining = *in.Remaining
	}
	if bad {
		return nil
	}
	if c.Refill != nil {
		next := c.Refill.Next(now)
		c.NextRefillAt = &next
	}
	return c
}

// checkNamedLimits checks a list of named rate limits: at most MaxNamedLimits, names unique and of
// [a-z0-9_.:-]{1,64}, each limit and window within the bounds of a key's rateLimit.
func checkNamedLimits(v *keyplane.Validation, field string, list []keyplane.NamedRateLimit) []keyplane.NamedRateLimit {
	if len(list) > keyplane.MaxNamedLimits {
		v.Add(field, "at most %d rate limits, not %d", keyplane.MaxNamedLimits, len(list))
		return nil
	}
	seen := map[string]bool{}
	out := make([]keyplane.NamedRateLimit, 0, len(list))
	for i, l := range list {
		at := field + "[" + strconv.Itoa(i) + "]"
		switch {
		case !keyplane.ValidLimitName(l.Name):
			v.Add(at+".name", "must be 1 to %d of a-z, 0-9, _ . : -", keyplane.MaxLimitNameLen)
		case seen[l.Name]:
			v.Add(at+".name", "%s is named twice; names are unique", l.Name)
		}
		seen[l.Name] = true
		if l.Limit < 1 || l.Limit > keyplane.MaxRateLimit {
			v.Add(at+".limit", "must be from 1 to %d", keyplane.MaxRateLimit)
		}
		if l.WindowMs < keyplane.MinRateWindowMs || l.WindowMs > keyplane.MaxRateWindowMs {
			v.Add(at+".windowMs", "must be from %d (one second) to %d (one day)", keyplane.MinRateWindowMs, keyplane.MaxRateWindowMs)
		}
		out = append(out, l)
	}
	return out
}

// splitKeyLimits splits a key's list of named limits into its rateLimit (the entry named "default",
// which must be auto-applied) and the others.
func splitKeyLimits(v *keyplane.Validation, field string, list []keyplane.NamedRateLimit) (*keyplane.RateLimit, []keyplane.NamedRateLimit) {
	list = checkNamedLimits(v, field, list)
	var def *keyplane.RateLimit
	named := make([]keyplane.NamedRateLimit, 0, len(list))
	for i, l := range list {
		if l.Name != keyplane.DefaultLimitName {
			named = append(named, l)
			continue
		}
		if !l.AutoApply {
			v.Add(field+"["+strconv.Itoa(i)+"].autoApply", "the limit named default is the key's rateLimit, which applies to every verification: it must be true")
		}
		def = &keyplane.RateLimit{Limit: l.Limit, WindowMs: l.WindowMs}
	}
	if len(named) == 0 {
		named = nil
	}
	return def, named
}

// checkExternalID checks an identity's externalId: 1 to 255 characters of UTF-8.
func checkExternalID(v *keyplane.Validation, field, s string) {
	switch n := utf8.RuneCountInString(s); {
	case !utf8.ValidString(s) || strings.ContainsRune(s, 0):
		v.Add(field, "must be valid UTF-8, without NUL")
	case n < 1 || n > keyplane.MaxExternalIDLen:
		v.Add(field, "must be 1 to %d characters, is %d", keyplane.MaxExternalIDLen, n)
	}
}

// checkLimitCount refuses a key more than MaxNamedLimits limits, its rateLimit counted.
func checkLimitCount(v *keyplane.Validation, k *keyplane.APIKey) {
	n := len(k.RateLimits)
	if k.RateLimit != nil {
		n++
	}
	if n > keyplane.MaxNamedLimits {
		v.Add("rateLimits", "a key has at most %d rate limits, its rateLimit (the one named default) included; this would make %d", keyplane.MaxNamedLimits, n)
	}
}

// checkKeyIdentity checks a key's externalId and identityId as a create or a change gives them, and
// returns the one to resolve (both empty: none, or null).
func checkKeyIdentity(v *keyplane.Validation, externalID, identityID keyplane.Optional[string]) (string, string) {
	ext, idn := externalID.Set && !externalID.Null, identityID.Set && !identityID.Null
	if ext && idn {
		v.Add("identityId", "give externalId or identityId, not both")
		return "", ""
	}
	if ext {
		checkExternalID(v, "externalId", externalID.Value)
		return externalID.Value, ""
	}
	if idn {
		if identityID.Value == "" {
			v.Add("identityId", "must be an identity's id (idn_…), or null")
		}
		return "", identityID.Value
	}
	return "", ""
}

func keyAccount(k *keyplane.APIKey) keyplane.CreditAccount {
	return keyplane.CreditAccount{WorkspaceID: k.WorkspaceID, KeyID: k.ID}
}
