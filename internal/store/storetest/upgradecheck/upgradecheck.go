// Package upgradecheck holds the checks the drivers' upgrade tests share on what an upgrade kept.
// It is a package of its own, apart from storetest, because storetest imports the drivers and the
// SQLite upgrade test is internal to its driver: importing storetest from it would be a cycle.
package upgradecheck

import (
	"context"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/store"
)

// Usage checks that, for each of keyIDs ("" for the whole workspace), the usage of
// workspaceID within f sums to want per code.
func Usage(ctx context.Context, t testing.TB, s store.Store, workspaceID string, keyIDs []string, f store.UsageFilter, want map[keyplane.VerifyCode]int64) {
	t.Helper()
	for _, keyID := range keyIDs {
		buckets, err := s.Usage(ctx, workspaceID, keyID, f)
		if err != nil {
			t.Fatal(err)
		}
		got := map[keyplane.VerifyCode]int64{}
		for _, b := range buckets {
			for c, n := range b.Codes {
				got[c] += n
			}
		}
		if !maps.Equal(got, want) {
			t.Errorf("usage of %q after the upgrade: %v, want %v", keyID, got, want)
		}
	}
}

// MembersActive checks that the one member of workspaceID, userID, came through the upgrade as an
// active owner: members made before they had a status must not lose access.
func MembersActive(ctx context.Context, t testing.TB, s store.Store, workspaceID, userID string) {
	t.Helper()
	ms, err := s.ListMembers(ctx, workspaceID)
	if err != nil || len(ms) != 1 || ms[0].Status != keyplane.MemberActive || ms[0].Role != keyplane.RoleOwner {
		t.Fatalf("members after the upgrade: %+v, %v", ms, err)
	}
	if got, err := s.ListMemberships(ctx, userID); err != nil || len(got) != 1 {
		t.Fatalf("memberships after the upgrade: %+v, %v", got, err)
	}
}

// KeyUnchanged checks a key written before usage-based keys (migration 11) as the fixtures of the
// upgrade tests write it: its fields as they were, no identity, no named limits, unlimited credits.
func KeyUnchanged(t testing.TB, k *keyplane.APIKey) {
	t.Helper()
	if k.Name != "k" || k.Start != "kp_sk_live_old" || !k.Enabled || len(k.Permissions) != 1 || k.Permissions[0] != "a:b" ||
		string(k.Meta) != `{"plan":"pro"}` || k.RateLimit == nil || *k.RateLimit != (keyplane.RateLimit{Limit: 10, WindowMs: 1000}) {
		t.Errorf("the key after the upgrade: %+v", k)
	}
	if k.RateLimits != nil || k.Credits != nil || k.IdentityID != "" || k.Identity != nil {
		t.Errorf("the key after the upgrade has limits %v, credits %+v, identity %q %+v; want none", k.RateLimits, k.Credits,
			k.IdentityID, k.Identity)
	}
}

// VerifiesAsBefore checks that the verification read of the key of hash (store.VerificationKey)
// finds what a verification reads of full, the key as LookupSecret read it after the upgrade.
func VerifiesAsBefore(ctx context.Context, t testing.TB, s store.Store, hash []byte, full *keyplane.APIKey) {
	t.Helper()
	k, _, err := s.VerificationKey(ctx, hash)
	if err != nil {
		t.Fatalf("the verification read after the upgrade: %v", err)
	}
	if got, want := keyplane.Compile(k), keyplane.Compile(full); !reflect.DeepEqual(got, want) {
		t.Errorf("the verification read after the upgrade: %+v, want %+v", got, want)
	}
}

// LeakPolicyDefault checks that a workspace made before workspaces had a leak policy (migration 13)
// came through the upgrade with the default one, and that its keys have no leak records.
func LeakPolicyDefault(ctx context.Context, t testing.TB, s store.Store, workspaceID string) {
	t.Helper()
	w, err := s.GetWorkspace(ctx, workspaceID)
	if err != nil {
		t.Fatalf("the workspace after the upgrade: %v", err)
	}
	if w.LeakPolicy != keyplane.DefaultLeakPolicy {
		t.Errorf("leak policy after the upgrade: %q, want %q", w.LeakPolicy, keyplane.DefaultLeakPolicy)
	}
}

// OldEvent is an event, with an endpoint and one failed attempt of it, written into a database of an
// older schema (before migration 15) by the drivers' upgrade tests.
type OldEvent struct {
	WorkspaceID, EndpointID, EventID, DeliveryID string
	At                                           time.Time
}

// Statements are the rows of e in an older schema; yes and no are how the dialect writes booleans,
// blob a binary value.
func (e OldEvent) Statements(yes, no, blob string) []string {
	at := strconv.FormatInt(e.At.UnixMicro(), 10)
	return []string{
		`INSERT INTO workspaces (id, name, slug, max_keys, test_key_ttl_seconds, live_mode_enabled, created_at, updated_at)
			VALUES ('` + e.WorkspaceID + `', 'Old', 'old-events', 20, 259200, ` + yes + `, ` + at + `, ` + at + `)`,
		`INSERT INTO webhook_endpoints (id, workspace_id, url, description, event_types, enabled, disabled_reason, secret, created_at, updated_at)
			VALUES ('` + e.EndpointID + `', '` + e.WorkspaceID + `', 'https://example.com/hook', '', '["*"]', ` + yes + `, '', ` + blob + `, ` + at + `, ` + at + `)`,
		`INSERT INTO events (id, workspace_id, type, data, created_at) VALUES ('` + e.EventID + `', '` + e.WorkspaceID + `', 'order.created', '{"order":1}', ` + at + `)`,
		`INSERT INTO webhook_deliveries (id, workspace_id, endpoint_id, event_id, event_type, attempt, status, status_code, response_body, error, created_at, manual)
			VALUES ('` + e.DeliveryID + `', '` + e.WorkspaceID + `', '` + e.EndpointID + `', '` + e.EventID + `', 'order.created', 1, 'failed', 503, '', 'down', ` + at + `, ` + no + `)`,
	}
}

// Events checks that an event written before migration 15 is listed, recoverable, and its payload
// droppable after the upgrade.
func Events(ctx context.Context, t testing.TB, s store.Store, e OldEvent) {
	t.Helper()
	evs, _, err := s.ListEvents(ctx, e.WorkspaceID, store.EventFilter{Limit: 10})
	if err != nil || len(evs) != 1 || evs[0].ID != e.EventID || string(evs[0].Data) != `{"order":1}` {
		t.Fatalf("events after the upgrade: %+v, %v", evs, err)
	}
	ds, err := s.FailedDeliveries(ctx, e.WorkspaceID, e.EndpointID, e.At.Add(-time.Minute), e.At.Add(time.Minute), "", 10)
	if err != nil || len(ds) != 1 || ds[0].ID != e.DeliveryID {
		t.Fatalf("failed deliveries after the upgrade: %+v, %v", ds, err)
	}
	if n, err := s.DropEventPayloads(ctx, e.At.Add(time.Hour), 10); err != nil || n != 1 {
		t.Fatalf("drop payloads after the upgrade: %d, %v", n, err)
	}
}

// BrandingAndPortal checks that a workspace made before branding and portal sessions (migration 17)
// came through the upgrade with no branding, takes one, and may hold portal sessions.
func BrandingAndPortal(ctx context.Context, t testing.TB, s store.Store, workspaceID string) {
	t.Helper()
	w, err := s.GetWorkspace(ctx, workspaceID)
	if err != nil {
		t.Fatalf("the workspace after the upgrade: %v", err)
	}
	if w.Branding != (keyplane.Branding{}) {
		t.Errorf("branding after the upgrade: %+v, want none", w.Branding)
	}
	w.Branding = keyplane.Branding{Name: "Old brand", AccentColor: "#123456"}
	ps := &keyplane.PortalSession{ID: "ps_after_upgrade", WorkspaceID: workspaceID, Role: keyplane.RoleViewer,
		User: keyplane.PortalUser{ID: "u1"}, CreatedAt: time.Now(), LinkExpiresAt: time.Now().Add(time.Minute)}
	link := []byte("portal link digest after upgrade!")
	err = s.InTx(ctx, workspaceID, func(tx store.Tx) error {
		if err := tx.UpdateWorkspace(ctx, w); err != nil {
			return err
		}
		return tx.InsertPortalSession(ctx, ps, link)
	})
	if err != nil {
		t.Fatalf("branding and a portal link after the upgrade: %v", err)
	}
	if got, err := s.GetWorkspace(ctx, workspaceID); err != nil || got.Branding != w.Branding {
		t.Errorf("branding read back after the upgrade: %+v, %v; want %+v", got, err, w.Branding)
	}
	if got, err := s.GetPortalLink(ctx, link); err != nil || got.ID != ps.ID {
		t.Errorf("portal link read back after the upgrade: %+v, %v", got, err)
	}
}

// KeyLog checks that the request log of keyID, in workspaceID, lists exactly want (entry ids, newest
// first), read a few entries a page: entries written before the log was kept in blocks are found by
// key after the upgrade.
func KeyLog(ctx context.Context, t testing.TB, s store.Store, workspaceID, keyID string, want []string) {
	t.Helper()
	if got := KeyLogIDs(ctx, t, s, workspaceID, keyID, 7); !slices.Equal(got, want) {
		t.Errorf("log of key %s after the upgrade: %d entries, want %d", keyID, len(got), len(want))
	}
}

// KeyLogIDs returns the ids of the request log of keyID, in workspaceID, newest first, read limit a
// page, following the cursors to the last page (a few thousand pages at most).
func KeyLogIDs(ctx context.Context, t testing.TB, s store.Store, workspaceID, keyID string, limit int) []string {
	t.Helper()
	var got []string
	f := store.LogFilter{KeyID: keyID, Limit: limit}
	for range 10_000 {
		page, next, err := s.ListRequestLogs(ctx, workspaceID, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			got = append(got, e.ID)
		}
		if f.Cursor = next; next == "" {
			return got
		}
	}
	t.Fatalf("log of key %s: no last page", keyID)
	return nil
}

// KeyCountRows returns the rows of the key counts' upgrade fixture (made before the counts were kept,
// migration key_counts), with the database's true and false spelled yes and no: workspace ws_a with
// three keys, one of them revoked, and ws_b with one key.
func KeyCountRows(yes, no string) []string {
	rows := []string{
		`INSERT INTO workspaces (id, name, slug, max_keys, test_key_ttl_seconds, live_mode_enabled, created_at, updated_at)
			VALUES ('ws_a', 'A', 'a', 20, 259200, ` + yes + `, 1, 1), ('ws_b', 'B', 'b', 20, 259200, ` + yes + `, 1, 1)`,
	}
	for i, k := range []struct{ id, ws, revokedAt string }{
		{"apk_a1", "ws_a", "NULL"}, {"apk_a2", "ws_a", "NULL"}, {"apk_a3", "ws_a", "5"}, {"apk_b1", "ws_b", "NULL"},
	} {
		n := strconv.Itoa(i)
		rows = append(rows, `INSERT INTO api_keys (id, workspace_id, name, description, key_type, environment, prefix,
			value_start, value_end, enabled, permissions, ip_allowlist, allowed_origins, meta, rate_limit, rate_window_ms,
			recoverable, created_at, updated_at, created_by, revoked_at)
			VALUES ('`+k.id+`', '`+k.ws+`', 'k`+n+`', '', 'secret', 'live', 'kp_sk_live_', 'kp_sk_live_o`+n+`', 'x`+n+`', `+yes+`,
			'[]', '[]', '[]', '{}', NULL, NULL, `+no+`, 1, 1, '{"type":"system","id":"test"}', `+k.revokedAt+`)`)
	}
	return rows
}

// KeyCounts checks what an upgrade from KeyCountRows counted: two keys of ws_a and one of ws_b, not
// the revoked one; and that the count then follows a revocation.
func KeyCounts(ctx context.Context, t testing.TB, s store.Store) {
	t.Helper()
	for ws, want := range map[string]int{"ws_a": 2, "ws_b": 1} {
		if n, err := s.CountKeys(ctx, ws); err != nil || n != want {
			t.Errorf("CountKeys(%s) after the upgrade = %d, %v; want %d", ws, n, err, want)
		}
	}
	k, err := s.GetAPIKey(ctx, "ws_a", "apk_a1")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	k.RevokedAt = &now
	if err := s.InTx(ctx, "ws_a", func(tx store.Tx) error { return tx.UpdateAPIKey(ctx, k) }); err != nil {
		t.Fatal(err)
	}
	if n, err := s.CountKeys(ctx, "ws_a"); err != nil || n != 1 {
		t.Errorf("CountKeys(ws_a) after the upgrade and a revocation = %d, %v; want 1", n, err)
	}
}
