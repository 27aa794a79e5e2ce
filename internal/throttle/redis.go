package throttle

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is a Counter kept in Redis, shared by every node that uses the same Redis: behind a load
// balancer an attacker then gets one budget of failures, not one per node, and a restart forgets
// nothing. While Redis cannot be reached it counts in process, as rate limits do, and logs so at most
// once a minute.
type Redis struct {
	client   *redis.Client
	prefix   string
	max      int64
	window   time.Duration
	local    *Limiter
	log      *slog.Logger
	lastWarn atomic.Int64
}

// redisTimeout bounds one round trip; sign-ins are not the hot path, but must not hang on Redis.
const redisTimeout = 500 * time.Millisecond

// failScript counts a failure and starts the window with the first one.
var failScript = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n`)

// NewRedis returns a Counter of at most max failures per key per window in Redis. name keeps its keys
// apart from other counters' ("account", "ip"); size bounds the in-process fallback.
func NewRedis(client *redis.Client, name string, max int, window time.Duration, size int, log *slog.Logger) *Redis {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Redis{client: client, prefix: "keyplane:throttle:" + name + ":", max: int64(max), window: window,
		local: New(max, window, size, nil), log: log}
}

// key names a counter by a digest of what it counts, so that Redis holds no email or address.
func (r *Redis) key(k string) string {
	h := sha256.Sum256([]byte(k))
	return r.prefix + hex.EncodeToString(h[:16])
}

func (r *Redis) Blocked(ctx context.Context, key string) (bool, time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	k := r.key(key)
	var n *redis.StringCmd
	var ttl *redis.DurationCmd
	_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		n, ttl = p.Get(ctx, k), p.PTTL(ctx, k)
		return nil
	})
	if errors.Is(err, redis.Nil) {
		return r.local.Blocked(ctx, key)
	}
	if err != nil {
		r.failed(err)
		return r.local.Blocked(ctx, key)
	}
	count, _ := strconv.ParseInt(n.Val(), 10, 64)
	if count < r.max || ttl.Val() <= 0 {
		return false, 0
	}
	return true, ttl.Val()
}

func (r *Redis) Fail(ctx context.Context, key string) {
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	if err := failScript.Run(ctx, r.client, []string{r.key(key)}, r.window.Milliseconds()).Err(); err != nil {
		r.failed(err)
		r.local.Fail(ctx, key)
	}
}

func (r *Redis) Reset(ctx context.Context, key string) {
	r.local.Reset(ctx, key)
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	if err := r.client.Del(ctx, r.key(key)).Err(); err != nil {
		r.failed(err)
	}
}

// failed warns that Redis could not count, at most once a minute.
func (r *Redis) failed(err error) {
	now := time.Now().UnixNano()
	last := r.lastWarn.Load()
	if now-last >= int64(time.Minute) && r.lastWarn.CompareAndSwap(last, now) {
		r.log.Warn("sign-in throttling: Redis cannot be reached; each node counts failures on its own until it answers", "err", err)
	}
}
