package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/store/postgres"
	"github.com/keyplane/keyplane/internal/store/sqlite"
	"github.com/keyplane/keyplane/internal/testkit"
)

// Environment of the PostgreSQL tests.
const (
	// EnvDatabaseURL overrides DefaultDatabaseURL: a postgres:// URL of a role that may create
	// databases. Each test gets a database of its own, made there and dropped afterwards.
	EnvDatabaseURL = "KEYPLANE_TEST_DATABASE_URL"
	// EnvRequirePostgres set (as testkit.Required reads it: anything but "", "0" or "false") turns
	// "PostgreSQL is unreachable" from a skip into a failure. CI sets it, so that the PostgreSQL half
	// of the suite cannot silently not run.
	EnvRequirePostgres = testkit.EnvPrefix + RequirePostgres
	// RequirePostgres is the name testkit.Require and testkit.Required take for PostgreSQL.
	RequirePostgres = "POSTGRES"
	// DefaultDatabaseURL is where the tests look for PostgreSQL by default.
	DefaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
)

// Drivers are the names Open accepts, one per implementation of store.Store.
func Drivers() []string { return []string{"sqlite", "postgres"} }

// Open returns a fresh, empty, migrated store of the given driver, closed (and its database removed)
// when the test ends. For "postgres" the test is skipped when PostgreSQL cannot be reached, unless
// KEYPLANE_REQUIRE_POSTGRES is set.
func Open(t testing.TB, driver string) store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var s store.Store
	var err error
	switch driver {
	case "sqlite":
		s, err = sqlite.Open(ctx, filepath.Join(t.TempDir(), "keyplane.db"))
	case "postgres":
		s, err = postgres.Open(ctx, PostgresURL(t))
	default:
		t.Fatalf("storetest: unknown driver %q", driver)
	}
	if err != nil {
		t.Fatalf("storetest: open %s: %v", driver, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("storetest: close %s: %v", driver, err)
		}
	})
	return s
}

// AdminURL is the URL of the tests' PostgreSQL server, as a role that may create databases:
// KEYPLANE_TEST_DATABASE_URL, else DefaultDatabaseURL. Tests that make a database of their own (or
// have a command make one) make it there.
func AdminURL() string {
	if u := os.Getenv(EnvDatabaseURL); u != "" {
		return u
	}
	return DefaultDatabaseURL
}

// PostgresURL creates an empty database for the test and returns its URL; the database is dropped
// when the test ends, after the test's own cleanups that were registered later (closing a store on
// it, say). The test is skipped when PostgreSQL cannot be reached, unless KEYPLANE_REQUIRE_POSTGRES is set.
func PostgresURL(t testing.TB) string {
	t.Helper()
	admin := AdminURL()
	u, err := url.Parse(admin)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("storetest: %s must be a postgres:// URL", EnvDatabaseURL)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		testkit.Require(t, RequirePostgres, fmt.Sprintf("storetest: PostgreSQL is not reachable at %s (set %s to point elsewhere): %v",
			u.Redacted(), EnvDatabaseURL, err))
	}
	defer conn.Close(ctx)

	var b [8]byte
	rand.Read(b[:])
	name := "keyplane_test_" + hex.EncodeToString(b[:])
	// The name is ours (hex), so it is safe to put in the statement; identifiers cannot be parameters.
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("storetest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("storetest: drop database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("storetest: drop database %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	return u.String()
}
