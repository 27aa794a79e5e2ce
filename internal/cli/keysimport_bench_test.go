package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/store/storetest"
)

// BenchmarkImport is the import budget's measure (docs/performance.md): `keyplane keys import` of a
// JSONL file of 100,000 keys (KEYPLANE_IMPORT_KEYS to change it) into an empty workspace, once per
// iteration, on SQLite and on PostgreSQL. It reports keys/s and the seconds a run took; the budget is
// 100,000 keys in under 60 s on each. Run it alone:
//
//	go test -run '^$' -bench BenchmarkImport -benchtime 1x ./internal/cli
func BenchmarkImport(b *testing.B) {
	n := 100_000
	if v := os.Getenv("KEYPLANE_IMPORT_KEYS"); v != "" {
		fmt.Sscan(v, &n)
	}
	file := filepath.Join(b.TempDir(), "keys.jsonl")
	writeImportFile(b, file, n)
	for _, driver := range storetest.Drivers() {
		b.Run(driver, func(b *testing.B) {
			var total time.Duration
			for range b.N {
				b.StopTimer()
				dataDir, dbURL := b.TempDir(), ""
				if driver == "postgres" {
					dbURL = storetest.PostgresURL(b)
				}
				p := &Program{Stdin: strings.NewReader(""), Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{},
					Getenv: func(k string) string {
						switch k {
						case "KEYPLANE_DATA_DIR":
							return dataDir
						case "KEYPLANE_DATABASE_URL":
							return dbURL
						}
						return ""
					}}
				ws := importWorkspace(b, p, n)
				b.StartTimer()
				started := time.Now()
				if err := p.Run(context.Background(), []string{"keys", "import", "--workspace", ws, "--file", file}); err != nil {
					b.Fatalf("keys import: %v\n%s%s", err, p.Stdout, p.Stderr)
				}
				took := time.Since(started)
				total += took
				b.StopTimer()
				if want := fmt.Sprintf("imported %d keys, 0 failed", n); !strings.Contains(p.Stdout.(*bytes.Buffer).String(), want) {
					b.Fatalf("keys import: %s, want %q", p.Stdout, want)
				}
				b.Logf("%s: %d keys in %s, %.0f keys/s", driver, n, took.Round(time.Millisecond), float64(n)/took.Seconds())
			}
			b.ReportMetric(float64(n*b.N)/total.Seconds(), "keys/s")
			b.ReportMetric(total.Seconds()/float64(b.N), "s/import")
		})
	}
}

// importWorkspace makes a workspace that holds n keys, through the service as the CLI opens it.
func importWorkspace(b *testing.B, p *Program, n int) string {
	ctx := context.Background()
	cfg, err := p.parse("keys import", false, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	e, err := p.open(ctx, cfg, openOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer e.store.Close()
	w, err := e.svc.CreateWorkspace(ctx, keyplane.System("bench"), service.WorkspaceInput{Name: "Import", Slug: "import",
		MaxKeys: keyplane.Optional[int]{Set: true, Value: max(n, 20)}})
	if err != nil {
		b.Fatal(err)
	}
	return w.ID
}

// writeImportFile writes n keys as a platform would export them: a value of its own format, a name,
// the environment and a little meta.
func writeImportFile(b *testing.B, path string, n int) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	for i := range n {
		fmt.Fprintf(w, `{"value": "legacy_live_%s", "name": "customer %d", "environment": "live", "meta": {"customer": %d, "plan": "pro"}, "createdAt": "2023-01-02T03:04:05Z"}`+"\n",
			strings.ToLower(rand.Text()), i, i)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
}
