// Package sqlstore implements store.Store over database/sql, once for both databases. What differs
// between SQLite and PostgreSQL (placeholders, how a transaction takes its audit chain's lock, which
// errors mean a unique violation or a retryable conflict) is described by a Dialect that the sqlite
// and postgres packages supply; the schema lives in their migrations.
package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"sync"

	"github.com/pressly/goose/v3"

	"github.com/keyplane/keyplane/internal/store"
)

// Dialect is what the shared implementation needs to know about a database.
type Dialect struct {
	// Name is what Driver returns: "sqlite" or "postgres".
	Name string
	// NumberedPlaceholders: the database wants $1, $2, … instead of ?.
	NumberedPlaceholders bool
	// TxOptions are used for every transaction InTx begins.
	TxOptions *sql.TxOptions
	// LockChain, when set, is run first in every transaction with the chain as its one argument
	// (written with ?). It must block until no other transaction holds the same chain and release
	// at commit or rollback. Empty when the database serializes all writers anyway.
	LockChain string
	// PrepareBatches: the driver parses every statement it runs afresh (modernc's SQLite does), so the
	// request log's long multi-row statements are prepared once and reused.
	PrepareBatches bool
	// ImportCacheKiB, when set, is the page cache (in KiB) that the connection of an ImportAPIKeys
	// transaction gets while it runs: a large import walks b-trees far larger than SQLite's default
	// 2 MiB cache, and a million keys go in about a quarter faster with 256 MiB. The connection's own
	// setting is put back afterwards.
	ImportCacheKiB int
	// RelaxSync and RestoreSync, when set, are statements run on the writer's connection before and
	// after a transaction of the request log or of webhook delivery bookkeeping (see relaxedTx),
	// outside it: they lower the durability of its commit and put it back (SQLite's PRAGMA
	// synchronous, which belongs to the connection and may not change inside a transaction). Empty:
	// those commit as everything else does.
	RelaxSync, RestoreSync string
	// Notify, when set, is a statement that sends its two arguments (channel, payload) as a
	// notification delivered when the transaction commits. Empty: Publish does nothing.
	Notify string
	// Journal, when set, is a statement that appends its one argument, a digest, to the change
	// journal (SQLite's changes table), in the transaction, and JournalPrune one that deletes some of
	// the journal's oldest rows written before its one argument, a unix time. Publish runs them.
	Journal, JournalPrune string
	// SkipLocked ends the subquery that picks the webhook attempts to lease (its attempts table is d):
	// a row lock that concurrent workers skip rather than wait for. Empty when the database
	// serializes all writers anyway.
	SkipLocked string
	// GroupCommit: InTx's transactions that arrive while another runs wait, then run together, each
	// in a savepoint of one transaction that commits once (see groupCommit). For a database with one
	// writer whose every commit waits for the disk (SQLite, synchronous FULL): N concurrent changes
	// then cost one sync, not N. It assumes no LockChain and no retries.
	GroupCommit bool
	// HasTable counts the tables of the one name it is given (0 or 1).
	HasTable string
	// MonthStart is an expression of the start of the UTC month (unix microseconds) of the hour
	// u.hour (unix microseconds): the usage export's monthly periods, which no arithmetic on
	// microseconds gives.
	MonthStart string
	// IsUniqueViolation reports whether err is a unique or primary key constraint violation.
	IsUniqueViolation func(error) bool
	// IsRetryable reports whether a transaction that failed with err may succeed if run again
	// (serialization failure, deadlock). Nil: never.
	IsRetryable func(error) bool
	// IsFull reports whether err says the database is out of disk space. Nil: never.
	IsFull func(error) bool
}

// maxRetries bounds how many times InTx runs fn again after a retryable failure.
const maxRetries = 3

// DB is a store.Store. Reads outside a transaction go to the reader handle; transactions to the
// writer. Both may be the same *sql.DB.
type DB struct {
	queries
	w, r *sql.DB
	d    Dialect
	// rebound caches the $n form of each statement for numbered dialects. Statements are built from
	// constant fragments only, so it holds a small fixed set.
	rebound sync.Map
	// stmts holds statements prepared once on the writer handle (Dialect.PrepareBatches): the request
	// log's multi-row writes, which run all the time and would cost more to parse than to run.
	stmtMu sync.Mutex
	stmts  map[string]*sql.Stmt
	// wanted holds the statements transactions ran unprepared (txStmt), for prepareWanted to prepare
	// before the next transaction begins.
	wanted map[string]struct{}
	// readStmts holds statements prepared on the reader handle, by query (Dialect.PrepareBatches):
	// reads outside transactions, the verification read of a cache miss first among them, which
	// would otherwise spend about half their time parsing. Read without a lock on every query.
	readStmts sync.Map
	// jobs holds a mutex per name of RunExclusive.
	jobs sync.Map
	// group queues InTx's transactions when the dialect groups commits.
	group groupCommit
	// logs holds the request log and its usage rollups: db itself, or a store over a database of
	// their own (SQLite's log file, see NewWithLog), so that the log's writes never take the write
	// lock, or wait for the fsync, of keys, audit entries and events.
	logs *DB
	// logKeys is what this node wrote of request_log_keys lately, for the log's writes.
	logKeys *LogKeysSeen
}

var _ store.Store = (*DB)(nil)

// LogKeysSeen is what the node wrote of request_log_keys lately: for a driver that writes the log its
// own way (PostgreSQL's).
func (db *DB) LogKeysSeen() *LogKeysSeen { return db.logs.logKeys }

// New returns a store over write (used for transactions) and read (used for reads outside them;
// nil means write). The store owns both handles: Close closes them.
func New(d Dialect, write, read *sql.DB) *DB {
	if read == nil {
		read = write
	}
	if d.IsUniqueViolation == nil {
		d.IsUniqueViolation = func(error) bool { return false }
	}
	db := &DB{w: write, r: read, d: d, stmts: map[string]*sql.Stmt{}, wanted: map[string]struct{}{}, logKeys: NewLogKeysSeen()}
	db.queries = queries{db: db, q: read}
	db.logs = db
	return db
}

// NewWithLog is New with the request log and the usage rollups in another database: logs, a store
// over it (made by New, and owned from now on: Close closes it). Request log entries and rollups are
// written and read there; last-used times stay with the keys.
func NewWithLog(d Dialect, write, read *sql.DB, logs *DB) *DB {
	db := New(d, write, read)
	db.logs = logs
	return db
}

// Migrate applies the embedded migrations of fsys (its *.sql files, goose-annotated) to db. Options
// add, for example, a session locker so that concurrent nodes migrate one at a time.
func Migrate(ctx context.Context, db *sql.DB, dialect goose.Dialect, fsys fs.FS, opts ...goose.ProviderOption) error {
	return MigrateTo(ctx, db, dialect, fsys, 0, opts...)
}

// MigrateTo is Migrate up to version to only (0: every migration).
func MigrateTo(ctx context.Context, db *sql.DB, dialect goose.Dialect, fsys fs.FS, to int64, opts ...goose.ProviderOption) error {
	opts = append([]goose.ProviderOption{goose.WithDisableGlobalRegistry(true)}, opts...)
	p, err := goose.NewProvider(dialect, db, fsys, opts...)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if to == 0 {
		_, err = p.Up(ctx)
	} else {
		_, err = p.UpTo(ctx, to)
	}
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// Driver names the database: "sqlite" or "postgres".
func (db *DB) Driver() string { return db.d.Name }

// Ping checks that every handle answers.
func (db *DB) Ping(ctx context.Context) error {
	if db.logs != db {
		if err := db.logs.Ping(ctx); err != nil {
			return fmt.Errorf("request log: %w", err)
		}
	}
	if err := db.w.PingContext(ctx); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	if db.r != db.w {
		if err := db.r.PingContext(ctx); err != nil {
			return fmt.Errorf("ping reader: %w", err)
		}
	}
	return nil
}

// Close closes the prepared statements and the database handles, the log's included.
func (db *DB) Close() error {
	var errs []error
	if db.logs != db {
		errs = append(errs, db.logs.Close())
	}
	db.stmtMu.Lock()
	for _, st := range db.stmts {
		if st != nil { // a statement that did not prepare (prepareWanted)
			errs = append(errs, st.Close())
		}
	}
	clear(db.stmts)
	db.readStmts.Range(func(k, v any) bool {
		errs = append(errs, v.(*sql.Stmt).Close())
		db.readStmts.Delete(k)
		return true
	})
	db.stmtMu.Unlock()
	if db.r != db.w {
		errs = append(errs, db.r.Close())
	}
	errs = append(errs, db.w.Close())
	return errors.Join(errs...)
}

// SQLDB returns the handle transactions use, for tools and tests that need SQL the Store does not
// offer. Statements written with ? must go through Rebind.
func (db *DB) SQLDB() *sql.DB { return db.w }

// ReadSQLDB returns the handle of the reads made outside transactions (the verification path's
// lookups among them): SQLDB's own unless the store has readers apart, as on SQLite. For tests.
func (db *DB) ReadSQLDB() *sql.DB { return db.r }

// LogSQLDB is SQLDB of the database that holds the request log and the usage rollups: SQLDB's own
// unless the log has a database of its own.
func (db *DB) LogSQLDB() *sql.DB { return db.logs.w }

// Rebind returns query with its ? placeholders in the dialect's form.
func (db *DB) Rebind(query string) string {
	if !db.d.NumberedPlaceholders {
		return query
	}
	if v, ok := db.rebound.Load(query); ok {
		return v.(string)
	}
	r := numberPlaceholders(query)
	db.rebound.Store(query, r)
	return r
}

// numberPlaceholders replaces each ? outside quotes with $1, $2, …
func numberPlaceholders(query string) string {
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	var quote byte // the quote character we are inside of, or 0
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// InTx runs fn in a transaction that holds chain's lock, commits if fn returns nil and rolls back
// otherwise, also when fn panics (the panic goes on). fn's own error is returned as it is. A
// retryable failure (see Dialect.IsRetryable) runs fn again, at most maxRetries more times.
func (db *DB) InTx(ctx context.Context, chain string, fn func(tx store.Tx) error) error {
	if db.d.GroupCommit {
		return db.groupTx(ctx, chain, fn)
	}
	return db.inTx(ctx, &chain, fn)
}

// inTx is InTx, taking chain's lock unless chain is nil: writes that belong to no audit chain (the
// request log) neither wait for nor hold up the chains' writers.
func (db *DB) inTx(ctx context.Context, chain *string, fn func(tx store.Tx) error) error {
	return db.retryTx(ctx, chain, false, fn)
}

// relaxedTx is inTx without a chain, committed with the dialect's relaxed durability
// (Dialect.RelaxSync), for the writes that a power cut may take back without harm: the request log,
// and the webhook workers' bookkeeping, whose loss means only that an attempt is made again, which
// at-least-once delivery allows. Never for keys, audit entries or events.
func (db *DB) relaxedTx(ctx context.Context, fn func(tx store.Tx) error) error {
	return db.retryTx(ctx, nil, true, fn)
}

func (db *DB) retryTx(ctx context.Context, chain *string, relax bool, fn func(tx store.Tx) error) error {
	for retries := 0; ; retries++ {
		err := db.runTx(ctx, chain, relax, fn)
		if err == nil || retries == maxRetries || db.d.IsRetryable == nil || !db.d.IsRetryable(err) ||
			ctx.Err() != nil {
			return err
		}
	}
}

func (db *DB) runTx(ctx context.Context, chain *string, relax bool, fn func(tx store.Tx) error) error {
	return db.full(db.runTxOnce(ctx, chain, relax, fn))
}

func (db *DB) runTxOnce(ctx context.Context, chain *string, relax bool, fn func(tx store.Tx) error) error {
	db.prepareWanted(ctx)
	begin := db.w.BeginTx
	if relax && db.d.RelaxSync != "" {
		// The setting belongs to the connection, so the transaction must run on the one that was
		// relaxed, and that one must be put back before anything else commits on it. Deferred
		// first, the restore runs after the rollback below, outside the transaction.
		conn, err := db.w.Conn(ctx)
		if err != nil {
			return fmt.Errorf("begin transaction: %w", err)
		}
		defer db.restoreSync(ctx, conn)
		if _, err := conn.ExecContext(ctx, db.d.RelaxSync); err != nil {
			return fmt.Errorf("relax durability: %w", err)
		}
		begin = conn.BeginTx
	}
	stx, err := begin(ctx, db.d.TxOptions)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	// After a commit this is a no-op; on an error or a panic of fn it undoes everything. Its own
	// error adds nothing to the one returned.
	defer func() { _ = stx.Rollback() }()
	if db.d.LockChain != "" && chain != nil {
		if _, err := stx.ExecContext(ctx, db.Rebind(db.d.LockChain), *chain); err != nil {
			return fmt.Errorf("lock audit chain: %w", err)
		}
	}
	if err := fn(&tx{queries{db: db, q: stx}}); err != nil {
		return err
	}
	if err := stx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// restoreSync runs Dialect.RestoreSync on conn, which a relaxed transaction used, and gives conn back
// to the pool. Should that fail, conn is discarded rather than given back: left relaxed, it would
// commit keys and audit entries without waiting for the disk. A new connection starts with the full
// setting of the connection string.
func (db *DB) restoreSync(ctx context.Context, conn *sql.Conn) {
	if _, err := conn.ExecContext(context.WithoutCancel(ctx), db.d.RestoreSync); err != nil {
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	}
	_ = conn.Close()
}

// prepare returns query (written with ?) prepared on the writer handle, once. It must be called
// outside a transaction: SQLite's writer handle has one connection, which a transaction holds. A
// query that prepareWanted could not prepare is held as nil: it runs as it is.
//
// stmtMu is not held while the statement is prepared, which waits for that connection: a
// transaction holding it takes stmtMu for its own statements (txStmt), and would wait for the
// lock while the lock waited for it. Two that prepare the same query at once keep the first.
func (db *DB) prepare(ctx context.Context, query string) (*sql.Stmt, error) {
	db.stmtMu.Lock()
	st, ok := db.stmts[query]
	db.stmtMu.Unlock()
	if ok {
		return st, nil
	}
	st, err := db.w.PrepareContext(ctx, db.Rebind(query))
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	db.stmtMu.Lock()
	defer db.stmtMu.Unlock()
	if first, ok := db.stmts[query]; ok {
		st.Close()
		return first, nil
	}
	db.stmts[query] = st
	return st, nil
}

// maxTxStmts bounds the statements txStmt has prepared: transactions run a fixed set of statements,
// but one built for a number of values (an IN list) may come in many lengths, which would otherwise
// each hold a prepared statement for good. Past the bound, statements run as they are.
const maxTxStmts = 256

// txStmt returns query prepared on the writer handle, for q's transaction, when the driver would
// parse every statement afresh (Dialect.PrepareBatches) and a transaction ran it before; else nil,
// and the query runs as it is. A key's creation runs a handful of statements whose parsing took a
// fifth of its CPU (docs/performance.md, "A transaction's statements run prepared"). The first run of a query asks for it to
// be prepared before the next transaction begins (prepareWanted): preparing needs the writer's one
// connection, which this transaction holds.
func (q *queries) txStmt(ctx context.Context, query string) *sql.Stmt {
	db := q.db
	stx, ok := q.q.(*sql.Tx)
	if !ok || !db.d.PrepareBatches {
		return nil
	}
	db.stmtMu.Lock()
	st, ok := db.stmts[query]
	if !ok && len(db.stmts)+len(db.wanted) < maxTxStmts {
		db.wanted[query] = struct{}{}
	}
	db.stmtMu.Unlock()
	if st == nil {
		return nil
	}
	return stx.StmtContext(ctx, st)
}

// prepareWanted prepares the statements that transactions ran unprepared (txStmt). Called before a
// transaction begins, when the writer's connection is free, and cheap when there are none: after
// a node's first transactions of each kind. A statement that does not prepare is remembered as
// such, and runs as it is, to fail there with its error; one whose preparing ended with ctx is asked
// for again by its next run.
func (db *DB) prepareWanted(ctx context.Context) {
	db.stmtMu.Lock()
	wanted := db.wanted
	if len(wanted) == 0 {
		db.stmtMu.Unlock()
		return
	}
	db.wanted = map[string]struct{}{}
	db.stmtMu.Unlock()
	for query := range wanted {
		if _, err := db.prepare(ctx, query); err != nil && ctx.Err() == nil {
			db.stmtMu.Lock()
			db.stmts[query] = nil
			db.stmtMu.Unlock()
		}
	}
}

// writeStmt returns query prepared on the writer handle when the driver would parse every statement
// afresh (Dialect.PrepareBatches), else nil: for the few small writes that run all the time, such as
// the takes of credits, whose parsing cost more than their running. Outside a transaction only, as
// prepare.
func (db *DB) writeStmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if !db.d.PrepareBatches {
		return nil, nil
	}
	return db.prepare(ctx, query)
}

// stmtIn returns st, prepared on the writer handle, as q runs it: within q's transaction, or as it
// is on the writer handle; nil when there is no st or q reads (then the query runs as it is).
func (q *queries) stmtIn(ctx context.Context, st *sql.Stmt) *sql.Stmt {
	switch {
	case st == nil:
		return nil
	case q.q == querier(q.db.w):
		return st
	}
	if stx, ok := q.q.(*sql.Tx); ok {
		return stx.StmtContext(ctx, st)
	}
	return nil
}

// queryRowStmt is queryRow by st, prepared by writeStmt, when there is one.
func (q *queries) queryRowStmt(ctx context.Context, st *sql.Stmt, query string, args ...any) *sql.Row {
	if q.detached {
		ctx = context.WithoutCancel(ctx)
	}
	if st := q.stmtIn(ctx, st); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return q.queryRow(ctx, query, args...)
}

// execStmt is exec by st, prepared by writeStmt, when there is one.
func (q *queries) execStmt(ctx context.Context, st *sql.Stmt, query string, args ...any) (sql.Result, error) {
	if q.detached {
		ctx = context.WithoutCancel(ctx)
	}
	if st := q.stmtIn(ctx, st); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return q.exec(ctx, query, args...)
}

// querier is what *sql.DB and *sql.Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// queries implements store.Queries over a handle or a transaction.
type queries struct {
	db *DB
	q  querier
	// detached: statements ignore their context's cancellation, because the transaction is shared
	// by a group commit's callers (see runBatch).
	detached bool
}

func (q *queries) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if q.detached {
		ctx = context.WithoutCancel(ctx)
	}
	if st := q.txStmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return q.q.ExecContext(ctx, q.db.Rebind(query), args...)
}

func (q *queries) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if q.detached {
		ctx = context.WithoutCancel(ctx)
	}
	if st := q.readStmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	if st := q.txStmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return q.q.QueryContext(ctx, q.db.Rebind(query), args...)
}

func (q *queries) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	if q.detached {
		ctx = context.WithoutCancel(ctx)
	}
	if st := q.readStmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	if st := q.txStmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return q.q.QueryRowContext(ctx, q.db.Rebind(query), args...)
}

// readStmt returns query prepared on the reader handle, once, when q reads outside a transaction and
// the driver would parse every statement afresh (Dialect.PrepareBatches); else nil, and the query
// runs as it is. A statement that does not prepare runs as it is too, to fail there with its error.
func (q *queries) readStmt(ctx context.Context, query string) *sql.Stmt {
	db := q.db
	if !db.d.PrepareBatches || q.q != querier(db.r) {
		return nil
	}
	if st, ok := db.readStmts.Load(query); ok {
		return st.(*sql.Stmt)
	}
	// Prepared without a lock, as prepare does: it waits for a reader connection.
	st, err := db.r.PrepareContext(ctx, db.Rebind(query))
	if err != nil {
		return nil
	}
	if first, loaded := db.readStmts.LoadOrStore(query, st); loaded {
		st.Close()
		return first.(*sql.Stmt)
	}
	return st
}

// fail wraps err with op, mapping no rows to store.ErrNotFound and unique violations to
// store.ErrConflict. Driver messages name the constraint, never the values.
func (q *queries) fail(op string, err error) error {
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%s: %w", op, store.ErrNotFound)
	case q.db.d.IsUniqueViolation(err):
		return fmt.Errorf("%s: %w (%w)", op, store.ErrConflict, err)
	default:
		return fmt.Errorf("%s: %w", op, err)
	}
}

// tx implements store.Tx.
type tx struct {
	queries
}

var _ store.Tx = (*tx)(nil)
