package storetest

import (
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

// fullKey returns a key with every field set, none to its zero value.
func fullKey(w *keyplane.Workspace, created time.Time) *keyplane.APIKey {
	return newKey(w, created, func(k *keyplane.APIKey) {
		k.Name, k.Description = "Mobile App Integration", "orders and refunds"
		k.Enabled = false
		k.Permissions = []string{"orders:read", "orders:write"}
		k.IPAllowlist = []string{"203.0.113.0/24", "2001:db8::1"}
		k.AllowedOrigins = []string{"https://shop.example"}
		// Not canonical JSON: the store must give back these bytes, not a re-encoding.
		k.Meta = json.RawMessage(`{"currency": "fiat",  "tier":[1, 2]}`)
		k.RateLimit = &keyplane.RateLimit{Limit: 100, WindowMs: 60000}
		k.Recoverable = true
		k.ExpiresAt = ptr(created.Add(72 * time.Hour))
		k.LastUsedAt = ptr(created.Add(time.Minute + time.Microsecond))
		k.UpdatedAt = created.Add(2 * time.Minute)
		k.DisabledAt = ptr(created.Add(3 * time.Minute))
		k.RevokedAt = ptr(created.Add(4 * time.Minute))
		k.CreatedBy = keyplane.Actor{Type: keyplane.ActorUser, ID: "usr_01", Name: "Ada \"A\" Lovelace"}
	})
}

// inZone returns a copy of k with every time in another zone.
func inZone(k *keyplane.APIKey) *keyplane.APIKey {
	c := *k
	c.CreatedAt, c.UpdatedAt = elsewhere(k.CreatedAt), elsewhere(k.UpdatedAt)
	for _, p := range []**time.Time{&c.ExpiresAt, &c.LastUsedAt, &c.DisabledAt, &c.RevokedAt} {
		if *p != nil {
			*p = ptr(elsewhere(**p))
		}
	}
	return &c
}

func testAPIKeyRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := createWorkspace(t, s, "acme", at(0))
	other := createWorkspace(t, s, "globex", at(0))

	full := fullKey(w, at(time.Second))
	// A key given with nil lists and no meta comes back with empty lists and {}.
	minimalIn := newKey(w, at(2*time.Second), func(k *keyplane.APIKey) {
		k.Permissions, k.IPAllowlist, k.AllowedOrigins, k.Meta = nil, nil, nil, nil
		k.CreatedBy = keyplane.Actor{Type: keyplane.ActorSystem}
	})
	minimal := *minimalIn
	minimal.Permissions, minimal.IPAllowlist, minimal.AllowedOrigins = []string{}, []string{}, []string{}
	minimal.Meta = json.RawMessage(`{}`)
	// A rate limit of zero is set, not absent.
	zeroRate := newKey(w, at(3*time.Second), func(k *keyplane.APIKey) {
		k.RateLimit = &keyplane.RateLimit{}
		k.Meta = json.RawMessage(`{"nested":{"a":[]}}`)
	})

	insertKeys(t, s, inZone(full), minimalIn, zeroRate)
	for _, want := range []*keyplane.APIKey{full, &minimal, zeroRate} {
		got, err := s.GetAPIKey(ctx, w.ID, want.ID)
		noErr(t, "GetAPIKey", err)
		equal(t, "GetAPIKey", got, want)
		if got.Permissions == nil || got.IPAllowlist == nil || got.AllowedOrigins == nil {
			t.Errorf("GetAPIKey(%s) returned a nil list", want.ID)
		}
	}

	found, err := s.FindAPIKey(ctx, full.ID)
	noErr(t, "FindAPIKey", err)
	equal(t, "FindAPIKey", found, verifyRead(full))
	_, err = s.FindAPIKey(ctx, id.NewAt(id.APIKey, at(0)))
	wantErr(t, "FindAPIKey(unknown)", err, store.ErrNotFound)

	_, err = s.GetAPIKey(ctx, other.ID, full.ID)
	wantErr(t, "GetAPIKey of another workspace's key", err, store.ErrNotFound)
	_, err = s.GetAPIKey(ctx, w.ID, id.NewAt(id.APIKey, at(0)))
	wantErr(t, "GetAPIKey(unknown)", err, store.ErrNotFound)

	dup := newKey(w, at(time.Hour))
	dup.ID = full.ID
	err = s.InTx(ctx, w.ID, func(tx store.Tx) error { return tx.InsertAPIKey(ctx, dup) })
	wantErr(t, "InsertAPIKey(taken id)", err, store.ErrConflict)
	got, err := s.GetAPIKey(ctx, w.ID, full.ID)
	noErr(t, "GetAPIKey after conflict", err)
	equal(t, "key after a conflicting insert", got, full)
}

func testUpdateAPIKey(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := createWorkspace(t, s, "acme", at(0))
	other := createWorkspace(t, s, "globex", at(0))
	full := fullKey(w, at(time.Second))
	plain := newKey(w, at(2*time.Second))
	insertKeys(t, s, full, plain)

	update := func(t *testing.T, k *keyplane.APIKey) {
		t.Helper()
		inTx(t, s, k.WorkspaceID, func(tx store.Tx) error { return tx.UpdateAPIKey(ctx, k) })
	}

	t.Run("SetToUnset", func(t *testing.T) {
		u := *full
		u.Name, u.Description = "renamed", ""
		u.Start, u.End = "kp_sk_live_ZzZ9", "0000"
		u.Enabled = true
		u.Permissions, u.IPAllowlist, u.AllowedOrigins = nil, []string{}, nil
		u.Meta = json.RawMessage(`{"b":2}`)
		u.RateLimit = nil
		u.Recoverable = false
		u.ExpiresAt, u.LastUsedAt, u.DisabledAt, u.RevokedAt = nil, nil, nil, nil
		u.UpdatedAt = at(time.Hour)
		// What never changes after creation is not written, whatever the caller passes; nor is the
		// last use, which only WriteRequestLogs moves.
		u.KeyType, u.Environment, u.Prefix = keyplane.KeyTypePublishable, keyplane.EnvTest, "kp_pk_test_"
		u.CreatedAt = at(-time.Hour)
		u.CreatedBy = keyplane.Actor{Type: keyplane.ActorSystem, ID: "x"}
		update(t, inZone(&u))

		want := u
		want.Permissions, want.AllowedOrigins = []string{}, []string{}
		want.KeyType, want.Environment, want.Prefix = full.KeyType, full.Environment, full.Prefix
		want.CreatedAt, want.CreatedBy = full.CreatedAt, full.CreatedBy
		want.LastUsedAt = full.LastUsedAt
		got, err := s.GetAPIKey(ctx, w.ID, full.ID)
		noErr(t, "GetAPIKey", err)
		equal(t, "updated key", got, &want)
	})

	t.Run("UnsetToSet", func(t *testing.T) {
		u := *plain
		u.Permissions = []string{"a:b"}
		u.IPAllowlist = []string{"10.0.0.0/8"}
		u.AllowedOrigins = []string{"https://a.example", "https://b.example"}
		u.Meta = json.RawMessage(`{ "spaced" : true }`)
		u.RateLimit = &keyplane.RateLimit{Limit: 5, WindowMs: 1000}
		u.Recoverable = true
		u.Enabled = false
		u.ExpiresAt = ptr(at(24 * time.Hour))
		u.LastUsedAt = ptr(at(time.Minute))
		u.DisabledAt = ptr(at(2 * time.Minute))
		u.RevokedAt = ptr(at(3 * time.Minute))
		u.UpdatedAt = at(3 * time.Minute)
		update(t, &u)
		want := u
		want.LastUsedAt = nil
		got, err := s.GetAPIKey(ctx, w.ID, plain.ID)
		noErr(t, "GetAPIKey", err)
		equal(t, "updated key", got, &want)
	})

	t.Run("OtherWorkspace", func(t *testing.T) {
		before, err := s.GetAPIKey(ctx, w.ID, plain.ID)
		noErr(t, "GetAPIKey", err)
		u := *before
		u.WorkspaceID, u.Name = other.ID, "hijacked"
		err = s.InTx(ctx, other.ID, func(tx store.Tx) error { return tx.UpdateAPIKey(ctx, &u) })
		wantErr(t, "UpdateAPIKey through another workspace", err, store.ErrNotFound)
		after, err := s.GetAPIKey(ctx, w.ID, plain.ID)
		noErr(t, "GetAPIKey", err)
		equal(t, "key after an update through another workspace", after, before)

		unknown := newKey(w, at(time.Hour))
		err = s.InTx(ctx, w.ID, func(tx store.Tx) error { return tx.UpdateAPIKey(ctx, unknown) })
		wantErr(t, "UpdateAPIKey(unknown)", err, store.ErrNotFound)
	})
}

func testDeleteAPIKey(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := createWorkspace(t, s, "acme", at(0))
	other := createWorkspace(t, s, "globex", at(0))
	doomed := newKey(w, at(time.Second), disabled(at(time.Second)))
	kept := newKey(w, at(2*time.Second))
	doomedSecrets := []*keyplane.Secret{newSecret(doomed, "1", at(time.Second)), newSecret(doomed, "2", at(2*time.Second))}
	doomedSecrets[0].ExpiresAt = ptr(at(time.Hour))
	keptSecret := newSecret(kept, "1", at(2*time.Second))
	insertKeys(t, s, doomed, kept)
	insertSecrets(t, s, append(doomedSecrets, keptSecret)...)

	err := s.InTx(ctx, other.ID, func(tx store.Tx) error { return tx.DeleteAPIKey(ctx, other.ID, doomed.ID) })
	wantErr(t, "DeleteAPIKey through another workspace", err, store.ErrNotFound)
	if _, err := s.GetAPIKey(ctx, w.ID, doomed.ID); err != nil {
		t.Errorf("key deleted through another workspace: %v", err)
	}
	if secrets, err := s.ListSecrets(ctx, doomed.ID); err != nil || len(secrets) != 2 {
		t.Errorf("secrets after a delete through another workspace: %d, %v; want 2", len(secrets), err)
	}

	inTx(t, s, w.ID, func(tx store.Tx) error { return tx.DeleteAPIKey(ctx, w.ID, doomed.ID) })
	_, err = s.GetAPIKey(ctx, w.ID, doomed.ID)
	wantErr(t, "GetAPIKey after delete", err, store.ErrNotFound)
	for _, sec := range doomedSecrets {
		_, _, err := s.LookupSecret(ctx, sec.Hash)
		wantErr(t, "LookupSecret of a deleted key", err, store.ErrNotFound)
	}
	secrets, err := s.ListSecrets(ctx, doomed.ID)
	noErr(t, "ListSecrets", err)
	if len(secrets) != 0 {
		t.Errorf("ListSecrets of a deleted key = %d secrets", len(secrets))
	}
	// The other key and its secret are untouched.
	if _, _, err := s.LookupSecret(ctx, keptSecret.Hash); err != nil {
		t.Errorf("LookupSecret of another key after delete: %v", err)
	}

	err = s.InTx(ctx, w.ID, func(tx store.Tx) error { return tx.DeleteAPIKey(ctx, w.ID, doomed.ID) })
	wantErr(t, "DeleteAPIKey twice", err, store.ErrNotFound)
}

// keyZoo is one workspace's keys covering every environment, type and derived status at now,
// including the boundaries: expiresAt == now is expired, expiresAt == now+1µs is not.
func keyZoo(w *keyplane.Workspace, now time.Time) []*keyplane.APIKey {
	past, future := now.Add(-time.Hour), now.Add(time.Hour)
	ms := func(i int) time.Time { return at(time.Duration(i) * time.Millisecond) }
	return []*keyplane.APIKey{
		newKey(w, ms(1)),
		newKey(w, ms(2), publishable(keyplane.EnvTest), expiring(future)),
		newKey(w, ms(3), expiring(now)),
		newKey(w, ms(4), inEnv(keyplane.EnvTest), expiring(past), disabled(past)),
		newKey(w, ms(5), publishable(keyplane.EnvLive), disabled(past), expiring(future)),
		newKey(w, ms(6), revoked(past), expiring(past), disabled(past)),
		newKey(w, ms(7), publishable(keyplane.EnvTest), revoked(past)),
		newKey(w, ms(8), expiring(now.Add(time.Microsecond))),
		newKey(w, ms(9), inEnv(keyplane.EnvTest), disabled(past)),
		newKey(w, ms(10), publishable(keyplane.EnvLive), revoked(future)),
		newKey(w, ms(11), inEnv(keyplane.EnvTest)),
	}
}

func testListAPIKeysFilters(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := at(24 * time.Hour)
	w := createWorkspace(t, s, "acme", at(0))
	other := createWorkspace(t, s, "globex", at(0))
	keys := keyZoo(w, now)
	insertKeys(t, s, keys...)
	insertKeys(t, s, keyZoo(other, now)...) // the same variety elsewhere: never listed
	slices.Reverse(keys)                    // newest first, as listed

	statuses := []keyplane.Status{"", keyplane.StatusActive, keyplane.StatusDisabled, keyplane.StatusExpired, keyplane.StatusRevoked}
	seen := map[keyplane.Status]int{}
	for _, k := range keys {
		seen[k.Status(now)]++
	}
	for _, st := range statuses[1:] {
		if seen[st] < 2 {
			t.Fatalf("fixture has %d %s keys; want at least 2 of each status", seen[st], st)
		}
	}

	for _, env := range []keyplane.Environment{"", keyplane.EnvLive, keyplane.EnvTest} {
		for _, typ := range []keyplane.KeyType{"", keyplane.KeyTypeSecret, keyplane.KeyTypePublishable} {
			for _, st := range statuses {
				f := store.KeyFilter{KeyFilter: keyplane.KeyFilter{Environment: env, KeyType: typ, Status: st, Limit: 100}, Now: now}
				t.Run(fmt.Sprintf("env=%s,type=%s,status=%s", env, typ, st), func(t *testing.T) {
					var want []*keyplane.APIKey
					for _, k := range keys {
						if (env == "" || k.Environment == env) && (typ == "" || k.KeyType == typ) &&
							(st == "" || k.Status(now) == st) {
							want = append(want, k)
						}
					}
					got, next, err := s.ListAPIKeys(ctx, w.ID, f)
					noErr(t, "ListAPIKeys", err)
					if next != "" {
						t.Errorf("next = %q, want none", next)
					}
					if len(got) != len(want) {
						var wantIDs []string
						for _, k := range want {
							wantIDs = append(wantIDs, k.ID)
						}
						t.Fatalf("got %d keys %v, want %d %v", len(got), ids(got, keyID), len(want), wantIDs)
					}
					for i := range got {
						equal(t, "listed key", &got[i], want[i])
					}
				})
			}
		}
	}

	t.Run("StatusFollowsNow", func(t *testing.T) {
		// At t0 nothing has expired yet: the expired keys of the zoo are listed by what else they are.
		got, _, err := s.ListAPIKeys(ctx, w.ID, store.KeyFilter{KeyFilter: keyplane.KeyFilter{Status: keyplane.StatusExpired, Limit: 100}, Now: at(0)})
		noErr(t, "ListAPIKeys", err)
		if len(got) != 0 {
			t.Errorf("expired keys at t0 = %v, want none", ids(got, keyID))
		}
	})

	t.Run("UnknownStatus", func(t *testing.T) {
		_, _, err := s.ListAPIKeys(ctx, w.ID, store.KeyFilter{KeyFilter: keyplane.KeyFilter{Status: "sleeping", Limit: 10}, Now: now})
		if err == nil {
			t.Error("ListAPIKeys with an unknown status succeeded")
		}
	})
}

func testListAPIKeysPagination(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := at(24 * time.Hour)
	w := createWorkspace(t, s, "acme", at(0))
	other := createWorkspace(t, s, "globex", at(0))
	keys := keyZoo(w, now)
	insertKeys(t, s, keys...)
	insertKeys(t, s, keyZoo(other, now)...)
	slices.Reverse(keys)

	filters := []store.KeyFilter{
		{},
		{KeyFilter: keyplane.KeyFilter{Environment: keyplane.EnvLive}},
		{KeyFilter: keyplane.KeyFilter{KeyType: keyplane.KeyTypePublishable, Status: keyplane.StatusRevoked}},
		{KeyFilter: keyplane.KeyFilter{Status: keyplane.StatusActive}},
	}
	for _, f := range filters {
		var want []string
		for _, k := range keys {
			if (f.Environment == "" || k.Environment == f.Environment) && (f.KeyType == "" || k.KeyType == f.KeyType) &&
				(f.Status == "" || k.Status(now) == f.Status) {
				want = append(want, k.ID)
			}
		}
		if want == nil {
			want = []string{}
		}
		for limit := 1; limit <= len(want)+1; limit++ {
			t.Run(fmt.Sprintf("env=%s,type=%s,status=%s,limit=%d", f.Environment, f.KeyType, f.Status, limit), func(t *testing.T) {
				got := walk(t, limit, func(cursor string) ([]string, string, error) {
					f := f
					f.Now, f.Limit, f.Cursor = now, limit, cursor
					ks, next, err := s.ListAPIKeys(ctx, w.ID, f)
					return ids(ks, keyID), next, err
				})
				equal(t, "keys over all pages", got, want)
			})
		}
	}

	t.Run("InsertBetweenPages", func(t *testing.T) {
		first, next, err := s.ListAPIKeys(ctx, w.ID, store.KeyFilter{KeyFilter: keyplane.KeyFilter{Limit: 3}})
		noErr(t, "ListAPIKeys", err)
		// A key made after the first page was read is newer than all: it must not shift the pages.
		insertKeys(t, s, newKey(w, at(time.Hour)))
		rest := walk(t, 3, func(cursor string) ([]string, string, error) {
			if cursor == "" {
				cursor = next
			}
			ks, next, err := s.ListAPIKeys(ctx, w.ID, store.KeyFilter{KeyFilter: keyplane.KeyFilter{Limit: 3, Cursor: cursor}})
			return ids(ks, keyID), next, err
		})
		var all []string
		for _, k := range keys {
			all = append(all, k.ID)
		}
		equal(t, "pages around an insert", append(ids(first, keyID), rest...), all)
	})

	t.Run("BadCursor", func(t *testing.T) {
		_, wsCursor, err := s.ListWorkspaces(ctx, 1, "")
		noErr(t, "ListWorkspaces", err)
		if wsCursor == "" {
			t.Fatal("ListWorkspaces of two with limit 1 gave no next cursor")
		}
		for _, c := range badCursors(wsCursor) {
			_, _, err := s.ListAPIKeys(ctx, w.ID, store.KeyFilter{KeyFilter: keyplane.KeyFilter{Limit: 2, Cursor: c}})
			wantErr(t, fmt.Sprintf("ListAPIKeys(cursor %q)", c), err, store.ErrBadCursor)
		}
	})

	t.Run("CursorStaysInWorkspace", func(t *testing.T) {
		// A cursor of one workspace's list used on another's lists that workspace's keys only.
		_, next, err := s.ListAPIKeys(ctx, w.ID, store.KeyFilter{KeyFilter: keyplane.KeyFilter{Limit: 2}})
		noErr(t, "ListAPIKeys", err)
		got, _, err := s.ListAPIKeys(ctx, other.ID, store.KeyFilter{KeyFilter: keyplane.KeyFilter{Limit: 100, Cursor: next}})
		if err != nil && !errors.Is(err, store.ErrBadCursor) {
			t.Fatalf("ListAPIKeys: %v", err)
		}
		for _, k := range got {
			if k.WorkspaceID != other.ID {
				t.Errorf("key %s of workspace %s listed for %s", k.ID, k.WorkspaceID, other.ID)
			}
		}
	})
}

func testCountKeys(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := at(24 * time.Hour)
	w := createWorkspace(t, s, "acme", at(0))
	other := createWorkspace(t, s, "globex", at(0))
	empty := createWorkspace(t, s, "initech", at(0))
	keys := keyZoo(w, now)
	insertKeys(t, s, keys...)
	insertKeys(t, s, keyZoo(other, now)[:4]...)

	count := func(ws string) int {
		t.Helper()
		n, err := s.CountKeys(ctx, ws)
		noErr(t, "CountKeys", err)
		return n
	}
	unrevoked := 0
	for _, k := range keys {
		if k.RevokedAt == nil {
			unrevoked++
		}
	}
	if n := count(w.ID); n != unrevoked {
		t.Errorf("CountKeys = %d, want %d (every key but the revoked ones)", n, unrevoked)
	}
	if n := count(other.ID); n != 4 {
		t.Errorf("CountKeys(other) = %d, want 4", n)
	}
	if n := count(empty.ID); n != 0 {
		t.Errorf("CountKeys(empty) = %d, want 0", n)
	}

	// Revoking one counts it out; so does deleting one.
	k := *keys[0]
	k.RevokedAt = ptr(now)
	inTx(t, s, w.ID, func(tx store.Tx) error { return tx.UpdateAPIKey(ctx, &k) })
	inTx(t, s, w.ID, func(tx store.Tx) error { return tx.DeleteAPIKey(ctx, w.ID, keys[1].ID) })
	if n := count(w.ID); n != unrevoked-2 {
		t.Errorf("CountKeys after a revoke and a delete = %d, want %d", n, unrevoked-2)
	}
	// Inside a transaction too.
	inTx(t, s, w.ID, func(tx store.Tx) error {
		if err := tx.InsertAPIKey(ctx, newKey(w, at(time.Hour))); err != nil {
			return err
		}
		n, err := tx.CountKeys(ctx, w.ID)
		if err != nil {
			return err
		}
		if n != unrevoked-1 {
			t.Errorf("CountKeys in the transaction that inserted a key = %d, want %d", n, unrevoked-1)
		}
		return nil
	})

	// The count is kept as keys change (migration key_counts), so a change that neither adds nor
	// revokes a key must leave it alone (a rename, a revoked key revoked again later, a revoked key
	// deleted, a rolled-back insert, an insert refused by its conflict), and a revocation undone
	// counts the key again.
	renamed := *keys[2]
	renamed.Name = "renamed"
	revokedAgain := k
	revokedAgain.RevokedAt = ptr(now.Add(time.Hour))
	if keys[5].RevokedAt == nil {
		t.Fatal("fixture: keyZoo's sixth key is revoked")
	}
	failed := errors.New("rolled back")
	taken := newKey(w, at(3*time.Hour))
	taken.ID = keys[2].ID
	unrevokedAgain := k
	unrevokedAgain.RevokedAt = nil
	for _, c := range []struct {
		name string
		fn   func(tx store.Tx) error
		want int
	}{
		{"a rename", func(tx store.Tx) error { return tx.UpdateAPIKey(ctx, &renamed) }, unrevoked - 1},
		{"a second revocation", func(tx store.Tx) error { return tx.UpdateAPIKey(ctx, &revokedAgain) }, unrevoked - 1},
		{"a revoked key deleted", func(tx store.Tx) error { return tx.DeleteAPIKey(ctx, w.ID, keys[5].ID) }, unrevoked - 1},
		{"a rolled back insert", func(tx store.Tx) error {
			if err := tx.InsertAPIKey(ctx, newKey(w, at(2*time.Hour))); err != nil {
				return err
			}
			return failed
		}, unrevoked - 1},
		// Refused by its conflict, in a transaction that then commits: nothing was added.
		{"an insert of a taken id", func(tx store.Tx) error {
			if err := tx.InsertAPIKey(ctx, taken); !errors.Is(err, store.ErrConflict) {
				return fmt.Errorf("InsertAPIKey(taken id) = %v, want ErrConflict", err)
			}
			return nil
		}, unrevoked - 1},
		// The service never does it, but a write of a whole key read before its revocation would.
		{"a revocation undone", func(tx store.Tx) error { return tx.UpdateAPIKey(ctx, &unrevokedAgain) }, unrevoked},
	} {
		if err := s.InTx(ctx, w.ID, c.fn); err != nil && !errors.Is(err, failed) {
			t.Fatalf("%s: %v", c.name, err)
		}
		if n := count(w.ID); n != c.want {
			t.Errorf("CountKeys after %s = %d, want %d", c.name, n, c.want)
		}
	}
	if n := count(other.ID); n != 4 {
		t.Errorf("CountKeys(other) after changes elsewhere = %d, want 4", n)
	}
}

// verifyRead is k as the verification reads return it (LookupSecret, FindAPIKey): without its last
// use (see store.Queries).
func verifyRead(k *keyplane.APIKey) *keyplane.APIKey {
	c := *k
	c.LastUsedAt = nil
	return &c
}

// verificationRead is k as VerificationKey reads it: only what a verification reads.
func verificationRead(k *keyplane.APIKey) *keyplane.APIKey {
	c := *k
	c.Description, c.Prefix, c.Start, c.End, c.Recoverable = "", "", "", "", false
	c.LastUsedAt, c.DisabledAt, c.CreatedAt, c.UpdatedAt = nil, nil, time.Time{}, time.Time{}
	c.CreatedBy = keyplane.Actor{}
	if k.Identity != nil {
		i := *k.Identity
		i.CreatedAt, i.UpdatedAt = time.Time{}, time.Time{}
		c.Identity = &i
	}
	return &c
}
