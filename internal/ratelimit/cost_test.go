package ratelimit

import (
	"context"
	"testing"
	"time"

	"github.com/keyplane/keyplane/internal/redistest"
)

func decideN(t *testing.T, lim Limiter, key string, l Limit, n int64) Decision {
	t.Helper()
	d, err := lim.AllowN(context.Background(), key, l, n)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// costs checks one limiter against 10 per minute with costs: a cost of 4 takes 4 of the burst, a
// cost 0 check takes nothing (and passes while any is left), a cost larger than what is left is
// refused without taking anything, and a cost above the limit is always refused.
func costs(t *testing.T, lim Limiter, key string) {
	t.Helper()
	l := Limit{Limit: 10, Window: time.Minute}
	if d := decideN(t, lim, key, l, 4); !d.Allowed || d.Remaining != 6 {
		t.Fatalf("cost 4: %+v; want allowed, 6 remaining", d)
	}
	for range 3 {
		if d := decideN(t, lim, key, l, 0); !d.Allowed || d.Remaining != 6 {
			t.Fatalf("cost 0: %+v; want allowed, 6 remaining (nothing consumed)", d)
		}
	}
	if d := decideN(t, lim, key, l, 7); d.Allowed || d.RetryAfter <= 0 {
		t.Fatalf("cost 7 of 6 left: %+v; want refused with a retry-after", d)
	}
	if d := decideN(t, lim, key, l, 6); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("cost 6 of 6 left: %+v; want allowed, 0 remaining", d)
	}
	if d := decideN(t, lim, key, l, 0); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("cost 0 at exactly the burst: %+v; want allowed (nothing to consume)", d)
	}
	if d := decideN(t, lim, key, l, 1); d.Allowed {
		t.Fatalf("cost 1 with nothing left: %+v; want refused", d)
	}
	if d := decideN(t, lim, key+"-big", l, 11); d.Allowed {
		t.Fatalf("cost 11 against a limit of 10: %+v; want refused", d)
	}
	// Allow is AllowN with 1.
	if d := decideN(t, lim, key+"-one", l, 1); !d.Allowed || d.Remaining != 9 {
		t.Fatalf("cost 1: %+v; want 9 remaining", d)
	}
	if d := decide(t, lim, key+"-one", l); !d.Allowed || d.Remaining != 8 {
		t.Fatalf("Allow after a cost 1: %+v; want 8 remaining", d)
	}
}

func TestLocalCost(t *testing.T) {
	c := newClock()
	l := NewLocal(c.now)
	costs(t, l, "apk_cost")
	// A refused cost consumed nothing: after one interval (6 s), exactly one more unit is allowed.
	c.add(6 * time.Second)
	lim := Limit{Limit: 10, Window: time.Minute}
	if d := decideN(t, l, "apk_cost", lim, 2); d.Allowed {
		t.Fatalf("cost 2 after one interval: %+v; want refused", d)
	}
	if d := decideN(t, l, "apk_cost", lim, 1); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("cost 1 after one interval: %+v; want allowed, 0 remaining", d)
	}
}

func TestRedisCost(t *testing.T) {
	r, err := NewRedis(RedisOptions{URL: redistest.URL(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	costs(t, r, uniqueKey())
}
