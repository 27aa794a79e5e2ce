package throttle

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyplane/keyplane/internal/redistest"
)

// counters are the Counter implementations under test, each with a budget of 5 per minute.
func counters(t *testing.T) map[string]Counter {
	return map[string]Counter{
		"process": New(5, time.Minute, 100, nil),
		"redis":   NewRedis(redistest.Client(t), uniqueName(), 5, time.Minute, 100, nil),
	}
}

// TestTake: the first five attempts are allowed, the sixth is refused as the first of the lock (the
// one a lock is recorded on), the rest are refused and not first; an attempt given back makes room
// for one more, and refused attempts count, so that giving one back does not reopen the lock.
func TestTake(t *testing.T) {
	ctx := context.Background()
	for name, c := range counters(t) {
		t.Run(name, func(t *testing.T) {
			for i := range 5 {
				if tk := c.Take(ctx, "k"); !tk.Allowed || tk.First {
					t.Fatalf("attempt %d: %+v", i+1, tk)
				}
			}
			c.Give(ctx, "k")
			if tk := c.Take(ctx, "k"); !tk.Allowed {
				t.Fatalf("after one was given back: %+v", tk)
			}
			tk := c.Take(ctx, "k")
			if tk.Allowed || !tk.First || tk.Wait <= 55*time.Second || tk.Wait > time.Minute {
				t.Fatalf("sixth attempt: %+v; want refused, first, about a minute to wait", tk)
			}
			if blocked, _ := c.Blocked(ctx, "k"); !blocked {
				t.Fatal("not blocked after a refused take")
			}
			for range 3 {
				if tk := c.Take(ctx, "k"); tk.Allowed || tk.First {
					t.Fatalf("a later attempt: %+v", tk)
				}
			}
			c.Give(ctx, "k")
			if tk := c.Take(ctx, "k"); tk.Allowed || tk.First {
				t.Fatalf("after giving back one of the refused: %+v", tk)
			}
			if tk := c.Take(ctx, "other"); !tk.Allowed {
				t.Fatalf("another key: %+v", tk)
			}
			c.Give(ctx, "never taken") // makes no counter, and no negative budget
			for range 5 {
				if tk := c.Take(ctx, "never taken"); !tk.Allowed {
					t.Fatal("a give without a take added to the budget or broke the key")
				}
			}
			if tk := c.Take(ctx, "never taken"); tk.Allowed {
				t.Fatal("a give without a take added to the budget")
			}
			c.Reset(ctx, "k")
			if tk := c.Take(ctx, "k"); !tk.Allowed {
				t.Fatalf("after a reset: %+v", tk)
			}
		})
	}
}

// TestTakeConcurrent: of 40 attempts taken at once, exactly 5 are allowed and exactly one is the
// first refusal, in process and in Redis (two nodes' counters on one Redis).
func TestTakeConcurrent(t *testing.T) {
	ctx := context.Background()
	cs := counters(t)
	r := cs["redis"].(*Redis)
	cs["two nodes on one Redis"] = twoNodes{r, NewRedis(r.client, r.prefix[len("keyplane:throttle:"):len(r.prefix)-1], 5, time.Minute, 100, nil)}
	for name, c := range cs {
		t.Run(name, func(t *testing.T) {
			key := "concurrent-" + name
			var allowed, first atomic.Int32
			var wg sync.WaitGroup
			startc := make(chan struct{})
			for range 40 {
				wg.Go(func() {
					<-startc
					tk := c.Take(ctx, key)
					if tk.Allowed {
						allowed.Add(1)
					}
					if tk.First {
						first.Add(1)
					}
				})
			}
			close(startc)
			wg.Wait()
			if allowed.Load() != 5 || first.Load() != 1 {
				t.Fatalf("%d allowed, %d first; want 5 and 1", allowed.Load(), first.Load())
			}
		})
	}
}

// twoNodes alternates between two counters on one Redis, as two nodes behind a load balancer.
type twoNodes struct{ a, b *Redis }

var flip atomic.Int32

func (n twoNodes) pick() *Redis {
	if flip.Add(1)%2 == 0 {
		return n.a
	}
	return n.b
}
func (n twoNodes) Blocked(ctx context.Context, k string) (bool, time.Duration) {
	return n.pick().Blocked(ctx, k)
}
func (n twoNodes) Fail(ctx context.Context, k string)       { n.pick().Fail(ctx, k) }
func (n twoNodes) Take(ctx context.Context, k string) Taken { return n.pick().Take(ctx, k) }
func (n twoNodes) Give(ctx context.Context, k string)       { n.pick().Give(ctx, k) }
func (n twoNodes) Reset(ctx context.Context, k string)      { n.pick().Reset(ctx, k) }

// TestTakeNewWindow: when a window ends, the next attempt starts a new one with a full budget, and
// its lock is recorded again (a new first refusal).
func TestTakeNewWindow(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	l := New(2, 15*time.Minute, 100, clock)
	l.Take(ctx, "k")
	l.Take(ctx, "k")
	if tk := l.Take(ctx, "k"); tk.Allowed || !tk.First || tk.Wait != 15*time.Minute {
		t.Fatalf("third attempt: %+v", tk)
	}
	mu.Lock()
	now = now.Add(15 * time.Minute)
	mu.Unlock()
	for i := range 2 {
		if tk := l.Take(ctx, "k"); !tk.Allowed {
			t.Fatalf("attempt %d of the new window: %+v", i+1, tk)
		}
	}
	if tk := l.Take(ctx, "k"); tk.Allowed || !tk.First {
		t.Fatalf("the new window's lock: %+v", tk)
	}
}

// TestGiveAfterCancel: an attempt given back by a caller whose request has ended (a client gone
// mid-hash) is given back all the same, and a reset from such a caller resets.
func TestGiveAfterCancel(t *testing.T) {
	for name, c := range counters(t) {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			for range 5 {
				c.Take(ctx, "k")
			}
			cancel()
			c.Give(ctx, "k")
			if tk := c.Take(context.Background(), "k"); !tk.Allowed {
				t.Fatalf("the attempt given back after the caller's end still counts: %+v", tk)
			}
			c.Reset(ctx, "k")
			for i := range 5 {
				if tk := c.Take(context.Background(), "k"); !tk.Allowed {
					t.Fatalf("attempt %d after a reset from an ended caller: %+v", i+1, tk)
				}
			}
		})
	}
}
