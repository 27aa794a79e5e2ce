package postgres_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"reflect"
	"strings"
	"sync"
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
	url := databaseAt(ctx, t, version, rows)
	st, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatalf("open and upgrade: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// databaseAt returns the URL of a fresh database migrated up to version only, with rows written.
func databaseAt(ctx context.Context, t *testing.T, version int64, rows []string) string {
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
	return url
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
	upgradecheck.VerifiesAsBefore(ctx, t, st, hash, k)
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

// TestUpgradeMovesLogRowsIntoBlocks: the entries of the table of a row per entry (before migration 18),
// more than one move's chunk of them, every field set, are listed as before once moved into blocks,
// by workspace, by key and by tag, and the table is gone.
func TestUpgradeMovesLogRowsIntoBlocks(t *testing.T) {
	ctx := context.Background()
	start := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Microsecond)
	var want []keyplane.RequestLog
	var values []string
	for i := range 6100 {
		e := keyplane.RequestLog{ID: id.NewAt(id.Request, start.Add(time.Duration(i)*time.Second+time.Duration(i%1000)*time.Microsecond)),
			WorkspaceID: []string{"ws_old1", "ws_old2"}[i%2], KeyID: fmt.Sprintf("apk_old%d", i%3),
			Code: keyplane.VerifyValid, Source: keyplane.SourceVerify, Method: "POST", Path: "/v1/verify", IP: "203.0.113.9",
			UserAgent: "old/1.0", LatencyMicros: int64(i), IdentityID: "idn_old", CreditsSpent: int64(i % 4), Tags: []string{fmt.Sprint("t", i%5)}}
		e.Timestamp = start.Add(time.Duration(i)*time.Second + time.Duration(i%1000)*time.Microsecond)
		want = append(want, e)
		values = append(values, fmt.Sprintf(`('%s', '%s', '%s', %d, 'VALID', 'verify', 'POST', '/v1/verify', '203.0.113.9', 'old/1.0', %d,
			'idn_old', %d, '["%s"]')`, e.WorkspaceID, e.ID, e.KeyID, e.Timestamp.UnixMicro(), e.LatencyMicros, e.CreditsSpent, e.Tags[0]))
	}
	url := databaseAt(ctx, t, 17, []string{`INSERT INTO request_logs (workspace_id, id, key_id, ts, code, source, method, path, ip,
		user_agent, latency_us, identity_id, credits_spent, tags) VALUES ` + strings.Join(values, ", ")})
	// Three nodes start at once: they take turns at the move, and every one opens.
	stores := make([]*postgres.DB, 3)
	errs := make([]error, len(stores))
	var wg sync.WaitGroup
	for i := range stores {
		wg.Go(func() { stores[i], errs[i] = postgres.Open(ctx, url) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: open and upgrade: %v", i, err)
		}
		t.Cleanup(func() { stores[i].Close() })
	}
	st := stores[0]
	list := func(ws string, f store.LogFilter) []keyplane.RequestLog {
		var out []keyplane.RequestLog
		f.Limit = 1000
		for {
			page, next, err := st.ListRequestLogs(ctx, ws, f)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, page...)
			if f.Cursor = next; next == "" {
				return out
			}
		}
	}
	for _, ws := range []string{"ws_old1", "ws_old2"} {
		for _, f := range []store.LogFilter{{}, {KeyID: "apk_old1"}, {Tag: "t3"}} {
			var exp []keyplane.RequestLog
			for i := len(want) - 1; i >= 0; i-- {
				e := want[i]
				if e.WorkspaceID == ws && (f.KeyID == "" || e.KeyID == f.KeyID) && (f.Tag == "" || e.Tags[0] == f.Tag) {
					exp = append(exp, e)
				}
			}
			got := list(ws, f)
			if len(got) != len(exp) {
				t.Fatalf("%s %+v: %d entries after the upgrade, want %d", ws, f, len(got), len(exp))
			}
			for i := range got {
				if !reflect.DeepEqual(got[i], exp[i]) {
					t.Fatalf("%s %+v: entry %d after the upgrade:\n%+v\nwant\n%+v", ws, f, i, got[i], exp[i])
				}
			}
		}
	}
	var n int
	if err := st.SQLDB().QueryRowContext(ctx, `SELECT COUNT(*) FROM pg_tables WHERE tablename = 'request_logs'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("request_logs after the move: %d tables, %v", n, err)
	}
}

// TestUpgradeCountsKeys: keys made before their workspace's count was kept (migration 21) are counted
// on the upgrade, the revoked ones not.
func TestUpgradeCountsKeys(t *testing.T) {
	ctx := context.Background()
	upgradecheck.KeyCounts(ctx, t, upgradeFrom(ctx, t, 20, upgradecheck.KeyCountRows("true", "false")))
}
