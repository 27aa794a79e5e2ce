package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/id"
	"github.com/keyplane/keyplane/internal/store"
)

func newUser(email string, created time.Time) *keyplane.User {
	return &keyplane.User{ID: id.NewAt(id.User, created), Email: email, CreatedAt: created, UpdatedAt: created}
}

func createUser(t testing.TB, s store.Store, email string, created time.Time) *keyplane.User {
	t.Helper()
	u := newUser(email, created)
	inTx(t, s, store.OperatorChain, func(tx store.Tx) error { return tx.CreateUser(t.Context(), u) })
	return u
}

func testUsers(t *testing.T, s store.Store) {
	ctx := t.Context()
	ada := newUser("Ada.Lovelace@Example.COM", at(0))
	ada.PasswordHash = "$argon2id$v=19$m=65536,t=3,p=2$c2FsdA$aGFzaA"
	ada.Operator = true
	ada.UpdatedAt = at(time.Second)
	in := *ada
	in.CreatedAt, in.UpdatedAt = elsewhere(ada.CreatedAt), elsewhere(ada.UpdatedAt)
	inTx(t, s, store.OperatorChain, func(tx store.Tx) error { return tx.CreateUser(ctx, &in) })
	bob := createUser(t, s, "bob@example.com", at(time.Second))

	want := *ada
	want.Email = "ada.lovelace@example.com" // stored lower-cased
	got, err := s.GetUser(ctx, ada.ID)
	noErr(t, "GetUser", err)
	equal(t, "GetUser", got, &want)
	for _, email := range []string{"ada.lovelace@example.com", "ADA.LOVELACE@EXAMPLE.COM", "Ada.Lovelace@Example.COM"} {
		got, err := s.GetUserByEmail(ctx, email)
		noErr(t, "GetUserByEmail("+email+")", err)
		equal(t, "GetUserByEmail("+email+")", got, &want)
	}
	got, err = s.GetUser(ctx, bob.ID)
	noErr(t, "GetUser", err)
	equal(t, "user without password", got, bob)

	_, err = s.GetUser(ctx, id.NewAt(id.User, at(0)))
	wantErr(t, "GetUser(unknown)", err, store.ErrNotFound)
	_, err = s.GetUserByEmail(ctx, "nobody@example.com")
	wantErr(t, "GetUserByEmail(unknown)", err, store.ErrNotFound)

	t.Run("CreateConflicts", func(t *testing.T) {
		sameEmail := newUser("BOB@example.com", at(time.Hour))
		err := s.InTx(ctx, store.OperatorChain, func(tx store.Tx) error { return tx.CreateUser(ctx, sameEmail) })
		wantErr(t, "CreateUser(taken email, other case)", err, store.ErrConflict)
		sameID := newUser("carol@example.com", at(time.Hour))
		sameID.ID = bob.ID
		err = s.InTx(ctx, store.OperatorChain, func(tx store.Tx) error { return tx.CreateUser(ctx, sameID) })
		wantErr(t, "CreateUser(taken id)", err, store.ErrConflict)
		_, err = s.GetUserByEmail(ctx, "carol@example.com")
		wantErr(t, "user of a failed create", err, store.ErrNotFound)
	})

	t.Run("Update", func(t *testing.T) {
		u := *bob
		u.Email, u.PasswordHash, u.Operator = "Robert@Example.com", "$argon2id$new", true
		u.UpdatedAt = elsewhere(at(time.Hour))
		u.CreatedAt = at(-time.Hour) // not written
		inTx(t, s, store.OperatorChain, func(tx store.Tx) error { return tx.UpdateUser(ctx, &u) })
		want := u
		// Operator is not written: SetUserOperator alone changes it.
		want.Email, want.UpdatedAt, want.CreatedAt, want.Operator = "robert@example.com", at(time.Hour), bob.CreatedAt, false
		got, err := s.GetUserByEmail(ctx, "robert@example.com")
		noErr(t, "GetUserByEmail after update", err)
		equal(t, "updated user", got, &want)
		_, err = s.GetUserByEmail(ctx, "bob@example.com")
		wantErr(t, "old email after update", err, store.ErrNotFound)

		taken := want
		taken.Email = "ADA.lovelace@example.com"
		err = s.InTx(ctx, store.OperatorChain, func(tx store.Tx) error { return tx.UpdateUser(ctx, &taken) })
		wantErr(t, "UpdateUser(taken email)", err, store.ErrConflict)
		got, err = s.GetUser(ctx, bob.ID)
		noErr(t, "GetUser after conflict", err)
		equal(t, "user after a conflicting update", got, &want)

		unknown := newUser("ghost@example.com", at(0))
		err = s.InTx(ctx, store.OperatorChain, func(tx store.Tx) error { return tx.UpdateUser(ctx, unknown) })
		wantErr(t, "UpdateUser(unknown)", err, store.ErrNotFound)
	})

	t.Run("SetUserOperator", func(t *testing.T) {
		for _, op := range []bool{true, false, true} {
			inTx(t, s, store.OperatorChain, func(tx store.Tx) error { return tx.SetUserOperator(ctx, ada.ID, op, at(2*time.Hour)) })
			want := *ada
			want.Email, want.Operator, want.UpdatedAt = "ada.lovelace@example.com", op, at(2*time.Hour)
			got, err := s.GetUser(ctx, ada.ID)
			noErr(t, "GetUser after SetUserOperator", err)
			equal(t, "user after SetUserOperator", got, &want)
		}
		err := s.InTx(ctx, store.OperatorChain, func(tx store.Tx) error { return tx.SetUserOperator(ctx, "usr_nobody", false, at(0)) })
		wantErr(t, "SetUserOperator(unknown)", err, store.ErrNotFound)
	})
}

func testMembers(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := createWorkspace(t, s, "acme", at(0))
	other := createWorkspace(t, s, "globex", at(0))
	alice := createUser(t, s, "Alice@Example.com", at(0))
	bob := createUser(t, s, "bob@example.com", at(0))
	carol := createUser(t, s, "carol@example.com", at(0))

	list := func(ws string) []keyplane.Member {
		t.Helper()
		ms, err := s.ListMembers(ctx, ws)
		noErr(t, "ListMembers", err)
		return ms
	}
	if ms := list(w.ID); len(ms) != 0 {
		t.Errorf("ListMembers of a workspace without members = %d", len(ms))
	}

	upsert := func(m keyplane.Member) {
		t.Helper()
		inTx(t, s, m.WorkspaceID, func(tx store.Tx) error { return tx.UpsertMember(ctx, &m) })
	}
	// Added out of order: listed oldest first.
	upsert(keyplane.Member{WorkspaceID: w.ID, UserID: bob.ID, Role: keyplane.RoleDeveloper, CreatedAt: elsewhere(at(2 * time.Second))})
	upsert(keyplane.Member{WorkspaceID: w.ID, UserID: alice.ID, Role: keyplane.RoleOwner, CreatedAt: at(time.Second)})
	upsert(keyplane.Member{WorkspaceID: other.ID, UserID: carol.ID, Role: keyplane.RoleViewer, CreatedAt: at(0)})

	// A member stored without a status is active.
	want := []keyplane.Member{
		{WorkspaceID: w.ID, UserID: alice.ID, Email: "alice@example.com", Role: keyplane.RoleOwner, Status: keyplane.MemberActive, CreatedAt: at(time.Second)},
		{WorkspaceID: w.ID, UserID: bob.ID, Email: "bob@example.com", Role: keyplane.RoleDeveloper, Status: keyplane.MemberActive, CreatedAt: at(2 * time.Second)},
	}
	equal(t, "ListMembers", list(w.ID), want)

	// Upserting an existing member changes the role and status only.
	upsert(keyplane.Member{WorkspaceID: w.ID, UserID: alice.ID, Role: keyplane.RoleViewer, Status: keyplane.MemberActive, CreatedAt: at(time.Hour)})
	want[0].Role = keyplane.RoleViewer
	equal(t, "ListMembers after a role change", list(w.ID), want)
	equal(t, "ListMembers of the other workspace", list(other.ID), []keyplane.Member{
		{WorkspaceID: other.ID, UserID: carol.ID, Email: "carol@example.com", Role: keyplane.RoleViewer, Status: keyplane.MemberActive, CreatedAt: at(0)},
	})

	// An invitation is listed with its status; accepting it (an upsert to active) keeps the time it
	// was made.
	upsert(keyplane.Member{WorkspaceID: w.ID, UserID: carol.ID, Role: keyplane.RoleAdmin, Status: keyplane.MemberInvited, CreatedAt: at(3 * time.Second)})
	invited := keyplane.Member{WorkspaceID: w.ID, UserID: carol.ID, Email: "carol@example.com", Role: keyplane.RoleAdmin, Status: keyplane.MemberInvited, CreatedAt: at(3 * time.Second)}
	equal(t, "ListMembers with an invitation", list(w.ID), append(slices.Clone(want), invited))
	upsert(keyplane.Member{WorkspaceID: w.ID, UserID: carol.ID, Role: keyplane.RoleAdmin, Status: keyplane.MemberActive, CreatedAt: at(time.Hour)})
	invited.Status = keyplane.MemberActive
	equal(t, "ListMembers after accepting", list(w.ID), append(slices.Clone(want), invited))

	// DeleteMember removes one member of one workspace; the same person elsewhere stays.
	inTx(t, s, w.ID, func(tx store.Tx) error { return tx.DeleteMember(ctx, w.ID, carol.ID) })
	equal(t, "ListMembers after DeleteMember", list(w.ID), want)
	if got := list(other.ID); len(got) != 1 || got[0].UserID != carol.ID {
		t.Errorf("DeleteMember removed the person from another workspace too: %v", got)
	}
	for _, c := range []struct{ name, ws, user string }{
		{"again", w.ID, carol.ID},
		{"unknown user", w.ID, "usr_nobody"},
		{"unknown workspace", "ws_nothing", alice.ID},
		{"a member of another workspace, named in this one", other.ID, alice.ID},
	} {
		err := s.InTx(ctx, w.ID, func(tx store.Tx) error { return tx.DeleteMember(ctx, c.ws, c.user) })
		wantErr(t, "DeleteMember("+c.name+")", err, store.ErrNotFound)
	}
	equal(t, "ListMembers after refused deletes", list(w.ID), want)
}
