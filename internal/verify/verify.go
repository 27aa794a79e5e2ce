// Package verify answers whether a key is good: the hot path. A value is parsed and its checksum
// checked before anything else, then looked up by its SHA-256 digest in a bounded in-memory cache that
// also remembers unknown digests (negative caching), so that a flood of made-up keys costs one storage
// read per distinct key per TTL. Concurrent misses of one digest share one storage read.
package verify

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
	"golang.org/x/sync/singleflight"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/keyformat"
	"github.com/keyplane/keyplane/internal/masterkey"
	"github.com/keyplane/keyplane/internal/ratelimit"
	"github.com/keyplane/keyplane/internal/replay"
	"github.com/keyplane/keyplane/internal/store"
)

// Options configure a Verifier.
type Options struct {
	KeyPrefix string
	// CacheSize bounds the number of cached digests, known and unknown together.
	CacheSize int
	// TTL bounds how long an entry is trusted without a storage read: the safety net for changes made
	// by other nodes whose notifications were lost. Changes made through this node's service are seen
	// at once, whatever the TTL.
	TTL time.Duration
	// StaleIfError, when positive, lets an entry past its TTL answer for up to this much longer while
	// the store cannot be read (an outage of PostgreSQL, say), as HTTP's stale-if-error does: keys and
	// root keys this node knew keep verifying as they last read, instead of every verification failing
	// with 503. Zero: a read that fails fails the verification. A failed read is tried again at most
	// once a second per entry.
	StaleIfError time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Limiter enforces keys' rate limits; nil: an in-process one on Now.
	Limiter ratelimit.Limiter
	// Box opens recoverable keys' values, which signed requests and JWTs are checked against; nil:
	// those verifications answer that the key is not recoverable.
	Box *masterkey.Box
	// Replay remembers accepted request signatures; nil: an in-process one.
	Replay replay.Guard
}

// entry is a cached lookup: key is nil for an unknown digest.
type entry struct {
	key             *keyplane.CompiledKey
	secretExpiresAt *time.Time
	stamp
}

// rootEntry is a cached root key lookup: key is nil for an unknown digest.
type rootEntry struct {
	key  *keyplane.RootKey
	hash [32]byte // of the value: root keys are cached by value, and changes name them by digest
	stamp
}

// stamp says how long a cached entry may answer, in unix nanoseconds of the Verifier's clock (the
// cache's own expiry, on the real clock, is only the bound of its memory).
type stamp struct {
	fresh int64 // answers without a read until then
	stale int64 // past fresh, answers until then while the store cannot be read
}

// retryStaleEvery is how often a stale entry's read is tried again while the store fails.
const retryStaleEvery = time.Second

// Verifier checks key values against the store through the cache.
type Verifier struct {
	store  store.Queries
	prefix string
	now    func() time.Time
	keys   *otter.Cache[[32]byte, entry]
	// roots is keyed by the root key's value itself, not its digest: every verification request
	// authenticates the platform's root key, and a hit then costs a map lookup instead of a checksum
	// and a SHA-256. Only values that parse are ever looked up, so the entries stay small.
	roots   *otter.Cache[string, rootEntry]
	limiter ratelimit.Limiter
	box     *masterkey.Box
	replay  replay.Guard
	values  *otter.Cache[string, valueEntry] // by key id, for signatures and JWTs
	// hits and misses count key lookups answered from the cache and from the store, for metrics.
	hits, misses atomic.Uint64

	ttl, staleIfError time.Duration
	// reads makes the reads of stale entries one per digest at a time, as the cache's loader does for
	// misses.
	reads singleflight.Group
	// generation moves on at every Forget and Purge: a stale entry's read that started before one
	// must not put what it read back into the cache, which would undo the invalidation.
	generation atomic.Uint64
	// staleServed counts answers given from stale entries because the store could not be read.
	staleServed atomic.Uint64
}

// New returns a Verifier reading from q.
func New(q store.Queries, o Options) (*Verifier, error) {
	if o.CacheSize <= 0 {
		o.CacheSize = 100_000
	}
	if o.TTL <= 0 {
		o.TTL = time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.StaleIfError < 0 {
		o.StaleIfError = 0
	}
	// With StaleIfError the cache keeps entries past the TTL, and lookups decide by their stamps.
	keep := o.TTL + o.StaleIfError
	keys, err := otter.New(&otter.Options[[32]byte, entry]{
		MaximumSize:      o.CacheSize,
		ExpiryCalculator: otter.ExpiryWriting[[32]byte, entry](keep),
	})
	if err != nil {
		return nil, fmt.Errorf("verify cache: %w", err)
	}
	roots, err := otter.New(&otter.Options[string, rootEntry]{
		MaximumSize:      1000,
		ExpiryCalculator: otter.ExpiryWriting[string, rootEntry](keep),
	})
	if err != nil {
		return nil, fmt.Errorf("verify cache: %w", err)
	}
	if o.Limiter == nil {
		o.Limiter = ratelimit.NewLocal(o.Now)
	}
	if o.Replay == nil {
		if o.Replay, err = replay.NewLocal(1_000_000); err != nil {
			return nil, err
		}
	}
	values, err := otter.New(&otter.Options[string, valueEntry]{
		MaximumSize:      o.CacheSize,
		ExpiryCalculator: otter.ExpiryWriting[string, valueEntry](o.TTL),
	})
	if err != nil {
		return nil, fmt.Errorf("verify cache: %w", err)
	}
	return &Verifier{store: q, prefix: o.KeyPrefix, now: o.Now, keys: keys, roots: roots, limiter: o.Limiter,
		box: o.Box, replay: o.Replay, values: values, ttl: o.TTL, staleIfError: o.StaleIfError}, nil
}

// newStamp is the stamp of an entry read now.
func (v *Verifier) newStamp() stamp {
	now := v.now().UnixNano()
	return stamp{fresh: now + int64(v.ttl), stale: now + int64(v.ttl+v.staleIfError)}
}

// fresh reports whether a cached entry answers without a read.
func (v *Verifier) fresh(s stamp) bool {
	return v.now().UnixNano() < s.fresh
}

// revalidate reads a stale entry again, one read per digest at a time. When the read fails and the
// entry is still within StaleIfError, the entry answers, and is left to answer for another second
// before the next read is tried, so that an outage does not turn every verification into a read.
func revalidate[K comparable, V any](ctx context.Context, v *Verifier, c *otter.Cache[K, V], k K, flight string,
	old V, oldStamp stamp, read func(context.Context) (V, error), restamp func(V, stamp) V) (V, error) {
	gen := v.generation.Load()
	r, err, _ := v.reads.Do(flight, func() (any, error) {
		e, err := read(ctx)
		if err == nil && v.generation.Load() == gen {
			c.Set(k, e)
		}
		return e, err
	})
	if err == nil {
		return r.(V), nil
	}
	now := v.now().UnixNano()
	if now >= oldStamp.stale {
		return old, err
	}
	v.staleServed.Add(1)
	if v.generation.Load() == gen {
		c.Set(k, restamp(old, stamp{fresh: min(now+int64(retryStaleEvery), oldStamp.stale), stale: oldStamp.stale}))
	}
	return old, nil
}

// Result is a verification's outcome. Key is set whenever the value matched a stored key, whatever
// the code; it is shared and must not be modified.
type Result struct {
	Code keyplane.VerifyCode
	Key  *keyplane.CompiledKey
	// RateLimit is the key's rate limit decision, when it has a limit and the request was otherwise
	// VALID: only requests that would be accepted count against a limit.
	RateLimit *ratelimit.Decision
	// Reason says why a signature or token was refused (INVALID_SIGNATURE).
	Reason string
	// Claims are a JWT's claims, once its signature and claims checked out.
	Claims map[string]any
}

// ErrUnavailable wraps storage failures: the answer is unknown, not NOT_FOUND.
var ErrUnavailable = errors.New("verify: storage unavailable")

// Verify checks an API key value. It returns an error only when the store could not be read for a key
// that is not cached; a malformed value is NOT_FOUND without any read.
func (v *Verifier) Verify(ctx context.Context, value string, req *keyplane.VerifyRequest) (Result, error) {
	e, err := v.find(ctx, value)
	if err != nil {
		return Result{}, err
	}
	if e.key == nil {
		return Result{Code: keyplane.VerifyNotFound}, nil
	}
	return v.finish(ctx, e, req)
}

// Check answers what Verify would, before any rate limit: for a key used as a credential of the
// management API, whose calls are no verifications and must not spend the key's verification limit.
func (v *Verifier) Check(ctx context.Context, value string, req *keyplane.VerifyRequest) (Result, error) {
	e, err := v.find(ctx, value)
	if err != nil {
		return Result{}, err
	}
	if e.key == nil {
		return Result{Code: keyplane.VerifyNotFound}, nil
	}
	return Result{Code: e.key.Check(v.now(), e.secretExpiresAt, req), Key: e.key}, nil
}

// find looks a key value up: one that does not parse, or a root key's, finds nothing, without a read.
func (v *Verifier) find(ctx context.Context, value string) (entry, error) {
	kind, err := keyformat.Parse(v.prefix, value)
	if err != nil || kind.Root {
		return entry{}, nil
	}
	return v.lookup(ctx, keyformat.Hash(value))
}

func (v *Verifier) lookup(ctx context.Context, h [32]byte) (entry, error) {
	e, ok := v.keys.GetIfPresent(h)
	if ok && v.fresh(e.stamp) {
		v.hits.Add(1)
		return e, nil
	}
	v.misses.Add(1)
	if ok {
		return revalidate(ctx, v, v.keys, h, string(h[:]), e, e.stamp, func(ctx context.Context) (entry, error) { return v.readKey(ctx, h) },
			func(e entry, s stamp) entry { e.stamp = s; return e })
	}
	return v.keys.Get(ctx, h, otter.LoaderFunc[[32]byte, entry](func(ctx context.Context, h [32]byte) (entry, error) {
		return v.readKey(ctx, h)
	}))
}

// readKey reads the key of a digest from the store.
func (v *Verifier) readKey(ctx context.Context, h [32]byte) (entry, error) {
	k, s, err := v.store.LookupSecret(ctx, h[:])
	if errors.Is(err, store.ErrNotFound) {
		return entry{stamp: v.newStamp()}, nil // cached as unknown
	}
	if err != nil {
		return entry{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return entry{key: keyplane.Compile(k), secretExpiresAt: s.ExpiresAt, stamp: v.newStamp()}, nil
}

// RootKey authenticates a root key value; nil means unknown or revoked.
func (v *Verifier) RootKey(ctx context.Context, value string) (*keyplane.RootKey, error) {
	e, ok := v.roots.GetIfPresent(value)
	switch {
	case ok && !v.fresh(e.stamp):
		var err error
		e, err = revalidate(ctx, v, v.roots, value, "root\x00"+value, e, e.stamp, func(ctx context.Context) (rootEntry, error) { return v.readRoot(ctx, value) },
			func(e rootEntry, s stamp) rootEntry { e.stamp = s; return e })
		if err != nil {
			return nil, err
		}
	case !ok:
		kind, err := keyformat.Parse(v.prefix, value)
		if err != nil || !kind.Root {
			return nil, nil
		}
		e, err = v.roots.Get(ctx, value, otter.LoaderFunc[string, rootEntry](func(ctx context.Context, value string) (rootEntry, error) {
			return v.readRoot(ctx, value)
		}))
		if err != nil {
			return nil, err
		}
	}
	if e.key == nil || e.key.RevokedAt != nil {
		return nil, nil
	}
	return e.key, nil
}

// readRoot reads the root key of a value from the store.
func (v *Verifier) readRoot(ctx context.Context, value string) (rootEntry, error) {
	h := keyformat.Hash(value)
	k, err := v.store.GetRootKeyByHash(ctx, h[:])
	if errors.Is(err, store.ErrNotFound) {
		return rootEntry{hash: h, stamp: v.newStamp()}, nil
	}
	if err != nil {
		return rootEntry{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return rootEntry{key: k, hash: h, stamp: v.newStamp()}, nil
}

// StaleServed is how many lookups were answered from stale entries because the store could not be
// read (StaleIfError).
func (v *Verifier) StaleServed() uint64 { return v.staleServed.Load() }

// CacheStats returns how many key lookups the cache answered, how many went to the store, and how
// many digests it holds.
func (v *Verifier) CacheStats() (hits, misses uint64, size int) {
	return v.hits.Load(), v.misses.Load(), v.keys.EstimatedSize()
}

// Purge drops every cached lookup, root keys' too: after a gap in the invalidation notices, nothing
// cached can be trusted, and a root key revoked during the gap must not live on for a TTL.
func (v *Verifier) Purge() {
	v.generation.Add(1)
	v.keys.InvalidateAll()
	v.values.InvalidateAll()
	v.roots.InvalidateAll()
}

// Forget drops the cached lookups of these digests, keys' and root keys'. The service calls it after
// every committed change to a key or a root key, with every digest the key has, so that this node's
// next verification reads the change.
func (v *Verifier) Forget(hashes ...[]byte) {
	v.generation.Add(1)
	for _, h := range hashes {
		if len(h) == 32 {
			v.keys.Invalidate([32]byte(h))
		}
	}
	if len(hashes) == 0 {
		return
	}
	// Root keys are cached by value, so a revoked one is found by its digest among them: a handful
	// of entries in practice, at most the root cache's 1,000.
	for value, e := range v.roots.All() {
		for _, h := range hashes {
			if len(h) == 32 && e.hash == [32]byte(h) {
				v.roots.Invalidate(value)
			}
		}
	}
}
