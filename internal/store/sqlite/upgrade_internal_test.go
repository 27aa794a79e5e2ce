package sqlite

import (
	"context"
	"database/sql"
	"io/fs"
	"path/filepath"
	"testing"

	"github.com/pressly/goose/v3"

	"github.com/keyplane/keyplane"
)

// TestUpgradeKeepsMembersActive: a database made before members had a status (migration 6) is
// upgraded with every member active, so that nobody loses access to a workspace on the upgrade.
func TestUpgradeKeepsMembersActive(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := sql.Open("sqlite", path+"?"+pragmas)
	if err != nil {
		t.Fatal(err)
	}
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, fsys, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 6); err != nil {
		t.Fatalf("migrate to 6: %v", err)
	}
	for _, q := range []string{
		`INSERT INTO workspaces (id, name, slug, max_keys, test_key_ttl_seconds, live_mode_enabled, created_at, updated_at)
			VALUES ('ws_old', 'Old', 'old', 20, 259200, 1, 1, 1)`,
		`INSERT INTO users (id, email, password_hash, operator, created_at, updated_at) VALUES ('usr_old', 'old@example.com', '', 0, 1, 1)`,
		`INSERT INTO members (workspace_id, user_id, role, created_at) VALUES ('ws_old', 'usr_old', 'owner', 1)`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	st, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("open and upgrade: %v", err)
	}
	defer st.Close()
	ms, err := st.ListMembers(ctx, "ws_old")
	if err != nil || len(ms) != 1 || ms[0].Status != keyplane.MemberActive || ms[0].Role != keyplane.RoleOwner {
		t.Fatalf("members after the upgrade: %+v, %v", ms, err)
	}
	if got, err := st.ListMemberships(ctx, "usr_old"); err != nil || len(got) != 1 {
		t.Fatalf("memberships after the upgrade: %+v, %v", got, err)
	}
}
