package service_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/store/storetest"
)

// BenchmarkKeyWrites measures key creation and revocation through the service on a store on disk
// (SQLite in the test's temporary directory, which must not be a tmpfs for the number to mean
// anything): each one a transaction with its audit entry and event, and on SQLite one commit of the
// single writer. "serial" is one caller; "parallel" is 16 callers per core at once, whose commits
// queue on the writer.
//
//	go test -run '^$' -bench 'KeyWrites/sqlite' -benchtime 1000x -count 3 ./internal/service/
func BenchmarkKeyWrites(b *testing.B) {
	// sqlite-normal is the setting before issue 14 (synchronous NORMAL on the writer's one
	// connection), for a comparison in the same run on the same disk.
	for _, d := range append(storetest.Drivers(), "sqlite-normal") {
		b.Run(d, func(b *testing.B) {
			ctx := context.Background()
			svc, st := newService(b, strings.TrimSuffix(d, "-normal"))
			if strings.HasSuffix(d, "-normal") {
				w := st.(interface{ SQLDB() *sql.DB }).SQLDB()
				if _, err := w.ExecContext(ctx, "PRAGMA synchronous = NORMAL"); err != nil {
					b.Fatal(err)
				}
			}
			sys := keyplane.System("bench")
			w, err := svc.CreateWorkspace(ctx, sys, service.WorkspaceInput{Name: "Bench", Slug: "bench",
				MaxKeys: keyplane.Some(keyplane.MaxMaxKeys), LiveModeEnabled: keyplane.Some(true)})
			if err != nil {
				b.Fatal(err)
			}
			create := func() *keyplane.APIKey {
				k, _, err := svc.CreateAPIKey(ctx, sys, w.ID, service.CreateKeyInput{Name: "k", KeyType: keyplane.KeyTypeSecret})
				if err != nil {
					panic(fmt.Sprintf("create: %v", err)) // b.Fatal may not run on RunParallel's goroutines
				}
				return k
			}
			for _, par := range []bool{false, true} {
				mode := "serial"
				if par {
					mode = "parallel"
				}
				run := func(b *testing.B, op func(i int)) {
					b.ReportAllocs()
					if !par {
						for i := range b.N {
							op(i)
						}
						return
					}
					b.SetParallelism(16)
					var next atomic.Int64
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							op(int(next.Add(1) - 1))
						}
					})
				}
				b.Run("create/"+mode, func(b *testing.B) {
					run(b, func(int) { create() })
				})
				b.Run("revoke/"+mode, func(b *testing.B) {
					b.StopTimer()
					keys := make([]*keyplane.APIKey, b.N)
					for i := range keys {
						keys[i] = create()
					}
					b.StartTimer()
					run(b, func(i int) {
						if _, err := svc.RevokeAPIKey(ctx, sys, w.ID, keys[i].ID); err != nil {
							panic(fmt.Sprintf("revoke: %v", err))
						}
					})
				})
			}
		})
	}
}
