// Package throttle counts failures per key (an account, an IP address) in fixed windows and says when
// a key has had too many. Limiter counts in process, bounded: counters live in a size-limited cache and
// expire with their window, so a flood of distinct keys cannot grow memory without limit. Redis counts
// in Redis, so that every node behind a load balancer shares one budget.
package throttle

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
)

// Counter counts failures per key in fixed windows.
type Counter interface {
	// Blocked reports whether key has used up its failures, and how long until its window ends.
	Blocked(ctx context.Context, key string) (bool, time.Duration)
	// Take counts one attempt of key before it is made, in one atomic step: the attempt is a failure
	// until the caller gives it back with Give. Checking Blocked first and counting a failure after
	// the attempt (the types' Fail) lets every attempt that starts before the first one fails
	// through; Take does not.
	// Refused attempts count too, so Take tells the one attempt that found key locked first in its
	// window (Taken.First) from the rest.
	Take(ctx context.Context, key string) Taken
	// Give gives back one attempt that Take counted (it succeeded, or was never made).
	Give(ctx context.Context, key string)
	// Reset forgets key's failures (after a success).
	Reset(ctx context.Context, key string)
}

// Taken is what Take says of one attempt.
type Taken struct {
	// Allowed is true when the attempt is within key's budget for its window.
	Allowed bool
	// First is true for the first refused attempt of key's window: the one that finds it locked, and
	// the one a caller records the lock on, so that a lock is recorded once per window however many
	// attempts it refuses.
	First bool
	// Wait is how long until key's window ends, when refused.
	Wait time.Duration
}

// taken makes the Taken of the attempt that brought key's count to n.
func taken(n, limit int64, wait time.Duration) Taken {
	if n <= limit {
		return Taken{Allowed: true}
	}
	return Taken{First: n == limit+1, Wait: max(wait, time.Millisecond)}
}

// digest is what a counter is kept under: a fixed-size digest of what it counts, so that neither
// memory nor Redis holds an email or an address, and a 16 KiB "email" takes no more room than a
// short one.
func digest(k string) string {
	h := sha256.Sum256([]byte(k))
	return hex.EncodeToString(h[:16])
}

// Limiter is a Counter in process: it allows at most Max failures per key per Window.
type Limiter struct {
	max    int64
	window time.Duration
	now    func() time.Time
	c      *otter.Cache[string, *counter]
}

type counter struct {
	n     atomic.Int64
	start time.Time
}

// New returns a Limiter; now nil means time.Now.
func New(max int, window time.Duration, size int, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{
		max: int64(max), window: window, now: now,
		c: otter.Must(&otter.Options[string, *counter]{
			MaximumSize: size,
			// A counter is written only when its window starts: the cache forgets it when the
			// window ends.
			ExpiryCalculator: otter.ExpiryWriting[string, *counter](window),
		}),
	}
}

// Blocked reports whether key has used up its failures, and how long until its window ends.
func (l *Limiter) Blocked(_ context.Context, key string) (bool, time.Duration) {
	c, ok := l.c.GetIfPresent(digest(key))
	if !ok || c.n.Load() < l.max {
		return false, 0
	}
	wait := c.start.Add(l.window).Sub(l.now())
	if wait <= 0 {
		return false, 0
	}
	return true, wait
}

// add counts one more of key in its window, starting a new window when there is none or the last one
// has ended, and returns the count and the window's start. The cache's bucket lock makes the step
// atomic.
func (l *Limiter) add(key string) (int64, time.Time) {
	now := l.now()
	var n int64
	var start time.Time
	l.c.Compute(digest(key), func(old *counter, found bool) (*counter, otter.ComputeOp) {
		if found && now.Before(old.start.Add(l.window)) {
			n, start = old.n.Add(1), old.start
			return old, otter.CancelOp
		}
		c := &counter{start: now}
		c.n.Store(1)
		n, start = 1, now
		return c, otter.WriteOp
	})
	return n, start
}

// Fail records one failure of key, after the fact; callers that check before an attempt use Take.
func (l *Limiter) Fail(_ context.Context, key string) { l.add(key) }

// Take counts one attempt of key before it is made; see Counter.
func (l *Limiter) Take(_ context.Context, key string) Taken {
	n, start := l.add(key)
	return taken(n, l.max, start.Add(l.window).Sub(l.now()))
}

// Give gives back one attempt of key that Take counted.
func (l *Limiter) Give(_ context.Context, key string) {
	l.c.ComputeIfPresent(digest(key), func(old *counter) (*counter, otter.ComputeOp) {
		if old.n.Load() > 0 {
			old.n.Add(-1)
		}
		return old, otter.CancelOp
	})
}

// Reset forgets key's failures (after a success).
func (l *Limiter) Reset(_ context.Context, key string) { l.c.Invalidate(digest(key)) }
