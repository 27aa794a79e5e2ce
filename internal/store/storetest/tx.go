package storetest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/id"
	"github.com/keyplane/keyplane/internal/store"
)

func testTxReadsOwnWrites(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorkspace("acme", at(0))
	k := newKey(w, at(time.Second))
	sec := newSecret(k, "1", at(time.Second))
	inTx(t, s, w.ID, func(tx store.Tx) error {
		if err := tx.CreateWorkspace(ctx, w); err != nil {
			return err
		}
		if err := tx.InsertAPIKey(ctx, k); err != nil {
			return err
		}
		if err := tx.InsertSecret(ctx, sec); err != nil {
			return err
		}
		if err := tx.InsertAudit(ctx, newEntry(w.ID, 1, "", at(0), "x", "", "")); err != nil {
			return err
		}
		got, err := tx.GetWorkspaceBySlug(ctx, "acme")
		if err != nil {
			return fmt.Errorf("GetWorkspaceBySlug in tx: %w", err)
		}
		equal(t, "workspace read in its transaction", got, w)
		gotKey, gotSecret, err := tx.LookupSecret(ctx, sec.Hash)
		if err != nil {
			return fmt.Errorf("LookupSecret in tx: %w", err)
		}
		equal(t, "key read in its transaction", gotKey, k)
		equal(t, "secret read in its transaction", gotSecret, sec)
		if seq, _, err := tx.LastAudit(ctx, w.ID); err != nil || seq != 1 {
			t.Errorf("LastAudit in tx = %d, %v; want 1", seq, err)
		}
		return nil
	})
	got, err := s.GetAPIKey(ctx, w.ID, k.ID)
	noErr(t, "GetAPIKey after commit", err)
	equal(t, "committed key", got, k)
}

// rollbackScenario makes some state, and returns a function that changes all of it with every kind
// of write a transaction has, and one that checks that none of those changes is visible.
func rollbackScenario(t *testing.T, s store.Store) (write func(tx store.Tx) error, check func(t *testing.T)) {
	ctx := t.Context()
	w := createWorkspace(t, s, "acme", at(0))
	updated, deleted, superseded := newKey(w, at(time.Second)), newKey(w, at(2*time.Second), disabled(at(0))), newKey(w, at(3*time.Second))
	insertKeys(t, s, updated, deleted, superseded)
	deletedSecret, supersededSecret := newSecret(deleted, "1", at(0)), newSecret(superseded, "1", at(0))
	supersededSecret.Ciphertext = []byte("sealed")
	insertSecrets(t, s, deletedSecret, supersededSecret)
	user := createUser(t, s, "alice@example.com", at(0))
	inTx(t, s, w.ID, func(tx store.Tx) error {
		return tx.UpsertMember(ctx, &keyplane.Member{WorkspaceID: w.ID, UserID: user.ID, Role: keyplane.RoleViewer, CreatedAt: at(0)})
	})
	members, err := s.ListMembers(ctx, w.ID)
	noErr(t, "ListMembers", err)

	newWS := newWorkspace("fresh", at(time.Hour))
	newK := newKey(w, at(time.Hour))
	newSec := newSecret(newK, "1", at(time.Hour))
	root := &keyplane.RootKey{ID: id.NewAt(id.RootKey, at(0)), Name: "ops", Hash: newSec.Hash[:16], Scopes: []string{"admin"}, CreatedAt: at(0)}
	newUser := newUser("bob@example.com", at(time.Hour))
	event := &keyplane.Event{ID: id.NewAt(id.Event, at(0)), WorkspaceID: w.ID, Type: "x", Data: json.RawMessage(`{}`), CreatedAt: at(0)}

	write = func(tx store.Tx) error {
		steps := []struct {
			name string
			fn   func() error
		}{
			{"CreateWorkspace", func() error { return tx.CreateWorkspace(ctx, newWS) }},
			{"UpdateWorkspace", func() error { u := *w; u.Name = "changed"; return tx.UpdateWorkspace(ctx, &u) }},
			{"InsertAPIKey", func() error { return tx.InsertAPIKey(ctx, newK) }},
			{"UpdateAPIKey", func() error { u := *updated; u.Name = "changed"; return tx.UpdateAPIKey(ctx, &u) }},
			{"DeleteAPIKey", func() error { return tx.DeleteAPIKey(ctx, w.ID, deleted.ID) }},
			{"InsertSecret", func() error { return tx.InsertSecret(ctx, newSec) }},
			{"SupersedeSecrets", func() error { return tx.SupersedeSecrets(ctx, superseded.ID, nil, at(0)) }},
			{"CreateRootKey", func() error { return tx.CreateRootKey(ctx, root) }},
			{"CreateUser", func() error { return tx.CreateUser(ctx, newUser) }},
			{"UpdateUser", func() error { u := *user; u.Email = "changed@example.com"; return tx.UpdateUser(ctx, &u) }},
			{"SetUserOperator", func() error { return tx.SetUserOperator(ctx, user.ID, true, at(time.Hour)) }},
			{"UpsertMember(change)", func() error {
				return tx.UpsertMember(ctx, &keyplane.Member{WorkspaceID: w.ID, UserID: user.ID, Role: keyplane.RoleOwner, CreatedAt: at(0)})
			}},
			{"UpsertMember(add)", func() error {
				return tx.UpsertMember(ctx, &keyplane.Member{WorkspaceID: w.ID, UserID: newUser.ID, Role: keyplane.RoleOwner, CreatedAt: at(0)})
			}},
			{"DeleteMember", func() error { return tx.DeleteMember(ctx, w.ID, user.ID) }},
			{"InsertAudit", func() error { return tx.InsertAudit(ctx, newEntry(w.ID, 1, "", at(0), "x", "", "")) }},
			{"InsertAudit(operator)", func() error {
				return tx.InsertAudit(ctx, newEntry(store.OperatorChain, 1, "", at(0), "x", "", ""))
			}},
			{"InsertEvent", func() error { return tx.InsertEvent(ctx, event) }},
		}
		for _, st := range steps {
			if err := st.fn(); err != nil {
				return fmt.Errorf("%s: %w", st.name, err)
			}
		}
		// Each write is visible inside the transaction before it is undone.
		if _, err := tx.GetWorkspace(ctx, newWS.ID); err != nil {
			return fmt.Errorf("new workspace not visible in its transaction: %w", err)
		}
		return nil
	}

	check = func(t *testing.T) {
		got, err := s.GetWorkspace(ctx, w.ID)
		noErr(t, "GetWorkspace", err)
		equal(t, "updated workspace", got, w)
		_, err = s.GetWorkspace(ctx, newWS.ID)
		wantErr(t, "created workspace", err, store.ErrNotFound)
		_, err = s.GetAPIKey(ctx, w.ID, newK.ID)
		wantErr(t, "inserted key", err, store.ErrNotFound)
		gotKey, err := s.GetAPIKey(ctx, w.ID, updated.ID)
		noErr(t, "GetAPIKey", err)
		equal(t, "updated key", gotKey, updated)
		gotKey, gotSecret, err := s.LookupSecret(ctx, deletedSecret.Hash)
		noErr(t, "LookupSecret of the deleted key", err)
		equal(t, "deleted key", gotKey, deleted)
		equal(t, "deleted key's secret", gotSecret, deletedSecret)
		_, _, err = s.LookupSecret(ctx, newSec.Hash)
		wantErr(t, "inserted secret", err, store.ErrNotFound)
		_, gotSecret, err = s.LookupSecret(ctx, supersededSecret.Hash)
		noErr(t, "LookupSecret", err)
		equal(t, "superseded secret", gotSecret, supersededSecret)
		_, err = s.GetRootKeyByHash(ctx, root.Hash)
		wantErr(t, "created root key", err, store.ErrNotFound)
		_, err = s.GetUser(ctx, newUser.ID)
		wantErr(t, "created user", err, store.ErrNotFound)
		gotUser, err := s.GetUser(ctx, user.ID)
		noErr(t, "GetUser", err)
		equal(t, "updated user", gotUser, user)
		gotMembers, err := s.ListMembers(ctx, w.ID)
		noErr(t, "ListMembers", err)
		equal(t, "members", gotMembers, members)
		chains, err := s.AuditChains(ctx)
		noErr(t, "AuditChains", err)
		if len(chains) != 0 {
			t.Errorf("audit chains after rollback = %q, want none", chains)
		}
		if _, _, found := eventRow(t, s, event.ID); found {
			t.Error("event written by a rolled back transaction")
		}
	}
	return write, check
}

func testRollbackOnError(t *testing.T, s store.Store) {
	write, check := rollbackScenario(t, s)
	boom := errors.New("boom")
	err := s.InTx(t.Context(), "ws_any", func(tx store.Tx) error {
		if err := write(tx); err != nil {
			t.Fatalf("writes: %v", err)
		}
		return fmt.Errorf("giving up: %w", boom)
	})
	wantErr(t, "InTx", err, boom)
	check(t)
}

func testRollbackOnPanic(t *testing.T, s store.Store) {
	write, check := rollbackScenario(t, s)
	type sentinel struct{}
	func() {
		defer func() {
			if r := recover(); r != (sentinel{}) {
				t.Errorf("recovered %v, want fn's own panic", r)
			}
		}()
		err := s.InTx(t.Context(), "ws_any", func(tx store.Tx) error {
			if err := write(tx); err != nil {
				t.Fatalf("writes: %v", err)
			}
			panic(sentinel{})
		})
		t.Errorf("InTx returned %v after fn panicked", err)
	}()
	check(t)
	// The store still works: the connection the panic left was given back clean.
	created := createWorkspace(t, s, "after-panic", at(time.Hour))
	if _, err := s.GetWorkspace(t.Context(), created.ID); err != nil {
		t.Errorf("GetWorkspace after a panic: %v", err)
	}
}

// testConflictKeepsTxUsable checks that a write refused with ErrConflict leaves its transaction
// usable, as it is on SQLite: on PostgreSQL a unique violation would abort the transaction.
func testConflictKeepsTxUsable(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := createWorkspace(t, s, "acme", at(0))
	w2 := createWorkspace(t, s, "globex", at(0))
	k := newKey(w, at(0))
	insertKeys(t, s, k)
	sec := newSecret(k, "1", at(0))
	insertSecrets(t, s, sec)
	alice := createUser(t, s, "alice@example.com", at(0))
	bob := createUser(t, s, "bob@example.com", at(0))
	root := &keyplane.RootKey{ID: id.NewAt(id.RootKey, at(0)), Name: "ops", Hash: sec.Hash[:16], Scopes: []string{}, CreatedAt: at(0)}
	inTx(t, s, store.OperatorChain, func(tx store.Tx) error { return tx.CreateRootKey(ctx, root) })
	entry := newEntry(w.ID, 1, "", at(0), "x", "", "")
	inTx(t, s, w.ID, func(tx store.Tx) error { return tx.InsertAudit(ctx, entry) })
	event := &keyplane.Event{ID: id.NewAt(id.Event, at(0)), WorkspaceID: w.ID, Type: "x", CreatedAt: at(0)}
	inTx(t, s, w.ID, func(tx store.Tx) error { return tx.InsertEvent(ctx, event) })

	after := newWorkspace("initech", at(time.Hour))
	inTx(t, s, w.ID, func(tx store.Tx) error {
		conflicts := []struct {
			name string
			fn   func() error
		}{
			{"CreateWorkspace", func() error { return tx.CreateWorkspace(ctx, newWorkspace(w.Slug, at(time.Hour))) }},
			{"UpdateWorkspace", func() error { u := *w2; u.Slug = w.Slug; return tx.UpdateWorkspace(ctx, &u) }},
			{"InsertAPIKey", func() error { return tx.InsertAPIKey(ctx, k) }},
			{"InsertSecret", func() error { return tx.InsertSecret(ctx, sec) }},
			{"CreateRootKey", func() error { r := *root; r.ID = id.NewAt(id.RootKey, at(1)); return tx.CreateRootKey(ctx, &r) }},
			{"CreateUser", func() error { return tx.CreateUser(ctx, newUser("ALICE@example.com", at(time.Hour))) }},
			{"UpdateUser", func() error { u := *bob; u.Email = alice.Email; return tx.UpdateUser(ctx, &u) }},
			{"InsertAudit", func() error { return tx.InsertAudit(ctx, entry) }},
			{"InsertEvent", func() error { return tx.InsertEvent(ctx, event) }},
		}
		for _, c := range conflicts {
			wantErr(t, c.name, c.fn(), store.ErrConflict)
		}
		return tx.CreateWorkspace(ctx, after)
	})
	if _, err := s.GetWorkspace(ctx, after.ID); err != nil {
		t.Errorf("write after conflicts in the same transaction: %v", err)
	}
}

// testChainLock runs transactions that each append to the same audit chain concurrently: each reads
// the chain's last entry and writes the next. Unless transactions of one chain are serialized, two
// read the same last entry and one of them fails or forks the chain.
func testChainLock(t *testing.T, s store.Store) {
	ctx := t.Context()
	const perChain = 12
	chains := []string{"ws_a", "ws_b", store.OperatorChain}
	var wg sync.WaitGroup
	errs := make(chan error, perChain*len(chains))
	for _, chain := range chains {
		for range perChain {
			wg.Go(func() {
				errs <- s.InTx(ctx, chain, func(tx store.Tx) error {
					seq, prev, err := tx.LastAudit(ctx, chain)
					if err != nil {
						return err
					}
					// Widen the window between the read and the write.
					time.Sleep(2 * time.Millisecond)
					return tx.InsertAudit(ctx, chainEntry(chain, seq+1, prev))
				})
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("InTx: %v", err)
		}
	}
	for _, chain := range chains {
		var seq int64
		prev := ""
		err := s.ScanAudit(ctx, chain, func(e *keyplane.AuditEntry) error {
			seq++
			if e.Seq != seq {
				return fmt.Errorf("entry %d has seq %d", seq, e.Seq)
			}
			if want := chainEntry(chain, seq, prev).Hash; e.Hash != want {
				return fmt.Errorf("entry %d was not written on top of entry %d", seq, seq-1)
			}
			prev = e.Hash
			return nil
		})
		noErr(t, "chain "+strconv.Quote(chain), err)
		if seq != perChain {
			t.Errorf("chain %q has %d entries, want %d", chain, seq, perChain)
		}
	}
}

func chainEntry(chain string, seq int64, prev string) *keyplane.AuditEntry {
	h := sha256.Sum256([]byte(prev + strconv.FormatInt(seq, 10)))
	return &keyplane.AuditEntry{
		ID: id.New(id.Audit), WorkspaceID: chain, Seq: seq, Timestamp: at(time.Duration(seq) * time.Second),
		Action: "test", Body: json.RawMessage(`{}`), Hash: hex.EncodeToString(h[:]),
	}
}
