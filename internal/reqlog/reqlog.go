// Package reqlog writes the request log without slowing what it logs. Log appends an entry to a
// bounded in-memory buffer and returns at once; one goroutine takes what is buffered and writes it in
// batches, each through one store call (the entries, their hourly usage rollups and their keys'
// last-used times in one transaction), when about a batch has gathered, when the flush interval
// passes, and once more on Close. When the buffer is full, because the store is slow or down, an entry
// is dropped and counted rather than waited for: a verification must never wait for its log.
//
// The buffer is split into shards, each behind its own lock, and Log picks one at random: callers on
// different cores seldom meet on a lock, and the flusher takes a whole shard's entries per lock rather
// than one entry per receive, as a channel would make it.
package reqlog

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	mathrand "math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/id"
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
	// Default 10000.
	BufferSize int
	// BatchSize is how many entries one write takes at most; once about that many wait they are
	// written without waiting for the interval. Default 500.
	BatchSize int
	// FlushInterval bounds how long an entry waits for a batch to gather. Default 1 s.
	FlushInterval time.Duration
	// Shards splits the buffer; default four per GOMAXPROCS, so that two callers seldom pick the
	// same. Tests use 1 to make batches exact.
	Shards int
	// TouchInterval: a key's last-used time is written at most once per interval (per process), so
	// that a busy key does not cost a row update per request. Default 1 min.
	TouchInterval time.Duration
	// WriteTimeout bounds one batch write. Default 30 s.
	WriteTimeout time.Duration
	// Now is the clock, for entries logged without a time; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Defaults of Options.
const (
	DefaultBufferSize    = 10000
	DefaultBatchSize     = 500
	DefaultFlushInterval = time.Second
	DefaultTouchInterval = time.Minute
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
	// full is how many entries a shard holds before it asks the flusher to come: a batch's worth
	// spread over the shards.
	full int
	kick chan struct{} // a shard has gathered its share of a batch

	closed atomic.Bool // read by every Log
	failed atomic.Uint64

	closeOnce sync.Once
	stop      chan context.Context // Close's context, for the last flush
	done      chan struct{}        // closed when the flusher has returned

	// Owned by the flusher goroutine, and reused from one flush to the next.
	spare        [][]keyplane.RequestLog // an empty buffer per shard, swapped with the shard's own
	batch        []keyplane.RequestLog   // the batch being gathered from the shards' entries
	touched      map[string]time.Time    // the batch's last-used times to write
	random       []byte                  // the batch's ids' random parts, read in one call
	touchedAt    map[string]time.Time    // per key, the last-used time last written
	lastSweep    time.Time
	droppedShown uint64
}

// shard is a part of the buffer. buf never grows past its capacity: Log drops instead, and counts
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
		full:      max(1, o.BatchSize/o.Shards),
		kick:      make(chan struct{}, 1),
		stop:      make(chan context.Context, 1),
		done:      make(chan struct{}),
		spare:     make([][]keyplane.RequestLog, o.Shards),
		batch:     make([]keyplane.RequestLog, 0, o.BatchSize),
		touched:   map[string]time.Time{},
		touchedAt: map[string]time.Time{},
	}
	for i := range l.shards {
		l.shards[i].buf = make([]keyplane.RequestLog, 0, per)
		l.spare[i] = make([]keyplane.RequestLog, 0, per)
	}
	go l.run()
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
	if len(s.buf) == cap(s.buf) || l.closed.Load() {
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

// Close writes what is buffered and stops the flusher; entries logged after Close began are dropped
// and counted. The server closes its Logger once it has stopped taking requests and finished those in
// flight, so that every answered request's entry is written. When ctx ends first, Close returns its
// error and what was not written yet may be lost. Calling Close again waits for the same end.
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
// on Close.
func (l *Logger) run() {
	defer close(l.done)
	tick := time.NewTicker(l.o.FlushInterval)
	defer tick.Stop()
	for {
		ctx := context.Background()
		select {
		case <-l.kick:
		case <-tick.C:
			l.housekeep()
		case ctx = <-l.stop:
			l.drain(ctx)
			l.housekeep()
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

// flush writes the batch and empties it. Entries get their ids here, off the verification path; a
// key's last-used time goes with the batch when the key's was last written at least a touch interval
// before.
func (l *Logger) flush(ctx context.Context) {
	batch, touched := l.batch, l.touched
	defer func() {
		clear(batch)
		l.batch = batch[:0]
		clear(touched)
	}()
	if n := len(batch) * id.RandomSize; cap(l.random) < n {
		l.random = make([]byte, n)
	}
	random := l.random[:len(batch)*id.RandomSize]
	rand.Read(random) // crypto/rand: never fails
	// The log is listed in id order, and an id's time part is a millisecond: within one, ids follow
	// the entries' times only if their random parts do. The batch comes shard by shard, so it is put
	// in time order, and an entry of the same millisecond as the one before takes that one's random
	// part plus one (as monotonic ULIDs do).
	slices.SortStableFunc(batch, func(a, b keyplane.RequestLog) int { return a.Timestamp.Compare(b.Timestamp) })
	for i := range batch {
		e := &batch[i]
		// What the client sent must not fail the batch: PostgreSQL refuses text with NUL bytes or
		// invalid UTF-8, and a request path can carry both (%00, %FF).
		e.Method, e.Path = clean(e.Method, maxMethod), clean(e.Path, maxPath)
		e.IP, e.UserAgent = clean(e.IP, maxIP), clean(e.UserAgent, maxUserAgent)
		e.Timestamp = e.Timestamp.UTC().Truncate(time.Microsecond) // the store's precision
		r := random[i*id.RandomSize : (i+1)*id.RandomSize]
		if i > 0 && batch[i-1].Timestamp.UnixMilli() == e.Timestamp.UnixMilli() {
			copy(r, random[(i-1)*id.RandomSize:i*id.RandomSize])
			increment(r)
		}
		e.ID = id.NewAtWith(id.Request, e.Timestamp, r)
		if t, ok := touched[e.KeyID]; ok {
			if e.Timestamp.After(t) {
				touched[e.KeyID] = e.Timestamp
			}
			continue
		}
		if last, ok := l.touchedAt[e.KeyID]; ok && e.Timestamp.Sub(last) < l.o.TouchInterval {
			continue
		}
		touched[e.KeyID] = e.Timestamp
	}
	wctx, cancel := context.WithTimeout(ctx, l.o.WriteTimeout)
	defer cancel()
	err := l.w.WriteRequestLogs(wctx, batch)
	if err == nil {
		err = l.w.AddUsage(wctx, store.CountUsage(batch), touched)
	}
	if err != nil {
		// Not retried: the buffer keeps filling meanwhile, and a batch the store refuses once (a bug,
		// a full disk) would block every later one. The loss is counted and said.
		l.failed.Add(uint64(len(batch)))
		l.log.Error("request log: a batch could not be written; its entries are lost", "entries", len(batch), "err", err)
	} else {
		// Only once written: a batch that failed leaves its keys to be touched by the next one.
		for k, t := range touched {
			l.touchedAt[k] = t
		}
	}
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

// housekeep forgets last-used times older than the touch interval (they no longer hold a write back,
// and the map would otherwise grow with every key ever used), and reports new drops.
func (l *Logger) housekeep() {
	now := l.o.Now()
	if now.Sub(l.lastSweep) >= l.o.TouchInterval {
		for k, t := range l.touchedAt {
			if now.Sub(t) >= l.o.TouchInterval {
				delete(l.touchedAt, k)
			}
		}
		l.lastSweep = now
	}
	if d := l.Dropped(); d > l.droppedShown {
		l.log.Warn("request log: entries dropped because the buffer was full; the store is too slow or down",
			"dropped", d-l.droppedShown, "total", d, "buffer", l.o.BufferSize)
		l.droppedShown = d
	}
}

// Longest text fields kept, in bytes.
const (
	maxMethod    = 32
	maxPath      = 1024
	maxIP        = 64
	maxUserAgent = 512
)

// clean returns s as valid UTF-8 without NUL bytes, cut to at most max bytes on a character boundary.
// The common case, already clean, costs no allocation.
func clean(s string, max int) string {
	if len(s) <= max && utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}
