package storetest_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/id"
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
