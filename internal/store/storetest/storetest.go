// Package storetest is the conformance suite every store.Store implementation passes, and the helpers
// other packages' tests use to get a real database of each kind (Drivers, Open).
//
// The suite runs each case on a fresh store from open; the cases run in parallel.
package storetest

import (
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/id"
	"github.com/keyplane/keyplane/internal/store"
)

// Run runs the conformance suite against the stores open returns. open must return a fresh, empty
// store for every call and close it when the test ends.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	cases := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Driver", testDriver},
		{"Workspaces", testWorkspaces},
		{"ListWorkspaces", testListWorkspaces},
		{"APIKeyRoundTrip", testAPIKeyRoundTrip},
		{"UpdateAPIKey", testUpdateAPIKey},
		{"DeleteAPIKey", testDeleteAPIKey},
		{"ListAPIKeysFilters", testListAPIKeysFilters},
		{"ListAPIKeysPagination", testListAPIKeysPagination},
		{"CountKeys", testCountKeys},
		{"ImportAPIKeys", testImportAPIKeys},
		{"InsertImportedKeys", testInsertImportedKeys},
		{"KeyUsageFields", testKeyUsageFields},
		{"Identities", testIdentities},
		{"ListIdentities", testListIdentities},
		{"Credits", testCredits},
		{"TakeCreditsShare", testTakeCreditsShare},
		{"TakeCreditsConcurrently", testTakeCreditsConcurrently},
		{"DueRefills", testDueRefills},
		{"RunExclusive", testRunExclusive},
		{"Secrets", testSecrets},
		{"SupersedeSecrets", testSupersedeSecrets},
		{"NewestPublishableKey", testNewestPublishableKey},
		{"RootKeys", testRootKeys},
		{"Users", testUsers},
		{"Members", testMembers},
		{"Memberships", testMemberships},
		{"Sessions", testSessions},
		{"PortalSessions", testPortalSessions},
		{"WorkspaceBranding", testWorkspaceBranding},
		{"Audit", testAudit},
		{"AuditFilters", testAuditFilters},
		{"ScanAudit", testScanAudit},
		{"AuditChains", testAuditChains},
		{"Events", testEvents},
		{"ListEvents", testListEvents},
		{"FailedDeliveries", testFailedDeliveries},
		{"DropEventPayloads", testDropEventPayloads},
		{"RequestLogs", testRequestLogs},
		{"RequestLogFilters", testRequestLogFilters},
		{"RequestLogPagination", testRequestLogPagination},
		{"RequestLogBlocks", testRequestLogBlocks},
		{"RequestLogKeyMinutes", testRequestLogKeyMinutes},
		{"Usage", testUsage},
		{"RequestLogUsageFields", testRequestLogUsageFields},
		{"ExportUsage", testExportUsage},
		{"TouchKeys", testTouchKeys},
		{"PruneRequestLogs", testPruneRequestLogs},
		{"Webhooks", testWebhooks},
		{"ClaimDeliveries", testClaimDeliveries},
		{"FinishDelivery", testFinishDelivery},
		{"KeyNotices", testKeyNotices},
		{"IdempotencyKeys", testIdempotencyKeys},
		{"ClaimIdempotencyKeyConcurrently", testClaimIdempotencyKeyConcurrently},
		{"IdempotencyAnswers", testIdempotencyAnswers},
		{"KeyLeaks", testKeyLeaks},
		{"WorkspaceLeakPolicy", testWorkspaceLeakPolicy},
		{"Sealed", testSealed},
		{"TxReadsOwnWrites", testTxReadsOwnWrites},
		{"RollbackOnError", testRollbackOnError},
		{"RollbackOnPanic", testRollbackOnPanic},
		{"ConflictKeepsTxUsable", testConflictKeepsTxUsable},
		{"ChainLock", testChainLock},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.fn(t, open(t))
		})
	}
}

func testDriver(t *testing.T, s store.Store) {
	if d := s.Driver(); d != "sqlite" && d != "postgres" {
		t.Errorf("Driver() = %q, want sqlite or postgres", d)
	}
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

// --- fixtures ---

// t0 is the suite's reference time. It has microseconds, the precision the store keeps.
func t0() time.Time { return time.Date(2025, 6, 1, 12, 0, 0, 123456000, time.UTC) }

// at returns t0 plus d.
func at(d time.Duration) time.Time { return t0().Add(d) }

// elsewhere returns t in a zone other than UTC: the store must give it back in UTC.
func elsewhere(t time.Time) time.Time { return t.In(time.FixedZone("UTC+2", 2*60*60)) }

func ptr[T any](v T) *T { return &v }

// inTx runs fn in a transaction of chain and fails the test if it fails.
func inTx(t testing.TB, s store.Store, chain string, fn func(tx store.Tx) error) {
	t.Helper()
	if err := s.InTx(t.Context(), chain, fn); err != nil {
		t.Fatalf("InTx: %v", err)
	}
}

func newWorkspace(slug string, created time.Time) *keyplane.Workspace {
	return &keyplane.Workspace{
		ID:                id.NewAt(id.Workspace, created),
		Name:              "Workspace " + slug,
		Slug:              slug,
		MaxKeys:           keyplane.DefaultMaxKeys,
		TestKeyTTLSeconds: keyplane.DefaultTestKeyTTLSeconds,
		LiveModeEnabled:   true,
		LeakPolicy:        keyplane.DefaultLeakPolicy,
		CreatedAt:         created,
		UpdatedAt:         created,
	}
}

func createWorkspace(t testing.TB, s store.Store, slug string, created time.Time) *keyplane.Workspace {
	t.Helper()
	w := newWorkspace(slug, created)
	inTx(t, s, w.ID, func(tx store.Tx) error { return tx.CreateWorkspace(t.Context(), w) })
	return w
}

// newKey returns an active live secret key of w made at created, in the form the store gives back
// (empty lists, "{}" meta), changed by mods.
func newKey(w *keyplane.Workspace, created time.Time, mods ...func(*keyplane.APIKey)) *keyplane.APIKey {
	k := &keyplane.APIKey{
		ID:             id.NewAt(id.APIKey, created),
		WorkspaceID:    w.ID,
		Name:           "key",
		KeyType:        keyplane.KeyTypeSecret,
		Environment:    keyplane.EnvLive,
		Prefix:         "kp_sk_live_",
		Start:          "kp_sk_live_AbC4",
		End:            "x9Qz",
		Enabled:        true,
		Permissions:    []string{},
		IPAllowlist:    []string{},
		AllowedOrigins: []string{},
		Meta:           json.RawMessage(`{}`),
		CreatedAt:      created,
		UpdatedAt:      created,
		CreatedBy:      keyplane.Actor{Type: keyplane.ActorRootKey, ID: "rk_test", Name: "ci"},
	}
	for _, m := range mods {
		m(k)
	}
	return k
}

func publishable(env keyplane.Environment) func(*keyplane.APIKey) {
	return func(k *keyplane.APIKey) {
		k.KeyType, k.Environment = keyplane.KeyTypePublishable, env
		k.Prefix = "kp_pk_" + string(env) + "_"
	}
}

func inEnv(env keyplane.Environment) func(*keyplane.APIKey) {
	return func(k *keyplane.APIKey) { k.Environment = env }
}

func disabled(at time.Time) func(*keyplane.APIKey) {
	return func(k *keyplane.APIKey) { k.Enabled, k.DisabledAt = false, &at }
}

func expiring(at time.Time) func(*keyplane.APIKey) {
	return func(k *keyplane.APIKey) { k.ExpiresAt = &at }
}

func revoked(at time.Time) func(*keyplane.APIKey) {
	return func(k *keyplane.APIKey) { k.RevokedAt = &at }
}

// newSecret returns a current secret of k; tag makes its hash distinct from k's other secrets.
func newSecret(k *keyplane.APIKey, tag string, created time.Time) *keyplane.Secret {
	h := sha256.Sum256([]byte(k.ID + "/" + tag))
	return &keyplane.Secret{Hash: h[:], KeyID: k.ID, WorkspaceID: k.WorkspaceID, CreatedAt: created}
}

func insertKeys(t testing.TB, s store.Store, keys ...*keyplane.APIKey) {
	t.Helper()
	for _, k := range keys {
		inTx(t, s, k.WorkspaceID, func(tx store.Tx) error { return tx.InsertAPIKey(t.Context(), k) })
	}
}

func insertSecrets(t testing.TB, s store.Store, secrets ...*keyplane.Secret) {
	t.Helper()
	for _, sec := range secrets {
		inTx(t, s, sec.WorkspaceID, func(tx store.Tx) error { return tx.InsertSecret(t.Context(), sec) })
	}
}

func ids[T any](items []T, id func(*T) string) []string {
	out := make([]string, len(items))
	for i := range items {
		out[i] = id(&items[i])
	}
	return out
}

func keyID(k *keyplane.APIKey) string { return k.ID }

// --- assertions ---

func wantErr(t testing.TB, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: error = %v, want %v", what, err, target)
	}
}

func noErr(t testing.TB, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// equal compares with reflect.DeepEqual, which tells nil from empty slices and compares times by
// instant and location, and reports the fields that differ.
func equal(t testing.TB, what string, got, want any) {
	t.Helper()
	if reflect.DeepEqual(got, want) {
		return
	}
	g, w := reflect.ValueOf(got), reflect.ValueOf(want)
	for g.IsValid() && w.IsValid() && g.Kind() == reflect.Pointer && w.Kind() == reflect.Pointer &&
		!g.IsNil() && !w.IsNil() {
		g, w = g.Elem(), w.Elem()
	}
	if g.IsValid() && w.IsValid() && g.Type() == w.Type() && g.Kind() == reflect.Struct &&
		g.Type() != reflect.TypeFor[time.Time]() {
		var diffs []string
		for i := range g.NumField() {
			if !reflect.DeepEqual(g.Field(i).Interface(), w.Field(i).Interface()) {
				diffs = append(diffs, fmt.Sprintf("  %s: got %s, want %s", g.Type().Field(i).Name,
					show(g.Field(i)), show(w.Field(i))))
			}
		}
		t.Errorf("%s differs:\n%s", what, strings.Join(diffs, "\n"))
		return
	}
	t.Errorf("%s:\n got %s\nwant %s", what, show(g), show(w))
}

// show renders a value readably: pointers followed, times with their location, bytes in hex.
func show(v reflect.Value) string {
	if !v.IsValid() {
		return "<nil>"
	}
	switch {
	case v.Type() == reflect.TypeFor[time.Time]():
		tm := v.Interface().(time.Time)
		return tm.Format(time.RFC3339Nano) + " (" + tm.Location().String() + ")"
	case v.Type() == reflect.TypeFor[json.RawMessage]():
		if v.IsNil() {
			return "nil"
		}
		return fmt.Sprintf("%q", v.Bytes())
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return "nil"
		}
		return "&" + show(v.Elem())
	case reflect.Slice:
		if v.IsNil() {
			return "nil"
		}
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return fmt.Sprintf("%x", v.Bytes())
		}
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = show(v.Index(i))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case reflect.Struct:
		parts := make([]string, v.NumField())
		for i := range parts {
			parts[i] = v.Type().Field(i).Name + ": " + show(v.Field(i))
		}
		return "{" + strings.Join(parts, ", ") + "}"
	case reflect.String:
		return fmt.Sprintf("%q", v.String())
	}
	return fmt.Sprint(v.Interface())
}

// rawDB is implemented by the sqlstore-based stores. The suite uses it only to check writes that
// store.Store has no read for yet (events).
type rawDB interface {
	SQLDB() *sql.DB
	Rebind(query string) string
}

// eventRow reads an event back with SQL; found is false when there is no such row.
func eventRow(t testing.TB, s store.Store, eventID string) (e keyplane.Event, dispatched sql.NullInt64, found bool) {
	t.Helper()
	db, ok := s.(rawDB)
	if !ok {
		t.Fatalf("store %T does not expose its database; cannot check events", s)
	}
	var data string
	var created int64
	err := db.SQLDB().QueryRowContext(t.Context(),
		db.Rebind(`SELECT id, workspace_id, type, data, created_at, dispatched_at FROM events WHERE id = ?`), eventID).
		Scan(&e.ID, &e.WorkspaceID, &e.Type, &data, &created, &dispatched)
	if errors.Is(err, sql.ErrNoRows) {
		return e, dispatched, false
	}
	noErr(t, "read event", err)
	e.Data, e.CreatedAt = json.RawMessage(data), time.UnixMicro(created).UTC()
	return e, dispatched, true
}
