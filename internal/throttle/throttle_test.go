package throttle

import (
	"context"
	"sync"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	l := New(3, 15*time.Minute, 100, clock)
	for i := 0; i < 2; i++ {
		l.Fail(ctx, "a")
	}
	if b, _ := l.Blocked(ctx, "a"); b {
		t.Fatal("blocked after 2 of 3 failures")
	}
	l.Fail(ctx, "a")
	b, wait := l.Blocked(ctx, "a")
	if !b || wait != 15*time.Minute {
		t.Fatalf("after 3 failures: blocked %v, wait %v", b, wait)
	}
	if b, _ := l.Blocked(ctx, "b"); b {
		t.Fatal("another key is blocked")
	}
	mu.Lock()
	now = now.Add(10 * time.Minute)
	mu.Unlock()
	if b, wait := l.Blocked(ctx, "a"); !b || wait != 5*time.Minute {
		t.Fatalf("10 minutes in: blocked %v, wait %v", b, wait)
	}
	mu.Lock()
	now = now.Add(5 * time.Minute)
	mu.Unlock()
	if b, _ := l.Blocked(ctx, "a"); b {
		t.Fatal("still blocked after the window")
	}
	l.Reset(ctx, "a")
	l.Fail(ctx, "c")
	l.Fail(ctx, "c")
	l.Fail(ctx, "c")
	l.Reset(ctx, "c")
	if b, _ := l.Blocked(ctx, "c"); b {
		t.Fatal("blocked after a reset")
	}
}

func TestConcurrentFailuresAllCount(t *testing.T) {
	ctx := context.Background()
	l := New(1000, time.Hour, 10, nil)
	var wg sync.WaitGroup
	for i := 0; i < 1000; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); l.Fail(ctx, "k") }()
	}
	wg.Wait()
	if b, _ := l.Blocked(ctx, "k"); !b {
		t.Fatal("1000 concurrent failures did not reach a limit of 1000")
	}
}
