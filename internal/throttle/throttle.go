// Package throttle counts failures per key (an account, an IP address) in fixed windows and says when
// a key has had too many. It is bounded: counters live in a size-limited cache and expire with their
// window, so a flood of distinct keys cannot grow memory without limit.
package throttle

import (
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
)

// Limiter allows at most Max failures per key per Window.
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
func (l *Limiter) Blocked(key string) (bool, time.Duration) {
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
func (l *Limiter) Fail(key string) {
	c, _ := l.c.SetIfAbsent(key, &counter{start: l.now()})
	c.n.Add(1)
}

// Reset forgets key's failures (after a success).
func (l *Limiter) Reset(key string) { l.c.Invalidate(key) }
