// Package verify answers whether a key is good: the hot path. A value is parsed and its checksum
// checked before anything else, then looked up by its SHA-256 digest in an in-memory cache bounded by
// bytes, which also remembers unknown digests (negative caching). Where one process owns the writes
// (SQLite), a membership filter answers most made-up keys before the cache, with no read at all.
// Concurrent misses of one digest share one storage read.
//
// Entries carry no expiry while the node's change feed is trusted (PostgreSQL's LISTEN, SQLite's
// change journal): every committed change reaches Forget, so an entry is right until it is forgotten
// or evicted. While the feed is down, an entry is read again once the TTL has passed since its read
// or since the feed went down, whichever is later, which bounds how stale an answer can be.
package verify

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
	"golang.org/x/sync/singleflight"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/credits"
	"github.com/keyplane/keyplane/internal/keyformat"
	"github.com/keyplane/keyplane/internal/masterkey"
	"github.com/keyplane/keyplane/internal/ratelimit"
	"github.com/keyplane/keyplane/internal/replay"
	"github.com/keyplane/keyplane/internal/store"
)

// Options configure a Verifier.
type Options struct {
	KeyPrefix string
	// CacheMemory bounds the bytes the key cache holds, known and unknown digests together, by an
	// estimate of each entry's weight (entryWeight); 0: DefaultCacheMemory.
	CacheMemory int64
	// TTL bounds how long an entry answers without a storage read while the change feed is not
	// trusted (see FeedUp, FeedDown): the safety net for changes made elsewhere whose notices were
	// lost. While the feed is trusted, entries have no expiry. Changes made through this node's
	// service are seen at once, whatever the TTL.
	TTL time.Duration
	// Filter, when set, holds every stored key digest (see Filter): a miss whose digest it rules
	// out answers NOT_FOUND without a read and is not cached. Only where every new digest reaches
	// it before anyone can use it: one writer process, and the journal of the others (SQLite).
	Filter *Filter
	// Imported, when set, holds the digests of every imported value (keys migrated in from another
	// system, whose values need not have keyplane's format) and of every digest the change feed
	// brings (Admit): a value without the format whose digest it rules out answers NOT_FOUND without
	// a read, as a malformed value always did. Nil: no value without the format is looked up at all.
	// Unlike Filter it serves on every driver: a node learns another's imports from its change feed
	// within a moment, and loads the imported digests again after a gap in it (AdmitImported).
	Imported *Filter
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
	// Bank spends keys' and identities' credits. New makes none: a node that serves keys with
	// credits must pass one, or their verifications fail (ErrNoBank).
	Bank *credits.Bank
}

// Lookups are the reads of the store a Verifier makes: verification needs no more of the store, and
// takes no more. A miss is an error wrapping store.ErrNotFound. store.Queries has them all.
type Lookups interface {
	// VerificationKey finds the key of the secret with this SHA-256 digest, and the secret's expiry.
	VerificationKey(ctx context.Context, hash []byte) (*keyplane.APIKey, *time.Time, error)
	// GetRootKeyByHash finds the root key with this SHA-256 digest.
	GetRootKeyByHash(ctx context.Context, hash []byte) (*keyplane.RootKey, error)
	// FindAPIKey returns the key with this id, in whatever workspace: signatures and JWTs name it.
	FindAPIKey(ctx context.Context, id string) (*keyplane.APIKey, error)
	// ListSecrets returns every stored value of a key, newest first.
	ListSecrets(ctx context.Context, keyID string) ([]keyplane.Secret, error)
}

// entry is a cached lookup: key is nil for an unknown digest.
type entry struct {
	key             *keyplane.CompiledKey
	secretExpiresAt *time.Time
	plan            *plan // nil for a key without named limits, credits or identity
	stamp
}

// rootEntry is a cached root key lookup: key is nil for an unknown digest.
type rootEntry struct {
	key  *keyplane.RootKey
	hash [32]byte // of the value: root keys are cached by value, and changes name them by digest
	stamp
}

// stamped is a cached entry: it has a stamp.
type stamped interface{ stamped() stamp }

func (s stamp) stamped() stamp { return s }

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
	store  Lookups
	prefix string
	now    func() time.Time
	keys   *otter.Cache[[32]byte, entry]
	// roots is keyed by the root key's value itself, not its digest: every verification request
	// authenticates the platform's root key, and a hit then costs a map lookup instead of a checksum
	// and a SHA-256. Only values that parse are ever looked up, so the entries stay small.
	roots   *otter.Cache[string, rootEntry]
	limiter ratelimit.Limiter
	bank    *credits.Bank
	box     *masterkey.Box
	replay  replay.Guard
	values  *otter.Cache[string, valueEntry] // by key id, for signatures and JWTs
	// hits and misses count key lookups answered from the cache and from the store, for metrics;
	// filtered those the filter answered.
	hits, misses, filtered atomic.Uint64
	filter                 atomic.Pointer[Filter]
	imported               *Filter
	// trusted is set while the change feed is: then entries answer whatever their age. downAt is
	// when it last went down, on the Verifier's clock (unix ns; 0: never up).
	trusted atomic.Bool
	downAt  atomic.Int64

	ttl, staleIfError time.Duration
	// reads makes the reads of missing and stale entries one per digest (and generation) at a time.
	reads singleflight.Group
	// gens move on at every Forget (the shard of each digest, by its first byte; rootGen for root
	// keys, cached by value) and every Purge (all): a read that started before one must not leave
	// what it read in the cache, where, with no TTL, it would outlive the invalidation for good.
	gens    [256]atomic.Uint64
	rootGen atomic.Uint64
	// staleServed counts answers given from stale entries because the store could not be read.
	staleServed atomic.Uint64
	intern      interner
}

// New returns a Verifier reading from q.
func New(q Lookups, o Options) (*Verifier, error) {
	if o.CacheMemory <= 0 {
		o.CacheMemory = DefaultCacheMemory
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
	// No expiry in the caches: lookups decide by their entries' stamps, and only while the feed is
	// down (see FeedUp).
	keys, err := otter.New(&otter.Options[[32]byte, entry]{
		MaximumWeight: uint64(o.CacheMemory),
		Weigher:       func(_ [32]byte, e entry) uint32 { return entryWeight(e) },
	})
	if err != nil {
		return nil, fmt.Errorf("verify cache: %w", err)
	}
	roots, err := otter.New(&otter.Options[string, rootEntry]{
		MaximumSize: 1000,
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
		MaximumSize:      10_000,
		ExpiryCalculator: otter.ExpiryWriting[string, valueEntry](o.TTL),
	})
	if err != nil {
		return nil, fmt.Errorf("verify cache: %w", err)
	}
	v := &Verifier{store: q, prefix: o.KeyPrefix, now: o.Now, keys: keys, roots: roots, limiter: o.Limiter,
		bank: o.Bank, box: o.Box, replay: o.Replay, values: values, ttl: o.TTL, staleIfError: o.StaleIfError}
	v.filter.Store(o.Filter)
	v.imported = o.Imported
	return v, nil
}

// newStamp is the stamp of an entry read now.
func (v *Verifier) newStamp() stamp {
	now := v.now().UnixNano()
	return stamp{fresh: now + int64(v.ttl), stale: now + int64(v.ttl+v.staleIfError)}
}

// fresh reports whether a cached entry answers without a read: always while the feed is trusted,
// which costs an atomic load and no clock.
func (v *Verifier) fresh(s stamp) bool {
	return v.trusted.Load() || v.now().UnixNano() < v.lift(s).fresh
}

// lift is an entry's stamp once the feed is down: an entry was confirmed by the feed until it went
// down, as if read then. So the TTL bounds staleness from the moment changes may have been missed,
// and a node whose database fails along with the feed keeps answering for the TTL (and
// StaleIfError) from then, as it did before entries lived past their TTL.
func (v *Verifier) lift(s stamp) stamp {
	if d := v.downAt.Load(); d != 0 {
		s.fresh = max(s.fresh, d+int64(v.ttl))
		s.stale = max(s.stale, d+int64(v.ttl+v.staleIfError))
	}
	return s
}

// FeedUp says that every change committed from now on reaches Forget (or Purge) within moments:
// entries then answer without a TTL. The feed's owner calls it once it listens, after the Purge (or
// the replay of a journal) that covers what it may have missed.
func (v *Verifier) FeedUp() { v.trusted.Store(true) }

// FeedDown says that changes may be missed from now on: an entry answers until the TTL has passed
// since it was read or since the feed went down, whichever is later, and is read again after that.
// A Verifier starts down, with entries bound by the TTL from their reads.
func (v *Verifier) FeedDown() {
	if v.trusted.Load() {
		v.downAt.Store(v.now().UnixNano())
		v.trusted.Store(false)
	}
}

// FeedTrusted reports whether entries answer without a TTL.
func (v *Verifier) FeedTrusted() bool { return v.trusted.Load() }

// generation is the invalidation count covering a key digest and, with root, root keys.
func (v *Verifier) generation(h [32]byte, root bool) uint64 {
	if root {
		return v.rootGen.Load()
	}
	return v.gens[h[0]].Load()
}

// fill puts what a read found into the cache unless an invalidation of it came after the read
// began (gen, from generation before the read). It checks again after the write: a Forget that
// moved the count in between may have run its Invalidate before this Set.
func fill[K comparable, V any](v *Verifier, c *otter.Cache[K, V], k K, e V, h [32]byte, root bool, gen uint64) {
	if v.generation(h, root) != gen {
		return
	}
	c.Set(k, e)
	if v.generation(h, root) != gen {
		c.Invalidate(k)
	}
}

// sharedReadTimeout bounds a read that verifications share (read): however many wait for it, one
// that the store does not answer ends as a failed read after this long.
const sharedReadTimeout = 10 * time.Second

// read reads a digest's entry for the cache, one read per digest at a time, and fills the cache with
// it unless an invalidation came meanwhile (see fill). The flight is named by the generation too, so
// that a lookup that starts after a Forget never joins a read that began before it.
func read[K comparable, V stamped](ctx context.Context, v *Verifier, c *otter.Cache[K, V], k K, h [32]byte, root bool,
	name string, load func(context.Context) (V, error)) (V, error) {
	gen := v.generation(h, root)
	r, err, _ := v.reads.Do(flightName(name, gen), func() (any, error) {
		// A verification that missed just before another's read filled the cache finds no flight
		// left to join: what is cached now answers it, as it answers a hit, rather than a second
		// read of the row.
		if e, ok := c.GetIfPresent(k); ok && v.fresh(e.stamped()) {
			return e, nil
		}
		// The read is every waiting verification's, not only the one that started it: that one
		// going away (its client hung up, its deadline passed) must not fail the others with its
		// error, so the read runs on a clock of its own, bounded all the same.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sharedReadTimeout)
		defer cancel()
		e, err := load(ctx)
		if err == nil {
			fill(v, c, k, e, h, root, gen)
		}
		return e, err
	})
	if err != nil {
		var zero V
		return zero, err
	}
	return r.(V), nil
}

func flightName(name string, gen uint64) string {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], gen)
	return name + string(b[:])
}

// revalidate reads a stale entry again (see read). When the read fails and the entry is still within
// StaleIfError, the entry answers, and is left to answer for another second before the next read is
// tried, so that an outage does not turn every verification into a read.
func revalidate[K comparable, V stamped](ctx context.Context, v *Verifier, c *otter.Cache[K, V], k K, h [32]byte, root bool,
	name string, old V, oldStamp stamp, load func(context.Context) (V, error), restamp func(V, stamp) V) (V, error) {
	gen := v.generation(h, root)
	oldStamp = v.lift(oldStamp)
	e, err := read(ctx, v, c, k, h, root, name, load)
	if err == nil {
		return e, nil
	}
	now := v.now().UnixNano()
	if now >= oldStamp.stale {
		return old, err
	}
	v.staleServed.Add(1)
	fill(v, c, k, restamp(old, stamp{fresh: min(now+int64(retryStaleEvery), oldStamp.stale), stale: oldStamp.stale}), h, root, gen)
	return old, nil
}

// Result is a verification's outcome. Key is set whenever the value matched a stored key, whatever
// the code; it is shared and must not be modified.
type Result struct {
	Code keyplane.VerifyCode
	Key  *keyplane.CompiledKey
	// Limits are the rate limit decisions, when the request was otherwise VALID: only requests that
	// would be accepted count against a limit. Limits.Default is the key's own rateLimit's.
	Limits Decisions
	// HasCredits is set when the key or its identity has credits (and the key was found):
	// CreditsRemaining is then the key's balance after the verification, or its identity's when
	// the key has none of its own; CreditsSpent what the verification spent of each.
	HasCredits       bool
	CreditsRemaining int64
	CreditsSpent     int64
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

// find looks a key value up: a root key's finds nothing, without a read; so does one that does not
// parse, unless it may be an imported value that the imported filter does not rule out.
func (v *Verifier) find(ctx context.Context, value string) (entry, error) {
	kind, err := keyformat.Parse(v.prefix, value)
	if err != nil {
		return v.findImported(ctx, value)
	}
	if kind.Root {
		return entry{}, nil
	}
	return v.lookup(ctx, keyformat.Hash(value))
}

// findImported looks up a value without keyplane's format: only an imported one can be stored, and
// the imported filter holds all of those, so that a flood of made-up values costs a hash each and
// no read, nor any room in the cache. What passes the filter takes the common path, negative cache
// included.
func (v *Verifier) findImported(ctx context.Context, value string) (entry, error) {
	if v.imported == nil || !keyformat.ValidImported(value) {
		return entry{}, nil
	}
	h := keyformat.Hash(value)
	if !v.imported.Has(h) {
		v.filtered.Add(1)
		return entry{}, nil
	}
	return v.lookup(ctx, h)
}

func (v *Verifier) lookup(ctx context.Context, h [32]byte) (entry, error) {
	e, ok := v.keys.GetIfPresent(h)
	if ok && v.fresh(e.stamp) {
		v.hits.Add(1)
		return e, nil
	}
	if f := v.filter.Load(); !ok && f != nil && !f.Has(h) {
		// Never stored: not cached either, so that a flood of made-up keys leaves the cache alone.
		v.filtered.Add(1)
		return entry{}, nil
	}
	v.misses.Add(1)
	load := func(ctx context.Context) (entry, error) { return v.readKey(ctx, h) }
	if ok {
		return revalidate(ctx, v, v.keys, h, h, false, string(h[:]), e, e.stamp, load,
			func(e entry, s stamp) entry { e.stamp = s; return e })
	}
	return read(ctx, v, v.keys, h, h, false, string(h[:]), load)
}

// readKey reads the key of a digest from the store.
func (v *Verifier) readKey(ctx context.Context, h [32]byte) (entry, error) {
	k, secretExpiresAt, err := v.store.VerificationKey(ctx, h[:])
	if errors.Is(err, store.ErrNotFound) {
		return entry{stamp: v.newStamp()}, nil // cached as unknown
	}
	if err != nil {
		return entry{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	v.intern.key(k)
	return entry{key: keyplane.Compile(k), secretExpiresAt: secretExpiresAt, plan: newPlan(k), stamp: v.newStamp()}, nil
}

// RootKey authenticates a root key value; nil means unknown or revoked.
func (v *Verifier) RootKey(ctx context.Context, value string) (*keyplane.RootKey, error) {
	e, ok := v.roots.GetIfPresent(value)
	switch {
	case ok && !v.fresh(e.stamp):
		var err error
		e, err = revalidate(ctx, v, v.roots, value, [32]byte{}, true, "root\x00"+value, e, e.stamp, v.rootLoader(value),
			func(e rootEntry, s stamp) rootEntry { e.stamp = s; return e })
		if err != nil {
			return nil, err
		}
	case !ok:
		kind, err := keyformat.Parse(v.prefix, value)
		if err != nil || !kind.Root {
			return nil, nil
		}
		if e, err = read(ctx, v, v.roots, value, [32]byte{}, true, "root\x00"+value, v.rootLoader(value)); err != nil {
			return nil, err
		}
	}
	if e.key == nil || e.key.RevokedAt != nil {
		return nil, nil
	}
	return e.key, nil
}

// rootLoader is readRoot of value, for read and revalidate: made on misses only, off the hot path.
func (v *Verifier) rootLoader(value string) func(context.Context) (rootEntry, error) {
	return func(ctx context.Context) (rootEntry, error) { return v.readRoot(ctx, value) }
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

// Admit adds a digest to the filter, if there is one: the service calls it with a new key's digest
// before the change that stores it commits, and the change feed with the digests other processes
// publish.
//
// The imported filter takes them too: the feed does not say which digests are imported ones, and a
// digest it holds without need costs only a read when someone presents its value.
func (v *Verifier) Admit(hashes ...[]byte) {
	for _, f := range []*Filter{v.filter.Load(), v.imported} {
		if f == nil {
			continue
		}
		for _, h := range hashes {
			if len(h) == 32 {
				f.Add([32]byte(h))
			}
		}
	}
}

// AdmitImported adds an imported digest to the imported filter, unless the filter may hold it
// already: the loading of every imported digest at start and after a gap in the change feed, which
// adds to what the filter holds rather than replacing it, so that a digest the feed admitted
// meanwhile is never lost.
func (v *Verifier) AdmitImported(h []byte) {
	if v.imported != nil && len(h) == 32 && !v.imported.Has([32]byte(h)) {
		v.imported.Add([32]byte(h))
	}
}

// DropFilter stops using the filter for good: when the digests it holds can no longer be known to be
// all of them (the change journal lost rows before they were read).
func (v *Verifier) DropFilter() { v.filter.Store(nil) }

// Filtered is how many key lookups the filter answered NOT_FOUND without a read.
func (v *Verifier) Filtered() uint64 { return v.filtered.Load() }

// CacheWeight is the estimated bytes the key cache holds (see entryWeight).
func (v *Verifier) CacheWeight() uint64 { return v.keys.WeightedSize() }

// Purge drops every cached lookup, root keys' too: after a gap in the invalidation notices, nothing
// cached can be trusted, and a root key revoked during the gap must not live on for a TTL.
func (v *Verifier) Purge() {
	for i := range v.gens {
		v.gens[i].Add(1)
	}
	v.rootGen.Add(1)
	v.keys.InvalidateAll()
	v.values.InvalidateAll()
	v.roots.InvalidateAll()
}

// Forget drops the cached lookups of these digests, keys' and root keys'. The service calls it after
// every committed change to a key or a root key, with every digest the key has, so that this node's
// next verification reads the change.
func (v *Verifier) Forget(hashes ...[]byte) {
	if len(hashes) == 0 {
		return
	}
	v.rootGen.Add(1)
	for _, h := range hashes {
		if len(h) == 32 {
			v.gens[h[0]].Add(1)
			v.keys.Invalidate([32]byte(h))
		}
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
