package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/id"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/store/sqlite"
	"github.com/keyplane/keyplane/internal/store/sqlstore"
	"github.com/keyplane/keyplane/internal/store/storetest"
	"github.com/keyplane/keyplane/internal/store/storetest/upgradecheck"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return storetest.Open(t, "sqlite") })
}

func TestReopenKeepsData(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "keyplane.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC)
	w := &keyplane.Workspace{ID: "ws_1", Name: "A", Slug: "a", MaxKeys: 1, CreatedAt: now, UpdatedAt: now}
	if err := s.InTx(ctx, w.ID, func(tx store.Tx) error { return tx.CreateWorkspace(ctx, w) }); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Migrations run again on an up-to-date file without harm.
	s, err = sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	if got, err := s.GetWorkspace(ctx, w.ID); err != nil || got.Slug != "a" {
		t.Errorf("GetWorkspace after reopen = %+v, %v", got, err)
	}
	var mode string
	if err := s.SQLDB().QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
	var fk int
	if err := s.SQLDB().QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil || fk != 1 {
		t.Errorf("foreign_keys = %d, %v; want 1", fk, err)
	}
	// The readers share readerCache between them, and each keeps at least SQLite's default of 2,000.
	var pages int
	if err := s.ReadSQLDB().QueryRowContext(ctx, "PRAGMA cache_size").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if want := -max(2000, 12288/max(4, runtime.GOMAXPROCS(0))); pages != want {
		t.Errorf("the readers' cache_size = %d, want %d", pages, want)
	}
	if err := s.LogSQLDB().QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("the request log's journal_mode = %q, %v; want wal", mode, err)
	}
	// The setting is the connection's, not the file's: a data dir written before keys committed
	// with FULL gets it on its next start, with no migration.
	var sync int
	if err := s.SQLDB().QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil || sync != 2 {
		t.Errorf("synchronous = %d, %v; want 2 (FULL)", sync, err)
	}
}

// TestTwoHandlesOneFile has two stores on one file, as when a CLI command runs beside the server,
// append to one audit chain at once. Transactions that begin IMMEDIATE wait for each other (up to
// busy_timeout); deferred ones would fail to upgrade their read to a write.
func TestTwoHandlesOneFile(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "keyplane.db")
	var stores []store.Store
	for range 2 {
		s, err := sqlite.Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		stores = append(stores, s)
	}
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		s := stores[i%2]
		wg.Go(func() {
			errs <- s.InTx(ctx, "ws_1", func(tx store.Tx) error {
				seq, _, err := tx.LastAudit(ctx, "ws_1")
				if err != nil {
					return err
				}
				time.Sleep(time.Millisecond)
				return tx.InsertAudit(ctx, &keyplane.AuditEntry{
					ID: fmt.Sprintf("aud_%d", seq+1), WorkspaceID: "ws_1", Seq: seq + 1, Body: []byte("{}"),
				})
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("InTx: %v", err)
		}
	}
	if seq, _, err := stores[0].LastAudit(ctx, "ws_1"); err != nil || seq != n {
		t.Errorf("LastAudit = %d, %v; want %d", seq, err, n)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	for _, path := range []string{
		"",
		filepath.Join(dir, "missing", "keyplane.db"), // the caller makes the directory
		filepath.Join(dir, "odd?name.db"),
		":memory:",
	} {
		if s, err := sqlite.Open(ctx, path); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", path)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "missing")); !os.IsNotExist(err) {
		t.Errorf("Open made the missing directory: %v", err)
	}
}

// TestImportRestoresPageCache: an import enlarges the writer's page cache only while it runs.
func TestImportRestoresPageCache(t *testing.T) {
	ctx := t.Context()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "keyplane.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cacheSize := func() int64 {
		var n int64
		if err := db.SQLDB().QueryRowContext(ctx, "PRAGMA cache_size").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := cacheSize()
	now := time.Now().UTC().Truncate(time.Microsecond)
	w := &keyplane.Workspace{ID: "ws_01", Name: "W", Slug: "w", MaxKeys: 20, TestKeyTTLSeconds: 259200, LiveModeEnabled: true, CreatedAt: now, UpdatedAt: now}
	if err := db.InTx(ctx, w.ID, func(tx store.Tx) error { return tx.CreateWorkspace(ctx, w) }); err != nil {
		t.Fatal(err)
	}
	k := keyplane.APIKey{ID: "apk_01", WorkspaceID: w.ID, Name: "k", KeyType: keyplane.KeyTypeSecret, Environment: keyplane.EnvLive,
		Prefix: "kp_sk_live_", Enabled: true, CreatedAt: now, UpdatedAt: now, CreatedBy: keyplane.System("test").Actor}
	sec := keyplane.Secret{Hash: make([]byte, 32), KeyID: k.ID, WorkspaceID: w.ID, CreatedAt: now}
	if err := db.ImportAPIKeys(ctx, []keyplane.APIKey{k}, []keyplane.Secret{sec}); err != nil {
		t.Fatal(err)
	}
	if after := cacheSize(); after != before {
		t.Errorf("cache_size after an import = %d, want %d as before", after, before)
	}
}

// TestSynchronousPerTransaction reads, from inside each transaction, the durability its commit has:
// keys, audit entries and events commit with synchronous FULL (2), which waits for the WAL to reach
// the disk, so that a power cut cannot take back an acknowledged revocation; only the request log's
// batches (in their own file), the last-used times and the webhook workers' bookkeeping commit with
// NORMAL (1), and the main file's writer is FULL again after one. Temporary triggers on each file's
// one writer connection record the setting as each row goes in.
func TestSynchronousPerTransaction(t *testing.T) {
	ctx := t.Context()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "keyplane.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	w, lw := db.SQLDB(), db.LogSQLDB()
	for _, h := range []*sql.DB{w, lw} {
		if n := h.Stats().MaxOpenConnections; n != 1 {
			t.Fatalf("a writer has up to %d connections; the triggers below see only one", n)
		}
	}
	level := func(h *sql.DB) int {
		t.Helper()
		var n int
		if err := h.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := level(w); n != 2 {
		t.Fatalf("the writer opens with synchronous = %d, want 2 (FULL)", n)
	}
	if n := level(lw); n != 1 {
		t.Fatalf("the request log's writer opens with synchronous = %d, want 1 (NORMAL)", n)
	}
	for _, h := range []*sql.DB{w, lw} {
		stmts := []string{"CREATE TEMP TABLE seen (tbl TEXT NOT NULL, level TEXT NOT NULL)"}
		for _, tbl := range storetest.DurabilityTables {
			var n int
			if err := h.QueryRowContext(ctx, "SELECT COUNT(*) FROM main.sqlite_schema WHERE type = 'table' AND name = ?", tbl).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				continue // in the other file
			}
			for _, op := range []string{"INSERT", "UPDATE"} {
				stmts = append(stmts, fmt.Sprintf(`CREATE TEMP TRIGGER seen_%[1]s_%[2]s AFTER %[2]s ON main.%[1]s
					BEGIN INSERT INTO seen SELECT '%[1]s', CAST(synchronous AS TEXT) FROM pragma_synchronous; END`, tbl, op))
			}
		}
		for _, s := range stmts {
			if _, err := h.ExecContext(ctx, s); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
	}
	seen := func() map[string][]string {
		t.Helper()
		if n := level(w); n != 2 {
			t.Errorf("between transactions the writer has synchronous = %d, want 2 (FULL)", n)
		}
		got := map[string][]string{}
		for _, h := range []*sql.DB{w, lw} {
			rows, err := h.QueryContext(ctx, "SELECT tbl, level FROM seen ORDER BY rowid")
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var tbl, v string
				if err := rows.Scan(&tbl, &v); err != nil {
					t.Fatal(err)
				}
				got[tbl] = append(got[tbl], v)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			rows.Close()
			if _, err := h.ExecContext(ctx, "DELETE FROM seen"); err != nil {
				t.Fatal(err)
			}
		}
		return got
	}
	storetest.CheckDurability(t, db, storetest.Durability{Full: "2", Log: "1", Hooks: "1"}, seen)
}

// TestKeysDoNotWaitForTheLog holds a transaction of the request log open, with a row written and so
// the log file's write lock taken, and creates a workspace and a key meanwhile: the creation
// completes, because keys and the log share neither a connection nor a lock. With the log in the
// main file it would wait for the log's transaction, which ends only after it (or after a minute).
func TestKeysDoNotWaitForTheLog(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	db, err := sqlite.Open(ctx, filepath.Join(dir, "keyplane.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := os.Stat(filepath.Join(dir, sqlite.LogFileName)); err != nil {
		t.Fatalf("the request log's file: %v", err)
	}
	logTx, err := db.LogSQLDB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer logTx.Rollback()
	if _, err := logTx.ExecContext(ctx, `INSERT INTO request_log_blocks (workspace_id, last_id, first_id, entries, data)
		VALUES ('ws_held', 'req_held', 'req_held', 0, x'010000')`); err != nil {
		t.Fatal(err)
	}

	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	now := time.Now().UTC().Truncate(time.Microsecond)
	w := &keyplane.Workspace{ID: "ws_1", Name: "A", Slug: "a", MaxKeys: 1, CreatedAt: now, UpdatedAt: now}
	k := &keyplane.APIKey{ID: "apk_1", WorkspaceID: w.ID, Name: "k", KeyType: keyplane.KeyTypeSecret, Environment: keyplane.EnvLive,
		Prefix: "kp_sk_live_", Enabled: true, CreatedAt: now, UpdatedAt: now, CreatedBy: keyplane.System("test").Actor}
	err = db.InTx(cctx, w.ID, func(tx store.Tx) error {
		if err := tx.CreateWorkspace(cctx, w); err != nil {
			return err
		}
		if err := tx.InsertAPIKey(cctx, k); err != nil {
			return err
		}
		return tx.InsertSecret(cctx, &keyplane.Secret{Hash: make([]byte, 32), KeyID: k.ID, WorkspaceID: w.ID, CreatedAt: now})
	})
	if err != nil {
		t.Fatalf("a key's creation while the log's writer is held: %v", err)
	}
	// A second process's store (the CLI beside the server) is not held up either.
	other, err := sqlite.Open(cctx, filepath.Join(dir, "keyplane.db"))
	if err != nil {
		t.Fatalf("open beside a held log: %v", err)
	}
	defer other.Close()
	if got, err := other.GetAPIKey(cctx, w.ID, k.ID); err != nil || got.ID != k.ID {
		t.Fatalf("the key, read by another store: %+v, %v", got, err)
	}
	if err := logTx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// TestNoOverspendAcrossHandles: two stores on one file (keyplane serve beside another process) take
// credits of one balance at once without ever taking more than it held.
func TestNoOverspendAcrossHandles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyplane.db")
	var stores []store.Store
	for range 2 {
		s, err := sqlite.Open(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		stores = append(stores, s)
	}
	storetest.CheckNoOverspend(t, stores...)
}

// logRows counts the rows of a table of the request log's file.
func logRows(t *testing.T, db *sqlstore.DB, table string) (n int) {
	t.Helper()
	if err := db.LogSQLDB().QueryRowContext(t.Context(), "SELECT COUNT(*) FROM "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPruneRemovesKeyRows: pruning a block removes its rows of request_log_keys and its key filter with
// it, however many keys it holds (more than one statement's worth here), so that neither outgrows the
// log.
func TestPruneRemovesKeyRows(t *testing.T) {
	ctx := t.Context()
	_, db := openFile(t)
	old := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	var entries []keyplane.RequestLog
	for i := range 300 {
		ts := old.Add(time.Duration(i) * time.Millisecond)
		entries = append(entries, keyplane.RequestLog{ID: id.NewAt(id.Request, ts), WorkspaceID: "ws_1",
			KeyID: fmt.Sprintf("apk_%d", i), Code: keyplane.VerifyValid, Source: keyplane.SourceVerify, Timestamp: ts})
	}
	if err := db.WriteRequestLogs(ctx, entries); err != nil {
		t.Fatal(err)
	}
	count := func() int { return logRows(t, db, "request_log_keys") }
	if n := count(); n != 300 {
		t.Fatalf("%d key rows before pruning, want 300", n)
	}
	if n, err := db.PruneRequestLogs(ctx, old.Add(time.Hour), 1000); err != nil || n != 300 {
		t.Fatalf("PruneRequestLogs = %d, %v; want 300", n, err)
	}
	if n := count(); n != 0 {
		t.Errorf("%d key rows left after their block was pruned", n)
	}
	if filters := logRows(t, db, "request_log_filters"); filters != 0 {
		t.Errorf("%d key filters left after their block was pruned", filters)
	}
}

// TestKeyRowsPerSpan: a key used in every minute of a key span, a batch a minute, has one row of
// request_log_keys for the span; rows of a version that wrote one per minute, beside it, list no entry
// twice; and pruning by spans takes the span's rows of either kind, and leaves the next span's.
func TestKeyRowsPerSpan(t *testing.T) {
	ctx := t.Context()
	_, db := openFile(t)
	start := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC) // a span's start: a multiple of five minutes
	var want []string
	for m := range 7 { // minutes 0–4 of one span, 5–6 of the next
		ts := start.Add(time.Duration(m)*time.Minute + 10*time.Second)
		e := keyplane.RequestLog{ID: id.NewAt(id.Request, ts), WorkspaceID: "ws_1", KeyID: "apk_a",
			Code: keyplane.VerifyValid, Source: keyplane.SourceVerify, Timestamp: ts}
		if err := db.WriteRequestLogs(ctx, []keyplane.RequestLog{e}); err != nil {
			t.Fatal(err)
		}
		want = append([]string{e.ID}, want...)
	}
	count := func() int { return logRows(t, db, "request_log_keys") }
	if n := count(); n != 2 {
		t.Fatalf("%d key rows, want 2: one per span", n)
	}
	for _, m := range []int{1, 3, 6} {
		if _, err := db.LogSQLDB().ExecContext(ctx, `INSERT INTO request_log_keys (workspace_id, key_id, last_id) VALUES ('ws_1', 'apk_a', ?)`,
			id.Floor(id.Request, start.Add(time.Duration(m)*time.Minute))); err != nil {
			t.Fatal(err)
		}
	}
	for _, limit := range []int{1, 3, 100} {
		if got := upgradecheck.KeyLogIDs(ctx, t, db, "ws_1", "apk_a", limit); !slices.Equal(got, want) {
			t.Errorf("%d a page: %v, want %v", limit, got, want)
		}
	}
	if n, err := db.PruneRequestLogs(ctx, start.Add(7*time.Minute), 1000); err != nil || n != 5 {
		t.Fatalf("PruneRequestLogs = %d, %v; want the 5 entries of the first span", n, err)
	}
	if n := count(); n != 2 {
		t.Errorf("%d key rows after pruning the first span, want the second span's 2", n)
	}
	if got := upgradecheck.KeyLogIDs(ctx, t, db, "ws_1", "apk_a", 100); !slices.Equal(got, want[:2]) {
		t.Errorf("after pruning: %v, want %v", got, want[:2])
	}
}

// TestOldKeyRows: rows of request_log_keys as the version before 2026-12-05 wrote them (one per key
// and block, holding the block's last_id) still find the key's entries, page by page, and go when
// their blocks are pruned.
func TestOldKeyRows(t *testing.T) {
	ctx := t.Context()
	_, db := openFile(t)
	minute := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	var want []string
	for b := range 3 { // three blocks of one minute
		ts := minute.Add(time.Duration(b) * 25 * time.Second)
		var batch []keyplane.RequestLog
		for i := range 4 {
			e := keyplane.RequestLog{ID: id.NewAt(id.Request, ts.Add(time.Duration(i)*time.Millisecond)), WorkspaceID: "ws_1",
				KeyID: []string{"apk_a", "apk_b"}[i%2], Code: keyplane.VerifyValid, Source: keyplane.SourceVerify, Timestamp: ts.Add(time.Duration(i) * time.Millisecond)}
			batch = append(batch, e)
			if e.KeyID == "apk_a" {
				want = append([]string{e.ID}, want...)
			}
		}
		if err := db.WriteRequestLogs(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.LogSQLDB().ExecContext(ctx, q, args...); err != nil {
			t.Fatal(err)
		}
	}
	exec(`DELETE FROM request_log_keys`)
	exec(`INSERT INTO request_log_keys (workspace_id, key_id, last_id) SELECT workspace_id, 'apk_a', last_id FROM request_log_blocks`)
	exec(`INSERT INTO request_log_keys (workspace_id, key_id, last_id) SELECT workspace_id, 'apk_b', last_id FROM request_log_blocks`)
	for _, limit := range []int{1, 2, 100} {
		if got := upgradecheck.KeyLogIDs(ctx, t, db, "ws_1", "apk_a", limit); !slices.Equal(got, want) {
			t.Errorf("%d a page: %v, want %v", limit, got, want)
		}
	}
	if n, err := db.PruneRequestLogs(ctx, minute.Add(time.Hour), 1000); err != nil || n != 12 {
		t.Fatalf("PruneRequestLogs = %d, %v; want 12", n, err)
	}
	if n := logRows(t, db, "request_log_keys"); n != 0 {
		t.Errorf("%d key rows left after their blocks were pruned", n)
	}
}

// TestKeyPageSkipsBlocksByFilter: one key's page decodes only the blocks of its minutes whose key
// filter may hold it (the others are made undecodable here: reading one would fail the page), still
// decodes a block without a filter (one written before filters), and goes past rows of
// request_log_keys that name no minute, more of them than one read takes.
func TestKeyPageSkipsBlocksByFilter(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, db := openFile(t)
	minute := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	var lastIDs, want []string
	for b, keys := range [][]string{{"apk_b"}, {"apk_a", "apk_b"}, {"apk_b"}} {
		var batch []keyplane.RequestLog
		for i, k := range keys {
			ts := minute.Add(time.Duration(b)*10*time.Second + time.Duration(i)*time.Millisecond)
			e := keyplane.RequestLog{ID: id.NewAt(id.Request, ts), WorkspaceID: "ws_1", KeyID: k,
				Code: keyplane.VerifyValid, Source: keyplane.SourceVerify, Timestamp: ts}
			batch = append(batch, e)
			if k == "apk_a" {
				want = append(want, e.ID)
			}
		}
		if err := db.WriteRequestLogs(ctx, batch); err != nil {
			t.Fatal(err)
		}
		lastIDs = append(lastIDs, batch[len(batch)-1].ID)
	}
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.LogSQLDB().ExecContext(ctx, q, args...); err != nil {
			t.Fatal(err)
		}
	}
	list := func(what string) {
		t.Helper()
		page, _, err := db.ListRequestLogs(ctx, "ws_1", store.LogFilter{KeyID: "apk_a", Limit: 10})
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		var got []string
		for _, e := range page {
			got = append(got, e.ID)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s: %v, want %v", what, got, want)
		}
	}
	list("as written")
	for _, last := range []string{lastIDs[0], lastIDs[2]} {
		exec(`UPDATE request_log_blocks SET data = x'ff' WHERE last_id = ?`, last)
	}
	list("the blocks without the key undecodable")
	exec(`DELETE FROM request_log_filters WHERE last_id = ?`, lastIDs[1])
	list("the key's block without a filter")
	for i := range 70 {
		exec(`INSERT INTO request_log_keys (workspace_id, key_id, last_id) VALUES ('ws_1', 'apk_a', ?)`, fmt.Sprintf("zz_%02d", i))
	}
	list("after 70 rows that name no minute")
}
