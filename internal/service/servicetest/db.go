package servicetest

import (
	"context"
	"errors"
	"net"
	"net/url"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/reqlog"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/store/postgres"
	"github.com/keyplane/keyplane/internal/store/sqlite"
	"github.com/keyplane/keyplane/internal/store/storetest"
	"github.com/keyplane/keyplane/internal/testkit"
	"github.com/keyplane/keyplane/internal/verify"
)

// DB is a test's hold on a store for tests that must not see the store's interface: those of the
// web layers (internal/api, internal/dashboard), which ask the service and never the store. It
// builds what runs on the store, as serve does (services, and the verifier's and request log's
// narrow views of it), and does the few things such tests do to a store directly, each by name.
type DB struct {
	st    store.Store
	close func() error
}

// Drivers are the drivers OpenDB and Open take, one per implementation of the store: "sqlite" and
// "postgres".
func Drivers() []string { return storetest.Drivers() }

// OpenDB returns a fresh, empty, migrated store of driver, closed (and its database removed) when
// the test ends. For "postgres" the test is skipped when PostgreSQL cannot be reached, unless
// KEYPLANE_REQUIRE_POSTGRES is set.
func OpenDB(t testing.TB, driver string) *DB {
	t.Helper()
	return &DB{st: storetest.Open(t, driver)}
}

// AttachDB opens the store of a keyplane program run by the test, where the program finds it: the
// PostgreSQL database at dbURL (its KEYPLANE_DATABASE_URL) when that is set, else the SQLite file in
// dataDir (its KEYPLANE_DATA_DIR). It is closed by Close, or when the test ends.
func AttachDB(t testing.TB, dataDir, dbURL string) *DB {
	t.Helper()
	ctx := context.Background()
	var st store.Store
	var err error
	if dbURL != "" {
		st, err = postgres.Open(ctx, dbURL)
	} else {
		st, err = sqlite.Open(ctx, filepath.Join(dataDir, "keyplane.db"))
	}
	if err != nil {
		t.Fatalf("servicetest: open the program's store: %v", err)
	}
	d := &DB{st: st, close: sync.OnceValue(st.Close)}
	t.Cleanup(func() { d.Close() })
	return d
}

// Close closes a store AttachDB opened before the test ends (the program may want it alone); a
// second Close does nothing. OpenDB's stores close with the test.
func (d *DB) Close() error {
	if d.close == nil {
		return nil
	}
	return d.close()
}

// Service is New on d's store.
func (d *DB) Service(t testing.TB, o service.Options) *service.Service {
	t.Helper()
	return New(t, d.st, o)
}

// Lookups is d's store as a Verifier reads it, for verify.New.
func (d *DB) Lookups() verify.Lookups { return d.st }

// RequestLogWriter is d's store as the request log writes to it, for reqlog.New.
func (d *DB) RequestLogWriter() reqlog.Writer { return d.st }

// WriteLogs writes request log entries (each with its id set) straight to the store, and their
// usage counts, as the request log does once it has flushed them.
func (d *DB) WriteLogs(ctx context.Context, entries []keyplane.RequestLog) error {
	if err := d.st.WriteRequestLogs(ctx, entries); err != nil {
		return err
	}
	return d.st.AddUsage(ctx, store.CountUsage(entries), nil)
}

// InsertUser writes u straight to the store, on the operator's audit chain and without an audit
// entry, workspace or membership: a person the service does not make (it always makes a member or
// an operator).
func (d *DB) InsertUser(ctx context.Context, u *keyplane.User) error {
	return d.st.InTx(ctx, store.OperatorChain, func(tx store.Tx) error { return tx.CreateUser(ctx, u) })
}

// GetSession reads back the session with this token digest (service.SessionToken), expired or not.
func (d *DB) GetSession(ctx context.Context, hash []byte) (*keyplane.Session, error) {
	return d.st.GetSession(ctx, hash)
}

// Failing returns d's store with two faults, for the tests of how errors are answered: its key
// listing always fails with an error no contract code explains ("connection reset by peer"), and
// its Ping, the health check that tells an outage from a bug, fails ("connection refused") once
// down has been called. Services and verifiers built on the result see the faults; d does not.
func (d *DB) Failing() (f *DB, down func()) {
	fs := &failing{Store: d.st}
	return &DB{st: fs}, func() { fs.down.Store(true) }
}

// failing is DB.Failing's store.
type failing struct {
	store.Store
	down atomic.Bool
}

func (f *failing) ListAPIKeys(context.Context, string, store.KeyFilter) ([]keyplane.APIKey, string, error) {
	return nil, "", errors.New("connection reset by peer")
}

func (f *failing) Ping(ctx context.Context) error {
	if f.down.Load() {
		return errors.New("connection refused")
	}
	return f.Store.Ping(ctx)
}

// FailingChange returns d's store with one fault, for the tests of what a change that fails on our
// side leaves behind (an idempotency key's first answer of 500): once failNext has been called, its
// next transaction fails ("connection reset by peer") without running. Services built on the result
// see the fault; d does not.
func (d *DB) FailingChange() (f *DB, failNext func()) {
	fs := &failingChange{Store: d.st}
	return &DB{st: fs}, func() { fs.armed.Store(true) }
}

// failingChange is DB.FailingChange's store.
type failingChange struct {
	store.Store
	armed atomic.Bool
}

func (f *failingChange) InTx(ctx context.Context, chain string, fn func(tx store.Tx) error) error {
	if f.armed.CompareAndSwap(true, false) {
		return errors.New("connection reset by peer")
	}
	return f.Store.InTx(ctx, chain, fn)
}

// PostgresURL creates an empty database on the tests' PostgreSQL for a program the test runs and
// returns its URL; the database is dropped when the test ends. The test is skipped when PostgreSQL
// cannot be reached, unless KEYPLANE_REQUIRE_POSTGRES is set.
func PostgresURL(t testing.TB) string {
	t.Helper()
	return storetest.PostgresURL(t)
}

// PostgresUp reports whether the tests' PostgreSQL answers, without skipping the test when it does
// not (OpenDB would), for a test that then runs on SQLite alone. With KEYPLANE_REQUIRE_POSTGRES set
// it is true, so that OpenDB fails when PostgreSQL is down.
func PostgresUp() bool {
	if testkit.Required(storetest.RequirePostgres) {
		return true
	}
	u, err := url.Parse(storetest.AdminURL())
	if err != nil {
		return false
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "5432")
	}
	c, err := net.DialTimeout("tcp", host, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
