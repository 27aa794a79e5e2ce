package verify

import (
	"fmt"
	"runtime"
	"slices"
	"testing"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/credits"
)

// TestPlanOneAllocation: a key's plan lists its limits in the order names resolve (the key's
// default, its named ones, its identity's), each under its limiter key, and its charges; the common
// plan is one allocation and one string of limiter keys, a larger one has its limits apart, and the
// cache's weight counts what each holds.
func TestPlanOneAllocation(t *testing.T) {
	named := func(prefix string, n int) []keyplane.NamedRateLimit {
		var ls []keyplane.NamedRateLimit
		for i := range n {
			ls = append(ls, keyplane.NamedRateLimit{Name: fmt.Sprintf("%s%d", prefix, i), Limit: int64(10 + i), WindowMs: 1000, AutoApply: i == 0})
		}
		return ls
	}
	key := func(own, identity int) *keyplane.APIKey {
		return &keyplane.APIKey{ID: "apk_1", WorkspaceID: "ws_1", RateLimit: &keyplane.RateLimit{Limit: 5, WindowMs: 1000},
			RateLimits: named("k", own), Credits: &keyplane.Credits{Remaining: 100, Epoch: 3},
			Identity: &keyplane.Identity{ID: "idn_1", WorkspaceID: "ws_1", Credits: &keyplane.Credits{Remaining: 9, Epoch: 4},
				RateLimits: named("i", identity)}}
	}
	for _, c := range []struct {
		own, identity int
		allocs        float64
	}{{2, 1, 2}, {1, 0, 2}, {0, 0, 1}, {3, 3, 3}} {
		t.Run(fmt.Sprintf("%d+%d", c.own, c.identity), func(t *testing.T) {
			k := key(c.own, c.identity)
			p := newPlan(k)
			var names, keys []string
			for _, l := range p.limits {
				names, keys = append(names, l.name), append(keys, l.key)
			}
			wantNames, wantKeys := []string{keyplane.DefaultLimitName}, []string{"apk_1"}
			for _, l := range k.RateLimits {
				wantNames, wantKeys = append(wantNames, l.Name), append(wantKeys, "apk_1:"+l.Name)
			}
			for _, l := range k.Identity.RateLimits {
				wantNames, wantKeys = append(wantNames, l.Name), append(wantKeys, "idn_1:"+l.Name)
			}
			if !slices.Equal(names, wantNames) || !slices.Equal(keys, wantKeys) {
				t.Fatalf("limits %q under %q, want %q under %q", names, keys, wantNames, wantKeys)
			}
			if l := p.limits[len(p.limits)-1]; c.identity > 0 && (l.lim.Limit != int64(10+c.identity-1) || l.auto != (c.identity == 1)) {
				t.Fatalf("the identity's last limit is %+v", l)
			}
			want := []credits.Charge{{Account: keyplane.CreditAccount{WorkspaceID: "ws_1", KeyID: "apk_1"}, Epoch: 3},
				{Account: keyplane.CreditAccount{WorkspaceID: "ws_1", IdentityID: "idn_1"}, Epoch: 4}}
			if !slices.Equal(p.charges, want) {
				t.Fatalf("charges %+v, want %+v", p.charges, want)
			}
			if got := testing.AllocsPerRun(100, func() { newPlan(k) }); got != c.allocs {
				t.Errorf("a plan takes %v allocations, want %v", got, c.allocs)
			}
			// The weight against the heap that many such plans take.
			const n = 10_000
			plans := make([]*plan, n)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			for i := range plans {
				plans[i] = newPlan(k)
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			per := float64(after.HeapAlloc-before.HeapAlloc) / n
			runtime.KeepAlive(plans)
			if w := float64(p.weight()); w < 0.8*per || w > 1.25*per {
				t.Errorf("weight %v for %d limits, the heap grew %.0f bytes a plan", w, len(p.limits), per)
			}
		})
	}
	if newPlan(&keyplane.APIKey{ID: "apk_2", RateLimit: &keyplane.RateLimit{Limit: 1, WindowMs: 1000}}) != nil {
		t.Error("a key with only its default limit has a plan")
	}
}
