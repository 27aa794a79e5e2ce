package ratelimit

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// Redis is a Limiter shared by every node that uses the same Redis: its GCRA state lives there, and
// Redis's clock is the one that counts. While Redis cannot be reached, each node falls back to its own
// Local limiter (a limit then holds per node, not across them), and says so in its log.
type Redis struct {
	client   *redis.Client
	rl       *redis_rate.Limiter
	fallback *Local
	log      *slog.Logger
	timeout  time.Duration
	// down is when Redis was first found unreachable (unix nanoseconds), 0 while it answers.
	down     atomic.Int64
	lastWarn atomic.Int64
	// nextTry is when Redis is next asked while it is down (unix nanoseconds): one request at a time
	// finds out whether it is back, so that an unreachable Redis (a dropped route, where each try
	// waits for its timeout) delays one verification per retryDownEvery, not every one.
	nextTry atomic.Int64
}

// retryDownEvery is how often a node asks Redis again while it does not answer.
const retryDownEvery = 250 * time.Millisecond

// RedisOptions configure a Redis limiter.
type RedisOptions struct {
	// URL is redis://[user:password@]host:port/db.
	URL    string
	Logger *slog.Logger
	// Timeout bounds one decision's round trip; past it the node decides alone. Default 50 ms: a
	// verification must not wait long on its rate limit.
	Timeout time.Duration
	Now     func() time.Time
}

// NewRedis connects to Redis (lazily: the first decision dials).
func NewRedis(o RedisOptions) (*Redis, error) {
	opt, err := redis.ParseURL(o.URL)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	if o.Timeout <= 0 {
		o.Timeout = 50 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = o.Timeout*4, o.Timeout, o.Timeout
	c := redis.NewClient(opt)
	return &Redis{client: c, rl: redis_rate.NewLimiter(c), fallback: NewLocal(o.Now), log: o.Logger, timeout: o.Timeout}, nil
}

// QuietClientLogs sends the Redis client library's own log lines (one per failed dial, which during an
// outage is one per request) to log at debug level; Redis limiters log the outage themselves, once a
// minute. The library's logger is process-wide, so the program calls this once, at start.
func QuietClientLogs(log *slog.Logger) { redis.SetLogger(clientLogs{log}) }

type clientLogs struct{ log *slog.Logger }

func (c clientLogs) Printf(ctx context.Context, format string, v ...any) {
	c.log.DebugContext(ctx, "redis client: "+fmt.Sprintf(format, v...))
}

// Client is the Redis connection, for other state shared across nodes (replayed signatures).
func (r *Redis) Client() *redis.Client { return r.client }

// Ping checks that Redis answers.
func (r *Redis) Ping(ctx context.Context) error { return r.client.Ping(ctx).Err() }

// Close closes the connections.
func (r *Redis) Close() error { return r.client.Close() }

// keyPrefix keeps keyplane's state apart from anything else in the database.
const keyPrefix = "keyplane:rl:"

// Allow decides one request of key against l in Redis, or locally while Redis is down.
func (r *Redis) Allow(ctx context.Context, key string, l Limit) (Decision, error) {
	return r.AllowN(ctx, key, l, 1)
}

// AllowN decides a request of key that costs n units against l in Redis, or locally while Redis is
// down.
func (r *Redis) AllowN(ctx context.Context, key string, l Limit, n int64) (Decision, error) {
	if l.Limit <= 0 || l.Window <= 0 {
		return Decision{Allowed: true}, nil
	}
	n = max(n, 0)
	if r.down.Load() != 0 {
		now, next := time.Now().UnixNano(), r.nextTry.Load()
		if now < next || !r.nextTry.CompareAndSwap(next, now+int64(retryDownEvery)) {
			return r.fallback.AllowN(ctx, key, l, n)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	res, err := r.rl.AllowN(ctx, keyPrefix+key, redis_rate.Limit{Rate: int(l.Limit), Burst: int(l.Limit), Period: l.Window}, int(n))
	if err != nil {
		r.failed(err)
		return r.fallback.AllowN(ctx, key, l, n)
	}
	if since := r.down.Swap(0); since != 0 {
		r.log.Info("rate limits: Redis answers again; limits are exact across nodes", "down_for", time.Since(time.Unix(0, since)).Round(time.Second))
	}
	// The script answers the cost as "allowed", so a check of cost 0 that passes says 0 too: it is
	// told from a refusal by its retry-after, -1 when allowed.
	d := Decision{Allowed: res.Allowed > 0 || n == 0 && res.RetryAfter < 0, Limit: l.Limit, Remaining: int64(res.Remaining), ResetAt: time.Now().Add(res.ResetAfter)}
	if !d.Allowed {
		d.RetryAfter = res.RetryAfter
	}
	return d, nil
}

// failed notes that Redis could not decide, warning at most once a minute.
func (r *Redis) failed(err error) {
	now := time.Now().UnixNano()
	r.nextTry.Store(now + int64(retryDownEvery))
	r.down.CompareAndSwap(0, now)
	last := r.lastWarn.Load()
	if now-last >= int64(time.Minute) && r.lastWarn.CompareAndSwap(last, now) {
		r.log.Warn("rate limits: Redis cannot be reached; each node limits on its own until it answers", "err", err)
	}
}
