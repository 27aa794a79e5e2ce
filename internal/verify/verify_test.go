package verify_test

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/bench"
	"github.com/keyplane/keyplane/internal/keyformat"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/service/servicetest"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/store/storetest"
	"github.com/keyplane/keyplane/internal/verify"
)

// counting passes reads through to a real store and counts the verification reads.
type counting struct {
	store.Store
	lookups atomic.Int64
}

func (c *counting) VerificationKey(ctx context.Context, h []byte) (*keyplane.APIKey, *time.Time, error) {
	c.lookups.Add(1)
	return c.Store.VerificationKey(ctx, h)
}

type fixture struct {
	st  *counting
	ver *verify.Verifier
	svc *service.Service
	ws  string
}

func setup(tb testing.TB, driver string) *fixture {
	tb.Helper()
	st := &counting{Store: storetest.Open(tb, driver)}
	ver, err := verify.New(st, verify.Options{KeyPrefix: "kp"})
	if err != nil {
		tb.Fatal(err)
	}
	svc := servicetest.New(tb, st, service.Options{Catalog: servicetest.Catalog(tb, []string{"orders:read"}, nil), Forget: ver.Forget})
	w, err := svc.CreateWorkspace(context.Background(), keyplane.System("test"), service.WorkspaceInput{Name: "W", Slug: "w"})
	if err != nil {
		tb.Fatal(err)
	}
	return &fixture{st: st, ver: ver, svc: svc, ws: w.ID}
}

func (f *fixture) key(tb testing.TB) (*keyplane.APIKey, string) {
	tb.Helper()
	k, v, err := f.svc.CreateAPIKey(context.Background(), keyplane.System("test"), f.ws, service.CreateKeyInput{
		Name: "k", KeyType: keyplane.KeyTypeSecret, Permissions: []string{"orders:read"}, IPAllowlist: []string{"203.0.113.0/24"},
	})
	if err != nil {
		tb.Fatal(err)
	}
	return k, v
}

var req = &keyplane.VerifyRequest{Permissions: []string{"orders:read"}, IP: netip.MustParseAddr("203.0.113.9")}

func TestCacheAndInvalidation(t *testing.T) {
	for _, d := range storetest.Drivers() {
		t.Run(d, func(t *testing.T) {
			f := setup(t, d)
			ctx := context.Background()
			k, v := f.key(t)
			for i := 0; i < 10; i++ {
				if r, err := f.ver.Verify(ctx, v, req); err != nil || r.Code != keyplane.VerifyValid {
					t.Fatalf("verify: %v %v", r.Code, err)
				}
			}
			if n := f.st.lookups.Load(); n != 1 {
				t.Fatalf("10 verifications of one key read the store %d times, want 1", n)
			}
			if hits, misses, size := f.ver.CacheStats(); hits != 9 || misses != 1 || size < 1 {
				t.Fatalf("cache stats: %d hits, %d misses, %d entries; want 9, 1, ≥1", hits, misses, size)
			}
			// A change made through the service is seen at once, not after the TTL.
			if _, err := f.svc.UpdateAPIKey(ctx, keyplane.System("test"), f.ws, k.ID, service.KeyPatch{Enabled: keyplane.Some(false)}); err != nil {
				t.Fatal(err)
			}
			if r, _ := f.ver.Verify(ctx, v, req); r.Code != keyplane.VerifyDisabled {
				t.Fatalf("after disable: %s", r.Code)
			}
			if _, err := f.svc.RevokeAPIKey(ctx, keyplane.System("test"), f.ws, k.ID); err != nil {
				t.Fatal(err)
			}
			if r, _ := f.ver.Verify(ctx, v, req); r.Code != keyplane.VerifyRevoked {
				t.Fatalf("after revoke: %s", r.Code)
			}
		})
	}
}

func TestUnknownKeysAreCachedAndMalformedNeverRead(t *testing.T) {
	f := setup(t, "sqlite")
	ctx := context.Background()
	unknown := keyformat.Generate("kp", "sk", "live")
	for i := 0; i < 100; i++ {
		if r, err := f.ver.Verify(ctx, unknown, req); err != nil || r.Code != keyplane.VerifyNotFound || r.Key != nil {
			t.Fatalf("unknown: %v %v", r, err)
		}
	}
	if n := f.st.lookups.Load(); n != 1 {
		t.Fatalf("100 verifications of one unknown key read the store %d times, want 1", n)
	}
	for _, bad := range []string{"", "kp_sk_live_x", unknown[:len(unknown)-1] + "0", strings.Repeat("a", 1<<16), keyformat.GenerateRoot("kp"), keyformat.Generate("xx", "sk", "live")} {
		if r, _ := f.ver.Verify(ctx, bad, req); r.Code != keyplane.VerifyNotFound {
			t.Errorf("malformed %.20q: %s", bad, r.Code)
		}
	}
	if n := f.st.lookups.Load(); n != 1 {
		t.Fatalf("malformed values read the store (%d reads)", n)
	}
}

func TestConcurrentMissesCoalesce(t *testing.T) {
	f := setup(t, "sqlite")
	_, v := f.key(t)
	var wg sync.WaitGroup
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r, err := f.ver.Verify(context.Background(), v, req); err != nil || r.Code != keyplane.VerifyValid {
				t.Errorf("verify: %v %v", r.Code, err)
			}
		}()
	}
	wg.Wait()
	if n := f.st.lookups.Load(); n != 1 {
		t.Fatalf("64 concurrent misses read the store %d times, want 1", n)
	}
}

// BenchmarkVerifyCached is the in-process hot path: a valid key already in the cache, with an IP
// allow-list and a permission to check, while the change feed is trusted (an atomic load decides
// the entry is good) and while it is down (the entry's age is checked on the clock). Budget
// (DESIGN.md): ≤ 1 µs/op, ≤ 3 allocs/op.
func BenchmarkVerifyCached(b *testing.B) {
	for _, trusted := range []bool{true, false} {
		name := "feed=down"
		if trusted {
			name = "feed=trusted"
		}
		b.Run(name, func(b *testing.B) {
			f := setup(b, "sqlite")
			if trusted {
				f.ver.FeedUp()
			}
			_, v := f.key(b)
			ctx := context.Background()
			if r, _ := f.ver.Verify(ctx, v, req); r.Code != keyplane.VerifyValid {
				b.Fatal(r.Code)
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if r, _ := f.ver.Verify(ctx, v, req); r.Code != keyplane.VerifyValid {
						b.Fatal(r.Code)
					}
				}
			})
		})
	}
}

// BenchmarkVerifyNeverIssued is a flood of well-formed keys never issued, each new, that the
// membership filter answers (with a million digests in it): no read, nothing cached.
func BenchmarkVerifyNeverIssued(b *testing.B) {
	filter := verify.NewFilter(1<<20, 0.01)
	for i := range 1_000_000 {
		filter.Add(keyformat.Hash(strconv.Itoa(i)))
	}
	st := &counting{Store: storetest.Open(b, "sqlite")}
	ver, err := verify.New(st, verify.Options{KeyPrefix: "kp", Filter: filter})
	if err != nil {
		b.Fatal(err)
	}
	ver.FeedUp()
	keys := make([]string, 1<<16)
	for i := range keys {
		keys[i] = keyformat.Generate("kp", "sk", "live")
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if r, _ := ver.Verify(ctx, keys[i&(1<<16-1)], req); r.Code != keyplane.VerifyNotFound {
			b.Fatal(r.Code)
		}
		i++
	}
	b.ReportMetric(float64(st.lookups.Load())/float64(b.N), "reads/op")
}

// BenchmarkVerifyUnknown is a flood of well-formed unknown keys served from the negative cache.
func BenchmarkVerifyUnknown(b *testing.B) {
	f := setup(b, "sqlite")
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = keyformat.Generate("kp", "sk", "live")
	}
	ctx := context.Background()
	for _, k := range keys {
		f.ver.Verify(ctx, k, req)
	}
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if r, _ := f.ver.Verify(ctx, keys[i&1023], req); r.Code != keyplane.VerifyNotFound {
			b.Fatal(r.Code)
		}
		i++
	}
}

// BenchmarkVerifyMiss is a verification whose digest is not cached: a store read by digest and the
// key's compilation, with KEYPLANE_BENCH_KEYS keys stored (default 1,000,000, seeded through
// ImportAPIKeys as keyplane bench does), each iteration a random one of them. Budget (DESIGN.md):
// ≤ 100 µs on SQLite, ≤ 500 µs on PostgreSQL.
func BenchmarkVerifyMiss(b *testing.B) {
	n := 1_000_000
	if s := os.Getenv("KEYPLANE_BENCH_KEYS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 1 {
			b.Fatalf("KEYPLANE_BENCH_KEYS=%q", s)
		}
	}
	for _, d := range storetest.Drivers() {
		b.Run(d, func(b *testing.B) {
			f := setup(b, d)
			values, err := bench.Seed(context.Background(), f.st, "kp", []string{f.ws}, n)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			rnd := rand.New(rand.NewPCG(1, 2))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				v := values[rnd.IntN(n)]
				if r, err := f.ver.Verify(ctx, v, &keyplane.VerifyRequest{}); err != nil || r.Code != keyplane.VerifyValid {
					b.Fatal(r.Code, err)
				}
				h := keyformat.Hash(v)
				f.ver.Forget(h[:])
			}
		})
	}
}

// Check answers what Verify would, but spends nothing of the key's rate limit: the API authenticates
// management calls with it.
func TestCheckSpendsNoRateLimit(t *testing.T) {
	f := setup(t, "sqlite")
	ctx := context.Background()
	_, v, err := f.svc.CreateAPIKey(ctx, keyplane.System("test"), f.ws, service.CreateKeyInput{
		Name: "limited", KeyType: keyplane.KeyTypeSecret, RateLimit: &keyplane.RateLimit{Limit: 1, WindowMs: 60_000},
	})
	if err != nil {
		t.Fatal(err)
	}
	plain := &keyplane.VerifyRequest{}
	for i := 0; i < 3; i++ {
		if r, err := f.ver.Check(ctx, v, plain); err != nil || r.Code != keyplane.VerifyValid || r.Key == nil || r.Limits.Len() != 0 {
			t.Fatalf("check: %+v %v", r, err)
		}
	}
	if r, _ := f.ver.Verify(ctx, v, plain); r.Code != keyplane.VerifyValid {
		t.Fatalf("the first verification after Check: %s; Check spent the limit", r.Code)
	}
	if r, _ := f.ver.Verify(ctx, v, plain); r.Code != keyplane.VerifyRateLimited {
		t.Fatalf("the second verification: %s", r.Code)
	}
	for _, bad := range []string{keyformat.Generate("kp", "sk", "live"), "kp_sk_live_x", keyformat.GenerateRoot("kp")} {
		if r, err := f.ver.Check(ctx, bad, plain); err != nil || r.Code != keyplane.VerifyNotFound || r.Key != nil {
			t.Errorf("check of %.20q: %+v %v", bad, r, err)
		}
	}
}

// TestRootKeyRevokedAtOnce: root keys are cached by value, and a revocation names the key by its
// digest; the node that revokes refuses the key on its next use, whatever the TTL.
func TestRootKeyRevokedAtOnce(t *testing.T) {
	f := setup(t, "sqlite")
	ctx := context.Background()
	rk, value, err := f.svc.CreateRootKey(ctx, keyplane.System("test"), "ops", []string{keyplane.ScopeAdmin})
	if err != nil {
		t.Fatal(err)
	}
	_, other, err := f.svc.CreateRootKey(ctx, keyplane.System("test"), "other", []string{keyplane.ScopeAdmin})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{value, other} {
		if got, err := f.ver.RootKey(ctx, v); err != nil || got == nil {
			t.Fatalf("root key before revocation: %v, %v", got, err)
		}
	}
	if _, err := f.svc.RevokeRootKey(ctx, keyplane.System("test"), rk.ID); err != nil {
		t.Fatal(err)
	}
	if got, err := f.ver.RootKey(ctx, value); err != nil || got != nil {
		t.Fatalf("revoked root key: %v, %v; want refused", got, err)
	}
	if got, err := f.ver.RootKey(ctx, other); err != nil || got == nil {
		t.Fatalf("another root key after a revocation: %v, %v", got, err)
	}
}

// TestPurgeDropsRootKeys: Purge runs when a node's invalidation feed comes back after a gap, so a
// root key revoked on another node meanwhile must be read again, not trusted for another TTL.
func TestPurgeDropsRootKeys(t *testing.T) {
	for _, d := range storetest.Drivers() {
		t.Run(d, func(t *testing.T) {
			f := setup(t, d)
			ctx := context.Background()
			rk, value, err := f.svc.CreateRootKey(ctx, keyplane.System("test"), "ops", []string{keyplane.ScopeAdmin})
			if err != nil {
				t.Fatal(err)
			}
			k, kv := f.key(t)
			if got, err := f.ver.RootKey(ctx, value); err != nil || got == nil {
				t.Fatalf("root key before revocation: %v, %v", got, err)
			}
			if r, err := f.ver.Verify(ctx, kv, req); err != nil || r.Code != keyplane.VerifyValid {
				t.Fatalf("key before revocation: %v, %v", r.Code, err)
			}
			// Another node revokes both; its notices never reach this one.
			other := servicetest.New(t, f.st, service.Options{Catalog: servicetest.Catalog(t, []string{"orders:read"}, nil)})
			if _, err := other.RevokeRootKey(ctx, keyplane.System("test"), rk.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := other.RevokeAPIKey(ctx, keyplane.System("test"), f.ws, k.ID); err != nil {
				t.Fatal(err)
			}
			if got, _ := f.ver.RootKey(ctx, value); got == nil {
				t.Fatal("the cache did not hold the root key: this test proves nothing")
			}
			f.ver.Purge()
			if got, err := f.ver.RootKey(ctx, value); err != nil || got != nil {
				t.Fatalf("root key revoked during the gap, after Purge: %v, %v; want refused", got, err)
			}
			if r, err := f.ver.Verify(ctx, kv, req); err != nil || r.Code != keyplane.VerifyRevoked {
				t.Fatalf("key revoked during the gap, after Purge: %v, %v; want REVOKED", r.Code, err)
			}
		})
	}
}
