package throttle

import (
	"sync"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	l := New(3, 15*time.Minute, 100, clock)
	for i := 0; i < 2; i++ {
		l.Fail("a")
	}
	if b, _ := l.Blocked("a"); b {
		t.Fatal("blocked after 2 of 3 failures")
	}
	l.Fail("a")
	b, wait := l.Blocked("a")
	if !b || wait != 15*time.Minute {
		t.Fatalf("after 3 failures: blocked %v, wait %v", b, wait)
	}
	if b, _ := l.Blocked("b"); b {
		t.Fatal("another key is blocked")
	}
	mu.Lock()
	now = now.Add(10 * time.Minute)
	mu.Unlock()
	if b, wait := l.Blocked("a"); !b || wait != 5*time.Minute {
		t.Fatalf("10 minutes in: blocked %v, wait %v", b, wait)
	}
	mu.Lock()
	now = now.Add(5 * time.Minute)
	mu.Unlock()
	if b, _ := l.Blocked("a"); b {
		t.Fatal("still blocked after the window")
	}
	l.Reset("a")
	l.Fail("c")
	l.Fail("c")
	l.Fail("c")
	l.Reset("c")
	if b, _ := l.Blocked("c"); b {
		t.Fatal("blocked after a reset")
	}
}

func TestConcurrentFailuresAllCount(t *testing.T) {
	l := New(1000, time.Hour, 10, nil)
	var wg sync.WaitGroup
	for i := 0; i < 1000; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); l.Fail("k") }()
	}
	wg.Wait()
	if b, _ := l.Blocked("k"); !b {
		t.Fatal("1000 concurrent failures did not reach a limit of 1000")
	}
}
