// Package sqlite is keyplane's embedded store: one SQLite file, opened with modernc.org/sqlite (no
// cgo). All writes go through one connection, so writers are serialized and every transaction sees
// the audit chains as of its start; reads outside transactions use a separate read-only pool, which
// WAL lets run alongside the writer.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"runtime"
	"strings"

	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/keyplane/keyplane/internal/store/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// pragmas apply to every connection. busy_timeout covers another process (keyplane migrate, a
// backup) holding the file. synchronous FULL makes a commit wait until the WAL is on disk: with
// NORMAL, a power cut (not a crash of the process, which the page cache survives) could lose commits
// that were already acknowledged, such as a revocation or an audit entry. The request log's batches
// and the webhook workers' bookkeeping lower it for their own transactions (sqlstore's relaxedTx).
const pragmas = "_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)" +
	"&_pragma=synchronous(FULL)"

// Open opens (creating if needed) the database file at path and brings its schema up to date. The
// directory must exist.
func Open(ctx context.Context, path string) (*sqlstore.DB, error) {
	if path == "" || strings.ContainsAny(path, "?#") || strings.HasPrefix(path, "file:") ||
		strings.HasPrefix(path, ":memory:") {
		// The driver reads parameters after ?; and an in-memory database would not be shared
		// between the writer and the readers.
		return nil, fmt.Errorf("open sqlite: unsupported path %q", path)
	}
	// BEGIN IMMEDIATE takes the write lock at the start of a transaction rather than at its first
	// write, so a transaction never reads data that another writer is about to change under it.
	// temp_store(memory) keeps statement journals in memory: every multi-row INSERT of the request
	// log keeps one (to undo itself alone should it fail), and on disk that is a temporary file
	// written page by page.
	w, err := sql.Open("sqlite", path+"?"+pragmas+"&_txlock=immediate&_pragma=temp_store(memory)")
	if err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	if err := migrate(ctx, w); err != nil {
		w.Close()
		return nil, err
	}

	r, err := sql.Open("sqlite", path+"?"+pragmas+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite reader: %w", err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	if err := r.PingContext(ctx); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("open sqlite reader: %w", err)
	}
	return sqlstore.New(dialect(), w, r), nil
}

// migrate applies the embedded migrations to db, a handle on a SQLite database.
func migrate(ctx context.Context, db *sql.DB) error {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return sqlstore.Migrate(ctx, db, goose.DialectSQLite3, fsys)
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
