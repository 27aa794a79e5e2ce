package postgres_test

import (
	"context"
	"database/sql"
	"os"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/id"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/store/postgres"
	"github.com/keyplane/keyplane/internal/store/sqlstore"
	"github.com/keyplane/keyplane/internal/store/storetest"
	"github.com/keyplane/keyplane/internal/store/storetest/upgradecheck"
)

// TestUpgradeKeepsMembersActive: a database made before members had a status (migration 6) is
// upgraded with every member active, so that nobody loses access to a workspace on the upgrade.
func TestUpgradeKeepsMembersActive(t *testing.T) {
	ctx := context.Background()
	st := upgradeFrom(ctx, t, 6, []string{
		`INSERT INTO workspaces (id, name, slug, max_keys, test_key_ttl_seconds, live_mode_enabled, created_at, updated_at)
			VALUES ('ws_old', 'Old', 'old', 20, 259200, true, 1, 1)`,
		`INSERT INTO users (id, email, password_hash, operator, created_at, updated_at) VALUES ('usr_old', 'old@example.com', '', false, 1, 1)`,
		`INSERT INTO members (workspace_id, user_id, role, created_at) VALUES ('ws_old', 'usr_old', 'owner', 1)`,
	})
	upgradecheck.MembersActive(ctx, t, st, "ws_old", "usr_old")
}

// upgradeFrom writes rows into a fresh database migrated up to version only, and opens it as the
// current version does: migrated forward on open. The store is closed when the test ends.
func upgradeFrom(ctx context.Context, t *testing.T, version int64, rows []string) *postgres.DB {
	t.Helper()
	url := storetest.PostgresURL(t)
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	// The files that are embedded, read from the source tree: this test is outside the package, as
	// storetest (PostgresURL) imports it.
	if err := sqlstore.MigrateTo(ctx, db, goose.DialectPostgres, os.DirFS("migrations"), version); err != nil {
		t.Fatalf("migrate to %d: %v", version, err)
	}
	for _, q := range rows {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	st, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatalf("open and upgrade: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestUpgradeKeepsUsage: rollups written before they were keyed by hour first (migration 9) are read
// as before, and new counts add to them.
func TestUpgradeKeepsUsage(t *testing.T) {
	ctx := context.Background()
	url := storetest.PostgresURL(t)
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	if err := sqlstore.MigrateTo(ctx, db, goose.DialectPostgres, os.DirFS("migrations"), 8); err != nil {
		t.Fatalf("migrate to 8: %v", err)
	}
	hour := time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)
	for i, q := range []string{"VALID", "VALID", "RATE_LIMITED"} {
		if _, err := db.ExecContext(ctx, `INSERT INTO key_usage (key_id, hour, code, workspace_id, requests) VALUES ($1, $2, $3, 'ws_old', $4)`,
			"apk_old", hour.Add(time.Duration(i)*time.Hour).UnixMicro(), q, 10+i); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	st, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatalf("open and upgrade: %v", err)
	}
	defer st.Close()
	if err := st.AddUsage(ctx, []store.UsageCount{{WorkspaceID: "ws_old", KeyID: "apk_old", Hour: hour, Code: keyplane.VerifyValid, Requests: 5}}, nil); err != nil {
		t.Fatal(err)
	}
	want := map[keyplane.VerifyCode]int64{keyplane.VerifyValid: 10 + 11 + 5, keyplane.VerifyRateLimited: 12}
	upgradecheck.Usage(ctx, t, st, "ws_old", []string{"apk_old", ""},
		store.UsageFilter{Bucket: 24 * time.Hour, Since: hour.Add(-24 * time.Hour), Until: hour.Add(24 * time.Hour)}, want)
}

// TestUpgradeKeepsKeys: a key written before usage-based keys (migration 11) verifies as it was, with
// no identity, no named limits and unlimited credits.
func TestUpgradeKeepsKeys(t *testing.T) {
	ctx := context.Background()
	url := storetest.PostgresURL(t)
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	if err := sqlstore.MigrateTo(ctx, db, goose.DialectPostgres, os.DirFS("migrations"), 9); err != nil {
		t.Fatalf("migrate to 9: %v", err)
	}
	hash := []byte("0123456789abcdef0123456789abcdef")
	for _, q := range []string{
		`INSERT INTO workspaces (id, name, slug, max_keys, test_key_ttl_seconds, live_mode_enabled, created_at, updated_at)
			VALUES ('ws_old', 'Old', 'old', 20, 259200, true, 1, 1)`,
		`INSERT INTO api_keys (id, workspace_id, name, description, key_type, environment, prefix, value_start,
			value_end, enabled, permissions, ip_allowlist, allowed_origins, meta, rate_limit, rate_window_ms,
			recoverable, created_at, updated_at, created_by)
			VALUES ('apk_old', 'ws_old', 'k', '', 'secret', 'live', 'kp_sk_live_', 'kp_sk_live_old', 'xold', true, '["a:b"]',
			'[]', '[]', '{"plan":"pro"}', 10, 1000, false, 1, 1, '{"type":"system","id":"test"}')`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO secrets (hash, key_id, workspace_id, created_at) VALUES ($1, 'apk_old', 'ws_old', 1)`, hash); err != nil {
		t.Fatal(err)
	}
	db.Close()

	st, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatalf("open and upgrade: %v", err)
	}
	defer st.Close()
	k, _, err := st.LookupSecret(ctx, hash)
	if err != nil {
		t.Fatalf("the key after the upgrade: %v", err)
	}
	upgradecheck.KeyUnchanged(t, k)
	upgradecheck.LeakPolicyDefault(ctx, t, st, "ws_old")
	// Migration 16: a value stored before imports existed is not an imported one.
	var imported int
	if err := st.EachImportedHash(ctx, func([]byte) { imported++ }); err != nil || imported != 0 {
		t.Errorf("after the upgrade, %d imported digests (%v), want none", imported, err)
	}
}

// TestUpgradeKeepsEvents: events and deliveries written before the events list and recovery
// (migration 15) are listed, recovered and pruned after the upgrade.
func TestUpgradeKeepsEvents(t *testing.T) {
	ctx := context.Background()
	at := time.Now().UTC().Add(-time.Hour).Truncate(time.Microsecond)
	old := upgradecheck.OldEvent{WorkspaceID: id.NewAt(id.Workspace, at), EndpointID: id.NewAt(id.Webhook, at),
		EventID: id.NewAt(id.Event, at), DeliveryID: id.NewAt(id.Delivery, at), At: at}
	st := upgradeFrom(ctx, t, 12, old.Statements("true", "false", "'\\x00'::bytea"))
	upgradecheck.Events(ctx, t, st, old)
}

// TestUpgradeBrandingAndPortal: a workspace made before branding and portal sessions (migration 17)
// has no branding after the upgrade, and takes one and portal links.
func TestUpgradeBrandingAndPortal(t *testing.T) {
	ctx := context.Background()
	st := upgradeFrom(ctx, t, 16, []string{
		`INSERT INTO workspaces (id, name, slug, max_keys, test_key_ttl_seconds, live_mode_enabled, created_at, updated_at)
			VALUES ('ws_old', 'Old', 'old', 20, 259200, true, 1, 1)`,
	})
	upgradecheck.BrandingAndPortal(ctx, t, st, "ws_old")
}
