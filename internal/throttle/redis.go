package throttle

import (
	"context"
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

// takeScript counts an attempt before it is made and returns the count with the window's time left,
// in one step: no other node's attempt can come between the count and the answer. A key found
// without an expiry (none should be) gets one, so that no count outlives its window.
var takeScript = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}`)

// giveScript gives an attempt back, never below zero and never making a key that is gone: DECR keeps
// the window's expiry.
var giveScript = redis.NewScript(`
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then return redis.call('DECR', KEYS[1]) end
return 0`)

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
func (r *Redis) key(k string) string { return r.prefix + digest(k) }

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

// Take counts one attempt of key before it is made; see Counter. With Redis unreachable it counts in
// process.
func (r *Redis) Take(ctx context.Context, key string) Taken {
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	res, err := takeScript.Run(ctx, r.client, []string{r.key(key)}, r.window.Milliseconds()).Int64Slice()
	if err != nil || len(res) != 2 {
		if err == nil {
			err = errors.New("take: unexpected answer")
		}
		r.failed(err)
		return r.local.Take(ctx, key)
	}
	return taken(res[0], r.max, time.Duration(res[1])*time.Millisecond)
}

// Give gives back one attempt of key that Take counted.
func (r *Redis) Give(ctx context.Context, key string) {
	// A caller that gave up (the client went away mid-hash) still owes the attempt back: the giving
	// must not end with the request.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), redisTimeout)
	defer cancel()
	if err := giveScript.Run(ctx, r.client, []string{r.key(key)}).Err(); err != nil {
		r.failed(err)
		r.local.Give(ctx, key)
	}
}

func (r *Redis) Reset(ctx context.Context, key string) {
	r.local.Reset(ctx, key)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), redisTimeout) // as Give
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
