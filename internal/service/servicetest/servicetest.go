// Package servicetest builds a service.Service on a real store for tests: the tests' master key,
// catalog and key prefix, so that a test names only what it is about (a clock, a store wrapper, a
// webhook policy). Tests that must not see the store's interface (the web layers') hold their
// stores as a DB. It is test-support code: only _test.go files import it. Tests inside package
// service cannot (this package imports service); none of them builds a service today.
package servicetest

import (
	"testing"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/masterkey"
	"github.com/keyplane/keyplane/internal/password"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/store/storetest"
)

// KeyPrefix is the prefix of the tests' key values: kp_sk_live_…
const KeyPrefix = "kp"

// Box seals with the tests' master key, 32 zero bytes: every service a test builds on one store,
// and its verifier, read each other's sealed values.
func Box(t testing.TB) *masterkey.Box {
	t.Helper()
	b, err := masterkey.New(make([]byte, 32))
	if err != nil {
		t.Fatalf("servicetest: master key: %v", err)
	}
	return b
}

// Catalog is keyplane's catalog with the given extra permissions and event types, by name.
func Catalog(t testing.TB, permissions, eventTypes []string) *keyplane.Catalog {
	t.Helper()
	entries := func(names []string) []keyplane.CatalogEntry {
		var out []keyplane.CatalogEntry
		for _, n := range names {
			out = append(out, keyplane.CatalogEntry{Name: n})
		}
		return out
	}
	c, err := keyplane.NewCatalog(entries(permissions), entries(eventTypes))
	if err != nil {
		t.Fatalf("servicetest: catalog: %v", err)
	}
	return c
}

// New returns a service on st with o, where o's Store is st and the zero fields that every service
// needs take the tests' values: Box, the tests' master key; Catalog, keyplane's own (no extra
// permissions or event types); KeyPrefix, "kp"; PasswordParams, password.Cheap() (a default hash
// takes seconds under the race detector; the tests of the hashing cost itself run in internal/e2e
// and internal/password). The rest (Now, Forget, Webhooks and their Guard, …) is o's as given.
func New(t testing.TB, st store.Store, o service.Options) *service.Service {
	t.Helper()
	o.Store = st
	if o.Box == nil {
		o.Box = Box(t)
	}
	if o.Catalog == nil {
		o.Catalog = Catalog(t, nil, nil)
	}
	if o.KeyPrefix == "" {
		o.KeyPrefix = KeyPrefix
	}
	if o.PasswordParams == (password.Params{}) {
		o.PasswordParams = password.Cheap()
	}
	return service.New(o)
}

// Open is New on a fresh, empty, migrated store of driver ("sqlite" or "postgres", as
// storetest.Open takes them: the PostgreSQL half skips or fails as it says), returned too.
func Open(t testing.TB, driver string, o service.Options) (*service.Service, store.Store) {
	t.Helper()
	st := storetest.Open(t, driver)
	return New(t, st, o), st
}
