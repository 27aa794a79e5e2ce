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
	return &DB{DB: sqlstore.New(dialect(), sdb, nil), pool: pool}, nil
}

// Pool returns the pgx pool under the store, for what database/sql cannot do (LISTEN/NOTIFY).
func (db *DB) Pool() *pgxpool.Pool { return db.pool }

// Close closes the store and its pool.
func (db *DB) Close() error {
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
		LockChain:         `SELECT pg_advisory_xact_lock(hashtextextended('keyplane:audit:' || CAST(? AS TEXT), 0))`,
		SkipLocked:        " FOR UPDATE OF d SKIP LOCKED",
		Notify:            "SELECT pg_notify(?, ?)",
		IsUniqueViolation: func(err error) bool { return pgCode(err) == "23505" },
		IsRetryable:       retryable,
	}
}

func pgCode(err error) string {
	var e *pgconn.PgError
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// Recreate drops the database that url names, if it exists, and creates it empty, through the server's
// postgres database. It is for throwaway databases only: keyplane bench calls it for the database it
// seeds, whose name must begin with keyplane_bench.
func Recreate(ctx context.Context, url string) error {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return errors.New("recreate database: cannot parse the database URL")
	}
	name := cfg.Database
	cfg.Database = "postgres"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("recreate database: %w", err)
	}
	defer conn.Close(ctx)
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("recreate database: drop %s: %w", name, err)
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		return fmt.Errorf("recreate database: create %s: %w", name, err)
	}
	return nil
}
