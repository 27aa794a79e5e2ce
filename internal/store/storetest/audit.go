package storetest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/id"
	"github.com/keyplane/keyplane/internal/store"
)

// newEntry returns entry seq of chain, hashed onto prev the way the audit trail does, with a body
// that is not canonical JSON (the store must keep its bytes as they are).
func newEntry(chain string, seq int64, prev string, ts time.Time, action, actor, target string) *keyplane.AuditEntry {
	body := fmt.Sprintf(`{"id": "x", "seq":%d, "action":"%s", "note":"caf\u00e9 ☕"}`, seq, action)
	h := sha256.Sum256([]byte(prev + body))
	return &keyplane.AuditEntry{
		ID: id.NewAt(id.Audit, ts), WorkspaceID: chain, Seq: seq, Timestamp: ts,
		Action: action, ActorID: actor, TargetID: target,
		Body: json.RawMessage(body), Hash: hex.EncodeToString(h[:]),
	}
}

// appendEntries adds entries to chain, one transaction each, following its last one.
func appendEntries(t testing.TB, s store.Store, chain string, n int, entry func(i int) (ts time.Time, action, actor, target string)) []*keyplane.AuditEntry {
	t.Helper()
	var out []*keyplane.AuditEntry
	for i := range n {
		inTx(t, s, chain, func(tx store.Tx) error {
			seq, prev, err := tx.LastAudit(t.Context(), chain)
			if err != nil {
				return err
			}
			ts, action, actor, target := entry(i)
			e := newEntry(chain, seq+1, prev, ts, action, actor, target)
			out = append(out, e)
			return tx.InsertAudit(t.Context(), e)
		})
	}
	return out
}

func testAudit(t *testing.T, s store.Store) {
	ctx := t.Context()
	seq, hash, err := s.LastAudit(ctx, "ws_a")
	noErr(t, "LastAudit(empty)", err)
	if seq != 0 || hash != "" {
		t.Errorf("LastAudit of an empty chain = %d, %q; want 0, \"\"", seq, hash)
	}

	plain := func(i int) (time.Time, string, string, string) {
		return at(time.Duration(i) * time.Second), "api_key.created", "usr_1", "apk_1"
	}
	a := appendEntries(t, s, "ws_a", 3, plain)
	op := appendEntries(t, s, store.OperatorChain, 2, plain)
	b := appendEntries(t, s, "ws_b", 1, plain)

	for _, c := range []struct {
		chain string
		want  []*keyplane.AuditEntry
	}{{"ws_a", a}, {store.OperatorChain, op}, {"ws_b", b}} {
		seq, hash, err := s.LastAudit(ctx, c.chain)
		noErr(t, "LastAudit", err)
		last := c.want[len(c.want)-1]
		if seq != last.Seq || hash != last.Hash {
			t.Errorf("LastAudit(%q) = %d, %s; want %d, %s", c.chain, seq, hash, last.Seq, last.Hash)
		}
		got, next, err := s.ListAudit(ctx, c.chain, store.AuditFilter{Limit: 100})
		noErr(t, "ListAudit", err)
		if next != "" {
			t.Errorf("ListAudit next = %q, want none", next)
		}
		want := slices.Clone(c.want)
		slices.Reverse(want)
		if len(got) != len(want) {
			t.Fatalf("ListAudit(%q) = %d entries, want %d", c.chain, len(got), len(want))
		}
		for i := range got {
			equal(t, "ListAudit entry", &got[i], want[i])
		}
	}

	t.Run("TimestampInAnotherZone", func(t *testing.T) {
		e := newEntry("ws_c", 1, "", elsewhere(at(time.Hour)), "x", "", "")
		inTx(t, s, "ws_c", func(tx store.Tx) error { return tx.InsertAudit(ctx, e) })
		got, _, err := s.ListAudit(ctx, "ws_c", store.AuditFilter{Limit: 1})
		noErr(t, "ListAudit", err)
		want := *e
		want.Timestamp = at(time.Hour)
		equal(t, "entry", &got[0], &want)
	})

	t.Run("Conflicts", func(t *testing.T) {
		sameSeq := newEntry("ws_a", 3, "", at(time.Hour), "x", "", "")
		err := s.InTx(ctx, "ws_a", func(tx store.Tx) error { return tx.InsertAudit(ctx, sameSeq) })
		wantErr(t, "InsertAudit(taken seq)", err, store.ErrConflict)
		sameID := newEntry("ws_b", 2, "", at(time.Hour), "x", "", "")
		sameID.ID = a[0].ID
		err = s.InTx(ctx, "ws_b", func(tx store.Tx) error { return tx.InsertAudit(ctx, sameID) })
		wantErr(t, "InsertAudit(id taken in another chain)", err, store.ErrConflict)
		// Seq is per chain: 3 in another chain is free.
		inTx(t, s, "ws_b", func(tx store.Tx) error {
			return tx.InsertAudit(ctx, newEntry("ws_b", 3, "", at(time.Hour), "x", "", ""))
		})
		if seq, _, _ := s.LastAudit(ctx, "ws_a"); seq != 3 {
			t.Errorf("LastAudit(ws_a) = %d after conflicts, want 3", seq)
		}
	})
}

func testAuditFilters(t *testing.T, s store.Store) {
	ctx := t.Context()
	const chain = "ws_a"
	actions := []string{"api_key.created", "api_key.updated", "api_key.revoked"}
	actors := []string{"usr_1", "apk_2"}
	targets := []string{"apk_1", "apk_2", "apk_3"}
	entries := appendEntries(t, s, chain, 12, func(i int) (time.Time, string, string, string) {
		return at(time.Duration(i) * time.Minute), actions[i%3], actors[i%2], targets[(i/2)%3]
	})
	// The same variety in another chain: never listed.
	appendEntries(t, s, "ws_b", 12, func(i int) (time.Time, string, string, string) {
		return at(time.Duration(i) * time.Minute), actions[i%3], actors[i%2], targets[(i/2)%3]
	})
	newestFirst := slices.Clone(entries)
	slices.Reverse(newestFirst)

	cases := []struct {
		name string
		f    store.AuditFilter
		keep func(e *keyplane.AuditEntry) bool
	}{
		{"All", store.AuditFilter{}, func(*keyplane.AuditEntry) bool { return true }},
		{"Action", store.AuditFilter{Action: "api_key.updated"}, func(e *keyplane.AuditEntry) bool { return e.Action == "api_key.updated" }},
		{"Actor", store.AuditFilter{ActorID: "apk_2"}, func(e *keyplane.AuditEntry) bool { return e.ActorID == "apk_2" }},
		{"Target", store.AuditFilter{TargetID: "apk_3"}, func(e *keyplane.AuditEntry) bool { return e.TargetID == "apk_3" }},
		{"SinceInclusive", store.AuditFilter{Since: ptr(at(5 * time.Minute))}, func(e *keyplane.AuditEntry) bool { return !e.Timestamp.Before(at(5 * time.Minute)) }},
		{"UntilExclusive", store.AuditFilter{Until: ptr(at(5 * time.Minute))}, func(e *keyplane.AuditEntry) bool { return e.Timestamp.Before(at(5 * time.Minute)) }},
		{"SinceUntil", store.AuditFilter{Since: ptr(elsewhere(at(3 * time.Minute))), Until: ptr(at(9*time.Minute + time.Microsecond))}, func(e *keyplane.AuditEntry) bool {
			return !e.Timestamp.Before(at(3*time.Minute)) && e.Timestamp.Before(at(9*time.Minute+time.Microsecond))
		}},
		{"ActionActorTarget", store.AuditFilter{Action: "api_key.created", ActorID: "usr_1", TargetID: "apk_1"}, func(e *keyplane.AuditEntry) bool {
			return e.Action == "api_key.created" && e.ActorID == "usr_1" && e.TargetID == "apk_1"
		}},
		{"NoMatch", store.AuditFilter{Action: "nothing"}, func(*keyplane.AuditEntry) bool { return false }},
	}
	for _, c := range cases {
		var want []*keyplane.AuditEntry
		var wantIDs []string
		for _, e := range newestFirst {
			if c.keep(e) {
				want = append(want, e)
				wantIDs = append(wantIDs, e.ID)
			}
		}
		if wantIDs == nil {
			wantIDs = []string{}
		}
		t.Run(c.name, func(t *testing.T) {
			f := c.f
			f.Limit = 100
			got, _, err := s.ListAudit(ctx, chain, f)
			noErr(t, "ListAudit", err)
			if len(got) != len(want) {
				t.Fatalf("ListAudit = %v, want %v", ids(got, func(e *keyplane.AuditEntry) string { return e.ID }), wantIDs)
			}
			for i := range got {
				equal(t, "ListAudit entry", &got[i], want[i])
			}
			for _, limit := range []int{1, 2, 5} {
				walked := walk(t, limit, func(cursor string) ([]string, string, error) {
					f := c.f
					f.Limit, f.Cursor = limit, cursor
					es, next, err := s.ListAudit(ctx, chain, f)
					return ids(es, func(e *keyplane.AuditEntry) string { return e.ID }), next, err
				})
				equal(t, fmt.Sprintf("entries over pages of %d", limit), walked, wantIDs)
			}
		})
	}

	t.Run("BadCursor", func(t *testing.T) {
		w := createWorkspace(t, s, "acme", at(0))
		insertKeys(t, s, newKey(w, at(0)), newKey(w, at(time.Millisecond)))
		_, keyCursor, err := s.ListAPIKeys(ctx, w.ID, store.KeyFilter{KeyFilter: keyplane.KeyFilter{Limit: 1}})
		noErr(t, "ListAPIKeys", err)
		for _, c := range badCursors(keyCursor) {
			_, _, err := s.ListAudit(ctx, chain, store.AuditFilter{Limit: 2, Cursor: c})
			wantErr(t, fmt.Sprintf("ListAudit(cursor %q)", c), err, store.ErrBadCursor)
		}
	})
}

func testScanAudit(t *testing.T, s store.Store) {
	ctx := t.Context()
	// More than one of any reasonable batch, and not a multiple of one.
	const n = 1001
	const chain = "ws_big"
	var entries []*keyplane.AuditEntry
	inTx(t, s, chain, func(tx store.Tx) error {
		prev := ""
		for i := range n {
			e := newEntry(chain, int64(i+1), prev, at(time.Duration(i)*time.Millisecond), "a", "b", "c")
			if err := tx.InsertAudit(ctx, e); err != nil {
				return err
			}
			entries, prev = append(entries, e), e.Hash
		}
		return nil
	})
	small := appendEntries(t, s, "ws_small", 3, func(i int) (time.Time, string, string, string) {
		return at(time.Duration(i) * time.Second), "x", "y", "z"
	})

	var got []*keyplane.AuditEntry
	noErr(t, "ScanAudit", s.ScanAudit(ctx, chain, func(e *keyplane.AuditEntry) error {
		got = append(got, e)
		return nil
	}))
	if len(got) != n {
		t.Fatalf("ScanAudit gave %d entries, want %d", len(got), n)
	}
	for i := range got {
		if got[i].Seq != int64(i+1) {
			t.Fatalf("ScanAudit entry %d has seq %d: not oldest first without gaps", i, got[i].Seq)
		}
	}
	equal(t, "first entry", got[0], entries[0])
	equal(t, "last entry", got[n-1], entries[n-1])

	t.Run("StopsAtError", func(t *testing.T) {
		stop := errors.New("stop")
		calls := 0
		err := s.ScanAudit(ctx, "ws_small", func(e *keyplane.AuditEntry) error {
			calls++
			if e.Seq == 2 {
				return stop
			}
			return nil
		})
		wantErr(t, "ScanAudit", err, stop)
		if calls != 2 {
			t.Errorf("fn called %d times, want 2", calls)
		}
	})

	t.Run("Empty", func(t *testing.T) {
		err := s.ScanAudit(ctx, "ws_none", func(*keyplane.AuditEntry) error {
			t.Error("fn called for an empty chain")
			return nil
		})
		noErr(t, "ScanAudit(empty)", err)
	})

	t.Run("InTxWithQueries", func(t *testing.T) {
		// fn may use the transaction while the scan runs.
		var seen []int64
		inTx(t, s, "ws_small", func(tx store.Tx) error {
			return tx.ScanAudit(ctx, "ws_small", func(e *keyplane.AuditEntry) error {
				last, _, err := tx.LastAudit(ctx, "ws_small")
				if err != nil {
					return err
				}
				if last != 3 {
					t.Errorf("LastAudit during the scan = %d, want 3", last)
				}
				seen = append(seen, e.Seq)
				return nil
			})
		})
		equal(t, "seqs scanned in a transaction", seen, []int64{1, 2, 3})
		equal(t, "last entry of the small chain", small[2].Seq, int64(3))
	})
}

func testAuditChains(t *testing.T, s store.Store) {
	ctx := t.Context()
	chains, err := s.AuditChains(ctx)
	noErr(t, "AuditChains(empty)", err)
	if len(chains) != 0 {
		t.Errorf("AuditChains of an empty store = %q", chains)
	}
	one := func(int) (time.Time, string, string, string) { return at(0), "x", "", "" }
	appendEntries(t, s, "ws_b", 2, one)
	appendEntries(t, s, "ws_a", 1, one)
	chains, err = s.AuditChains(ctx)
	noErr(t, "AuditChains", err)
	equal(t, "AuditChains without the operator's", chains, []string{"ws_a", "ws_b"})
	appendEntries(t, s, store.OperatorChain, 1, one)
	chains, err = s.AuditChains(ctx)
	noErr(t, "AuditChains", err)
	equal(t, "AuditChains", chains, []string{store.OperatorChain, "ws_a", "ws_b"})
}

func testEvents(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := createWorkspace(t, s, "acme", at(0))
	full := &keyplane.Event{
		ID: id.NewAt(id.Event, at(0)), WorkspaceID: w.ID, Type: keyplane.EventAPIKeyCreated,
		Data: json.RawMessage(`{"id": "apk_1",  "name":"x"}`), CreatedAt: at(time.Second),
	}
	empty := &keyplane.Event{ID: id.NewAt(id.Event, at(time.Second)), WorkspaceID: w.ID, Type: "custom.ping", CreatedAt: at(time.Second)}
	in := *full
	in.CreatedAt = elsewhere(full.CreatedAt)
	inTx(t, s, w.ID, func(tx store.Tx) error {
		if err := tx.InsertEvent(ctx, &in); err != nil {
			return err
		}
		return tx.InsertEvent(ctx, empty)
	})

	got, dispatched, found := eventRow(t, s, full.ID)
	if !found {
		t.Fatal("event not stored")
	}
	equal(t, "stored event", &got, full)
	if dispatched.Valid {
		t.Errorf("a new event is marked dispatched")
	}
	got, _, found = eventRow(t, s, empty.ID)
	if !found {
		t.Fatal("event without data not stored")
	}
	if string(got.Data) != "{}" {
		t.Errorf("event without data stored with data %q, want {}", got.Data)
	}

	dup := *empty
	dup.Type = "other"
	err := s.InTx(ctx, w.ID, func(tx store.Tx) error { return tx.InsertEvent(ctx, &dup) })
	wantErr(t, "InsertEvent(taken id)", err, store.ErrConflict)
}
