package storetest

import (
	"bytes"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/store"
)

func testSessions(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := createUser(t, s, "ada@example.com", at(0))
	sess := &keyplane.Session{
		Hash: bytes.Repeat([]byte{1}, 32), UserID: u.ID, CreatedAt: elsewhere(at(time.Second)),
		ExpiresAt: at(12 * time.Hour), ReauthAt: at(time.Second), IP: "2001:db8::1", UserAgent: "Firefox/140 \"quoted\" é",
		ReauthWorkspaceID: "ws_created",
	}
	inTx(t, s, store.OperatorChain, func(tx store.Tx) error { return tx.CreateSession(ctx, sess) })
	want := *sess
	want.CreatedAt = at(time.Second)
	got, err := s.GetSession(ctx, sess.Hash)
	noErr(t, "GetSession", err)
	equal(t, "GetSession", got, &want)

	err = s.InTx(ctx, store.OperatorChain, func(tx store.Tx) error { return tx.CreateSession(ctx, sess) })
	wantErr(t, "CreateSession(same digest)", err, store.ErrConflict)
	_, err = s.GetSession(ctx, bytes.Repeat([]byte{2}, 32))
	wantErr(t, "GetSession(unknown)", err, store.ErrNotFound)

	upd := want
	upd.ReauthAt, upd.ExpiresAt, upd.ReauthWorkspaceID = at(time.Hour), at(13*time.Hour), "ws_reauth"
	upd.IP = "not written"
	inTx(t, s, store.OperatorChain, func(tx store.Tx) error { return tx.UpdateSession(ctx, &upd) })
	// The re-authentication's workspace is written with its time: the window is per workspace.
	want.ReauthAt, want.ExpiresAt, want.ReauthWorkspaceID = at(time.Hour), at(13*time.Hour), "ws_reauth"
	got, err = s.GetSession(ctx, sess.Hash)
	noErr(t, "GetSession after update", err)
	equal(t, "updated session", got, &want)
	missing := upd
	missing.Hash = bytes.Repeat([]byte{3}, 32)
	err = s.InTx(ctx, store.OperatorChain, func(tx store.Tx) error { return tx.UpdateSession(ctx, &missing) })
	wantErr(t, "UpdateSession(unknown)", err, store.ErrNotFound)

	old := &keyplane.Session{Hash: bytes.Repeat([]byte{4}, 32), UserID: u.ID, CreatedAt: at(-48 * time.Hour), ExpiresAt: at(-36 * time.Hour), ReauthAt: at(-48 * time.Hour)}
	inTx(t, s, store.OperatorChain, func(tx store.Tx) error { return tx.CreateSession(ctx, old) })
	var n int64
	inTx(t, s, store.OperatorChain, func(tx store.Tx) error {
		var err error
		n, err = tx.DeleteExpiredSessions(ctx, at(0))
		return err
	})
	if n != 1 {
		t.Fatalf("DeleteExpiredSessions removed %d, want 1", n)
	}
	_, err = s.GetSession(ctx, old.Hash)
	wantErr(t, "expired session after prune", err, store.ErrNotFound)
	_, err = s.GetSession(ctx, sess.Hash)
	noErr(t, "live session after prune", err)

	inTx(t, s, store.OperatorChain, func(tx store.Tx) error { return tx.DeleteSession(ctx, sess.Hash) })
	_, err = s.GetSession(ctx, sess.Hash)
	wantErr(t, "GetSession after delete", err, store.ErrNotFound)
	inTx(t, s, store.OperatorChain, func(tx store.Tx) error { return tx.DeleteSession(ctx, sess.Hash) })

	// Every session of one person, and no one else's.
	grace := createUser(t, s, "grace@example.com", at(0))
	mine := []*keyplane.Session{
		{Hash: bytes.Repeat([]byte{5}, 32), UserID: u.ID, CreatedAt: at(0), ExpiresAt: at(time.Hour), ReauthAt: at(0)},
		{Hash: bytes.Repeat([]byte{6}, 32), UserID: u.ID, CreatedAt: at(0), ExpiresAt: at(time.Hour), ReauthAt: at(0)},
	}
	theirs := &keyplane.Session{Hash: bytes.Repeat([]byte{7}, 32), UserID: grace.ID, CreatedAt: at(0), ExpiresAt: at(time.Hour), ReauthAt: at(0)}
	for _, x := range append(mine, theirs) {
		inTx(t, s, store.OperatorChain, func(tx store.Tx) error { return tx.CreateSession(ctx, x) })
	}
	inTx(t, s, store.OperatorChain, func(tx store.Tx) error {
		var err error
		n, err = tx.DeleteUserSessions(ctx, u.ID)
		return err
	})
	if n != 2 {
		t.Fatalf("DeleteUserSessions removed %d, want 2", n)
	}
	for _, x := range mine {
		_, err = s.GetSession(ctx, x.Hash)
		wantErr(t, "a deleted user's session", err, store.ErrNotFound)
	}
	_, err = s.GetSession(ctx, theirs.Hash)
	noErr(t, "another user's session", err)
}

func testMemberships(t *testing.T, s store.Store) {
	ctx := t.Context()
	zeta := createWorkspace(t, s, "zeta", at(0))
	zeta.Name = "Zeta"
	inTx(t, s, zeta.ID, func(tx store.Tx) error { return tx.UpdateWorkspace(ctx, zeta) })
	alpha := createWorkspace(t, s, "alpha", at(time.Second))
	alpha.Name = "Alpha"
	inTx(t, s, alpha.ID, func(tx store.Tx) error { return tx.UpdateWorkspace(ctx, alpha) })
	createWorkspace(t, s, "other", at(2*time.Second))
	u := createUser(t, s, "ana@example.com", at(0))
	for _, m := range []*keyplane.Member{
		{WorkspaceID: zeta.ID, UserID: u.ID, Role: keyplane.RoleViewer, CreatedAt: at(0)},
		{WorkspaceID: alpha.ID, UserID: u.ID, Role: keyplane.RoleOwner, CreatedAt: at(0)},
	} {
		inTx(t, s, m.WorkspaceID, func(tx store.Tx) error { return tx.UpsertMember(ctx, m) })
	}
	got, err := s.ListMemberships(ctx, u.ID)
	noErr(t, "ListMemberships", err)
	equal(t, "memberships", got, []keyplane.Membership{{Workspace: *alpha, Role: keyplane.RoleOwner}, {Workspace: *zeta, Role: keyplane.RoleViewer}})
	none, err := s.ListMemberships(ctx, "usr_nobody")
	noErr(t, "ListMemberships(unknown)", err)
	if len(none) != 0 || none == nil {
		t.Fatalf("memberships of nobody: %#v, want an empty slice", none)
	}
	inv, err := s.ListInvitations(ctx, u.ID)
	noErr(t, "ListInvitations", err)
	if len(inv) != 0 || inv == nil {
		t.Fatalf("invitations of an active member: %#v, want an empty slice", inv)
	}

	// An invitation is no membership: the workspace is listed among the invitations only, until it
	// is accepted.
	beta := createWorkspace(t, s, "beta", at(3*time.Second))
	invite := &keyplane.Member{WorkspaceID: beta.ID, UserID: u.ID, Role: keyplane.RoleAdmin, Status: keyplane.MemberInvited, CreatedAt: at(0)}
	inTx(t, s, beta.ID, func(tx store.Tx) error { return tx.UpsertMember(ctx, invite) })
	got, err = s.ListMemberships(ctx, u.ID)
	noErr(t, "ListMemberships with an invitation", err)
	equal(t, "memberships with an invitation", got, []keyplane.Membership{{Workspace: *alpha, Role: keyplane.RoleOwner}, {Workspace: *zeta, Role: keyplane.RoleViewer}})
	inv, err = s.ListInvitations(ctx, u.ID)
	noErr(t, "ListInvitations", err)
	equal(t, "invitations", inv, []keyplane.Membership{{Workspace: *beta, Role: keyplane.RoleAdmin}})

	invite.Status = keyplane.MemberActive
	inTx(t, s, beta.ID, func(tx store.Tx) error { return tx.UpsertMember(ctx, invite) })
	got, err = s.ListMemberships(ctx, u.ID)
	noErr(t, "ListMemberships after accepting", err)
	equal(t, "memberships after accepting", got, []keyplane.Membership{{Workspace: *alpha, Role: keyplane.RoleOwner}, {Workspace: *beta, Role: keyplane.RoleAdmin}, {Workspace: *zeta, Role: keyplane.RoleViewer}})
	inv, err = s.ListInvitations(ctx, u.ID)
	noErr(t, "ListInvitations after accepting", err)
	if len(inv) != 0 {
		t.Fatalf("invitations after accepting: %#v", inv)
	}
}
