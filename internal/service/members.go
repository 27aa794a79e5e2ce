package service

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/id"
	"github.com/keyplane/keyplane/internal/store"
)

// Membership rules.
//
// Nobody becomes a member without consent: adding a person makes an invitation, which gives no access
// at all until the person accepts it from their own session. Before, an owner could attach any account
// (another tenant's owner, the operator admin) and send its holder into their workspace at sign-in.
//
// A workspace never loses its last active owner: only an owner (or the operator) may change an owner's
// role or remove one, and no change of role, removal or departure may leave no active owner. Every
// change of a workspace's members runs in a transaction on that workspace's audit chain, which
// serializes them (SQLite has one writer; PostgreSQL takes the chain's advisory lock before the first
// read), so that the members read in the transaction are the members the change applies to: two
// owners demoting each other at once leave one owner, never none.

// canManageMembers: the operator, or an owner or admin of the workspace; never a portal session,
// whose role is the platform's user's, not a member's.
func canManageMembers(c *keyplane.Caller, wsID string) bool {
	return c.Operator || (!c.Portal && c.WorkspaceID == wsID && (c.Role == keyplane.RoleOwner || c.Role == keyplane.RoleAdmin))
}

// mayChangeOwner: only an owner of the workspace, or the operator, may change an owner's role or
// remove one.
func mayChangeOwner(c *keyplane.Caller, wsID string) bool {
	return c.Operator || (!c.Portal && c.WorkspaceID == wsID && c.Role == keyplane.RoleOwner)
}

// errManageMembers refuses a caller who may not manage the workspace's members.
var errManageMembers = keyplane.Errorf(keyplane.CodeForbidden, "only the operator or the workspace's owners and admins may manage members")

// asOfNow returns c as it stands in members, read in the change's transaction: a person's role is
// read before that transaction begins, and one demoted or removed in between must act with what they
// hold now, not with what they held when their request arrived.
func asOfNow(c *keyplane.Caller, wsID string, members []keyplane.Member) (*keyplane.Caller, error) {
	if c.Operator || c.Actor.Type != keyplane.ActorUser {
		return c, nil
	}
	me := findMember(members, c.Actor.ID)
	if me == nil || me.Status != keyplane.MemberActive {
		return nil, keyplane.NotFound("workspace")
	}
	now := *c
	now.Role = me.Role
	if !canManageMembers(&now, wsID) {
		return nil, errManageMembers
	}
	return &now, nil
}

// membersAsOfNow reads the workspace's members in the change's transaction, and the caller as it
// stands among them (asOfNow).
func membersAsOfNow(ctx context.Context, tx store.Tx, c *keyplane.Caller, wsID string) ([]keyplane.Member, *keyplane.Caller, error) {
	members, err := tx.ListMembers(ctx, wsID)
	if err != nil {
		return nil, nil, err
	}
	c, err = asOfNow(c, wsID, members)
	return members, c, err
}

func findMember(members []keyplane.Member, userID string) *keyplane.Member {
	for i := range members {
		if members[i].UserID == userID {
			return &members[i]
		}
	}
	return nil
}

func activeOwner(m *keyplane.Member) bool {
	return m.Role == keyplane.RoleOwner && m.Status == keyplane.MemberActive
}

// keepsAnOwner refuses to take target out of the workspace's active owners (a demotion, a removal, a
// departure) when no other active owner remains. members must have been read in the transaction that
// makes the change.
func keepsAnOwner(members []keyplane.Member, target *keyplane.Member) error {
	if !activeOwner(target) {
		return nil
	}
	for i := range members {
		if members[i].UserID != target.UserID && activeOwner(&members[i]) {
			return nil
		}
	}
	return keyplane.Errorf(keyplane.CodeLastOwner, "this would leave the workspace without an owner; make another member an owner first")
}

func ownerOnly(what string) error {
	return keyplane.Errorf(keyplane.CodeForbidden, "only an owner may %s an owner", what)
}

// AddMember invites a person to a workspace, or changes the role of someone who is already a member
// or invited. A new person is invited, never made a member: they have no access until they accept
// from their own session (AcceptInvitation). A person without an account gets one, without a password
// (they cannot sign in until one is set). created reports a new invitation.
func (s *Service) AddMember(ctx context.Context, c *keyplane.Caller, wsID, email string, role keyplane.Role) (m *keyplane.Member, created bool, err error) {
	if _, err := s.GetWorkspace(ctx, c, wsID); err != nil {
		return nil, false, err
	}
	if !canManageMembers(c, wsID) {
		return nil, false, errManageMembers
	}
	var v keyplane.Validation
	email = normalizeEmail(&v, email)
	if !role.Valid() {
		v.Add("role", "must be one of owner, admin, developer, viewer")
	}
	if role == keyplane.RoleOwner && !mayChangeOwner(c, wsID) {
		v.Add("role", "only an owner may make another owner")
	}
	if err := v.Err(); err != nil {
		return nil, false, err
	}
	err = s.change(ctx, c, wsID, func(tx store.Tx, now time.Time) (*outcome, error) {
		created = false // fn may run again
		u, err := tx.GetUserByEmail(ctx, email)
		if errors.Is(err, store.ErrNotFound) {
			u = &keyplane.User{ID: id.NewAt(id.User, now), Email: email, CreatedAt: now, UpdatedAt: now}
			err = tx.CreateUser(ctx, u)
		}
		if err != nil {
			return nil, fmt.Errorf("member user: %w", err)
		}
		members, c, err := membersAsOfNow(ctx, tx, c, wsID)
		if err != nil {
			return nil, err
		}
		if role == keyplane.RoleOwner && !mayChangeOwner(c, wsID) {
			return nil, ownerOnly("make")
		}
		target := keyplane.Target{Type: "user", ID: u.ID}
		old := findMember(members, u.ID)
		if old == nil {
			m = &keyplane.Member{WorkspaceID: wsID, UserID: u.ID, Email: u.Email, Role: role, Status: keyplane.MemberInvited, CreatedAt: now}
			if err := tx.UpsertMember(ctx, m); err != nil {
				return nil, err
			}
			created = true
			return &outcome{audit: &keyplane.AuditRecord{Action: "member.invited", Target: target,
				Changes: map[string]keyplane.Change{"email": {To: u.Email}, "role": {To: role}, "status": {To: m.Status}}}}, nil
		}
		m = old
		if old.Role == role {
			return nil, nil
		}
		if old.Role == keyplane.RoleOwner && !mayChangeOwner(c, wsID) {
			return nil, ownerOnly("change the role of")
		}
		if err := keepsAnOwner(members, old); err != nil {
			return nil, err
		}
		from := old.Role
		m.Role = role
		if err := tx.UpsertMember(ctx, m); err != nil {
			return nil, err
		}
		return &outcome{audit: &keyplane.AuditRecord{Action: "member.updated", Target: target,
			Changes: map[string]keyplane.Change{"email": {To: u.Email}, "role": {From: from, To: role}}}}, nil
	})
	if err != nil {
		return nil, false, err
	}
	return m, created, nil
}

// ListMembers lists a workspace's members, the invited ones included (with their status).
func (s *Service) ListMembers(ctx context.Context, c *keyplane.Caller, wsID string) ([]keyplane.Member, error) {
	if _, err := s.GetWorkspace(ctx, c, wsID); err != nil {
		return nil, err
	}
	if !c.Operator && (c.Role == "" || c.Portal) {
		return nil, keyplane.Errorf(keyplane.CodeForbidden, "members are managed by the operator and the workspace's people")
	}
	return s.store.ListMembers(ctx, wsID)
}

// RemoveMember ends a person's membership of a workspace, or revokes their invitation, and answers the
// member as they were. Their access ends with the commit on every node: the dashboard reads a
// person's memberships from the store on every request.
func (s *Service) RemoveMember(ctx context.Context, c *keyplane.Caller, wsID, userID string) (*keyplane.Member, error) {
	if _, err := s.GetWorkspace(ctx, c, wsID); err != nil {
		return nil, err
	}
	if !canManageMembers(c, wsID) {
		return nil, errManageMembers
	}
	if !id.Valid(id.User, userID) {
		return nil, keyplane.NotFound("member")
	}
	var m *keyplane.Member
	err := s.change(ctx, c, wsID, func(tx store.Tx, now time.Time) (*outcome, error) {
		members, c, err := membersAsOfNow(ctx, tx, c, wsID)
		if err != nil {
			return nil, err
		}
		if m = findMember(members, userID); m == nil {
			return nil, keyplane.NotFound("member")
		}
		if m.Role == keyplane.RoleOwner && !mayChangeOwner(c, wsID) {
			return nil, ownerOnly("remove")
		}
		if err := keepsAnOwner(members, m); err != nil {
			return nil, err
		}
		return removeMember(ctx, tx, m, "member.removed")
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// removeMember deletes m and returns the audit record of action; an invitation's removal is recorded
// as its revocation, whatever action says.
func removeMember(ctx context.Context, tx store.Tx, m *keyplane.Member, action string) (*outcome, error) {
	if err := tx.DeleteMember(ctx, m.WorkspaceID, m.UserID); err != nil {
		return nil, notFound(err, "member")
	}
	if m.Status == keyplane.MemberInvited && action == "member.removed" {
		action = "member.invitation_revoked"
	}
	return &outcome{audit: &keyplane.AuditRecord{Action: action, Target: keyplane.Target{Type: "user", ID: m.UserID},
		Changes: map[string]keyplane.Change{"email": {From: m.Email}, "role": {From: m.Role}, "status": {From: m.Status}}}}, nil
}

// LeaveWorkspace ends the signed-in person's own membership of the workspace c acts in, unless they
// are its last active owner.
func (s *Service) LeaveWorkspace(ctx context.Context, c *keyplane.Caller, wsID string) error {
	if c.Actor.Type != keyplane.ActorUser || c.Actor.ID == "" {
		return keyplane.Errorf(keyplane.CodeForbidden, "only a person can leave a workspace")
	}
	if _, err := s.GetWorkspace(ctx, c, wsID); err != nil {
		return err
	}
	return s.change(ctx, c, wsID, func(tx store.Tx, now time.Time) (*outcome, error) {
		members, err := tx.ListMembers(ctx, wsID)
		if err != nil {
			return nil, err
		}
		m := findMember(members, c.Actor.ID)
		if m == nil || m.Status != keyplane.MemberActive {
			// An operator admin opens every workspace without being a member of it.
			return nil, keyplane.Errorf(keyplane.CodeNotFound, "you are not a member of this workspace")
		}
		if err := keepsAnOwner(members, m); err != nil {
			return nil, err
		}
		return removeMember(ctx, tx, m, "member.left")
	})
}

// Invitations lists the workspaces the person is invited to, with the role offered.
func (s *Service) Invitations(ctx context.Context, u *keyplane.User) ([]keyplane.Membership, error) {
	return s.store.ListInvitations(ctx, u.ID)
}

// AcceptInvitation makes the signed-in person (c, a person's caller outside any workspace) an active
// member of the workspace that invited them, and returns the workspace.
func (s *Service) AcceptInvitation(ctx context.Context, c *keyplane.Caller, wsID string) (*keyplane.Workspace, error) {
	var w *keyplane.Workspace
	err := s.answerInvitation(ctx, c, wsID, func(tx store.Tx, m *keyplane.Member) (*outcome, error) {
		var err error
		if w, err = tx.GetWorkspace(ctx, wsID); err != nil {
			return nil, notFound(err, "invitation")
		}
		m.Status = keyplane.MemberActive
		if err := tx.UpsertMember(ctx, m); err != nil {
			return nil, err
		}
		return &outcome{audit: &keyplane.AuditRecord{Action: "member.joined", Target: keyplane.Target{Type: "user", ID: m.UserID},
			Changes: map[string]keyplane.Change{"email": {To: m.Email}, "role": {To: m.Role}, "status": {From: keyplane.MemberInvited, To: keyplane.MemberActive}}}}, nil
	})
	if err != nil {
		return nil, err
	}
	return w, nil
}

// DeclineInvitation removes the signed-in person's invitation. The entry in the inviting workspace's
// trail carries no IP address or user agent: the person never joined, and an invitation must not be
// a way to learn where a stranger signs in from.
func (s *Service) DeclineInvitation(ctx context.Context, c *keyplane.Caller, wsID string) error {
	anon := *c
	anon.IP, anon.UserAgent = "", ""
	return s.answerInvitation(ctx, &anon, wsID, func(tx store.Tx, m *keyplane.Member) (*outcome, error) {
		return removeMember(ctx, tx, m, "member.invitation_declined")
	})
}

// answerInvitation runs fn on the person's pending invitation to wsID, in a transaction on the
// workspace's chain; a workspace that did not invite them is not found.
func (s *Service) answerInvitation(ctx context.Context, c *keyplane.Caller, wsID string, fn func(tx store.Tx, m *keyplane.Member) (*outcome, error)) error {
	if c.Actor.Type != keyplane.ActorUser || c.Actor.ID == "" {
		return keyplane.Errorf(keyplane.CodeForbidden, "only the invited person can answer an invitation")
	}
	if !id.Valid(id.Workspace, wsID) {
		return keyplane.NotFound("invitation")
	}
	return s.change(ctx, c, wsID, func(tx store.Tx, now time.Time) (*outcome, error) {
		members, err := tx.ListMembers(ctx, wsID)
		if err != nil {
			return nil, err
		}
		m := findMember(members, c.Actor.ID)
		if m == nil || m.Status != keyplane.MemberInvited {
			return nil, keyplane.NotFound("invitation")
		}
		return fn(tx, m)
	})
}
