package storetest

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/id"
	"github.com/keyplane/keyplane/internal/store"
)

func testSecrets(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := createWorkspace(t, s, "acme", at(0))
	k := fullKey(w, at(time.Second))
	other := newKey(w, at(2*time.Second))
	insertKeys(t, s, k, other)

	old := newSecret(k, "old", at(time.Second))
	old.ExpiresAt = ptr(at(time.Hour))
	mid := newSecret(k, "mid", at(2*time.Second))
	mid.ExpiresAt = ptr(at(2 * time.Hour))
	mid.Ciphertext = []byte{0x00, 0x01, 0xff} // binary, with a zero byte
	cur := newSecret(k, "cur", at(3*time.Second))
	cur.Ciphertext = []byte("sealed value")
	in := *cur
	in.CreatedAt = elsewhere(cur.CreatedAt)
	insertSecrets(t, s, old, mid, &in)

	for _, want := range []*keyplane.Secret{old, mid, cur} {
		gotKey, gotSecret, err := s.LookupSecret(ctx, want.Hash)
		noErr(t, "LookupSecret", err)
		equal(t, "LookupSecret key", gotKey, verifyRead(k))
		equal(t, "LookupSecret secret", gotSecret, want)
		gotKey, expires, err := s.VerificationKey(ctx, want.Hash)
		noErr(t, "VerificationKey", err)
		equal(t, "VerificationKey key", gotKey, verificationRead(k))
		equal(t, "VerificationKey secret's expiry", expires, want.ExpiresAt)
	}
	miss := sha256.Sum256([]byte("nothing"))
	_, _, err := s.LookupSecret(ctx, miss[:])
	wantErr(t, "LookupSecret(unknown)", err, store.ErrNotFound)
	_, _, err = s.VerificationKey(ctx, miss[:])
	wantErr(t, "VerificationKey(unknown)", err, store.ErrNotFound)

	list, err := s.ListSecrets(ctx, k.ID)
	noErr(t, "ListSecrets", err)
	if len(list) != 3 {
		t.Fatalf("ListSecrets = %d secrets, want 3", len(list))
	}
	for i, want := range []*keyplane.Secret{cur, mid, old} { // newest first
		equal(t, "ListSecrets item", &list[i], want)
	}
	list, err = s.ListSecrets(ctx, other.ID)
	noErr(t, "ListSecrets(no secrets)", err)
	if len(list) != 0 {
		t.Errorf("ListSecrets of a key without secrets = %d", len(list))
	}

	// The hash is unique across keys.
	dup := newSecret(other, "x", at(time.Hour))
	dup.Hash = cur.Hash
	err = s.InTx(ctx, w.ID, func(tx store.Tx) error { return tx.InsertSecret(ctx, dup) })
	wantErr(t, "InsertSecret(taken hash)", err, store.ErrConflict)
	_, gotSecret, err := s.LookupSecret(ctx, cur.Hash)
	noErr(t, "LookupSecret after conflict", err)
	equal(t, "secret after a conflicting insert", gotSecret, cur)
}

func testSupersedeSecrets(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := createWorkspace(t, s, "acme", at(0))
	k := newKey(w, at(time.Second))
	bystander := newKey(w, at(2*time.Second))
	insertKeys(t, s, k, bystander)
	rotateAt := at(time.Hour)

	current := newSecret(k, "current", at(time.Second)) // no expiry: gets rotateAt
	current.Ciphertext = []byte("c1")
	earlier := newSecret(k, "earlier", at(2*time.Second)) // ends before rotateAt: keeps its expiry
	earlier.ExpiresAt = ptr(at(30 * time.Minute))
	earlier.Ciphertext = []byte("c2")
	later := newSecret(k, "later", at(3*time.Second)) // ends after rotateAt: brought forward
	later.ExpiresAt = ptr(at(2 * time.Hour))
	same := newSecret(k, "same", at(4*time.Second)) // ends exactly at rotateAt
	same.ExpiresAt = ptr(rotateAt)
	keep := newSecret(k, "keep", at(5*time.Second)) // the new value: untouched
	keep.Ciphertext = []byte("new")
	other := newSecret(bystander, "current", at(time.Second)) // another key's: untouched
	other.Ciphertext = []byte("other")
	insertSecrets(t, s, current, earlier, later, same, keep, other)

	inTx(t, s, w.ID, func(tx store.Tx) error { return tx.SupersedeSecrets(ctx, k.ID, keep.Hash, elsewhere(rotateAt)) })

	superseded := func(sec *keyplane.Secret, expires time.Time) *keyplane.Secret {
		c := *sec
		c.ExpiresAt, c.Ciphertext = &expires, nil
		return &c
	}
	wants := []*keyplane.Secret{
		superseded(current, rotateAt),
		superseded(earlier, *earlier.ExpiresAt),
		superseded(later, rotateAt),
		superseded(same, rotateAt),
		keep,
		other,
	}
	for _, want := range wants {
		_, got, err := s.LookupSecret(ctx, want.Hash)
		noErr(t, "LookupSecret", err)
		equal(t, "secret after SupersedeSecrets", got, want)
	}

	t.Run("KeepNothing", func(t *testing.T) {
		end := at(10 * time.Minute)
		inTx(t, s, w.ID, func(tx store.Tx) error { return tx.SupersedeSecrets(ctx, k.ID, nil, end) })
		list, err := s.ListSecrets(ctx, k.ID)
		noErr(t, "ListSecrets", err)
		if len(list) != 5 {
			t.Fatalf("ListSecrets = %d, want 5", len(list))
		}
		for _, sec := range list {
			if sec.ExpiresAt == nil || !sec.ExpiresAt.Equal(end) || sec.Ciphertext != nil {
				t.Errorf("secret %x after SupersedeSecrets(keep nil): expires %v, ciphertext %q; want %v, none",
					sec.Hash[:4], sec.ExpiresAt, sec.Ciphertext, end)
			}
		}
		_, got, err := s.LookupSecret(ctx, other.Hash)
		noErr(t, "LookupSecret", err)
		equal(t, "another key's secret", got, other)
	})
}

func testNewestPublishableKey(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := at(24 * time.Hour)
	w := createWorkspace(t, s, "acme", at(0))
	elsewhereWS := createWorkspace(t, s, "globex", at(0))
	empty := createWorkspace(t, s, "initech", at(0))
	ms := func(i int) time.Time { return at(time.Duration(i) * time.Millisecond) }

	live := newKey(w, ms(1), publishable(keyplane.EnvLive), expiring(now.Add(time.Microsecond)))
	test := newKey(w, ms(2), publishable(keyplane.EnvTest))
	olderLive := newKey(w, ms(0), publishable(keyplane.EnvLive))
	// Newer than live, but each not active, or not publishable:
	secretKey := newKey(w, ms(3))
	disabledKey := newKey(w, ms(4), publishable(keyplane.EnvLive), disabled(ms(4)))
	expiredKey := newKey(w, ms(5), publishable(keyplane.EnvLive), expiring(now))
	revokedKey := newKey(w, ms(6), publishable(keyplane.EnvLive), revoked(ms(6)))
	// Newest of all, in another workspace.
	foreign := newKey(elsewhereWS, ms(7), publishable(keyplane.EnvLive))
	keys := []*keyplane.APIKey{olderLive, live, test, secretKey, disabledKey, expiredKey, revokedKey, foreign}
	insertKeys(t, s, keys...)

	var currents = map[string]*keyplane.Secret{}
	for _, k := range keys {
		// Each key has a superseded value, newer than its current one, which must not be chosen.
		cur := newSecret(k, "current", k.CreatedAt)
		cur.Ciphertext = []byte("sealed " + k.ID)
		old := newSecret(k, "old", k.CreatedAt.Add(time.Second))
		old.ExpiresAt = ptr(now.Add(time.Hour))
		insertSecrets(t, s, cur, old)
		currents[k.ID] = cur
	}

	check := func(t *testing.T, ws string, env keyplane.Environment, want *keyplane.APIKey) {
		t.Helper()
		gotKey, gotSecret, err := s.NewestPublishableKey(ctx, ws, env, now)
		if want == nil {
			wantErr(t, "NewestPublishableKey", err, store.ErrNotFound)
			return
		}
		noErr(t, "NewestPublishableKey", err)
		equal(t, "NewestPublishableKey key", gotKey, want)
		equal(t, "NewestPublishableKey secret", gotSecret, currents[want.ID])
	}
	check(t, w.ID, keyplane.EnvLive, live)
	check(t, w.ID, keyplane.EnvTest, test)
	check(t, elsewhereWS.ID, keyplane.EnvLive, foreign)
	check(t, elsewhereWS.ID, keyplane.EnvTest, nil)
	check(t, empty.ID, keyplane.EnvLive, nil)

	// Disabling the newest active one falls back to the next newest.
	d := *live
	d.Enabled, d.DisabledAt = false, &now
	inTx(t, s, w.ID, func(tx store.Tx) error { return tx.UpdateAPIKey(ctx, &d) })
	check(t, w.ID, keyplane.EnvLive, olderLive)
	// A key whose values are all superseded has no current value to give.
	inTx(t, s, w.ID, func(tx store.Tx) error { return tx.SupersedeSecrets(ctx, olderLive.ID, nil, now.Add(time.Hour)) })
	check(t, w.ID, keyplane.EnvLive, nil)
}

func testRootKeys(t *testing.T, s store.Store) {
	ctx := t.Context()
	hash := func(v string) []byte { h := sha256.Sum256([]byte(v)); return h[:] }
	admin := &keyplane.RootKey{
		ID: id.NewAt(id.RootKey, at(0)), Name: "ops", Hash: hash("a"),
		Scopes: []string{keyplane.ScopeAdmin, keyplane.ScopeVerify}, CreatedAt: at(0),
	}
	gone := &keyplane.RootKey{
		ID: id.NewAt(id.RootKey, at(time.Second)), Name: "old", Hash: hash("b"),
		Scopes: []string{keyplane.ScopeVerify}, CreatedAt: at(time.Second), RevokedAt: ptr(at(time.Hour)),
	}
	bare := &keyplane.RootKey{ID: id.NewAt(id.RootKey, at(2*time.Second)), Name: "bare", Hash: hash("c"), CreatedAt: at(2 * time.Second)}
	for _, k := range []*keyplane.RootKey{admin, gone, bare} {
		in := *k
		in.CreatedAt = elsewhere(k.CreatedAt)
		inTx(t, s, store.OperatorChain, func(tx store.Tx) error { return tx.CreateRootKey(ctx, &in) })
	}
	bare.Scopes = []string{}

	for _, want := range []*keyplane.RootKey{admin, gone, bare} {
		got, err := s.GetRootKeyByHash(ctx, want.Hash)
		noErr(t, "GetRootKeyByHash", err)
		equal(t, "GetRootKeyByHash", got, want)
	}
	_, err := s.GetRootKeyByHash(ctx, hash("z"))
	wantErr(t, "GetRootKeyByHash(unknown)", err, store.ErrNotFound)

	dupHash := &keyplane.RootKey{ID: id.NewAt(id.RootKey, at(time.Hour)), Name: "dup", Hash: hash("a"), Scopes: []string{}, CreatedAt: at(time.Hour)}
	err = s.InTx(ctx, store.OperatorChain, func(tx store.Tx) error { return tx.CreateRootKey(ctx, dupHash) })
	wantErr(t, "CreateRootKey(taken hash)", err, store.ErrConflict)
	dupID := &keyplane.RootKey{ID: admin.ID, Name: "dup", Hash: hash("d"), Scopes: []string{}, CreatedAt: at(time.Hour)}
	err = s.InTx(ctx, store.OperatorChain, func(tx store.Tx) error { return tx.CreateRootKey(ctx, dupID) })
	wantErr(t, "CreateRootKey(taken id)", err, store.ErrConflict)
	_, err = s.GetRootKeyByHash(ctx, hash("d"))
	wantErr(t, "root key of a failed create", err, store.ErrNotFound)

	got, err := s.GetRootKey(ctx, gone.ID)
	noErr(t, "GetRootKey", err)
	equal(t, "GetRootKey", got, gone)
	_, err = s.GetRootKey(ctx, "root_nope")
	wantErr(t, "GetRootKey(unknown)", err, store.ErrNotFound)
	list, err := s.ListRootKeys(ctx)
	noErr(t, "ListRootKeys", err)
	equal(t, "ListRootKeys", list, []keyplane.RootKey{*admin, *gone, *bare})

	// Revoking: once, of a key that exists; the revoked key stays listed and found by its hash.
	inTx(t, s, store.OperatorChain, func(tx store.Tx) error { return tx.RevokeRootKey(ctx, admin.ID, at(2*time.Hour)) })
	admin.RevokedAt = ptr(at(2 * time.Hour))
	got, err = s.GetRootKeyByHash(ctx, admin.Hash)
	noErr(t, "GetRootKeyByHash(revoked)", err)
	equal(t, "revoked root key", got, admin)
	for what, id := range map[string]string{"revoked again": admin.ID, "revoked before": gone.ID, "unknown": "root_nope"} {
		err = s.InTx(ctx, store.OperatorChain, func(tx store.Tx) error { return tx.RevokeRootKey(ctx, id, at(3*time.Hour)) })
		wantErr(t, "RevokeRootKey("+what+")", err, store.ErrNotFound)
	}
	got, err = s.GetRootKey(ctx, gone.ID)
	noErr(t, "GetRootKey", err)
	equal(t, "a revoked key revoked again keeps its time", got, gone)
}

// testSealed: the master key rotation's walk over every sealed value, and its replacement.
func testSealed(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := createWorkspace(t, s, "acme", at(0))
	other := createWorkspace(t, s, "globex", at(0))
	k1, k2 := newKey(w, at(time.Second)), newKey(other, at(2*time.Second))
	insertKeys(t, s, k1, k2)
	var sealed []*keyplane.Secret
	for i := range 5 {
		k := k1
		if i%2 == 1 {
			k = k2
		}
		sec := newSecret(k, fmt.Sprint("v", i), at(time.Duration(i)*time.Second))
		sec.Ciphertext = []byte(fmt.Sprint("sealed ", i))
		sealed = append(sealed, sec)
	}
	plain := newSecret(k1, "plain", at(time.Minute)) // no ciphertext: not walked
	insertSecrets(t, s, append(sealed, plain)...)

	var walked [][]byte
	var after []byte
	for {
		page, err := s.SealedSecrets(ctx, after, 2)
		noErr(t, "SealedSecrets", err)
		for _, p := range page {
			walked = append(walked, p.Hash)
			if len(p.Ciphertext) == 0 {
				t.Errorf("SealedSecrets returned %x without a ciphertext", p.Hash)
			}
		}
		if len(page) < 2 {
			break
		}
		after = page[len(page)-1].Hash
	}
	if len(walked) != 5 || !slices.IsSortedFunc(walked, bytes.Compare) {
		t.Errorf("walked %d sealed values (sorted: %v), want 5 in digest order", len(walked), slices.IsSortedFunc(walked, bytes.Compare))
	}
	inTx(t, s, w.ID, func(tx store.Tx) error { return tx.SetSecretCiphertext(ctx, sealed[0].Hash, []byte("resealed")) })
	_, got, err := s.LookupSecret(ctx, sealed[0].Hash)
	noErr(t, "LookupSecret", err)
	if string(got.Ciphertext) != "resealed" {
		t.Errorf("ciphertext after SetSecretCiphertext: %q", got.Ciphertext)
	}
	err = s.InTx(ctx, w.ID, func(tx store.Tx) error { return tx.SetSecretCiphertext(ctx, plain.Hash, []byte("x")) })
	wantErr(t, "SetSecretCiphertext of a value without one", err, store.ErrNotFound)

	// AllWebhooks walks every workspace's endpoints by id.
	h1, h2, h3 := newWebhook(w, at(time.Second)), newWebhook(other, at(2*time.Second)), newWebhook(w, at(3*time.Second))
	insertWebhooks(t, s, h1, h2, h3)
	first, err := s.AllWebhooks(ctx, "", 2)
	noErr(t, "AllWebhooks", err)
	rest, err := s.AllWebhooks(ctx, first[len(first)-1].ID, 2)
	noErr(t, "AllWebhooks", err)
	if len(first) != 2 || len(rest) != 1 || first[0].ID != h1.ID || first[1].ID != h2.ID || rest[0].ID != h3.ID {
		t.Errorf("AllWebhooks pages: %d then %d", len(first), len(rest))
	}
}
