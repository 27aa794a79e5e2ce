package storetest_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/bench"
	"github.com/keyplane/keyplane/internal/id"
	"github.com/keyplane/keyplane/internal/keyformat"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/store/storetest"
)

// BenchmarkLogZipf is the request log's writes on a log that is already large, for a population of
// many keys used unevenly: 100,000 keys in 100 workspaces, picked Zipf-like (s = 1.1), 400,000
// entries written before the timer starts. One op is one entry, written in batches of 500 with the
// batch's counts added to the rollups right after (AddUsage without last-used times, which live with
// the keys and are not what the log's layout changes). Where inserts land decides what it costs: at
// the end of the table, or all over it.
//
//	go test -run '^$' -bench LogZipf -benchtime 50000x ./internal/store/storetest/
func BenchmarkLogZipf(b *testing.B) {
	const (
		keys       = 100_000
		workspaces = 100
		prefill    = 400_000
		batchSize  = 500
	)
	for _, driver := range storetest.Drivers() {
		b.Run(driver, func(b *testing.B) {
			st := storetest.Open(b, driver)
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(1, 2))
			zipf := rand.NewZipf(rng, 1.1, 1, keys-1)
			keyIDs := make([]string, keys)
			wsIDs := make([]string, keys)
			for i := range keyIDs {
				keyIDs[i] = fmt.Sprintf("apk_%026d", i)
				wsIDs[i] = fmt.Sprintf("ws_%026d", i%workspaces)
			}
			// A fixed permutation, so that the busy keys are spread over the key space.
			perm := rng.Perm(keys)
			start := time.Now().Add(-time.Hour)
			n := 0
			write := func(count int) {
				batch := make([]keyplane.RequestLog, 0, batchSize)
				for done := 0; done < count; done += len(batch) {
					batch = batch[:0]
					for range min(batchSize, count-done) {
						k := perm[zipf.Uint64()]
						// About 10,000 entries a second of the log's time.
						ts := start.Add(time.Duration(n) * 100 * time.Microsecond)
						n++
						batch = append(batch, keyplane.RequestLog{ID: id.NewAt(id.Request, ts), WorkspaceID: wsIDs[k],
							KeyID: keyIDs[k], Code: keyplane.VerifyValid, Source: keyplane.SourceVerify, Method: "POST",
							Path: "/v1/verify", IP: "203.0.113.9", UserAgent: "acme-backend/2.3", LatencyMicros: 120, Timestamp: ts})
					}
					if err := st.WriteRequestLogs(ctx, batch); err != nil {
						b.Fatal(err)
					}
					if err := st.AddUsage(ctx, store.CountUsage(batch), nil); err != nil {
						b.Fatal(err)
					}
				}
			}
			write(prefill)
			b.ResetTimer()
			write(b.N)
		})
	}
}

// BenchmarkLogKeyPage is a page of one key's log in a busy workspace: 10,000 keys used Zipf-like
// (s = 1.1), ten minutes of 1,000 entries a second in batches of 200 (a block every 200 ms, 300 a
// minute), then pages of 50 of the busiest key, of a key in the middle, and of one in the tail.
//
//	go test -run '^$' -bench LogKeyPage ./internal/store/storetest/
func BenchmarkLogKeyPage(b *testing.B) {
	const (
		keys      = 10_000
		minutes   = 10
		perSecond = 1000
		batchSize = 200
	)
	for _, driver := range storetest.Drivers() {
		b.Run(driver, func(b *testing.B) {
			st := storetest.Open(b, driver)
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(5, 6))
			zipf := rand.NewZipf(rng, 1.1, 1, keys-1)
			ws := id.New(id.Workspace)
			start := time.Now().UTC().Truncate(time.Minute).Add(-time.Hour)
			total := minutes * 60 * perSecond
			uses := make([]int, keys)
			batch := make([]keyplane.RequestLog, 0, batchSize)
			for n := 0; n < total; {
				batch = batch[:0]
				for range batchSize {
					k := int(zipf.Uint64())
					uses[k]++
					ts := start.Add(time.Duration(n) * time.Second / perSecond)
					n++
					batch = append(batch, keyplane.RequestLog{ID: id.NewAt(id.Request, ts), WorkspaceID: ws,
						KeyID: fmt.Sprintf("apk_%026d", k), Code: keyplane.VerifyValid, Source: keyplane.SourceVerify, Method: "POST",
						Path: "/v1/verify", IP: "203.0.113.9", UserAgent: "acme-backend/2.3", LatencyMicros: 120, Timestamp: ts})
				}
				if err := st.WriteRequestLogs(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			// The tail: the least used key with at least 50 uses... or fewer: whatever the mix gave.
			mid, tail := 0, 0
			for k := range uses {
				if uses[k] >= 50 && uses[k] < uses[mid] || uses[mid] < 50 {
					mid = k
				}
				if uses[k] > 0 && (uses[tail] == 0 || uses[k] < uses[tail]) {
					tail = k
				}
			}
			for _, c := range []struct {
				name string
				key  int
			}{{"busiest", 0}, {"middle", mid}, {"tail", tail}} {
				b.Run(fmt.Sprintf("%s-%d-uses", c.name, uses[c.key]), func(b *testing.B) {
					f := store.LogFilter{KeyID: fmt.Sprintf("apk_%026d", c.key), Limit: 50}
					for b.Loop() {
						page, _, err := st.ListRequestLogs(ctx, ws, f)
						if err != nil || len(page) != min(50, uses[c.key]) {
							b.Fatalf("%d entries, %v; want %d", len(page), err, min(50, uses[c.key]))
						}
					}
				})
			}
		})
	}
}

// BenchmarkTouchKeys is the usage writer's moving of last-used times on a store of many keys: one op
// is one flush that moves the last use of 20,000 of 300,000 keys, picked uniformly (what a node
// serving a uniform mix over 100,000 keys moves every few seconds). Where the times live decides
// what it costs: spread over the keys' wide rows, or together in a narrow table.
//
//	go test -run '^$' -bench TouchKeys -benchtime 20x ./internal/store/storetest/
func BenchmarkTouchKeys(b *testing.B) {
	const (
		keys    = 300_000
		touched = 20_000
	)
	for _, driver := range storetest.Drivers() {
		b.Run(driver, func(b *testing.B) {
			st := storetest.Open(b, driver)
			ctx := context.Background()
			now := time.Now().UTC().Truncate(time.Millisecond)
			ws := benchWorkspace(b, st, "touch", keys, now)
			ids := make([]string, 0, keys)
			for start := 0; start < keys; start += 10_000 {
				batch := make([]keyplane.APIKey, 0, 10_000)
				secrets := make([]keyplane.Secret, 0, 10_000)
				at := now.Add(time.Duration(start/10_000) * time.Millisecond)
				for i := start; i < start+10_000; i++ {
					k := keyplane.APIKey{ID: id.NewAt(id.APIKey, at), WorkspaceID: ws.ID, Name: fmt.Sprintf("key %d", i),
						KeyType: keyplane.KeyTypeSecret, Environment: keyplane.EnvLive, Prefix: "kp_sk_live_",
						Start: "kp_sk_live_AbC4", End: "x9Qz", Enabled: true, Permissions: []string{}, IPAllowlist: []string{},
						AllowedOrigins: []string{}, Meta: []byte(`{}`), CreatedAt: at, UpdatedAt: at,
						CreatedBy: keyplane.Actor{Type: keyplane.ActorSystem, ID: "bench"}}
					h := make([]byte, 32)
					copy(h, fmt.Sprintf("%032d", i))
					batch = append(batch, k)
					secrets = append(secrets, keyplane.Secret{Hash: h, KeyID: k.ID, WorkspaceID: ws.ID, CreatedAt: at})
					ids = append(ids, k.ID)
				}
				if err := st.ImportAPIKeys(ctx, batch, secrets); err != nil {
					b.Fatal(err)
				}
			}
			rng := rand.New(rand.NewPCG(1, 2))
			b.ResetTimer()
			for i := range b.N {
				at := now.Add(time.Duration(i+1) * time.Second)
				touch := make(map[string]time.Time, touched)
				for _, k := range pickDistinct(rng, ids, touched) {
					touch[k] = at
				}
				if err := st.AddUsage(ctx, nil, touch); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAddUsage is the usage writer's flush of hourly counts: one op adds one count to each of
// 20,000 keys of 300,000, picked uniformly, in the current hour (what a node serving a uniform mix
// over 100,000 keys writes every few seconds): inserts at first, then mostly updates.
//
//	go test -run '^$' -bench AddUsage -benchtime 20x ./internal/store/storetest/
func BenchmarkAddUsage(b *testing.B) {
	const (
		keys    = 300_000
		counted = 20_000
	)
	for _, driver := range storetest.Drivers() {
		b.Run(driver, func(b *testing.B) {
			st := storetest.Open(b, driver)
			ctx := context.Background()
			now := time.Now().UTC()
			ids := make([]string, keys)
			for i := range ids {
				ids[i] = id.NewAt(id.APIKey, now)
			}
			rng := rand.New(rand.NewPCG(1, 2))
			b.ResetTimer()
			for range b.N {
				counts := make([]store.UsageCount, 0, counted)
				for _, k := range pickDistinct(rng, ids, counted) {
					counts = append(counts, store.UsageCount{WorkspaceID: "ws_bench", KeyID: k, Hour: now,
						Code: keyplane.VerifyValid, Requests: 1})
				}
				if err := st.AddUsage(ctx, counts, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLookupSecret is the read of a key by its secret's digest, with every column:
// LookupSecret of keys picked at random among 10,000 live secret keys as `keyplane bench` seeds them
// (bench.Seed). The keys' pages fit the store's cache, so this is the read's own work, without the
// disk's.
//
//	go test -run '^$' -bench 'LookupSecret|VerificationKey' ./internal/store/storetest/
func BenchmarkLookupSecret(b *testing.B) {
	benchKeyReads(b, func(ctx context.Context, st store.Store, h []byte) (*keyplane.APIKey, error) {
		k, _, err := st.LookupSecret(ctx, h)
		return k, err
	})
}

// BenchmarkVerificationKey is a verification's read of a key it has not cached: as
// BenchmarkLookupSecret, with only the columns a verification reads. What the cache saves on every
// later request.
func BenchmarkVerificationKey(b *testing.B) {
	benchKeyReads(b, func(ctx context.Context, st store.Store, h []byte) (*keyplane.APIKey, error) {
		k, _, err := st.VerificationKey(ctx, h)
		return k, err
	})
}

func benchKeyReads(b *testing.B, read func(ctx context.Context, st store.Store, h []byte) (*keyplane.APIKey, error)) {
	const keys = 10_000
	for _, driver := range storetest.Drivers() {
		b.Run(driver, func(b *testing.B) {
			st := storetest.Open(b, driver)
			ctx := context.Background()
			w := benchWorkspace(b, st, "bench", keys, time.Now().UTC().Truncate(time.Millisecond))
			values, err := bench.Seed(ctx, st, "kp", []string{w.ID}, keys)
			if err != nil {
				b.Fatal(err)
			}
			digests := make([][]byte, len(values))
			for i, v := range values {
				h := keyformat.Hash(v)
				digests[i] = h[:]
			}
			rng := rand.New(rand.NewPCG(1, 2))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				// As verify reads: on a context of its own, with a deadline (verify.read).
				rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				k, err := read(rctx, st, digests[rng.IntN(keys)])
				cancel()
				if err != nil || k.WorkspaceID != w.ID {
					b.Fatalf("read: %v, %v", k, err)
				}
			}
		})
	}
}

// benchWorkspace creates a workspace of slug, made at now, that may hold maxKeys keys.
func benchWorkspace(b *testing.B, st store.Store, slug string, maxKeys int, now time.Time) *keyplane.Workspace {
	b.Helper()
	w := &keyplane.Workspace{ID: id.NewAt(id.Workspace, now), Name: "Bench " + slug, Slug: slug, MaxKeys: maxKeys,
		TestKeyTTLSeconds: keyplane.DefaultTestKeyTTLSeconds, LiveModeEnabled: true, LeakPolicy: keyplane.DefaultLeakPolicy,
		CreatedAt: now, UpdatedAt: now}
	if err := st.InTx(b.Context(), w.ID, func(tx store.Tx) error { return tx.CreateWorkspace(b.Context(), w) }); err != nil {
		b.Fatal(err)
	}
	return w
}

// pickDistinct returns n distinct elements of ids, drawn uniformly by rng, in the order drawn: the
// keys one flush of the usage writer touches.
func pickDistinct(rng *rand.Rand, ids []string, n int) []string {
	seen := make(map[string]bool, n)
	out := make([]string, 0, n)
	for len(out) < n {
		k := ids[rng.IntN(len(ids))]
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}
