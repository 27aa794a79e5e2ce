package storetest

import (
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/store"
)

// testKeyLeaks: a leaked value's record is kept once per digest, read back whole, listed per key
// newest first and only in the key's workspace, and goes with its key.
func testKeyLeaks(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := createWorkspace(t, s, "acme", at(0))
	other := createWorkspace(t, s, "globex", at(0))
	a := newKey(w, at(time.Second))
	b := newKey(other, at(2*time.Second))
	insertKeys(t, s, a, b)
	sa1, sa2, sb := newSecret(a, "1", at(time.Second)), newSecret(a, "2", at(time.Minute)), newSecret(b, "1", at(time.Second))
	insertSecrets(t, s, sa1, sa2, sb)

	_, err := s.GetKeyLeak(ctx, sa1.Hash)
	wantErr(t, "GetKeyLeak before any report", err, store.ErrNotFound)
	first := &keyplane.KeyLeak{Hash: sa1.Hash, KeyID: a.ID, WorkspaceID: w.ID, Source: "github", URL: "https://github.com/o/r/blob/x/.env",
		Action: keyplane.LeakRevoked, ReportedAt: elsewhere(at(time.Hour))}
	inTx(t, s, w.ID, func(tx store.Tx) error { return tx.InsertKeyLeak(ctx, first) })
	got, err := s.GetKeyLeak(ctx, sa1.Hash)
	noErr(t, "GetKeyLeak", err)
	want := *first
	want.ReportedAt = at(time.Hour)
	equal(t, "GetKeyLeak, time given back in UTC", got, &want)

	// The same value again: a conflict, and the first record stays as it was, the transaction too.
	again := *first
	again.Source, again.Action = "scanner", keyplane.LeakNotified
	err = s.InTx(ctx, w.ID, func(tx store.Tx) error { return tx.InsertKeyLeak(ctx, &again) })
	wantErr(t, "InsertKeyLeak twice", err, store.ErrConflict)
	got, err = s.GetKeyLeak(ctx, sa1.Hash)
	noErr(t, "GetKeyLeak after a second report", err)
	equal(t, "the first record, unchanged", got, &want)

	second := &keyplane.KeyLeak{Hash: sa2.Hash, KeyID: a.ID, WorkspaceID: w.ID, Source: "", URL: "",
		Action: keyplane.LeakNone, ReportedAt: at(2 * time.Hour)}
	inTx(t, s, w.ID, func(tx store.Tx) error { return tx.InsertKeyLeak(ctx, second) })
	inTx(t, s, other.ID, func(tx store.Tx) error {
		return tx.InsertKeyLeak(ctx, &keyplane.KeyLeak{Hash: sb.Hash, KeyID: b.ID, WorkspaceID: other.ID, Source: "x", URL: "y",
			Action: keyplane.LeakDisabled, ReportedAt: at(3 * time.Hour)})
	})
	list, err := s.ListKeyLeaks(ctx, w.ID, a.ID, 10)
	noErr(t, "ListKeyLeaks", err)
	equal(t, "a's leaks, newest first", leakHashes(list), []string{string(sa2.Hash), string(sa1.Hash)})
	list, err = s.ListKeyLeaks(ctx, w.ID, a.ID, 1)
	noErr(t, "ListKeyLeaks limited", err)
	equal(t, "a's newest leak", leakHashes(list), []string{string(sa2.Hash)})
	list, err = s.ListKeyLeaks(ctx, w.ID, b.ID, 10)
	noErr(t, "ListKeyLeaks of another workspace's key", err)
	equal(t, "another workspace's key's leaks", len(list), 0)

	// Deleting a key deletes its records: the digests are free again, the other key's stay.
	inTx(t, s, w.ID, func(tx store.Tx) error { return tx.DeleteAPIKey(ctx, w.ID, a.ID) })
	_, err = s.GetKeyLeak(ctx, sa1.Hash)
	wantErr(t, "GetKeyLeak after the key was deleted", err, store.ErrNotFound)
	list, err = s.ListKeyLeaks(ctx, w.ID, a.ID, 10)
	noErr(t, "ListKeyLeaks of a deleted key", err)
	equal(t, "a deleted key's leaks", len(list), 0)
	_, err = s.GetKeyLeak(ctx, sb.Hash)
	noErr(t, "GetKeyLeak of the other key", err)
}

func leakHashes(ls []keyplane.KeyLeak) []string {
	out := []string{}
	for _, l := range ls {
		out = append(out, string(l.Hash))
	}
	return out
}

// testWorkspaceLeakPolicy: the policy is written on create and update and read back.
func testWorkspaceLeakPolicy(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorkspace("acme", at(0))
	w.LeakPolicy = keyplane.LeakNotify
	inTx(t, s, w.ID, func(tx store.Tx) error { return tx.CreateWorkspace(ctx, w) })
	got, err := s.GetWorkspace(ctx, w.ID)
	noErr(t, "GetWorkspace", err)
	equal(t, "policy on create", got.LeakPolicy, keyplane.LeakNotify)
	w.LeakPolicy, w.UpdatedAt = keyplane.LeakDisable, at(time.Minute)
	inTx(t, s, w.ID, func(tx store.Tx) error { return tx.UpdateWorkspace(ctx, w) })
	got, err = s.GetWorkspace(ctx, w.ID)
	noErr(t, "GetWorkspace", err)
	equal(t, "policy on update", got.LeakPolicy, keyplane.LeakDisable)
	// A workspace stored without a policy (the zero value) is written with the default.
	z := newWorkspace("zero", at(0))
	z.LeakPolicy = ""
	inTx(t, s, z.ID, func(tx store.Tx) error { return tx.CreateWorkspace(ctx, z) })
	got, err = s.GetWorkspace(ctx, z.ID)
	noErr(t, "GetWorkspace", err)
	equal(t, "policy of a workspace given none", got.LeakPolicy, keyplane.DefaultLeakPolicy)
}
