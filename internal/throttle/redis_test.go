package throttle

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keyplane/keyplane/internal/redistest"
)

func uniqueName() string {
	var b [6]byte
	rand.Read(b[:])
	return "test-" + hex.EncodeToString(b[:])
}

// TestRedisSharedAcrossNodes: two nodes' counters on one Redis share one budget of failures, one
// window, and one reset; Redis holds digests, not what is counted.
func TestRedisSharedAcrossNodes(t *testing.T) {
	ctx := context.Background()
	c := redistest.Client(t)
	name := uniqueName()
	a := NewRedis(c, name, 5, time.Minute, 100, nil)
	b := NewRedis(c, name, 5, time.Minute, 100, nil)
	const who = "ana@example.com"
	for i := range 4 {
		n := a
		if i%2 == 1 {
			n = b
		}
		n.Fail(ctx, who)
	}
	for _, n := range []*Redis{a, b} {
		if blocked, _ := n.Blocked(ctx, who); blocked {
			t.Fatal("blocked after 4 of 5 failures")
		}
	}
	b.Fail(ctx, who)
	for _, n := range []*Redis{a, b} {
		blocked, wait := n.Blocked(ctx, who)
		if !blocked || wait <= 55*time.Second || wait > time.Minute {
			t.Fatalf("after 5 failures on two nodes: blocked %v, wait %v", blocked, wait)
		}
	}
	if blocked, _ := a.Blocked(ctx, "bo@example.com"); blocked {
		t.Fatal("another account is blocked")
	}
	keys, err := c.Keys(ctx, "keyplane:throttle:"+name+":*").Result()
	if err != nil || len(keys) != 1 || strings.Contains(keys[0], "ana") {
		t.Fatalf("Redis keys %v, %v: want one digest", keys, err)
	}
	a.Reset(ctx, who)
	if blocked, _ := b.Blocked(ctx, who); blocked {
		t.Fatal("still blocked on the other node after a reset")
	}
}

// TestRedisConcurrentFailuresAllCount: failures sent at once from many goroutines all count.
func TestRedisConcurrentFailuresAllCount(t *testing.T) {
	ctx := context.Background()
	c := redistest.Client(t)
	r := NewRedis(c, uniqueName(), 50, time.Minute, 100, nil)
	var wg sync.WaitGroup
	for range 49 {
		wg.Go(func() { r.Fail(ctx, "k") })
	}
	wg.Wait()
	if blocked, _ := r.Blocked(ctx, "k"); blocked {
		t.Fatal("blocked after 49 of 50")
	}
	r.Fail(ctx, "k")
	if blocked, _ := r.Blocked(ctx, "k"); !blocked {
		t.Fatal("not blocked after 50 of 50")
	}
}

// TestRedisDownCountsLocally: with Redis unreachable the node counts on its own (the limit still
// holds on it) and logs that once.
func TestRedisDownCountsLocally(t *testing.T) {
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	var logs bytes.Buffer
	var mu sync.Mutex
	w := writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return logs.Write(p) })
	r := NewRedis(c, uniqueName(), 3, time.Minute, 100, slog.New(slog.NewTextHandler(w, nil)))
	for range 3 {
		r.Fail(ctx, "k")
	}
	if blocked, _ := r.Blocked(ctx, "k"); !blocked {
		t.Fatal("not blocked after 3 of 3 failures with Redis down")
	}
	mu.Lock()
	defer mu.Unlock()
	if n := strings.Count(logs.String(), "Redis cannot be reached"); n != 1 {
		t.Errorf("logged %d times, want once:\n%s", n, logs.String())
	}
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
