package storetest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/id"
	"github.com/keyplane/keyplane/internal/store"
)

// identityPrefix is the API's prefix of identity ids (idn_).
const identityPrefix = "idn"

func newIdentity(w *keyplane.Workspace, externalID string, created time.Time, mods ...func(*keyplane.Identity)) *keyplane.Identity {
	i := &keyplane.Identity{ID: id.NewAt(identityPrefix, created), WorkspaceID: w.ID, ExternalID: externalID,
		Meta: json.RawMessage(`{}`), CreatedAt: created, UpdatedAt: created}
	for _, m := range mods {
		m(i)
	}
	return i
}

func insertIdentities(t testing.TB, s store.Store, identities ...*keyplane.Identity) {
	t.Helper()
	for _, i := range identities {
		inTx(t, s, i.WorkspaceID, func(tx store.Tx) error { return tx.InsertIdentity(t.Context(), i) })
	}
}

// monthly returns credits of remaining refilled to amount on day of each month, next due at next.
func monthly(remaining, amount int64, day int, next time.Time) *keyplane.Credits {
	return &keyplane.Credits{Remaining: remaining, Refill: &keyplane.Refill{Interval: keyplane.RefillMonthly, Amount: amount,
		RefillDay: day}, NextRefillAt: &next}
}

// testIdentities: identities round-trip with their limits and credits, by id and by externalId, in
// their workspace only; an externalId is unique per workspace, on insert and on update; an update
// never writes the credits; lists go newest first by cursor; keys name them.
func testIdentities(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := createWorkspace(t, s, "acme", at(0))
	other := createWorkspace(t, s, "globex", at(0))

	full := newIdentity(w, "cus_123", at(time.Second), func(i *keyplane.Identity) {
		i.Meta = json.RawMessage(`{"plan": "pro",  "seats":[1]}`)
		i.RateLimits = []keyplane.NamedRateLimit{{Name: "tokens", Limit: 1000, WindowMs: 60000},
			{Name: "requests", Limit: 10, WindowMs: 1000, AutoApply: true}}
		i.Credits = monthly(500, 1000, 31, at(30*24*time.Hour))
		i.Credits.LastRefillAt = ptr(at(-time.Hour))
		i.Credits.Epoch = 3
		i.Credits.ExhaustedAt = ptr(at(time.Minute))
		i.UpdatedAt = at(2 * time.Second)
	})
	minimal := newIdentity(w, "cus_456", at(2*time.Second))
	same := newIdentity(other, "cus_123", at(3*time.Second)) // another workspace may use the same externalId
	insertIdentities(t, s, full, minimal, same)

	for _, want := range []*keyplane.Identity{full, minimal} {
		got, err := s.GetIdentity(ctx, w.ID, want.ID)
		noErr(t, "GetIdentity", err)
		equal(t, "GetIdentity", got, want)
		got, err = s.GetIdentityByExternalID(ctx, w.ID, want.ExternalID)
		noErr(t, "GetIdentityByExternalID", err)
		equal(t, "GetIdentityByExternalID", got, want)
	}
	_, err := s.GetIdentity(ctx, other.ID, full.ID)
	wantErr(t, "GetIdentity of another workspace's identity", err, store.ErrNotFound)
	_, err = s.GetIdentityByExternalID(ctx, w.ID, "nobody")
	wantErr(t, "GetIdentityByExternalID(unknown)", err, store.ErrNotFound)
	got, err := s.GetIdentityByExternalID(ctx, other.ID, "cus_123")
	noErr(t, "GetIdentityByExternalID(other workspace)", err)
	equal(t, "the other workspace's identity", got, same)

	dup := newIdentity(w, "cus_123", at(time.Hour))
	err = s.InTx(ctx, w.ID, func(tx store.Tx) error { return tx.InsertIdentity(ctx, dup) })
	wantErr(t, "InsertIdentity(taken externalId)", err, store.ErrConflict)

	// Update: externalId, meta and limits change; the credits stay as they are in the database.
	u := *full
	u.ExternalID, u.Meta, u.RateLimits, u.UpdatedAt = "cus_789", json.RawMessage(`{"b":2}`), nil, at(time.Hour)
	u.Credits = &keyplane.Credits{Remaining: 1}
	inTx(t, s, w.ID, func(tx store.Tx) error { return tx.UpdateIdentity(ctx, &u) })
	want := u
	want.Credits = full.Credits
	got, err = s.GetIdentity(ctx, w.ID, full.ID)
	noErr(t, "GetIdentity after update", err)
	equal(t, "identity after update", got, &want)
	u.ExternalID = minimal.ExternalID
	err = s.InTx(ctx, w.ID, func(tx store.Tx) error { return tx.UpdateIdentity(ctx, &u) })
	wantErr(t, "UpdateIdentity(taken externalId)", err, store.ErrConflict)
	gone := *minimal
	gone.WorkspaceID = other.ID
	err = s.InTx(ctx, other.ID, func(tx store.Tx) error { return tx.UpdateIdentity(ctx, &gone) })
	wantErr(t, "UpdateIdentity(other workspace)", err, store.ErrNotFound)

	// Keys of an identity: counted (revoked ones too), their values listed.
	k1 := newKey(w, at(time.Minute), func(k *keyplane.APIKey) { k.IdentityID = full.ID })
	k2 := newKey(w, at(2*time.Minute), func(k *keyplane.APIKey) { k.IdentityID = full.ID; k.RevokedAt = ptr(at(time.Hour)) })
	k3 := newKey(w, at(3*time.Minute))
	insertKeys(t, s, k1, k2, k3)
	s1, s1b, s2 := newSecret(k1, "v1", at(time.Minute)), newSecret(k1, "v2", at(time.Hour)), newSecret(k2, "v1", at(time.Minute))
	insertSecrets(t, s, s1, s1b, s2, newSecret(k3, "v1", at(time.Minute)))
	n, err := s.CountIdentityKeys(ctx, full.ID)
	noErr(t, "CountIdentityKeys", err)
	equal(t, "CountIdentityKeys", n, 2)
	n, err = s.CountIdentityKeys(ctx, minimal.ID)
	noErr(t, "CountIdentityKeys(no keys)", err)
	equal(t, "CountIdentityKeys(no keys)", n, 0)
	hashes, err := s.IdentityKeyHashes(ctx, full.ID)
	noErr(t, "IdentityKeyHashes", err)
	if len(hashes) != 3 {
		t.Errorf("IdentityKeyHashes: %d digests, want 3", len(hashes))
	}
	for _, sec := range []*keyplane.Secret{s1, s1b, s2} {
		found := false
		for _, h := range hashes {
			found = found || string(h) == string(sec.Hash)
		}
		if !found {
			t.Errorf("IdentityKeyHashes misses %x", sec.Hash)
		}
	}

	// Delete: absent or of another workspace is not found; once its keys are gone it goes.
	err = s.InTx(ctx, other.ID, func(tx store.Tx) error { return tx.DeleteIdentity(ctx, other.ID, minimal.ID) })
	wantErr(t, "DeleteIdentity(other workspace)", err, store.ErrNotFound)
	inTx(t, s, w.ID, func(tx store.Tx) error { return tx.DeleteIdentity(ctx, w.ID, minimal.ID) })
	_, err = s.GetIdentity(ctx, w.ID, minimal.ID)
	wantErr(t, "GetIdentity after delete", err, store.ErrNotFound)
	err = s.InTx(ctx, w.ID, func(tx store.Tx) error { return tx.DeleteIdentity(ctx, w.ID, minimal.ID) })
	wantErr(t, "DeleteIdentity twice", err, store.ErrNotFound)
}

// testListIdentities: newest first, page by page, of the workspace only.
func testListIdentities(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := createWorkspace(t, s, "acme", at(0))
	other := createWorkspace(t, s, "globex", at(0))
	var want []string
	for i := range 7 {
		idn := newIdentity(w, "cus_"+string(rune('a'+i)), at(time.Duration(i)*time.Second))
		insertIdentities(t, s, idn, newIdentity(other, "cus_"+string(rune('a'+i)), at(time.Duration(i)*time.Second)))
		want = append([]string{idn.ID}, want...)
	}
	for limit := 1; limit <= len(want)+1; limit++ {
		got := walk(t, limit, func(cursor string) ([]string, string, error) {
			is, next, err := s.ListIdentities(ctx, w.ID, limit, cursor)
			return ids(is, func(i *keyplane.Identity) string { return i.ID }), next, err
		})
		equal(t, "identities over all pages", got, want)
	}
	_, _, err := s.ListIdentities(ctx, w.ID, 10, "bogus")
	wantErr(t, "ListIdentities(bad cursor)", err, store.ErrBadCursor)
	is, next, err := s.ListIdentities(ctx, createWorkspace(t, s, "empty", at(0)).ID, 10, "")
	noErr(t, "ListIdentities(empty)", err)
	if is == nil || len(is) != 0 || next != "" {
		t.Errorf("ListIdentities(empty) = %v, %q; want [] and no cursor", is, next)
	}
}

// testKeyUsageFields: a key's named limits, credits and identity round-trip through every read, the
// reads that verify and GetAPIKey with the identity; UpdateAPIKey writes the limits and the identity
// but never the credits; ListAPIKeys filters by identity; an import writes them too.
func testKeyUsageFields(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := createWorkspace(t, s, "acme", at(0))
	idn := newIdentity(w, "cus_1", at(0), func(i *keyplane.Identity) {
		i.Credits = &keyplane.Credits{Remaining: 7}
		i.RateLimits = []keyplane.NamedRateLimit{{Name: "shared", Limit: 5, WindowMs: 1000, AutoApply: true}}
	})
	idn2 := newIdentity(w, "cus_2", at(0))
	insertIdentities(t, s, idn, idn2)
	rich := fullKey(w, at(time.Second))
	rich.RevokedAt, rich.ExpiresAt = nil, nil
	rich.RateLimits = []keyplane.NamedRateLimit{{Name: "tokens", Limit: 100000, WindowMs: 86400000},
		{Name: "burst.1:a-b_c", Limit: 3, WindowMs: 1000, AutoApply: true}}
	rich.Credits = &keyplane.Credits{Remaining: keyplane.MaxCredits, Refill: &keyplane.Refill{Interval: keyplane.RefillDaily,
		Amount: 100}, NextRefillAt: ptr(at(24 * time.Hour)), LastRefillAt: ptr(at(-time.Hour))}
	rich.IdentityID = idn.ID
	zero := newKey(w, at(2*time.Second), func(k *keyplane.APIKey) { k.Credits = &keyplane.Credits{} })
	plain := newKey(w, at(3*time.Second))
	insertKeys(t, s, rich, zero, plain)
	sec := newSecret(rich, "v1", at(time.Second))
	insertSecrets(t, s, sec)

	withIdentity := *rich
	withIdentity.Identity = idn
	got, err := s.GetAPIKey(ctx, w.ID, rich.ID)
	noErr(t, "GetAPIKey", err)
	equal(t, "GetAPIKey", got, &withIdentity)
	got, err = s.FindAPIKey(ctx, rich.ID)
	noErr(t, "FindAPIKey", err)
	equal(t, "FindAPIKey", got, verifyRead(&withIdentity))
	got, _, err = s.LookupSecret(ctx, sec.Hash)
	noErr(t, "LookupSecret", err)
	equal(t, "LookupSecret", got, verifyRead(&withIdentity))
	got, _, err = s.VerificationKey(ctx, sec.Hash)
	noErr(t, "VerificationKey", err)
	equal(t, "VerificationKey", got, verificationRead(&withIdentity))
	for _, want := range []*keyplane.APIKey{zero, plain} {
		got, err := s.GetAPIKey(ctx, w.ID, want.ID)
		noErr(t, "GetAPIKey", err)
		equal(t, "GetAPIKey", got, want)
	}

	list := func(identityID string) []string {
		ks, _, err := s.ListAPIKeys(ctx, w.ID, store.KeyFilter{KeyFilter: keyplane.KeyFilter{IdentityID: identityID, Limit: 10}})
		noErr(t, "ListAPIKeys", err)
		return ids(ks, keyID)
	}
	equal(t, "keys of the identity", list(idn.ID), []string{rich.ID})
	equal(t, "keys of an identity without keys", list(idn2.ID), []string{})
	equal(t, "every key", list(""), []string{plain.ID, zero.ID, rich.ID})

	// An update from a stale read: limits and identity are written, the credits are not.
	u := *rich
	u.RateLimits = []keyplane.NamedRateLimit{{Name: "only", Limit: 1, WindowMs: 10}}
	u.IdentityID = idn2.ID
	u.Credits = &keyplane.Credits{Remaining: 1}
	u.UpdatedAt = at(time.Hour)
	inTx(t, s, w.ID, func(tx store.Tx) error { return tx.UpdateAPIKey(ctx, &u) })
	want := u
	want.Credits, want.Identity = rich.Credits, idn2
	got, err = s.GetAPIKey(ctx, w.ID, rich.ID)
	noErr(t, "GetAPIKey after update", err)
	equal(t, "key after update", got, &want)
	u.RateLimits, u.IdentityID, u.Credits = nil, "", nil
	inTx(t, s, w.ID, func(tx store.Tx) error { return tx.UpdateAPIKey(ctx, &u) })
	want = u
	want.Credits = rich.Credits
	got, err = s.GetAPIKey(ctx, w.ID, rich.ID)
	noErr(t, "GetAPIKey after clearing", err)
	equal(t, "key after clearing its limits and identity", got, &want)

	// An import writes them as an insert does.
	imp := newKey(w, at(time.Minute), func(k *keyplane.APIKey) {
		k.Credits = monthly(10, 20, 15, at(48*time.Hour))
		k.RateLimits = []keyplane.NamedRateLimit{{Name: "x", Limit: 1, WindowMs: 1}}
		k.IdentityID = idn.ID
	})
	isec := newSecret(imp, "v1", at(time.Minute))
	noErr(t, "ImportAPIKeys", s.ImportAPIKeys(ctx, []keyplane.APIKey{*imp}, []keyplane.Secret{*isec}))
	got, _, err = s.LookupSecret(ctx, isec.Hash)
	noErr(t, "LookupSecret(imported)", err)
	wantImp := *imp
	wantImp.Identity = idn
	equal(t, "imported key", got, &wantImp)
	got, _, err = s.VerificationKey(ctx, isec.Hash)
	noErr(t, "VerificationKey(imported)", err)
	equal(t, "imported key as verified", got, verificationRead(&wantImp))
}
