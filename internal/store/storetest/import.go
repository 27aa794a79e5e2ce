package storetest

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/store"
)

// testImportAPIKeys: a bulk import of more keys than one statement or COPY chunk holds, across two
// workspaces, reads back field for field; a second import with one duplicate digest writes nothing.
func testImportAPIKeys(t *testing.T, s store.Store) {
	ctx := t.Context()
	acme := createWorkspace(t, s, "acme", at(0))
	globex := createWorkspace(t, s, "globex", at(0))

	const n = 300 // 128 + 128 + 32 + 8 + 4: every chunk size of a multi-row insert
	keys := make([]keyplane.APIKey, 0, n)
	secrets := make([]keyplane.Secret, 0, n+1)
	full := fullKey(acme, at(time.Second))
	keys = append(keys, *full)
	for i := 1; i < n; i++ {
		w := acme
		if i%3 == 0 {
			w = globex
		}
		keys = append(keys, *newKey(w, at(time.Duration(i)*time.Millisecond), func(k *keyplane.APIKey) {
			k.Name = fmt.Sprintf("key %d", i)
		}))
	}
	for i := range keys {
		secrets = append(secrets, *newSecret(&keys[i], "v1", keys[i].CreatedAt))
	}
	old := newSecret(full, "v0", at(0))
	old.ExpiresAt, old.Ciphertext = ptr(at(time.Hour)), []byte{0, 1, 2}
	secrets = append(secrets, *old)

	noErr(t, "ImportAPIKeys", s.ImportAPIKeys(ctx, keys, secrets))

	got, err := s.GetAPIKey(ctx, acme.ID, full.ID)
	noErr(t, "GetAPIKey(imported)", err)
	equal(t, "imported key", got, full)
	for _, i := range []int{0, 1, 3, 128, 255, 256, n - 1} {
		k, sec, err := s.LookupSecret(ctx, secrets[i].Hash)
		noErr(t, "LookupSecret(imported)", err)
		equal(t, "LookupSecret key", k, verifyRead(&keys[i]))
		equal(t, "LookupSecret secret", sec, &secrets[i])
	}
	_, sec, err := s.LookupSecret(ctx, old.Hash)
	noErr(t, "LookupSecret(old value)", err)
	equal(t, "old value", sec, old)
	nAcme, err := s.CountKeys(ctx, acme.ID)
	noErr(t, "CountKeys", err)
	nGlobex, err := s.CountKeys(ctx, globex.ID)
	noErr(t, "CountKeys", err)
	// full is revoked and does not count; globex has every third of the others.
	if wantGlobex := (n - 1) / 3; nAcme != n-1-wantGlobex || nGlobex != wantGlobex {
		t.Errorf("CountKeys = %d and %d, want %d and %d", nAcme, nGlobex, n-1-wantGlobex, wantGlobex)
	}

	// All or nothing: fresh keys, but the last secret's digest is taken.
	more := []keyplane.APIKey{*newKey(acme, at(time.Minute)), *newKey(acme, at(2*time.Minute))}
	moreSecrets := []keyplane.Secret{*newSecret(&more[0], "v1", at(time.Minute)), secrets[5]}
	moreSecrets[1].KeyID = more[1].ID
	if err := s.ImportAPIKeys(ctx, more, moreSecrets); err == nil {
		t.Fatal("an import with a duplicate digest succeeded")
	}
	for _, k := range more {
		_, err := s.GetAPIKey(ctx, acme.ID, k.ID)
		wantErr(t, "GetAPIKey(after a failed import)", err, store.ErrNotFound)
	}
	_, _, err = s.LookupSecret(ctx, moreSecrets[0].Hash)
	wantErr(t, "LookupSecret(after a failed import)", err, store.ErrNotFound)
}

// testInsertImportedKeys: keys migrated in through a change (Tx.InsertImportedKeys) read back field
// for field; their digests, and theirs alone, are the imported ones (EachImportedHash, where the store
// has it); StoredSecrets finds which digests exist; a duplicate digest fails the transaction whole.
func testInsertImportedKeys(t *testing.T, s store.Store) {
	ctx := t.Context()
	acme := createWorkspace(t, s, "acme", at(0))
	made := newKey(acme, at(0))
	madeSecret := newSecret(made, "made", at(0))
	noErr(t, "InTx(made)", s.InTx(ctx, acme.ID, func(tx store.Tx) error {
		if err := tx.InsertAPIKey(ctx, made); err != nil {
			return err
		}
		return tx.InsertSecret(ctx, madeSecret)
	}))
	const n = 150 // 128 + 16 + 4 + 2: several chunk sizes
	keys := make([]keyplane.APIKey, n)
	secrets := make([]keyplane.Secret, n)
	for i := range keys {
		keys[i] = *newKey(acme, at(time.Duration(i+1)*time.Millisecond), func(k *keyplane.APIKey) { k.Name = fmt.Sprintf("imported %d", i) })
		secrets[i] = *newSecret(&keys[i], "imported", keys[i].CreatedAt)
	}
	keys[7] = *fullKey(acme, at(time.Second))
	secrets[7] = *newSecret(&keys[7], "imported", at(time.Second))
	noErr(t, "InTx(import)", s.InTx(ctx, acme.ID, func(tx store.Tx) error {
		return tx.InsertImportedKeys(ctx, keys, secrets)
	}))
	for _, i := range []int{0, 7, 127, 128, n - 1} {
		k, sec, err := s.LookupSecret(ctx, secrets[i].Hash)
		noErr(t, "LookupSecret(imported)", err)
		equal(t, "imported key", k, verifyRead(&keys[i]))
		equal(t, "imported secret", sec, &secrets[i])
	}
	unknown := newSecret(made, "never stored", at(0)).Hash
	noErr(t, "InTx(stored)", s.InTx(ctx, acme.ID, func(tx store.Tx) error {
		got, err := tx.StoredSecrets(ctx, [][]byte{unknown, secrets[3].Hash, madeSecret.Hash})
		if err != nil {
			return err
		}
		if len(got) != 2 || !(bytes.Equal(got[0], secrets[3].Hash) || bytes.Equal(got[1], secrets[3].Hash)) {
			t.Errorf("StoredSecrets = %x, want the imported and the made digest", got)
		}
		none, err := tx.StoredSecrets(ctx, nil)
		if err != nil || len(none) != 0 {
			t.Errorf("StoredSecrets(nothing) = %x, %v", none, err)
		}
		return nil
	}))
	if each, ok := s.(interface {
		EachImportedHash(ctx context.Context, fn func([]byte)) error
	}); ok {
		seen := map[string]bool{}
		noErr(t, "EachImportedHash", each.EachImportedHash(ctx, func(h []byte) { seen[string(h)] = true }))
		if len(seen) != n || seen[string(madeSecret.Hash)] {
			t.Errorf("EachImportedHash: %d digests (made one among them: %v), want the %d imported", len(seen), seen[string(madeSecret.Hash)], n)
		}
	}
	// All or nothing: a fresh key, and one whose digest is stored.
	more := []keyplane.APIKey{*newKey(acme, at(time.Minute)), *newKey(acme, at(2*time.Minute))}
	moreSecrets := []keyplane.Secret{*newSecret(&more[0], "fresh", at(time.Minute)), secrets[5]}
	moreSecrets[1].KeyID = more[1].ID
	err := s.InTx(ctx, acme.ID, func(tx store.Tx) error { return tx.InsertImportedKeys(ctx, more, moreSecrets) })
	wantErr(t, "InsertImportedKeys(duplicate digest)", err, store.ErrConflict)
	_, err = s.GetAPIKey(ctx, acme.ID, more[0].ID)
	wantErr(t, "GetAPIKey(after a failed import)", err, store.ErrNotFound)
}
