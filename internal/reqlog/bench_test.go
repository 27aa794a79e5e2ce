package reqlog_test

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/id"
	"github.com/keyplane/keyplane/internal/reqlog"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/service/servicetest"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/store/storetest"
	"github.com/keyplane/keyplane/internal/verify"
)

// discard is a Writer that stores nothing: the cost left is the Logger's own.
type discard struct{}

func (discard) WriteRequestLogs(context.Context, []keyplane.RequestLog) error { return nil }

func (discard) AddUsage(context.Context, []store.UsageCount, map[string]time.Time) error { return nil }

// BenchmarkVerifyLogging is the in-process hot path (a cached valid key with an IP allow-list and a
// permission to check) without and with request logging, done as the server does it. Both read the
// clock when the request starts, as the server's access log does for every request whether request
// logging is on or not; logging adds the latency's clock read and one Log. Budget (DESIGN.md):
// logging costs at most 10 %.
//
//   - off: verification alone.
//   - on: with a Logger whose store takes batches at no cost, so that every entry goes through the
//     buffer and the flusher (which competes for the same cores).
//   - on-sqlite: with the real SQLite store behind it. The store cannot keep up with millions of
//     entries a second, so most are dropped (dropped/op says how many), while the writer keeps a
//     core busy.
//   - on-stuck: with a store that never answers, so that the buffer is full and every Log drops:
//     the cost on the verification path alone, without the writer competing for the cores.
//
// At these rates (millions a second, two cores) "on" mostly measures the writer's share of the CPU;
// over HTTP, where a verification costs tens of microseconds, BenchmarkVerifyHTTP in internal/api is
// the budget's measure.
func BenchmarkVerifyLogging(b *testing.B) {
	st := storetest.Open(b, "sqlite")
	ver, err := verify.New(st, verify.Options{KeyPrefix: "kp"})
	if err != nil {
		b.Fatal(err)
	}
	svc := servicetest.New(b, st, service.Options{Catalog: servicetest.Catalog(b, []string{"orders:read"}, nil), Forget: ver.Forget})
	ctx := context.Background()
	sys := keyplane.System("bench")
	w, err := svc.CreateWorkspace(ctx, sys, service.WorkspaceInput{Name: "W", Slug: "w"})
	if err != nil {
		b.Fatal(err)
	}
	_, value, err := svc.CreateAPIKey(ctx, sys, w.ID, service.CreateKeyInput{
		Name: "k", KeyType: keyplane.KeyTypeSecret, Permissions: []string{"orders:read"}, IPAllowlist: []string{"203.0.113.0/24"},
	})
	if err != nil {
		b.Fatal(err)
	}
	req := &keyplane.VerifyRequest{Permissions: []string{"orders:read"}, IP: netip.MustParseAddr("203.0.113.9")}
	if r, err := ver.Verify(ctx, value, req); err != nil || r.Code != keyplane.VerifyValid {
		b.Fatalf("verify: %v %v", r.Code, err)
	}

	b.Run("off", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				start := time.Now()
				if r, _ := ver.Verify(ctx, value, req); r.Code != keyplane.VerifyValid || start.IsZero() {
					b.Fatal(r.Code)
				}
			}
		})
	})
	stuck := stuckWriter(make(chan struct{}))
	defer close(stuck)
	for _, c := range []struct {
		name string
		w    reqlog.Writer
	}{{"on", discard{}}, {"on-sqlite", st}, {"on-stuck", stuck}} {
		b.Run(c.name, func(b *testing.B) {
			l := reqlog.New(c.w, reqlog.Options{})
			if c.name == "on-stuck" {
				// Fill the buffer, and the batch the writer is stuck on, before measuring.
				for range 2 * reqlog.DefaultBufferSize {
					l.Log(keyplane.RequestLog{KeyID: "apk_fill"})
				}
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					start := time.Now()
					r, _ := ver.Verify(ctx, value, req)
					if r.Code != keyplane.VerifyValid {
						b.Fatal(r.Code)
					}
					k := r.Key
					l.Log(keyplane.RequestLog{
						WorkspaceID: k.WorkspaceID, KeyID: k.ID, Code: r.Code, Source: keyplane.SourceVerify,
						Method: "POST", Path: "/v1/verify", IP: "203.0.113.9", UserAgent: "bench",
						LatencyMicros: time.Since(start).Microseconds(), Timestamp: start,
					})
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(l.Dropped())/float64(b.N), "dropped/op")
			if c.name == "on-stuck" {
				return // its writer answers when the benchmark ends; the Logger goes with the process
			}
			if err := l.Close(context.Background()); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// stuckWriter is a Writer that answers only once it is closed.
type stuckWriter chan struct{}

func (s stuckWriter) AddUsage(context.Context, []store.UsageCount, map[string]time.Time) error {
	return nil
}

func (s stuckWriter) WriteRequestLogs(ctx context.Context, _ []keyplane.RequestLog) error {
	select {
	case <-s:
	case <-ctx.Done():
	}
	return nil
}

// BenchmarkStoreBatch is the store's side of the request log: one op is one entry, written in batches
// of the default size (rollups and a last-used time included), as the flusher writes them. Its ns/op
// is the CPU and I/O an entry costs in the background, per database.
func BenchmarkStoreBatch(b *testing.B) {
	for _, driver := range storetest.Drivers() {
		b.Run(driver, func(b *testing.B) {
			st := storetest.Open(b, driver)
			ctx := context.Background()
			sys := keyplane.System("bench")
			svc := servicetest.New(b, st, service.Options{})
			w, err := svc.CreateWorkspace(ctx, sys, service.WorkspaceInput{Name: "W", Slug: "w"})
			if err != nil {
				b.Fatal(err)
			}
			var keys []*keyplane.APIKey
			for range 10 {
				k, _, err := svc.CreateAPIKey(ctx, sys, w.ID, service.CreateKeyInput{Name: "k", KeyType: keyplane.KeyTypeSecret})
				if err != nil {
					b.Fatal(err)
				}
				keys = append(keys, k)
			}
			batch := make([]keyplane.RequestLog, reqlog.DefaultBatchSize)
			start := time.Now()
			b.ResetTimer()
			for done := 0; done < b.N; done += len(batch) {
				batch = batch[:min(reqlog.DefaultBatchSize, b.N-done)]
				for i := range batch {
					ts := start.Add(time.Duration(done+i) * time.Microsecond)
					k := keys[i%len(keys)]
					batch[i] = keyplane.RequestLog{ID: id.NewAt(id.Request, ts), WorkspaceID: w.ID, KeyID: k.ID,
						Code: keyplane.VerifyValid, Source: keyplane.SourceVerify, Method: "POST", Path: "/v1/verify",
						IP: "203.0.113.9", UserAgent: "acme-backend/2.3", LatencyMicros: 120, Timestamp: ts}
				}
				if err := st.WriteRequestLogs(ctx, batch); err != nil {
					b.Fatal(err)
				}
				if err := st.AddUsage(ctx, store.CountUsage(batch), map[string]time.Time{keys[0].ID: start}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLoggerStore is the request log's whole background cost per entry on a real store: one op
// is one entry logged and written, with its usage counted, through a Logger as serve runs it. Entries
// go in rounds of 20,000 (a Logger each, closed at the round's end so that nothing is dropped), spread
// uniformly over the keys, one in ten RATE_LIMITED and the rest VALID. Since usage counts are written every usage interval rather
// than with every batch, a round's counts go in one write at its Close: fewer than a deployment at
// 15,000 entries a second makes in its 5 s (75,000). The keys are ids without rows: a last-used time
// then costs a lookup, not a row update.
func BenchmarkLoggerStore(b *testing.B) {
	const round = 20_000
	codes := []keyplane.VerifyCode{keyplane.VerifyRateLimited, keyplane.VerifyValid, keyplane.VerifyValid, keyplane.VerifyValid,
		keyplane.VerifyValid, keyplane.VerifyValid, keyplane.VerifyValid, keyplane.VerifyValid, keyplane.VerifyValid, keyplane.VerifyValid}
	for _, driver := range storetest.Drivers() {
		for _, keys := range []int{1, 1000, 20_000} {
			b.Run(fmt.Sprintf("%s/keys=%d", driver, keys), func(b *testing.B) {
				st := storetest.Open(b, driver)
				ids := make([]string, keys)
				for i := range ids {
					ids[i] = fmt.Sprintf("apk_bench%06d", i)
				}
				start := time.Now()
				b.ResetTimer()
				for done := 0; done < b.N; {
					n := min(round, b.N-done)
					l := reqlog.New(st, reqlog.Options{BufferSize: 2 * round}) // room for shards filled unevenly
					for i := range n {
						j := done + i
						l.Log(keyplane.RequestLog{WorkspaceID: "ws_bench", KeyID: ids[j%keys], Code: codes[(j/keys)%len(codes)],
							Source: keyplane.SourceVerify, Method: "POST", Path: "/v1/verify", IP: "203.0.113.9",
							UserAgent: "acme-backend/2.3", LatencyMicros: 120, Timestamp: start.Add(time.Duration(j) * time.Microsecond)})
					}
					if err := l.Close(context.Background()); err != nil {
						b.Fatal(err)
					}
					if l.Dropped()+l.Failed() > 0 {
						b.Fatalf("dropped %d, failed %d", l.Dropped(), l.Failed())
					}
					done += n
				}
			})
		}
	}
}
