// Package ratelimit enforces per-key rate limits: "limit requests per window". Both limiters use the
// generic cell rate algorithm (GCRA): requests are spaced window/limit apart on average, with a burst of
// up to limit at once, and the state per key is one timestamp (the theoretical arrival time). Local
// keeps it in process; Redis keeps it in Redis (through redis_rate's Lua script, on Redis's clock), so
// that the limit is exact across nodes, and falls back to Local while Redis cannot be reached.
package ratelimit

import (
	"context"
	"hash/maphash"
	"sync"
	"time"
)

// Limit allows Limit requests per Window.
type Limit struct {
	Limit  int64
	Window time.Duration
}

// Decision is the outcome of one request against a limit.
type Decision struct {
	Allowed   bool
	Limit     int64
	Remaining int64 // requests still allowed at once after this one
	// ResetAt is when the key is back to its full burst; RetryAfter, when refused, how long until one
	// more request is allowed.
	ResetAt    time.Time
	RetryAfter time.Duration
}

// Limiter decides requests. Its methods must be safe for concurrent use.
type Limiter interface {
	// Allow decides one request: AllowN with n = 1.
	Allow(ctx context.Context, key string, l Limit) (Decision, error)
	// AllowN decides a request that counts n units against the limit (its cost): the theoretical
	// arrival time moves on by n intervals when it is allowed, and not at all when refused. n = 0
	// checks without counting: allowed unless the key is already past its burst.
	AllowN(ctx context.Context, key string, l Limit, n int64) (Decision, error)
}

// shards splits Local's state so that cores seldom meet on a lock.
const shards = 64

// Local is an in-process Limiter.
type Local struct {
	now    func() time.Time
	seed   maphash.Seed
	shards [shards]localShard
}

type localShard struct {
	mu sync.Mutex
	// tat is each key's theoretical arrival time, in unix nanoseconds. A key whose tat has passed is
	// at its full burst, as if absent: sweep removes those.
	tat   map[string]int64
	calls int
	_     [40]byte // each shard's lock on a cache line of its own
}

// sweepEvery: a shard drops its keys at full burst once per this many calls, so that keys no longer
// used do not stay in memory.
const sweepEvery = 4096

// NewLocal returns a Local limiter on the clock now (nil: time.Now).
func NewLocal(now func() time.Time) *Local {
	if now == nil {
		now = time.Now
	}
	l := &Local{now: now, seed: maphash.MakeSeed()}
	for i := range l.shards {
		l.shards[i].tat = map[string]int64{}
	}
	return l
}

// Allow decides one request of key against l.
func (l *Local) Allow(_ context.Context, key string, lim Limit) (Decision, error) {
	return l.allow(key, lim, 1, l.now()), nil
}

// AllowN decides a request of key that costs n units against l.
func (l *Local) AllowN(_ context.Context, key string, lim Limit, n int64) (Decision, error) {
	return l.allow(key, lim, max(n, 0), l.now()), nil
}

func (l *Local) allow(key string, lim Limit, cost int64, now time.Time) Decision {
	if lim.Limit <= 0 || lim.Window <= 0 {
		return Decision{Allowed: true}
	}
	s := &l.shards[maphash.String(l.seed, key)%shards]
	n := now.UnixNano()
	// The emission interval; at least a nanosecond, for limits finer than the clock.
	interval := max(int64(lim.Window)/lim.Limit, 1)
	burst := interval * lim.Limit // the window, in whole intervals
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.calls++; s.calls >= sweepEvery {
		s.calls = 0
		for k, t := range s.tat {
			if t <= n {
				delete(s.tat, k)
			}
		}
	}
	tat := max(s.tat[key], n)
	// A request of cost n arrives as n requests at once. Costs are at most keyplane.MaxCost, so the
	// product stays far from overflowing for any window an int64 of nanoseconds holds.
	newTAT := tat + interval*cost
	// diff is how far now is past the earliest time this request may come: a request is allowed when
	// the new arrival time is at most a burst ahead of now.
	diff := n - (newTAT - burst)
	if diff < 0 {
		return Decision{Allowed: false, Limit: lim.Limit, Remaining: 0,
			ResetAt: time.Unix(0, tat), RetryAfter: time.Duration(-diff)}
	}
	if cost > 0 {
		s.tat[key] = newTAT
	}
	return Decision{Allowed: true, Limit: lim.Limit, Remaining: diff / interval, ResetAt: time.Unix(0, newTAT)}
}
