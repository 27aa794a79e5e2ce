// Package reqlog writes the request log and its usage counts without slowing what it logs. Log appends
// an entry to a bounded in-memory buffer and returns at once; one goroutine, the flusher, takes what is
// buffered and writes the entries in batches (WriteRequestLogs), when about a batch has gathered, when
// the flush interval passes, and once more on Close. When the buffer is full, because the store is slow
// or down, an entry is dropped and counted rather than waited for: a verification must never wait for
// its log.
//
// The usage counts (per key, UTC hour and code) and the keys' last-used times are not written with
// every batch: each written batch is summed into counts held in memory, and a second goroutine, the
// usage writer, adds them to the store (AddUsage) every usage interval (5 s by default) and once more
// on Close, after the flusher's last batch. Counts come only from batches that were written, so the
// rollups never exceed the log; after a clean Close they equal it. A failed AddUsage keeps its counts,
// merged with those that came since, for the next try. A crash loses at most the counts of one usage
// interval, as it loses the entries of the buffer.
//
// The buffer is split into shards, each behind its own lock, and Log picks one at random: callers on
// different cores seldom meet on a lock, and the flusher takes a whole shard's entries per lock rather
// than one entry per receive, as a channel would make it.
package reqlog

import (
	"cmp"
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	mathrand "math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/id"
	"github.com/keyplane/keyplane/internal/redact"
	"github.com/keyplane/keyplane/internal/store"
)

// Writer stores batches: store.Store is one. It must not keep entries, counts or touched after it
// returns; their memory is reused.
type Writer interface {
	// WriteRequestLogs stores the entries in one transaction.
	WriteRequestLogs(ctx context.Context, entries []keyplane.RequestLog) error
	// AddUsage adds counts of written entries to their keys' usage rollups and moves the touched keys'
	// last-used times forward, in one transaction.
	AddUsage(ctx context.Context, counts []store.UsageCount, touched map[string]time.Time) error
}

// Options tune a Logger; zero fields take the defaults.
type Options struct {
	// BufferSize bounds the entries waiting to be written, all shards together; beyond it Log drops.
	// Default 50,000: some two seconds of a busy two-core node's verifications, so that a slow batch
	// (a checkpoint of the log's file) does not drop any, in about 15 MB at most.
	BufferSize int
	// BatchSize is how many entries one write takes at most; once about that many wait they are
	// written without waiting for the interval. Default 8000: a write costs per transaction (the
	// pages its commit writes) as much as per entry, and larger batches make larger blocks
	// (docs/performance.md, "The request log in blocks").
	BatchSize int
	// FlushInterval bounds how long an entry waits for a batch to gather. Default 200 ms: a node
	// that is not busy writes a few small batches a second rather than one of a second's entries,
	// whose write showed in the tail of its verifications (docs/performance.md).
	FlushInterval time.Duration
	// Shards splits the buffer; default four per GOMAXPROCS, so that two callers seldom pick the
	// same. Tests use 1 to make batches exact.
	Shards int
	// UsageInterval is how often the counts of written entries, and the keys' last-used times, are
	// added to the store. Default 5 s.
	UsageInterval time.Duration
	// MaxPendingCounts bounds the counts (one per key, hour and code) held while the store refuses
	// them. Beyond it the counts of newly written entries are dropped and counted (UsageLost): the
	// rollups then fall short of the log, never exceed it. Default 250,000 (some 50 MB).
	MaxPendingCounts int
	// TouchInterval: a key's last-used time is written at most once per interval (per process), so
	// that a key used in every usage interval does not cost a row update in each. Default 1 min.
	TouchInterval time.Duration
	// WriteTimeout bounds one batch write. Default 30 s.
	WriteTimeout time.Duration
	// Now is the clock, for entries logged without a time; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Defaults of Options.
const (
	DefaultBufferSize    = 50_000
	DefaultBatchSize     = 8000
	DefaultFlushInterval = 200 * time.Millisecond
	DefaultTouchInterval = time.Minute
	DefaultUsageInterval = 5 * time.Second
	DefaultMaxPending    = 250_000
	DefaultWriteTimeout  = 30 * time.Second
)

func (o *Options) fill() {
	if o.BufferSize <= 0 {
		o.BufferSize = DefaultBufferSize
	}
	if o.BatchSize <= 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	if o.UsageInterval <= 0 {
		o.UsageInterval = DefaultUsageInterval
	}
	if o.MaxPendingCounts <= 0 {
		o.MaxPendingCounts = DefaultMaxPending
	}
	if o.TouchInterval <= 0 {
		o.TouchInterval = DefaultTouchInterval
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.Shards <= 0 {
		o.Shards = 4 * runtime.GOMAXPROCS(0)
	}
	o.Shards = min(o.Shards, o.BufferSize)
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Logger buffers request log entries and writes them in batches. Its methods are safe for concurrent
// use.
type Logger struct {
	w   Writer
	o   Options
	log *slog.Logger

	shards []shard
	// per is how many entries a shard holds at most.
	per int
	// full is how many entries a shard holds before it asks the flusher to come: a batch's worth
	// spread over the shards.
	full int
	kick chan struct{} // a shard has gathered its share of a batch

	closed atomic.Bool // read by every Log
	failed atomic.Uint64

	// taking is how many entries the flusher has taken from the shards and not yet written (or
	// failed); uncounted, how many written entries wait for their counts to be added; usageLost, the
	// requests whose counts were dropped (MaxPendingCounts, or a Close that gave up); usageOK, when
	// the usage writer last wrote what waited, or found nothing waiting (UnixNano of Options.Now).
	taking, uncounted atomic.Int64
	usageLost         atomic.Uint64
	usageOK           atomic.Int64

	closeOnce sync.Once
	stop      chan context.Context // Close's context, for the last flush
	usageStop chan context.Context // the flusher's last batch is written: write every count
	usageNow  chan chan error      // tests: write the counts now
	done      chan struct{}        // closed when both goroutines have returned

	// pending is what the flusher hands to the usage writer: the counts and last uses of written
	// entries.
	pending struct {
		mu      sync.Mutex
		counts  map[usageBucket]usageValue
		touched map[string]time.Time // per key, its latest written use
	}

	// Owned by the flusher goroutine, and reused from one flush to the next.
	spare  [][]keyplane.RequestLog // an empty buffer per shard, swapped with the shard's own
	batch  []keyplane.RequestLog   // the batch being gathered from the shards' entries
	sorted []keyplane.RequestLog   // the batch in time order (timeOrder), swapped with batch
	order  []int32                 // the batch's positions, sorted by timeOrder
	random []byte                  // the batch's ids' random parts, read in one call
	// lastMilli and lastRandom are the previous batch's last id's millisecond and random part, so
	// that ids follow time across batches too.
	lastMilli    int64
	lastRandom   [id.RandomSize]byte
	droppedShown uint64

	// Owned by the usage writer goroutine. What one write takes is made for it and dropped after:
	// kept for the next, the maps and slices of a node with many keys held tens of MiB of live heap
	// for good, which made the collector run more often than their allocation costs.
	touchedAt map[string]int64 // per key, the last-used time last written (unix ns)
	lastSweep time.Time
}

// usageBucket is one count of the usage rollups: a key's requests, made as a key of one identity
// (or of none), in one UTC hour (its start, in Unix seconds), answered with one code.
type usageBucket struct {
	keyID      string
	identityID string
	hour       int64
	code       keyplane.VerifyCode
}

type usageValue struct {
	workspaceID  string
	requests     int64
	creditsSpent int64
}

// add merges o into v.
func (v *usageValue) add(o usageValue) {
	v.requests += o.requests
	v.creditsSpent += o.creditsSpent
}

// shard is a part of the buffer. buf never holds more than the Logger's per: Log drops instead, and counts
// the drop here, under the lock it holds anyway, rather than in one counter every core would fight
// over just when the server is busiest.
type shard struct {
	mu      sync.Mutex
	buf     []keyplane.RequestLog
	dropped uint64
	_       [64]byte // each shard's lock on its own cache line
}

// New returns a Logger writing to w and starts its flusher; Close stops it.
func New(w Writer, o Options) *Logger {
	o.fill()
	per := (o.BufferSize + o.Shards - 1) / o.Shards
	l := &Logger{
		w: w, o: o, log: o.Logger,
		shards:    make([]shard, o.Shards),
		per:       per,
		full:      max(1, o.BatchSize/o.Shards),
		kick:      make(chan struct{}, 1),
		stop:      make(chan context.Context, 1),
		usageStop: make(chan context.Context, 1),
		usageNow:  make(chan chan error),
		done:      make(chan struct{}),
		spare:     make([][]keyplane.RequestLog, o.Shards),
		batch:     make([]keyplane.RequestLog, 0, o.BatchSize),
		touchedAt: map[string]int64{},
	}
	l.pending.counts, l.pending.touched = map[usageBucket]usageValue{}, map[string]time.Time{}
	l.usageOK.Store(o.Now().UnixNano())
	// The buffers start at a batch's share and grow, up to per, only when the store falls behind:
	// a busy node's buffer bound (50,000 entries, ~11 MB twice over with the spares) is not held in
	// the heap, where it would make the collector work harder, while nothing waits.
	for i := range l.shards {
		l.shards[i].buf = make([]keyplane.RequestLog, 0, min(per, 2*l.full))
		l.spare[i] = make([]keyplane.RequestLog, 0, min(per, 2*l.full))
	}
	go l.run()
	go l.runUsage()
	return l
}

// Log queues e for writing and returns at once. e's ID is assigned when it is written; a zero
// Timestamp becomes now. When its shard of the buffer is full, or the Logger is closed, e is dropped
// and counted (Dropped).
func (l *Logger) Log(e keyplane.RequestLog) {
	if e.Timestamp.IsZero() {
		e.Timestamp = l.o.Now()
	}
	s := &l.shards[mathrand.Uint32()%uint32(len(l.shards))]
	s.mu.Lock()
	// Checked under the lock: Close's last collection takes every shard's lock after setting closed,
	// so an entry is either taken by it or refused here, never left behind.
	if len(s.buf) >= l.per || l.closed.Load() {
		s.dropped++
		s.mu.Unlock()
		return
	}
	s.buf = append(s.buf, e)
	n := len(s.buf)
	s.mu.Unlock()
	if n == l.full {
		select {
		case l.kick <- struct{}{}:
		default: // the flusher is already asked
		}
	}
}

// Dropped is how many entries Log dropped because the buffer was full or the Logger closed.
func (l *Logger) Dropped() uint64 {
	var n uint64
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += s.dropped
		s.mu.Unlock()
	}
	return n
}

// Failed is how many entries were lost because the store refused or timed out their batch.
func (l *Logger) Failed() uint64 { return l.failed.Load() }

// Waiting is how many entries were logged and are not written yet: in the buffer, or in the batch
// being written.
func (l *Logger) Waiting() int64 {
	var n int64
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += int64(len(s.buf))
		s.mu.Unlock()
	}
	return n + l.taking.Load()
}

// Uncounted is how many entries were logged and are not yet in the usage rollups: those Waiting to
// be written, and those written whose counts wait for the next usage write. It never counts too few:
// an entry moving from one stage to the next while it is read may be counted twice. A kill loses the
// log's share of these entries, and the rollups' share of all of them.
func (l *Logger) Uncounted() int64 {
	// In the order an entry goes through them, each stage read before the one it goes to: an entry
	// seen in none of them was in the rollups, or not yet logged, when it was read.
	n := l.Waiting()
	return n + l.uncounted.Load()
}

// UsageLost is how many requests were logged but whose counts were dropped: beyond MaxPendingCounts
// while the store refused them, or still waiting when Close gave up.
func (l *Logger) UsageLost() uint64 { return l.usageLost.Load() }

// UsageAge is how long ago the usage writer last wrote the counts that waited (or found none): about
// the usage interval at most while the store takes them, growing while it refuses them.
func (l *Logger) UsageAge() time.Duration {
	return max(0, l.o.Now().Sub(time.Unix(0, l.usageOK.Load())))
}

// Close writes what is buffered, then every count still waiting (tried again until ctx ends), and
// stops both goroutines; entries logged after Close began are dropped and counted. The server closes
// its Logger once it has stopped taking requests and finished those in flight, so that every answered
// request's entry is written and counted: after a clean Close the usage counts equal the log. When ctx
// ends first, Close returns its error and what was not written yet may be lost. Calling Close again
// waits for the same end.
func (l *Logger) Close(ctx context.Context) error {
	l.closeOnce.Do(func() {
		l.closed.Store(true)
		l.stop <- ctx
	})
	select {
	case <-l.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("request log: close: entries may be unwritten: %w", ctx.Err())
	}
}

// run is the flusher: it takes the shards' entries and writes them when asked, on the interval, and
// on Close, after which it hands Close's context to the usage writer.
func (l *Logger) run() {
	tick := time.NewTicker(l.o.FlushInterval)
	defer tick.Stop()
	for {
		ctx := context.Background()
		select {
		case <-l.kick:
		case <-tick.C:
			l.reportDrops()
		case ctx = <-l.stop:
			l.drain(ctx)
			l.reportDrops()
			l.usageStop <- ctx
			return
		}
		l.drain(ctx)
	}
}

// drain takes every shard's entries, swapping each shard's buffer for an empty one so that its lock
// is held for no longer than the swap, and writes them in batches of at most BatchSize.
func (l *Logger) drain(ctx context.Context) {
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		s.buf, l.spare[i] = l.spare[i], s.buf
		l.taking.Add(int64(len(l.spare[i]))) // before the lock goes: Waiting never misses them
		s.mu.Unlock()
	}
	for i, taken := range l.spare {
		for _, e := range taken {
			l.batch = append(l.batch, e)
			if len(l.batch) == l.o.BatchSize {
				l.flush(ctx)
			}
		}
		clear(taken) // let the strings go
		l.spare[i] = taken[:0]
	}
	if len(l.batch) > 0 {
		l.flush(ctx)
	}
}

// timeOrder returns the batch's entries in time order, those of one time in the order they came, in
// l.sorted's buffer; the batch's buffer, emptied, becomes l.sorted for the next call (flush makes the
// result the next l.batch). Sorting the entries' positions and moving each entry once costs a
// fraction of a stable sort of the entries themselves, a few hundred bytes each.
func (l *Logger) timeOrder(batch []keyplane.RequestLog) []keyplane.RequestLog {
	l.order = l.order[:0]
	for i := range batch {
		l.order = append(l.order, int32(i))
	}
	slices.SortFunc(l.order, func(a, b int32) int {
		return cmp.Or(batch[a].Timestamp.Compare(batch[b].Timestamp), cmp.Compare(a, b))
	})
	sorted := l.sorted[:0]
	for _, i := range l.order {
		sorted = append(sorted, batch[i])
	}
	clear(batch) // let the strings go: sorted holds them now
	l.sorted = batch[:0]
	return sorted
}

// flush writes the batch and empties it, and hands a written batch's counts and last uses to the
// usage writer. Entries get their ids here, off the verification path.
func (l *Logger) flush(ctx context.Context) {
	batch := l.batch
	defer func() {
		clear(batch)
		l.batch = batch[:0]
	}()
	if n := len(batch) * id.RandomSize; cap(l.random) < n {
		l.random = make([]byte, n)
	}
	random := l.random[:len(batch)*id.RandomSize]
	rand.Read(random) // crypto/rand: never fails
	// The log is listed in id order, and an id's time part is a millisecond: within one, ids follow
	// the entries' times only if their random parts do. The batch comes shard by shard, so it is put
	// in time order, and an entry of the same millisecond as the one before, in this batch or at the
	// end of the one before, takes that one's random part plus one (as monotonic ULIDs do).
	batch = l.timeOrder(batch)
	prevMilli, prev := l.lastMilli, l.lastRandom[:]
	for i := range batch {
		e := &batch[i]
		// What the client sent must not fail the batch: PostgreSQL refuses text with NUL bytes or
		// invalid UTF-8, and a request path can carry both (%00, %FF).
		e.Method, e.Path = redact.Clean(e.Method, maxMethod), redact.Clean(e.Path, maxPath)
		e.IP, e.UserAgent = redact.Clean(e.IP, maxIP), redact.UserAgent(e.UserAgent)
		e.Timestamp = e.Timestamp.UTC().Truncate(time.Microsecond) // the store's precision
		r := random[i*id.RandomSize : (i+1)*id.RandomSize]
		if milli := e.Timestamp.UnixMilli(); milli == prevMilli {
			copy(r, prev)
			increment(r)
		} else {
			prevMilli = milli
		}
		prev = r
		e.ID = id.NewAtWith(id.Request, e.Timestamp, r)
	}
	l.lastMilli = prevMilli
	copy(l.lastRandom[:], prev)
	wctx, cancel := context.WithTimeout(ctx, l.o.WriteTimeout)
	defer cancel()
	if err := l.w.WriteRequestLogs(wctx, batch); err != nil {
		// Not retried: the buffer keeps filling meanwhile, and a batch the store refuses once (a bug,
		// a full disk) would block every later one. The loss is counted and said; the batch is
		// counted in no rollup.
		l.failed.Add(uint64(len(batch)))
		l.log.Error("request log: a batch could not be written; its entries are lost", "entries", len(batch), "err", err)
	} else {
		l.count(batch)
	}
	l.taking.Add(-int64(len(batch))) // after count: Uncounted never misses them
}

// count adds a written batch to the counts and last uses that wait for the usage writer.
func (l *Logger) count(batch []keyplane.RequestLog) {
	var lost int64
	p := &l.pending
	p.mu.Lock()
	for i := range batch {
		e := &batch[i]
		unix := e.Timestamp.Unix()
		b := usageBucket{keyID: e.KeyID, identityID: e.IdentityID, hour: unix - unix%3600, code: e.Code}
		v, ok := p.counts[b]
		if !ok && len(p.counts) >= l.o.MaxPendingCounts {
			lost++
			continue
		}
		v.workspaceID = e.WorkspaceID
		v.requests++
		v.creditsSpent += e.CreditsSpent
		p.counts[b] = v
		if t, ok := p.touched[e.KeyID]; !ok || e.Timestamp.After(t) {
			p.touched[e.KeyID] = e.Timestamp
		}
	}
	p.mu.Unlock()
	l.uncounted.Add(int64(len(batch)) - lost)
	if lost > 0 {
		l.usageLost.Add(uint64(lost))
		l.log.Error("usage: counts dropped: too many wait while the store refuses them; the rollups fall short of the log",
			"requests", lost, "waiting_counts", l.o.MaxPendingCounts)
	}
}

// closeRetry is how long the usage writer waits between tries of its last write on Close.
const closeRetry = 250 * time.Millisecond

// runUsage is the usage writer: it adds the waiting counts to the store every usage interval, and on
// Close once the flusher has written its last batch, trying again until Close's context ends.
func (l *Logger) runUsage() {
	defer close(l.done)
	tick := time.NewTicker(l.o.UsageInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			l.writeUsage(context.Background())
			l.sweep()
		case reply := <-l.usageNow:
			reply <- l.writeUsage(context.Background())
		case ctx := <-l.usageStop:
			for {
				err := l.writeUsage(ctx)
				if err == nil {
					break
				}
				select {
				case <-ctx.Done():
					n := l.uncounted.Load()
					l.usageLost.Add(uint64(n))
					l.log.Error("usage: counts lost on close: the store did not take them", "requests", n, "err", err)
					return
				case <-time.After(closeRetry):
				}
			}
			l.sweep()
			return
		}
	}
}

// writeUsage adds every waiting count to the store, with the last-used times of keys whose last
// written one is at least a touch interval older. When the store refuses them, they wait again,
// merged with those that came meanwhile, for the next try.
func (l *Logger) writeUsage(ctx context.Context) error {
	p := &l.pending
	p.mu.Lock()
	counts, touched := p.counts, p.touched
	if len(counts) == 0 && len(touched) == 0 {
		p.mu.Unlock()
		l.usageOK.Store(l.o.Now().UnixNano())
		return nil
	}
	p.counts, p.touched = map[usageBucket]usageValue{}, map[string]time.Time{}
	p.mu.Unlock()
	var requests int64
	rows := make([]store.UsageCount, 0, len(counts))
	for b, v := range counts {
		requests += v.requests
		rows = append(rows, store.UsageCount{WorkspaceID: v.workspaceID, KeyID: b.keyID, IdentityID: b.identityID,
			Hour: time.Unix(b.hour, 0).UTC(), Code: b.code, Requests: v.requests, CreditsSpent: v.creditsSpent})
	}
	moved := make(map[string]time.Time, len(touched))
	for k, t := range touched {
		if last, ok := l.touchedAt[k]; ok && t.UnixNano()-last < int64(l.o.TouchInterval) {
			continue
		}
		moved[k] = t
	}
	wctx, cancel := context.WithTimeout(ctx, l.o.WriteTimeout)
	err := l.w.AddUsage(wctx, rows, moved)
	cancel()
	if err != nil {
		p.mu.Lock()
		// The new ones into the old, which are usually the more: the merge is as large as what came
		// during one write.
		for b, v := range p.counts {
			v.add(counts[b])
			counts[b] = v
		}
		for k, t := range p.touched {
			if old, ok := touched[k]; !ok || t.After(old) {
				touched[k] = t
			}
		}
		p.counts, p.touched = counts, touched
		p.mu.Unlock()
		l.log.Warn("usage: counts could not be written; they are kept for the next try",
			"counts", len(counts), "keys", len(touched), "err", err)
		return fmt.Errorf("usage: %w", err)
	}
	for k, t := range moved {
		l.touchedAt[k] = t.UnixNano()
	}
	l.uncounted.Add(-requests)
	l.usageOK.Store(l.o.Now().UnixNano())
	return nil
}

// syncUsage makes the usage writer write the waiting counts now, and returns its error: for tests.
func (l *Logger) syncUsage() error {
	reply := make(chan error)
	l.usageNow <- reply
	return <-reply
}

// increment adds one to b, a big-endian number. It wraps around only after 2^80 entries of one
// millisecond.
func increment(b []byte) {
	for i := len(b) - 1; i >= 0; i-- {
		b[i]++
		if b[i] != 0 {
			return
		}
	}
}

// sweep forgets last-used times older than the touch interval: they no longer hold a write back, and
// the map would otherwise grow with every key ever used.
func (l *Logger) sweep() {
	now := l.o.Now()
	if now.Sub(l.lastSweep) >= l.o.TouchInterval {
		for k, t := range l.touchedAt {
			if now.UnixNano()-t >= int64(l.o.TouchInterval) {
				delete(l.touchedAt, k)
			}
		}
		l.lastSweep = now
	}
}

// reportDrops says how many entries were dropped since it last said.
func (l *Logger) reportDrops() {
	if d := l.Dropped(); d > l.droppedShown {
		l.log.Warn("request log: entries dropped because the buffer was full; the store is too slow or down",
			"dropped", d-l.droppedShown, "total", d, "buffer", l.o.BufferSize)
		l.droppedShown = d
	}
}

// Longest text fields kept, in bytes; a User-Agent is kept to redact.MaxUserAgent.
const (
	maxMethod = 32
	maxPath   = 1024
	maxIP     = 64
)
