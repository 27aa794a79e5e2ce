package ratelimit

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyplane/keyplane/internal/redistest"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }
func newClock() *clock               { return &clock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)} }
func decide(t *testing.T, lim Limiter, key string, l Limit) Decision {
	t.Helper()
	d, err := lim.Allow(context.Background(), key, l)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// boundaries checks one limiter against 5 per 10 s: five pass with remaining 4..0, the sixth is
// refused with a retry after 2 s, and the window's end restores the burst. advance moves the
// limiter's clock (for Redis, real time: there the test only checks the first part).
func boundaries(t *testing.T, lim Limiter, key string, advance func(time.Duration)) {
	t.Helper()
	l := Limit{Limit: 5, Window: 10 * time.Second}
	for i := range 5 {
		d := decide(t, lim, key, l)
		if !d.Allowed || d.Remaining != int64(4-i) || d.Limit != 5 {
			t.Fatalf("request %d: %+v; want allowed with %d remaining", i+1, d, 4-i)
		}
	}
	d := decide(t, lim, key, l)
	if d.Allowed || d.Remaining != 0 || d.RetryAfter <= time.Second || d.RetryAfter > 2*time.Second {
		t.Fatalf("request 6: %+v; want refused, retry after about 2s", d)
	}
	if until := time.Until(d.ResetAt); advance == nil && (until <= 8*time.Second || until > 10*time.Second) {
		t.Errorf("reset in %s, want about 10s", until)
	}
	// Another key is counted apart.
	if d := decide(t, lim, key+"-other", l); !d.Allowed || d.Remaining != 4 {
		t.Errorf("another key: %+v", d)
	}
	if advance == nil {
		return
	}
	advance(2 * time.Second) // one interval: one more request
	if d := decide(t, lim, key, l); !d.Allowed || d.Remaining != 0 {
		t.Errorf("after one interval: %+v; want one more allowed", d)
	}
	if d := decide(t, lim, key, l); d.Allowed {
		t.Errorf("two requests after one interval: %+v", d)
	}
	advance(10 * time.Second) // a whole window: the full burst again
	for i := range 5 {
		if d := decide(t, lim, key, l); !d.Allowed {
			t.Fatalf("after a window, request %d refused: %+v", i+1, d)
		}
	}
}

func TestLocalBoundaries(t *testing.T) {
	c := newClock()
	l := NewLocal(c.now)
	boundaries(t, l, "apk_1", c.add)
	// A refused request does not use up anything: after its retry-after exactly one passes.
	lim := Limit{Limit: 1, Window: time.Minute}
	decide(t, l, "one", lim)
	for range 3 {
		if d := decide(t, l, "one", lim); d.Allowed || d.RetryAfter != time.Minute {
			t.Fatalf("refused request: %+v; want retry after exactly 1m (nothing consumed)", d)
		}
	}
	c.add(time.Minute)
	if d := decide(t, l, "one", lim); !d.Allowed {
		t.Errorf("after retry-after: %+v", d)
	}
	// A limit finer than a nanosecond per request does not divide by zero.
	if d := decide(t, l, "fine", Limit{Limit: 1 << 40, Window: time.Second}); !d.Allowed {
		t.Errorf("a very high limit refused: %+v", d)
	}
	// No limit: always allowed.
	if d := decide(t, l, "none", Limit{}); !d.Allowed {
		t.Error("a zero limit refused")
	}
}

// TestLocalExactUnderConcurrency: many goroutines on one key with the clock stopped get exactly the
// limit between them.
func TestLocalExactUnderConcurrency(t *testing.T) {
	c := newClock()
	l := NewLocal(c.now)
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 1000 {
				if d, _ := l.Allow(context.Background(), "hot", Limit{Limit: 1234, Window: time.Hour}); d.Allowed {
					allowed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if allowed.Load() != 1234 {
		t.Errorf("%d requests allowed, want exactly 1234", allowed.Load())
	}
}

func TestLocalSweep(t *testing.T) {
	c := newClock()
	l := NewLocal(c.now)
	for i := range 10000 {
		l.Allow(context.Background(), fmt.Sprint("old-", i), Limit{Limit: 10, Window: time.Second})
	}
	c.add(2 * time.Second) // every old key is back to its full burst
	// Calls on 4096 keys spread over the shards, enough for each shard to sweep.
	for i := range 4 * shards * sweepEvery {
		l.Allow(context.Background(), fmt.Sprint("fresh-", i%4096), Limit{Limit: 1 << 40, Window: time.Hour})
	}
	kept := 0
	for i := range l.shards {
		for k := range l.shards[i].tat {
			if strings.HasPrefix(k, "old-") {
				kept++
			}
		}
	}
	if kept != 0 {
		t.Errorf("%d keys kept after their bursts were restored, want 0", kept)
	}
}

func BenchmarkLocal(b *testing.B) {
	l := NewLocal(nil)
	lim := Limit{Limit: 1 << 40, Window: time.Second}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Allow(context.Background(), "apk_01JDQ4ZV3W6J8Q2T5N7K9M1B3C", lim)
		}
	})
}

func uniqueKey() string {
	var b [8]byte
	rand.Read(b[:])
	return "test-" + hex.EncodeToString(b[:])
}

func TestRedisBoundaries(t *testing.T) {
	u := redistest.URL(t)
	r, err := NewRedis(RedisOptions{URL: u})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	boundaries(t, r, uniqueKey(), nil)
}

// TestRedisExactAcrossNodes: two limiters (two nodes) on one Redis share one limit exactly.
func TestRedisExactAcrossNodes(t *testing.T) {
	u := redistest.URL(t)
	nodes := make([]*Redis, 2)
	for i := range nodes {
		r, err := NewRedis(RedisOptions{URL: u, Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		nodes[i] = r
	}
	key := uniqueKey()
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 100 {
				d, err := nodes[i%2].Allow(context.Background(), key, Limit{Limit: 321, Window: time.Hour})
				if err != nil {
					t.Error(err)
					return
				}
				if d.Allowed {
					allowed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if allowed.Load() != 321 {
		t.Errorf("two nodes allowed %d requests between them, want exactly 321", allowed.Load())
	}
}

// TestRedisDown: with Redis unreachable, decisions are made per node (the limit still holds on each)
// and the log says so once, not per request.
func TestRedisDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	var logs bytes.Buffer
	var mu sync.Mutex
	w := writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return logs.Write(p) })
	r, err := NewRedis(RedisOptions{URL: "redis://" + addr + "/0", Logger: slog.New(slog.NewTextHandler(w, nil)), Timeout: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	l := Limit{Limit: 3, Window: time.Hour}
	allowed := 0
	for range 10 {
		d, err := r.Allow(context.Background(), "k", l)
		if err != nil {
			t.Fatalf("Allow with Redis down: %v", err)
		}
		if d.Allowed {
			allowed++
		}
	}
	if allowed != 3 {
		t.Errorf("with Redis down, %d of 10 allowed; want the limit, 3, held locally", allowed)
	}
	mu.Lock()
	defer mu.Unlock()
	if n := strings.Count(logs.String(), "Redis cannot be reached"); n != 1 {
		t.Errorf("the fallback was logged %d times, want once:\n%s", n, logs.String())
	}
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestRedisUnreachableAskedOncePerInterval: a Redis that accepts connections and never answers (a
// dropped route looks the same) costs one request its timeout per retry interval; the others are
// decided locally at once instead of each waiting for the timeout.
func TestRedisUnreachableAskedOncePerInterval(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			defer c.Close() // held open, never answered
		}
	}()
	r, err := NewRedis(RedisOptions{URL: "redis://" + ln.Addr().String() + "/0", Timeout: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	l := Limit{Limit: 1000, Window: time.Hour}
	for range 50 {
		if _, err := r.Allow(context.Background(), "k", l); err != nil {
			t.Fatal(err)
		}
	}
	// Some of the 50 may straddle one retry interval on a slow machine; 50 connections would mean
	// every request waited.
	if n := accepted.Load(); n < 1 || n > 3 {
		t.Fatalf("%d connections for 50 decisions while Redis hangs, want 1 to 3", n)
	}
}
