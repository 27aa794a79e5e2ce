// Package throttle counts failures per key (an account, an IP address) in fixed windows and says when
// a key has had too many. Limiter counts in process, bounded: counters live in a size-limited cache and
// expire with their window, so a flood of distinct keys cannot grow memory without limit. Redis counts
// in Redis, so that every node behind a load balancer shares one budget.
package throttle

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
)

// Counter counts failures per key in fixed windows.
type Counter interface {
	// Blocked reports whether key has used up its failures, and how long until its window ends.
	Blocked(ctx context.Context, key string) (bool, time.Duration)
	// Fail records one failure of key.
	Fail(ctx context.Context, key string)
	// Reset forgets key's failures (after a success).
	Reset(ctx context.Context, key string)
}

// Limiter is a Counter in process: it allows at most Max failures per key per Window.
type Limiter struct {
	max    int32
	window time.Duration
	now    func() time.Time
	c      *otter.Cache[string, *counter]
}

type counter struct {
	n     atomic.Int32
	start time.Time
}

// New returns a Limiter; now nil means time.Now.
func New(max int, window time.Duration, size int, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{
		max: int32(max), window: window, now: now,
		c: otter.Must(&otter.Options[string, *counter]{
			MaximumSize:      size,
			ExpiryCalculator: otter.ExpiryCreating[string, *counter](window),
		}),
	}
}

// Blocked reports whether key has used up its failures, and how long until its window ends.
func (l *Limiter) Blocked(_ context.Context, key string) (bool, time.Duration) {
	c, ok := l.c.GetIfPresent(key)
	if !ok || c.n.Load() < l.max {
		return false, 0
	}
	wait := c.start.Add(l.window).Sub(l.now())
	if wait <= 0 {
		return false, 0
	}
	return true, wait
}

// Fail records one failure of key.
func (l *Limiter) Fail(_ context.Context, key string) {
	c, _ := l.c.SetIfAbsent(key, &counter{start: l.now()})
	c.n.Add(1)
}

// Reset forgets key's failures (after a success).
func (l *Limiter) Reset(_ context.Context, key string) { l.c.Invalidate(key) }
