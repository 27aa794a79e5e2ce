package verify

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unsafe"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/credits"
	"github.com/keyplane/keyplane/internal/ratelimit"
	"github.com/keyplane/keyplane/internal/store"
)

// Usage-based keys on the hot path (API.md, "Usage-based keys"): a verification that Check finds
// VALID is counted against its rate limits (the key's default, the auto-applied named ones of the
// key and of its identity, then those the request names), then spends its cost of the key's and the
// identity's credits. Everything a key needs for that is prepared once per cached entry (plan), so
// that the hot path allocates nothing.

// ErrUnknownLimit is wrapped by the error of a verification that names a rate limit neither the key
// nor its identity has: the API answers it 400 (see UnknownLimitError).
var ErrUnknownLimit = errors.New("verify: unknown rate limit")

// UnknownLimitError names the request's limits (their indexes in VerifyRequest.Limits) that neither
// the key nor its identity has.
type UnknownLimitError struct {
	Indexes []int
	Names   []string
}

func (e *UnknownLimitError) Error() string {
	return fmt.Sprintf("%v: %s", ErrUnknownLimit, strings.Join(e.Names, ", "))
}

func (e *UnknownLimitError) Unwrap() error { return ErrUnknownLimit }

// ErrNoBank: a key with credits was verified by a Verifier built without a Bank.
var ErrNoBank = errors.New("verify: credits are not enforced on this node (no Bank)")

// LimitDecision is one rate limit's decision of a verification.
type LimitDecision struct {
	Name string
	ratelimit.Decision
}

// inlineDecisions is how many decisions a Result holds without an allocation: the default limit and
// a few named ones.
const inlineDecisions = 4

// Decisions are the rate limit decisions of a verification, in the order they were made; a refusal
// is the last one.
type Decisions struct {
	inline [inlineDecisions]LimitDecision
	n      int
	more   []LimitDecision
}

// Len is the number of decisions.
func (d *Decisions) Len() int { return d.n + len(d.more) }

// At returns the i-th decision.
func (d *Decisions) At(i int) LimitDecision {
	if i < d.n {
		return d.inline[i]
	}
	return d.more[i-d.n]
}

// Add appends a decision.
func (d *Decisions) Add(x LimitDecision) {
	if d.n < inlineDecisions && len(d.more) == 0 {
		d.inline[d.n] = x
		d.n++
		return
	}
	d.more = append(d.more, x)
}

// Default returns the decision of the key's default limit (its rateLimit), when it was applied.
func (d *Decisions) Default() (ratelimit.Decision, bool) {
	for i := range d.Len() {
		if x := d.At(i); x.Name == keyplane.DefaultLimitName {
			return x.Decision, true
		}
	}
	return ratelimit.Decision{}, false
}

// Refused returns the decision that refused the verification, if one did.
func (d *Decisions) Refused() (LimitDecision, bool) {
	if n := d.Len(); n > 0 {
		if x := d.At(n - 1); !x.Allowed {
			return x, true
		}
	}
	return LimitDecision{}, false
}

// limitRef is a limit a key's verifications may apply, ready for the limiter.
type limitRef struct {
	name string
	key  string // the limiter's key: the key's id for its default limit, as before named limits
	lim  ratelimit.Limit
	auto bool
}

// planLimitsInline is how many limits a plan holds in its own allocation: a key's default limit
// and three named ones, or fewer with its identity's. A plan with more keeps them apart.
const planLimitsInline = 4

// plan is what the hot path needs of a key with named limits, credits or an identity, prepared
// when the key is cached. A key with none of them (or only the default limit) has no plan.
//
// A plan is one allocation with its limiter keys in one string: the collector marks every cached
// key's objects at each cycle, and a plan of separate slices and keys was five of them, the largest
// share of a cache of metered keys (docs/performance.md, "The constant rate measured warm").
type plan struct {
	// limits are every limit a request may name, in the order names resolve: the key's (its
	// default first), then its identity's.
	limits []limitRef
	// charges are the balances a verification spends: the key's, then its identity's.
	charges []credits.Charge
	// limitsIn and chargesIn hold what limits and charges point to, when the limits fit.
	limitsIn  [planLimitsInline]limitRef
	chargesIn [2]credits.Charge
}

func newPlan(k *keyplane.APIKey) *plan {
	id := k.Identity
	if len(k.RateLimits) == 0 && k.Credits == nil && (id == nil || len(id.RateLimits) == 0 && id.Credits == nil) {
		return nil
	}
	n := len(k.RateLimits)
	if k.RateLimit != nil {
		n++
	}
	// The named limits' limiter keys ("id:name"), in one string that each slices.
	var b strings.Builder
	named := func(owner string, ls []keyplane.NamedRateLimit) {
		for _, l := range ls {
			b.WriteString(owner)
			b.WriteByte(':')
			b.WriteString(l.Name)
		}
	}
	size := 0
	for _, l := range k.RateLimits {
		size += len(k.ID) + 1 + len(l.Name)
	}
	if id != nil {
		n += len(id.RateLimits)
		for _, l := range id.RateLimits {
			size += len(id.ID) + 1 + len(l.Name)
		}
	}
	b.Grow(size)
	named(k.ID, k.RateLimits)
	if id != nil {
		named(id.ID, id.RateLimits)
	}
	keys := b.String()
	p := &plan{}
	p.charges = p.chargesIn[:0]
	if n <= planLimitsInline {
		p.limits = p.limitsIn[:0:n]
	} else {
		p.limits = make([]limitRef, 0, n)
	}
	if k.RateLimit != nil {
		p.limits = append(p.limits, defaultLimit(k.ID, k.RateLimit))
	}
	add := func(owner string, ls []keyplane.NamedRateLimit) {
		for _, l := range ls {
			end := len(owner) + 1 + len(l.Name)
			p.limits = append(p.limits, limitRef{name: l.Name, key: keys[:end], lim: toLimit(l.Limit, l.WindowMs), auto: l.AutoApply})
			keys = keys[end:]
		}
	}
	add(k.ID, k.RateLimits)
	if k.Credits != nil {
		p.charges = append(p.charges, credits.Charge{
			Account: keyplane.CreditAccount{WorkspaceID: k.WorkspaceID, KeyID: k.ID}, Epoch: k.Credits.Epoch})
	}
	if id != nil {
		add(id.ID, id.RateLimits)
		if id.Credits != nil {
			p.charges = append(p.charges, credits.Charge{
				Account: keyplane.CreditAccount{WorkspaceID: id.WorkspaceID, IdentityID: id.ID}, Epoch: id.Credits.Epoch})
		}
	}
	return p
}

// weight is the plan's heap bytes, for the cache's bound: its one allocation, its limiter keys,
// and its limits' own slice when they did not fit.
func (p *plan) weight() int {
	if p == nil {
		return 0
	}
	n := int(unsafe.Sizeof(*p)) + 16 // 16: the keys' allocation rounded up to its size class
	for _, l := range p.limits {
		n += len(l.key)
	}
	if cap(p.limits) > planLimitsInline {
		n += cap(p.limits) * int(unsafe.Sizeof(limitRef{}))
	}
	return n
}

// defaultLimit is the limit of a key's rateLimit field, which must be set: the limit named
// "default", auto-applied, under the key's id in the limiter, as before keys had named limits.
func defaultLimit(keyID string, rl *keyplane.RateLimit) limitRef {
	return limitRef{name: keyplane.DefaultLimitName, key: keyID, lim: toLimit(rl.Limit, rl.WindowMs), auto: true}
}

func toLimit(limit, windowMs int64) ratelimit.Limit {
	return ratelimit.Limit{Limit: limit, Window: time.Duration(windowMs) * time.Millisecond}
}

// limitsOf returns the limits of a key: its plan's, or, for a key without a plan, its default
// limit in one (the caller's array, so that nothing is allocated).
func limitsOf(e *entry, one *[1]limitRef) []limitRef {
	if e.plan != nil {
		return e.plan.limits
	}
	if e.key.RateLimit != nil {
		one[0] = defaultLimit(e.key.ID, e.key.RateLimit)
		return one[:]
	}
	return nil
}

// resolve returns the index in limits of the limit a request names, -1 when there is none.
func resolve(limits []limitRef, name string) int {
	for i := range limits {
		if limits[i].name == name {
			return i
		}
	}
	return -1
}

// unknownLimits returns the error naming the request's limits the key does not have, nil when it
// has them all.
func unknownLimits(limits []limitRef, req *keyplane.VerifyRequest) error {
	var bad *UnknownLimitError
	for i, l := range req.Limits {
		if resolve(limits, l.Name) < 0 {
			if bad == nil {
				bad = &UnknownLimitError{}
			}
			bad.Indexes = append(bad.Indexes, i)
			bad.Names = append(bad.Names, l.Name)
		}
	}
	if bad == nil {
		return nil
	}
	return bad
}

// applyLimits counts a would-be VALID verification against its limits: the auto-applied ones (at
// cost 1, or the cost the request gives by naming one), then the others the request names, each
// once. It stops at the first refusal: the limits decided before it have counted the request.
func (v *Verifier) applyLimits(ctx context.Context, res *Result, limits []limitRef, req *keyplane.VerifyRequest) error {
	decide := func(i int, cost int64) (bool, error) {
		l := &limits[i]
		d, err := v.limiter.AllowN(ctx, l.key, l.lim, cost)
		if err != nil {
			return false, fmt.Errorf("%w: rate limit: %w", ErrUnavailable, err)
		}
		res.Limits.Add(LimitDecision{Name: l.name, Decision: d})
		if !d.Allowed {
			res.Code = keyplane.VerifyRateLimited
		}
		return d.Allowed, nil
	}
	for i := range limits {
		if !limits[i].auto {
			continue
		}
		cost := int64(1)
		for _, rl := range req.Limits {
			if resolve(limits, rl.Name) == i {
				cost = rl.Cost
				break
			}
		}
		if ok, err := decide(i, cost); !ok || err != nil {
			return err
		}
	}
	for j, rl := range req.Limits {
		i := resolve(limits, rl.Name)
		if i < 0 || limits[i].auto || named(req.Limits[:j], rl.Name) {
			continue // applied already
		}
		if ok, err := decide(i, rl.Cost); !ok || err != nil {
			return err
		}
	}
	return nil
}

// named reports whether limits name name.
func named(limits []keyplane.LimitCost, name string) bool {
	for _, l := range limits {
		if l.Name == name {
			return true
		}
	}
	return false
}

// spend spends a VALID verification's cost of its key's and identity's credits, both or neither:
// USAGE_EXCEEDED when either has fewer than the cost left.
func (v *Verifier) spend(ctx context.Context, res *Result, p *plan, cost int64) error {
	if p == nil || len(p.charges) == 0 {
		return nil
	}
	if v.bank == nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, ErrNoBank)
	}
	out, err := v.bank.Spend(ctx, cost, p.charges)
	if errors.Is(err, store.ErrNotFound) {
		// The balance was made unlimited (or its key deleted) after this node cached the key: the
		// change's notice is on its way. Unlimited now, so nothing to spend.
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	res.HasCredits, res.CreditsRemaining = true, out.Remaining[0]
	if out.OK {
		res.CreditsSpent = cost
	} else {
		res.Code = keyplane.VerifyUsageExceeded
	}
	return nil
}

// peekCredits fills in the credits remaining of a verification that did not reach its spend: as this
// node last saw the balance, else as the cached key says; no I/O.
func (v *Verifier) peekCredits(res *Result, p *plan) {
	if p == nil || len(p.charges) == 0 {
		return
	}
	c := &p.charges[0]
	res.HasCredits = true
	if v.bank != nil {
		if n, ok := v.bank.Remaining(c.Account); ok {
			res.CreditsRemaining = n
			return
		}
	}
	k := res.Key
	if c.Account.IdentityID != "" {
		res.CreditsRemaining = k.Identity.Credits.Remaining
	} else {
		res.CreditsRemaining = k.Credits.Remaining
	}
}
