package storetest

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/store"
)

// Durability names, in the database's own words, the durability each kind of transaction must
// commit with.
type Durability struct {
	// Full: keys, audit entries, events, endpoints and everything else that is acknowledged to
	// someone (SQLite's synchronous "2", PostgreSQL's synchronous_commit "on").
	Full string
	// Log: the request log's batches, which a power cut may take back.
	Log string
	// Hooks: the webhook workers' leases and outcomes.
	Hooks string
}

// DurabilityTables are the tables CheckDurability writes and expects seen to report. On SQLite,
// request_log_blocks, key_usage and key_last_used are in the request log's file, the others in the
// main one: seen must watch both.
var DurabilityTables = []string{"workspaces", "api_keys", "secrets", "audit_entries", "events", "request_log_blocks",
	"key_usage", "key_last_used", "webhook_endpoints", "webhook_deliveries"}

// CheckDurability writes, through s, what each kind of transaction writes (a key with its audit entry
// and event, a request log batch, a revocation, an endpoint and an attempt, the attempt's lease and
// outcome) and checks that each was committed with the durability want gives it. seen reports, and
// forgets, the setting in force at each write since it was last called, by table: the caller records
// it from inside the transactions (a trigger), so that a setting made anywhere, in the code or on
// every connection, shows.
func CheckDurability(t *testing.T, s store.Store, want Durability, seen func() map[string][]string) {
	ctx := t.Context()
	check := func(what, want string, tables ...string) {
		t.Helper()
		got := seen()
		for _, tbl := range tables {
			if len(got[tbl]) == 0 {
				t.Errorf("%s: no row of %s written; the test no longer covers it", what, tbl)
			}
		}
		for _, tbl := range slices.Sorted(maps.Keys(got)) {
			for _, v := range got[tbl] {
				if v != want {
					t.Errorf("%s: %s written with %q, want %q", what, tbl, v, want)
				}
			}
		}
	}
	seen() // what setting up wrote

	now := time.Now().UTC().Truncate(time.Microsecond)
	ws := newWorkspace("durable", now)
	k := newKey(ws, now)
	keyTx := func(seq int64, change func(tx store.Tx) error) {
		t.Helper()
		inTx(t, s, ws.ID, func(tx store.Tx) error {
			if err := change(tx); err != nil {
				return err
			}
			id := fmt.Sprintf("%02d", seq)
			if err := tx.InsertAudit(ctx, &keyplane.AuditEntry{ID: "aud_" + id, WorkspaceID: ws.ID, Seq: seq, Body: []byte("{}")}); err != nil {
				return err
			}
			return tx.InsertEvent(ctx, &keyplane.Event{ID: "evt_" + id, WorkspaceID: ws.ID, Type: keyplane.EventAPIKeyCreated,
				Data: []byte("{}"), CreatedAt: now})
		})
	}
	keyTx(1, func(tx store.Tx) error {
		if err := tx.CreateWorkspace(ctx, ws); err != nil {
			return err
		}
		if err := tx.InsertAPIKey(ctx, k); err != nil {
			return err
		}
		return tx.InsertSecret(ctx, &keyplane.Secret{Hash: make([]byte, 32), KeyID: k.ID, WorkspaceID: ws.ID, CreatedAt: now})
	})
	check("a key's creation", want.Full, "workspaces", "api_keys", "secrets", "audit_entries", "events")

	writeLogs(t, s, []keyplane.RequestLog{logEntry(k, now, keyplane.VerifyValid, keyplane.SourceVerify)}, map[string]time.Time{k.ID: now})
	// The batch's counts and the key's last use may be lost with it: both live with the log, apart
	// from the keys' own tables.
	check("a request log batch", want.Log, "request_log_blocks", "key_usage", "key_last_used")

	// A revocation after the log's batch: whatever the batch relaxed must be back.
	keyTx(2, func(tx store.Tx) error {
		k.RevokedAt, k.UpdatedAt = &now, now
		return tx.UpdateAPIKey(ctx, k)
	})
	check("a revocation after a log batch", want.Full, "api_keys", "audit_entries", "events")

	hook := newWebhook(ws, now)
	d := newDelivery(hook, now, now.Add(-time.Second))
	keyTx(3, func(tx store.Tx) error {
		if err := tx.InsertWebhook(ctx, hook); err != nil {
			return err
		}
		return tx.InsertDelivery(ctx, d)
	})
	check("an endpoint and an attempt with their event", want.Full, "webhook_endpoints", "webhook_deliveries", "events")
	claimed, err := s.ClaimDeliveries(ctx, now, now.Add(time.Minute), "c1", 10, nil)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("ClaimDeliveries = %d, %v; want the one attempt", len(claimed), err)
	}
	check("a lease", want.Hooks, "webhook_deliveries")
	claimed[0].Status = keyplane.DeliverySucceeded
	_, err = s.FinishDelivery(ctx, &claimed[0], "c1", now, nil)
	noErr(t, "FinishDelivery", err)
	check("an outcome", want.Hooks, "webhook_deliveries", "webhook_endpoints")

	keyTx(4, func(tx store.Tx) error { return nil })
	check("an audit entry after the webhook bookkeeping", want.Full, "audit_entries", "events")
}
