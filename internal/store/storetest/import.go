package storetest

import (
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
		equal(t, "LookupSecret key", k, &keys[i])
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
