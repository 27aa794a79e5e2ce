// Package replay remembers signatures already accepted, for as long as they could be accepted again,
// so that a captured signed request cannot be sent twice. Local remembers in process (a bounded
// cache: past its bound the oldest are forgotten first, which only matters for a flood of valid
// signatures); Redis remembers across nodes.
package replay

import (
	"context"
	"fmt"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/redis/go-redis/v9"
)

// Guard records signatures. First reports whether sig is seen for the first time within ttl, and
// records it; it must be safe for concurrent use, and of two concurrent calls with one signature
// exactly one may answer true.
type Guard interface {
	First(ctx context.Context, sig string, ttl time.Duration) (bool, error)
}

// Local is an in-process Guard.
type Local struct {
	seen *otter.Cache[string, struct{}]
}

// NewLocal returns a Local Guard that holds at most size signatures.
func NewLocal(size int) (*Local, error) {
	c, err := otter.New(&otter.Options[string, struct{}]{
		MaximumSize: size,
		// Each signature is kept for the ttl its First call gives; this is only the start.
		ExpiryCalculator: otter.ExpiryCreatingFunc(func(otter.Entry[string, struct{}]) time.Duration { return time.Hour }),
	})
	if err != nil {
		return nil, fmt.Errorf("replay cache: %w", err)
	}
	return &Local{seen: c}, nil
}

// First records sig and reports whether it was new.
func (l *Local) First(_ context.Context, sig string, ttl time.Duration) (bool, error) {
	if _, inserted := l.seen.SetIfAbsent(sig, struct{}{}); !inserted {
		return false, nil
	}
	l.seen.SetExpiresAfter(sig, ttl)
	return true, nil
}

// Redis is a Guard shared by every node on one Redis.
type Redis struct {
	client *redis.Client
}

// NewRedis returns a Guard on client.
func NewRedis(client *redis.Client) *Redis { return &Redis{client: client} }

// First records sig with SET NX and reports whether it was new.
func (r *Redis) First(ctx context.Context, sig string, ttl time.Duration) (bool, error) {
	ok, err := r.client.SetNX(ctx, "keyplane:sig:"+sig, 1, ttl).Result()
	if err != nil {
		return false, fmt.Errorf("replay guard: %w", err)
	}
	return ok, nil
}
