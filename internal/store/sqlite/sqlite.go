// Package sqlite is keyplane's embedded store: two SQLite files, opened with modernc.org/sqlite (no
// cgo). The main file holds everything but the request log; all its writes go through one
// connection, so writers are serialized and every transaction sees the audit chains as of its start;
// reads outside transactions use a separate read-only pool, which WAL lets run alongside the writer.
// The request log and its usage rollups live in a file of their own beside it (LogFileName), with a
// writer and readers of their own, committed with synchronous NORMAL: the log's batches never take
// the keys' write lock nor wait for, or add to, their fsyncs.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/keyplane/keyplane/internal/store/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

//go:embed logmigrations/*.sql
var logMigrations embed.FS

// LogFileName is the request log's database file, in the main file's directory: one keyplane
// database per directory.
const LogFileName = "requestlog.db"

// LogPath returns the path of the request log's file that goes with the main file at path.
func LogPath(path string) string { return filepath.Join(filepath.Dir(path), LogFileName) }

// lastVersionWithLog is the main file's last migration before the request log left it: Open brings
// an older file that far, copies its log into the log's file, then applies the rest (migration 9
// drops the log's tables from the main file).
const lastVersionWithLog = 8

// logPragmas apply to the request log's connections. synchronous NORMAL, in WAL mode, does not sync
// at each commit: a power cut may take back the last commits, never leave one half written or the
// file corrupt, as OFF could should the power fail during a checkpoint. journal_size_limit truncates
// the WAL after a checkpoint, which logWriterPragmas makes rare and so large.
const logPragmas = "_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)" +
	"&_pragma=journal_size_limit(67108864)"

// logWriterPragmas apply to the request log's writer. cache_size (KiB) holds the pages that batches
// keep writing: the newest of each workspace's log, of the busy keys' runs of the key index, and the
// current hour's rollups. 8 MiB since the log went into blocks: 16 MiB cost a node ~20 MiB of RSS
// (SQLite's pages through the modernc allocator) and bought no speed (BenchmarkLogZipf 28.3 and
// 28.0 against 25.4 and 27.7 µs an entry; the 1M-key soak's lag the same, docs/performance.md).
// A checkpoint copies each page changed since the last one back into the file, once however often
// it changed, and syncs the file: every 10,000 frames (about 40 MiB of WAL) rather than SQLite's
// 1,000, the pages that every batch changes (the newest of each workspace's log, the current hour's
// rollups) are copied a tenth as often. On a log of 100,000 keys used Zipf-like that took a third
// off each entry's cost (BenchmarkLogZipf).
const logWriterPragmas = "&_pragma=cache_size(-8192)&_pragma=wal_autocheckpoint(10000)"

// readerCache is the page cache, in KiB, that the main file's readers share, each holding its part.
// A key's lookup goes through three B-trees (the secrets by digest, the keys' id index, the keys'
// table); at SQLite's default of 2 MiB a connection their interior pages did not stay in a reader's
// cache at a million keys, and each lookup read some of them from the OS again. With 3 MiB each, a
// million-key node served uniform traffic over 100,000 keys, most of them not yet cached, at
// 18,300–19,800 verifications a second against 11,000–14,100 (73–80 against 108–134 µs of CPU a
// request), for ~12 MiB more RSS; 4 MiB each was no faster and took 6 MiB more
// (docs/performance.md, "The readers' page cache"). Shared rather than per reader, so that a node
// with many cores, and so many readers, does not multiply it.
const readerCache = 12 << 10

// readerCachePragma is the cache_size of each of n readers of the main file: its share of
// readerCache, never less than SQLite's default.
func readerCachePragma(n int) string {
	return fmt.Sprintf("&_pragma=cache_size(-%d)", max(2000, readerCache/n))
}

// pragmas apply to every connection. busy_timeout covers another process (keyplane migrate, a
// backup) holding the file. synchronous FULL makes a commit wait until the WAL is on disk: with
// NORMAL, a power cut (not a crash of the process, which the page cache survives) could lose commits
// that were already acknowledged, such as a revocation or an audit entry. The request log's batches
// and the webhook workers' bookkeeping lower it for their own transactions (sqlstore's relaxedTx).
const pragmas = "_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)" +
	"&_pragma=synchronous(FULL)"

// Open opens (creating if needed) the database file at path and the request log's file beside it
// (LogPath), and brings both up to date: an older main file's request log and usage rollups are
// moved to the log's file. The directory must exist.
func Open(ctx context.Context, path string) (*sqlstore.DB, error) {
	if path == "" || strings.ContainsAny(path, "?#") || strings.HasPrefix(path, "file:") ||
		strings.HasPrefix(path, ":memory:") {
		// The driver reads parameters after ?; and an in-memory database would not be shared
		// between the writer and the readers.
		return nil, fmt.Errorf("open sqlite: unsupported path %q", path)
	}
	logPath := LogPath(path)
	// BEGIN IMMEDIATE takes the write lock at the start of a transaction rather than at its first
	// write, so a transaction never reads data that another writer is about to change under it.
	// temp_store(memory) keeps statement journals in memory: every multi-row INSERT of the request
	// log keeps one (to undo itself alone should it fail), and on disk that is a temporary file
	// written page by page.
	w, err := openWriter(ctx, path, pragmas)
	if err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	var lw, r, lr *sql.DB
	fail := func(err error) (*sqlstore.DB, error) {
		for _, db := range []*sql.DB{lr, r, lw, w} {
			if db != nil {
				db.Close()
			}
		}
		return nil, err
	}
	if err := migrate(ctx, w, migrations, "migrations", lastVersionWithLog); err != nil {
		return fail(err)
	}
	if lw, err = openWriter(ctx, logPath, logPragmas+logWriterPragmas); err != nil {
		return fail(fmt.Errorf("open the request log: %w", err))
	}
	if err := migrate(ctx, lw, logMigrations, "logmigrations", 0); err != nil {
		return fail(fmt.Errorf("request log: %w", err))
	}
	if err := moveLog(ctx, w, path, logPath); err != nil {
		return fail(err)
	}
	if err := migrate(ctx, w, migrations, "migrations", 0); err != nil {
		return fail(err)
	}
	readers := max(4, runtime.GOMAXPROCS(0))
	if r, err = openReader(ctx, path, pragmas+readerCachePragma(readers), readers); err != nil {
		return fail(fmt.Errorf("open sqlite reader: %w", err))
	}
	// The log is read by people (the API's list, the dashboard's page and charts), not by the
	// verification path: two connections.
	if lr, err = openReader(ctx, logPath, logPragmas, 2); err != nil {
		return fail(fmt.Errorf("open the request log's reader: %w", err))
	}
	db := sqlstore.NewWithLog(dialect(), w, r, sqlstore.New(logDialect(), lw, lr))
	if err := db.MoveLogRows(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// openWriter opens the one connection that writes the file at path.
func openWriter(ctx context.Context, path, pragmas string) (*sql.DB, error) {
	w, err := sql.Open("sqlite", path+"?"+pragmas+"&_txlock=immediate&_pragma=temp_store(memory)")
	if err != nil {
		return nil, err
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, err
	}
	return w, nil
}

// openReader opens a pool of n read-only connections to the file at path.
func openReader(ctx context.Context, path, pragmas string, n int) (*sql.DB, error) {
	r, err := sql.Open("sqlite", path+"?"+pragmas+"&_pragma=query_only(1)")
	if err != nil {
		return nil, err
	}
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	if err := r.PingContext(ctx); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// migrate applies the embedded migrations in dir of fsys to db, a handle on a SQLite database, up to
// version to (0: all of them).
func migrate(ctx context.Context, db *sql.DB, fsys embed.FS, dir string, to int64) error {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return sqlstore.MigrateTo(ctx, db, goose.DialectSQLite3, sub, to)
}

// moveLog copies the request log and the usage rollups of a main file that still holds them (one
// written before they had a file of their own) into the log's file, once: a row of the log file's
// imports, written in the same transaction, says it was done, so that after a crash midway the copy
// is either whole or not made, and made again. Migration 9 of the main file then drops them there.
// The copy's commit waits for the disk (synchronous FULL, on a connection of its own), as the drop's
// will: a power cut between the two must not lose the rows in both files. A main file without the
// tables is left as it is.
func moveLog(ctx context.Context, w *sql.DB, path, logPath string) error {
	var n int
	if err := w.QueryRowContext(ctx,
		`SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name IN ('request_logs', 'key_usage')`).Scan(&n); err != nil {
		return fmt.Errorf("move the request log: %w", err)
	}
	if n == 0 {
		return nil
	}
	if n != 2 {
		return fmt.Errorf("move the request log: the main file holds %d of its 2 tables", n)
	}
	db, err := sql.Open("sqlite", logPath+"?"+pragmas)
	if err != nil {
		return fmt.Errorf("move the request log: %w", err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("move the request log: %w", err)
	}
	defer conn.Close()
	// Attached to a connection of the log's file, whose transaction begins DEFERRED: BEGIN IMMEDIATE
	// would take the main file's write lock too. Its first statement writes, so it takes the log
	// file's write lock before it reads anything.
	if _, err := conn.ExecContext(ctx, `ATTACH DATABASE ? AS old`, path); err != nil {
		return fmt.Errorf("move the request log: %w", err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `DETACH DATABASE old`)
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("move the request log: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `INSERT INTO main.imports (source, at) VALUES ('main', ?) ON CONFLICT DO NOTHING`,
		time.Now().UnixMicro())
	if err != nil {
		return fmt.Errorf("move the request log: %w", err)
	}
	done, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("move the request log: %w", err)
	}
	if done == 0 {
		// Copied already: a crash came before the drop.
		return nil
	}
	for _, q := range []string{
		// A log file made since the log went into blocks has no such table any more (MoveLogRows
		// dropped it): the rows come into one, and move into blocks when Open goes on.
		`CREATE TABLE IF NOT EXISTS main.request_logs (workspace_id TEXT NOT NULL, id TEXT NOT NULL, key_id TEXT NOT NULL,
			ts INTEGER NOT NULL, code TEXT NOT NULL, source TEXT NOT NULL, method TEXT NOT NULL, path TEXT NOT NULL,
			ip TEXT NOT NULL, user_agent TEXT NOT NULL, latency_us INTEGER NOT NULL, identity_id TEXT NOT NULL DEFAULT '',
			credits_spent INTEGER NOT NULL DEFAULT 0, tags TEXT NOT NULL DEFAULT '[]', PRIMARY KEY (workspace_id, id)) STRICT, WITHOUT ROWID`,
		`INSERT INTO main.request_logs (workspace_id, id, key_id, ts, code, source, method, path, ip, user_agent, latency_us)
			SELECT workspace_id, id, key_id, ts, code, source, method, path, ip, user_agent, latency_us
			FROM old.request_logs`,
		`INSERT INTO main.key_usage (hour, workspace_id, key_id, code, requests)
			SELECT hour, workspace_id, key_id, code, requests FROM old.key_usage`,
	} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("move the request log: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("move the request log: %w", err)
	}
	return nil
}

// dialect describes SQLite to sqlstore. No chain lock is needed: the single writer connection and
// BEGIN IMMEDIATE already serialize every transaction.
func dialect() sqlstore.Dialect {
	return sqlstore.Dialect{
		Name:           "sqlite",
		PrepareBatches: true,
		ImportCacheKiB: 256 << 10,
		// NORMAL, in WAL mode, leaves a commit's frames unsynced until the next FULL commit or
		// checkpoint syncs the WAL: a power cut may lose the last such commits, and frames are
		// checksummed, so it can never lose a FULL commit made before them nor leave one half
		// written.
		RelaxSync: "PRAGMA synchronous = NORMAL",
		// Every commit waits for an fsync of the WAL: concurrent changes share one.
		GroupCommit: true,
		RestoreSync: "PRAGMA synchronous = FULL",
		// Changes go to the journal in the database (migration 00010), which Journal reads.
		Journal:           "INSERT INTO changes (at, hash) VALUES (unixepoch(), ?)",
		JournalPrune:      "DELETE FROM changes WHERE seq IN (SELECT seq FROM changes ORDER BY seq LIMIT ?2) AND at < ?1",
		IsUniqueViolation: isUniqueViolation,
		IsFull:            isFull,
		// The log lives in its own file (logDialect), but a store made by New alone keeps it here.
		MonthStart: monthStart,
		HasTable:   hasTable,
	}
}

// monthStart and hasTable: see sqlstore.Dialect.
const (
	hasTable   = `SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name = ?`
	monthStart = `CAST(strftime('%s', u.hour / 1000000, 'unixepoch', 'start of month') AS INTEGER) * 1000000`
)

// logDialect describes the request log's file to sqlstore: its connections commit with NORMAL
// already, and it has no InTx transactions to group.
func logDialect() sqlstore.Dialect {
	return sqlstore.Dialect{
		Name:              "sqlite",
		PrepareBatches:    true,
		HasTable:          hasTable,
		MonthStart:        monthStart,
		IsUniqueViolation: isUniqueViolation,
		IsFull:            isFull,
	}
}

// isFull: SQLITE_FULL, or a failed write of the database or its journal, which is how a file system
// without space shows through SQLite's VFS when the write itself fails.
func isFull(err error) bool {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return false
	}
	switch c := e.Code(); {
	case c&0xff == sqlite3.SQLITE_FULL:
		return true
	case c == sqlite3.SQLITE_IOERR_WRITE, c == sqlite3.SQLITE_IOERR_FSYNC, c == sqlite3.SQLITE_IOERR_TRUNCATE:
		return true
	}
	return false
}

func isUniqueViolation(err error) bool {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Code() {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return true
	}
	return false
}
