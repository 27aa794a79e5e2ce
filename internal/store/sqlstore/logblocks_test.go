package sqlstore

import (
	"fmt"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/id"
)

// BenchmarkLogBlocks: a flush's batch of 5,000 entries, of 20 workspaces and 2,000 keys over two
// minutes, made into blocks: the log's share of a verification's allocations.
func BenchmarkLogBlocks(b *testing.B) {
	t0 := time.Date(2026, 12, 5, 10, 0, 30, 0, time.UTC)
	entries := make([]keyplane.RequestLog, 5000)
	for i := range entries {
		ts := t0.Add(time.Duration(i) * 12 * time.Millisecond)
		entries[i] = keyplane.RequestLog{ID: id.NewAt(id.Request, ts), Timestamp: ts,
			WorkspaceID: fmt.Sprintf("ws_%02d", i%20), KeyID: fmt.Sprintf("apk_%04d", (i*7919)%2000),
			Code: keyplane.VerifyValid, Source: keyplane.SourceVerify, Method: "POST", Path: "/v1/verify",
			IP: "127.0.0.1", UserAgent: "wrk", LatencyMicros: 40}
	}
	b.ReportAllocs()
	for b.Loop() {
		if blocks := LogBlocks(entries); len(blocks) != 40 {
			b.Fatalf("%d blocks", len(blocks))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(entries)), "ns/entry")
}
