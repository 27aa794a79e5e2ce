// Package postgres is keyplane's shared store: PostgreSQL through pgx, which several nodes may use at
// once. Transactions run at READ COMMITTED and take a transaction-scoped advisory lock on their audit
// chain first, so that writers of one chain (one workspace) are serialized while other chains go on.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/keyplane/keyplane/internal/store/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// migrationLockID is the session advisory lock taken while migrating, so that of several nodes
// starting at once one migrates and the others wait. It is keyplane's own (crc32 of
// "keyplane:migrate") rather than goose's default, which other tools in the same database may use.
const migrationLockID int64 = 0x61a0c9a5

// Migration lock polling: every second, for up to five minutes.
const (
	migrationLockPollSeconds = 1
	migrationLockPolls       = 300
)

// DB is the PostgreSQL store.
type DB struct {
	*sqlstore.DB
	pool *pgxpool.Pool
	jobs *jobLocks
	// heartbeat and silence are Listen's heartbeatEvery and heartbeatLost; tests shorten them.
	heartbeat, silence time.Duration
}

// Open connects to the database at url (postgres://…) and brings its schema up to date.
func Open(ctx context.Context, url string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's message can quote the URL, password included.
		return nil, errors.New("open postgres: cannot parse the database URL")
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	sdb := stdlib.OpenDBFromPool(pool)
	if err := migrate(ctx, sdb); err != nil {
		sdb.Close()
		pool.Close()
		return nil, err
	}
	db := &DB{DB: sqlstore.New(dialect(), sdb, nil), pool: pool, jobs: &jobLocks{}}
	if err := db.MoveLogRows(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// Pool returns the pgx pool under the store, for what database/sql cannot do (LISTEN/NOTIFY).
func (db *DB) Pool() *pgxpool.Pool { return db.pool }

// Close closes the store and its pool.
func (db *DB) Close() error {
	db.jobs.close()
	err := db.DB.Close()
	db.pool.Close()
	return err
}

// migrate applies the embedded migrations under a session advisory lock.
func migrate(ctx context.Context, db *sql.DB) error {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	locker, err := lock.NewPostgresSessionLocker(
		lock.WithLockID(migrationLockID),
		lock.WithLockTimeout(migrationLockPollSeconds, migrationLockPolls),
	)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return sqlstore.Migrate(ctx, db, goose.DialectPostgres, fsys, goose.WithSessionLocker(locker))
}

// dialect describes PostgreSQL to sqlstore.
func dialect() sqlstore.Dialect {
	return sqlstore.Dialect{
		Name:                 "postgres",
		NumberedPlaceholders: true,
		TxOptions:            &sql.TxOptions{Isolation: sql.LevelReadCommitted},
		// hashtextextended maps the chain to the bigint key space of advisory locks; the prefix
		// keeps these locks apart from any other advisory lock in the database.
		LockChain:  `SELECT pg_advisory_xact_lock(hashtextextended('keyplane:audit:' || CAST(? AS TEXT), 0))`,
		SkipLocked: " FOR UPDATE OF d SKIP LOCKED",
		Notify:     "SELECT pg_notify(?, ?)",
		// Containment of a one-element array: an exact match of one element, string against string.
		// (jsonb's ? operator would be taken for a placeholder.)
		HasTable: `SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = ?`,
		// EXTRACT(EPOCH FROM a timestamp without time zone) reads it as UTC.
		MonthStart:        `CAST(EXTRACT(EPOCH FROM date_trunc('month', to_timestamp(u.hour / 1000000) AT TIME ZONE 'UTC')) AS BIGINT) * 1000000`,
		IsUniqueViolation: func(err error) bool { return pgCode(err) == "23505" },
		IsRetryable:       retryable,
		// disk_full
		IsFull: func(err error) bool { return pgCode(err) == "53100" },
	}
}

func pgCode(err error) string {
	var e *pgconn.PgError
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// Recreate drops the database that url names, if it exists, and creates it empty; Drop drops it.
// Both go through the server's postgres database, and are for throwaway databases only: keyplane
// bench calls them for the database it seeds, whose name must begin with keyplane_bench.
func Recreate(ctx context.Context, url string) error {
	return onServer(ctx, url, "DROP DATABASE IF EXISTS %s WITH (FORCE)", "CREATE DATABASE %s")
}

// Drop: see Recreate.
func Drop(ctx context.Context, url string) error {
	return onServer(ctx, url, "DROP DATABASE IF EXISTS %s WITH (FORCE)")
}

// onServer runs statements, each with the quoted name of url's database in place of %s, on the
// server's postgres database.
func onServer(ctx context.Context, url string, statements ...string) error {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return errors.New("database: cannot parse the database URL")
	}
	name := cfg.Database
	cfg.Database = "postgres"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("database %s: %w", name, err)
	}
	defer conn.Close(ctx)
	for _, st := range statements {
		if _, err := conn.Exec(ctx, fmt.Sprintf(st, pgx.Identifier{name}.Sanitize())); err != nil {
			return fmt.Errorf("database %s: %w", name, err)
		}
	}
	return nil
}

// RunExclusive runs fn while this node holds a session advisory lock named for the job, taken without
// waiting: of several nodes, the one that gets the lock runs the job and the others skip their turn.
// The locks live on one connection of their own, outside the pool, so that jobs holding them never
// take connections that the jobs' own queries need; the same name is also locked in process, since a
// session may take its own advisory lock twice. If that connection dies, its locks go with it (another
// node may then start a job still running here, which every job tolerates), and the next call opens a
// new one.
func (db *DB) RunExclusive(ctx context.Context, name string, fn func(ctx context.Context) error) (bool, error) {
	unlock, ok := db.TryLocal(name)
	if !ok {
		return false, nil
	}
	defer unlock()
	const key = `hashtextextended('keyplane:job:' || CAST($1 AS TEXT), 0)`
	var got bool
	if err := db.jobs.do(ctx, db.pool, func(conn *pgx.Conn) error {
		return conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(`+key+`)`, name).Scan(&got)
	}); err != nil {
		return false, fmt.Errorf("job lock %s: %w", name, err)
	}
	if !got {
		return false, nil
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = db.jobs.do(uctx, db.pool, func(conn *pgx.Conn) error {
			_, err := conn.Exec(uctx, `SELECT pg_advisory_unlock(`+key+`)`, name)
			return err
		})
	}()
	return true, fn(ctx)
}

// jobLocks is the connection that holds RunExclusive's locks.
type jobLocks struct {
	mu   sync.Mutex
	conn *pgx.Conn
}

// do runs f on the lock connection, opening it first if need be; a connection that fails is closed,
// and with it every lock it held.
func (j *jobLocks) do(ctx context.Context, pool *pgxpool.Pool, f func(conn *pgx.Conn) error) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.conn == nil || j.conn.IsClosed() {
		conn, err := pgx.ConnectConfig(ctx, pool.Config().ConnConfig.Copy())
		if err != nil {
			return err
		}
		j.conn = conn
	}
	if err := f(j.conn); err != nil {
		j.conn.Close(context.WithoutCancel(ctx))
		j.conn = nil
		return err
	}
	return nil
}

func (j *jobLocks) close() {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		j.conn.Close(ctx)
		j.conn = nil
	}
}
