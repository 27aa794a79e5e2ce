package verify_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"testing"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/keyformat"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/service/servicetest"
	"github.com/keyplane/keyplane/internal/verify"
)

func digest(i uint64) [32]byte {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], i)
	return sha256.Sum256(b[:])
}

// TestFilterNoFalseNegativesAndRate: every digest added is found, through several growths, and the
// rate of digests never added that are found stays near the target.
func TestFilterNoFalseNegativesAndRate(t *testing.T) {
	const rate = 0.01
	for _, tc := range []struct {
		name          string
		capacity, add int
	}{
		{"within capacity", 100_000, 100_000},
		{"grown eight times over", 10_000, 300_000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := verify.NewFilter(tc.capacity, rate)
			for i := range tc.add {
				f.Add(digest(uint64(i)))
			}
			for i := range tc.add {
				if !f.Has(digest(uint64(i))) {
					t.Fatalf("digest %d was added and is not found", i)
				}
			}
			const probes = 200_000
			fp := 0
			for i := range probes {
				if f.Has(digest(uint64(1<<40 + i))) {
					fp++
				}
			}
			got := float64(fp) / probes
			t.Logf("%d digests, %d KiB, false-positive rate %.4f", tc.add, f.Bytes()>>10, got)
			if got > rate {
				t.Errorf("false-positive rate %.4f, want at most %.2f", got, rate)
			}
		})
	}
}

// TestFilterSize: a million digests take 1–3 MiB.
func TestFilterSize(t *testing.T) {
	f := verify.NewFilter(1<<20, 0.01)
	for i := range 1_000_000 {
		f.Add(digest(uint64(i)))
	}
	if n := f.Bytes(); n < 1<<20 || n > 3<<20 {
		t.Fatalf("%d bytes for a million digests, want 1–3 MiB", n)
	}
}

// TestFilterConcurrentAddHas: a digest whose Add has returned is found by every Has after, while
// other goroutines add and the filter grows.
func TestFilterConcurrentAddHas(t *testing.T) {
	f := verify.NewFilter(1024, 0.01)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20_000 {
				h := digest(uint64(g<<32 | i))
				f.Add(h)
				if !f.Has(h) {
					t.Errorf("goroutine %d: digest %d not found right after its Add", g, i)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestFilterAnswersUnknownWithoutRead: with a filter, a key never stored answers NOT_FOUND without a
// store read and is not cached; a key made through the service (which admits its digest) verifies.
func TestFilterAnswersUnknownWithoutRead(t *testing.T) {
	f, _ := feedSetup(t, "sqlite", verify.Options{Filter: verify.NewFilter(1024, 0.01)})
	f.ver.FeedUp()
	_, v := f.key(t)
	if c := f.verifyCode(t, v); c != keyplane.VerifyValid {
		t.Fatalf("a key made through the service: %s", c)
	}
	reads := f.st.lookups.Load()
	for range 1000 {
		if c := f.verifyCode(t, keyformat.Generate("kp", "sk", "live")); c != keyplane.VerifyNotFound {
			t.Fatalf("never issued: %s", c)
		}
	}
	// At a rate under 1 %, a thousand made-up keys cost a few reads at most.
	if n := f.st.lookups.Load() - reads; n > 30 {
		t.Fatalf("%d store reads for 1000 made-up keys", n)
	}
	if n := f.ver.Filtered(); n < 970 {
		t.Fatalf("filtered %d, want most of 1000", n)
	}
	if _, _, size := f.ver.CacheStats(); size > 31 {
		t.Fatalf("%d entries cached: made-up keys the filter refused must not fill the cache", size)
	}
}

// TestCreateThenVerifyStorm: many goroutines make keys through the service and verify each at once,
// while others flood the verifier with made-up keys: no key that exists is ever NOT_FOUND.
func TestCreateThenVerifyStorm(t *testing.T) {
	f, _ := feedSetup(t, "sqlite", verify.Options{Filter: verify.NewFilter(1024, 0.01)})
	f.ver.FeedUp()
	ctx := context.Background()
	const creators, each = 8, 25
	if _, err := f.svc.UpdateWorkspace(ctx, keyplane.System("test"), f.ws, service.WorkspacePatch{MaxKeys: keyplane.Optional[int]{Set: true, Value: creators * each}}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var flood sync.WaitGroup
	for range 2 {
		flood.Add(1)
		go func() {
			defer flood.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				f.ver.Verify(ctx, keyformat.Generate("kp", "sk", "live"), req)
			}
		}()
	}
	var wg sync.WaitGroup
	for g := range creators {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				_, v, err := f.svc.CreateAPIKey(ctx, keyplane.System("test"), f.ws, service.CreateKeyInput{Name: "k", KeyType: keyplane.KeyTypeSecret})
				if err != nil {
					t.Errorf("create: %v", err)
					return
				}
				if r, err := f.ver.Verify(ctx, v, &keyplane.VerifyRequest{}); err != nil || r.Code != keyplane.VerifyValid {
					t.Errorf("creator %d, key %d, verified at once: %s %v", g, i, r.Code, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	flood.Wait()
}

// BenchmarkFilter: Has of digests never added (the flood's case, which stops at the first clear
// bit) and of digests added (every probe), and Add, with a million digests in the filter.
func BenchmarkFilter(b *testing.B) {
	f := verify.NewFilter(1<<20, 0.01)
	for i := range 1_000_000 {
		f.Add(digest(uint64(i)))
	}
	absent := make([][32]byte, 1<<16)
	for i := range absent {
		absent[i] = digest(uint64(1<<40 + i))
	}
	b.Run("Has/absent", func(b *testing.B) {
		i := 0
		for b.Loop() {
			f.Has(absent[i&(1<<16-1)])
			i++
		}
	})
	b.Run("Has/present", func(b *testing.B) {
		present := make([][32]byte, 1<<16)
		for i := range present {
			present[i] = digest(uint64(i * 7))
		}
		b.ResetTimer()
		i := 0
		for b.Loop() {
			if !f.Has(present[i&(1<<16-1)]) {
				b.Fatal("false negative")
			}
			i++
		}
	})
	b.Run("Add", func(b *testing.B) {
		g := verify.NewFilter(1<<20, 0.01)
		i := 0
		for b.Loop() {
			g.Add(absent[i&(1<<16-1)])
			i++
		}
	})
}

// TestDropFilter: once the filter is dropped (the journal lost rows, so it may lack digests), every
// miss reads the store again, and a key it never learned verifies.
func TestDropFilter(t *testing.T) {
	f, _ := feedSetup(t, "sqlite", verify.Options{Filter: verify.NewFilter(1024, 0.01)})
	f.ver.FeedUp()
	// A key stored behind the filter's back, as one whose journal row was lost would be.
	_, v, err := servicetest.New(t, f.st.Store, service.Options{Catalog: f.svc.Catalog()}).
		CreateAPIKey(context.Background(), keyplane.System("test"), f.ws, service.CreateKeyInput{Name: "unseen", KeyType: keyplane.KeyTypeSecret, Permissions: []string{"orders:read"}})
	if err != nil {
		t.Fatal(err)
	}
	if c := f.verifyCode(t, v); c != keyplane.VerifyNotFound {
		t.Fatalf("a key the filter never learned, filter in use: %s (the test's premise)", c)
	}
	f.ver.DropFilter()
	if c := f.verifyCode(t, v); c != keyplane.VerifyValid {
		t.Fatalf("after DropFilter: %s, want VALID", c)
	}
}
