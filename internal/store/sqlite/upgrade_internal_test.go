package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"io/fs"
	"path/filepath"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/id"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/store/sqlstore"
	"github.com/keyplane/keyplane/internal/store/storetest/upgradecheck"
)

// TestUpgradeKeepsMembersActive: a database made before members had a status (migration 6) is
// upgraded with every member active, so that nobody loses access to a workspace on the upgrade.
func TestUpgradeKeepsMembersActive(t *testing.T) {
	ctx := context.Background()
	st := upgradeFrom(ctx, t, 6, []string{
		`INSERT INTO workspaces (id, name, slug, max_keys, test_key_ttl_seconds, live_mode_enabled, created_at, updated_at)
			VALUES ('ws_old', 'Old', 'old', 20, 259200, 1, 1, 1)`,
		`INSERT INTO users (id, email, password_hash, operator, created_at, updated_at) VALUES ('usr_old', 'old@example.com', '', 0, 1, 1)`,
		`INSERT INTO members (workspace_id, user_id, role, created_at) VALUES ('ws_old', 'usr_old', 'owner', 1)`,
	})
	upgradecheck.MembersActive(ctx, t, st, "ws_old", "usr_old")
}

// upgradeFrom writes rows into a database migrated up to version only, and opens it as the current
// version does: migrated forward on open. The store is closed when the test ends.
func upgradeFrom(ctx context.Context, t *testing.T, version int64, rows []string) *sqlstore.DB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := sql.Open("sqlite", path+"?"+pragmas)
	if err != nil {
		t.Fatal(err)
	}
	if err := sqlstore.MigrateTo(ctx, db, goose.DialectSQLite3, mustSub(t, migrations, "migrations"), version); err != nil {
		t.Fatalf("migrate to %d: %v", version, err)
	}
	for _, q := range rows {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	st, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("open and upgrade: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// oldDataDir makes a main file as the last version with the request log inside it left it
// (migration 8): a workspace, a key with its secret, and entries of its log with their hourly
// rollups, in the layout of then. It returns the file's path, the key's secret's digest and the
// entries.
func oldDataDir(t *testing.T) (path string, hash []byte, entries []keyplane.RequestLog) {
	t.Helper()
	ctx := t.Context()
	path = filepath.Join(t.TempDir(), "keyplane.db")
	w, err := sql.Open("sqlite", path+"?"+pragmas+"&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	w.SetMaxOpenConns(1)
	if err := sqlstore.MigrateTo(ctx, w, goose.DialectSQLite3, mustSub(t, migrations, "migrations"), lastVersionWithLog); err != nil {
		t.Fatalf("migrate to %d: %v", lastVersionWithLog, err)
	}
	// The store of today over the file of then creates the workspace; the key, its secret and the
	// log are written by hand, in the layout of then, since today's writes have columns added since.
	old := sqlstore.New(dialect(), w, nil)
	defer old.Close()
	now := time.Now().UTC().Truncate(time.Microsecond)
	ws := &keyplane.Workspace{ID: id.NewAt(id.Workspace, now), Name: "Old", Slug: "old", MaxKeys: 20,
		TestKeyTTLSeconds: 259200, LiveModeEnabled: true, CreatedAt: now, UpdatedAt: now}
	keyID := id.NewAt(id.APIKey, now)
	sum := sha256.Sum256([]byte("kp_sk_live_old"))
	hash = sum[:]
	for _, q := range []struct {
		sql  string
		args []any
	}{
		// By hand too: today's workspaces have a leak policy (migration 13), which the file of then has not.
		{`INSERT INTO workspaces (id, name, slug, max_keys, test_key_ttl_seconds, live_mode_enabled, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, 1, ?, ?)`, []any{ws.ID, ws.Name, ws.Slug, ws.MaxKeys, ws.TestKeyTTLSeconds, now.UnixMicro(), now.UnixMicro()}},
		{`INSERT INTO api_keys (id, workspace_id, name, description, key_type, environment, prefix, value_start,
			value_end, enabled, permissions, ip_allowlist, allowed_origins, meta, rate_limit, rate_window_ms,
			recoverable, created_at, updated_at, created_by)
			VALUES (?, ?, 'k', '', 'secret', 'live', 'kp_sk_live_', 'kp_sk_live_old', 'xold', 1, '["a:b"]', '[]', '[]',
			'{"plan":"pro"}', 10, 1000, 0, ?, ?, '{"type":"system","id":"test"}')`, []any{keyID, ws.ID, now.UnixMicro(), now.UnixMicro()}},
		{`INSERT INTO secrets (hash, key_id, workspace_id, created_at) VALUES (?, ?, ?, ?)`, []any{hash, keyID, ws.ID, now.UnixMicro()}},
	} {
		if _, err := w.ExecContext(ctx, q.sql, q.args...); err != nil {
			t.Fatal(err)
		}
	}
	// 300 entries over the last three hours, of two codes.
	start := now.Add(-3 * time.Hour)
	for i := range 300 {
		ts := start.Add(time.Duration(i) * 36 * time.Second)
		code := keyplane.VerifyValid
		if i%7 == 0 {
			code = keyplane.VerifyRateLimited
		}
		e := keyplane.RequestLog{ID: id.NewAt(id.Request, ts), WorkspaceID: ws.ID, KeyID: keyID,
			Code: code, Source: keyplane.SourceVerify, Method: "POST", Path: "/v1/verify", IP: "203.0.113.9",
			UserAgent: "old/1.0", LatencyMicros: int64(i), Timestamp: ts}
		entries = append(entries, e)
		if _, err := w.ExecContext(ctx, `INSERT INTO request_logs (workspace_id, id, key_id, ts, code, source, method, path,
			ip, user_agent, latency_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, e.WorkspaceID, e.ID, e.KeyID, ts.UnixMicro(),
			string(e.Code), string(e.Source), e.Method, e.Path, e.IP, e.UserAgent, e.LatencyMicros); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range store.CountUsage(entries) {
		if _, err := w.ExecContext(ctx, `INSERT INTO key_usage (key_id, hour, code, workspace_id, requests) VALUES (?, ?, ?, ?, ?)`,
			c.KeyID, c.Hour.UnixMicro(), string(c.Code), c.WorkspaceID, c.Requests); err != nil {
			t.Fatal(err)
		}
	}
	return path, hash, entries
}

func mustSub(t *testing.T, fsys fs.FS, dir string) fs.FS {
	t.Helper()
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		t.Fatal(err)
	}
	return sub
}

// checkMoved opens the data dir and checks that the old file's log and rollups are all in the log's
// file, once, that the main file no longer holds them, and that the key still verifies.
func checkMoved(t *testing.T, path string, hash []byte, entries []keyplane.RequestLog) {
	t.Helper()
	ctx := t.Context()
	st, err := Open(ctx, path)
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
	upgradecheck.LeakPolicyDefault(ctx, t, st, k.WorkspaceID)
	// Migration 16: a value stored before imports existed is not an imported one.
	imported := 0
	if err := st.EachImportedHash(ctx, func([]byte) { imported++ }); err != nil || imported != 0 {
		t.Errorf("after the upgrade, %d imported digests (%v), want none", imported, err)
	}
	var n int
	var got []keyplane.RequestLog
	f := store.LogFilter{Limit: 100}
	for {
		page, next, err := st.ListRequestLogs(ctx, k.WorkspaceID, f)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, page...)
		if next == "" {
			break
		}
		f.Cursor = next
	}
	if len(got) != len(entries) {
		t.Fatalf("%d entries after the upgrade, want %d", len(got), len(entries))
	}
	for i := range got {
		want := entries[len(entries)-1-i]
		if got[i].ID != want.ID || got[i].Code != want.Code || got[i].LatencyMicros != want.LatencyMicros ||
			!got[i].Timestamp.Equal(want.Timestamp) || got[i].IdentityID != "" || got[i].CreditsSpent != 0 || got[i].Tags != nil {
			t.Fatalf("entry %d after the upgrade: %+v, want %+v", i, got[i], want)
		}
	}
	// Log migration 3 and MoveLogRows put the moved entries in blocks, found by key too, and dropped
	// the table of a row per entry.
	var wantIDs []string
	for i := range entries {
		wantIDs = append(wantIDs, entries[len(entries)-1-i].ID)
	}
	upgradecheck.KeyLog(ctx, t, st, k.WorkspaceID, k.ID, wantIDs)
	if err := st.LogSQLDB().QueryRowContext(ctx,
		`SELECT COUNT(*) FROM sqlite_schema WHERE name = 'request_logs'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("the log's file still holds its table of a row per entry (%d, %v)", n, err)
	}
	wantCodes := map[keyplane.VerifyCode]int64{}
	for _, e := range entries {
		wantCodes[e.Code]++
	}
	upgradecheck.Usage(ctx, t, st, k.WorkspaceID, []string{k.ID, ""}, store.UsageFilter{Bucket: time.Hour,
		Since: entries[0].Timestamp.Add(-time.Hour), Until: time.Now().Add(time.Hour)}, wantCodes)
	if err := st.SQLDB().QueryRowContext(ctx,
		`SELECT COUNT(*) FROM sqlite_schema WHERE name IN ('request_logs', 'key_usage')`).Scan(&n); err != nil || n != 0 {
		t.Errorf("the main file still holds %d of the log's tables (%v)", n, err)
	}
}

// TestUpgradeMovesRequestLog: a data dir of the version before the log had a file of its own keeps
// its log and usage, moved to the log's file, and its keys; a second start changes nothing.
func TestUpgradeMovesRequestLog(t *testing.T) {
	path, hash, entries := oldDataDir(t)
	checkMoved(t, path, hash, entries)
	checkMoved(t, path, hash, entries)
}

// TestUpgradeMoveResumes: a start that copied the log but crashed before it dropped the old tables
// is followed by one that drops them without copying the rows again.
func TestUpgradeMoveResumes(t *testing.T) {
	ctx := t.Context()
	path, hash, entries := oldDataDir(t)
	lw, err := openWriter(ctx, LogPath(path), logPragmas)
	if err != nil {
		t.Fatal(err)
	}
	if err := migrate(ctx, lw, logMigrations, "logmigrations", 0); err != nil {
		t.Fatal(err)
	}
	lw.Close()
	w, err := openWriter(ctx, path, pragmas)
	if err != nil {
		t.Fatal(err)
	}
	if err := moveLog(ctx, w, path, LogPath(path)); err != nil {
		t.Fatal(err)
	}
	w.Close()
	checkMoved(t, path, hash, entries)
}

// TestUpgradeKeepsEvents: events and deliveries written before the events list and recovery
// (migration 15) are listed, recovered and pruned after the upgrade.
func TestUpgradeKeepsEvents(t *testing.T) {
	ctx := context.Background()
	at := time.Now().UTC().Add(-time.Hour).Truncate(time.Microsecond)
	old := upgradecheck.OldEvent{WorkspaceID: id.NewAt(id.Workspace, at), EndpointID: id.NewAt(id.Webhook, at),
		EventID: id.NewAt(id.Event, at), DeliveryID: id.NewAt(id.Delivery, at), At: at}
	st := upgradeFrom(ctx, t, 11, old.Statements("1", "0", "X'00'"))
	upgradecheck.Events(ctx, t, st, old)
}

// TestUpgradeBrandingAndPortal: a workspace made before branding and portal sessions (migration 17)
// has no branding after the upgrade, and takes one and portal links.
func TestUpgradeBrandingAndPortal(t *testing.T) {
	ctx := context.Background()
	st := upgradeFrom(ctx, t, 16, []string{
		`INSERT INTO workspaces (id, name, slug, max_keys, test_key_ttl_seconds, live_mode_enabled, created_at, updated_at)
			VALUES ('ws_old', 'Old', 'old', 20, 259200, 1, 1, 1)`,
	})
	upgradecheck.BrandingAndPortal(ctx, t, st, "ws_old")
}

// TestUpgradeCountsKeys: keys made before their workspace's count was kept (migration 18) are counted
// on the upgrade, the revoked ones not.
func TestUpgradeCountsKeys(t *testing.T) {
	ctx := context.Background()
	upgradecheck.KeyCounts(ctx, t, upgradeFrom(ctx, t, 17, upgradecheck.KeyCountRows("1", "0")))
}
