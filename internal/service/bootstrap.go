package service

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/password"
	"github.com/keyplane/keyplane/internal/store"
)

// BootstrapResult says what a first start created.
type BootstrapResult struct {
	AdminEmail        string
	GeneratedPassword string // set only when keyplane made the password up
	Workspace         *keyplane.Workspace
}

// Bootstrap prepares an empty deployment: the operator admin and a workspace named "Default" with the
// admin as its owner. On a deployment that already has a workspace or a user it does nothing and
// returns nil.
//
// All of it is one transaction. Made in two (the workspace, then the admin after hashing the
// password), a start killed in between left a workspace and no admin, and every later start took the
// deployment for prepared: no one could sign in. The transaction holds the operator chain's lock and
// looks again whether the deployment is empty, so that of several nodes starting at once on one empty
// database one prepares it and the others find it prepared (they failed on the taken slug).
func (s *Service) Bootstrap(ctx context.Context, email, pw string) (*BootstrapResult, error) {
	if email == "" {
		email = "admin@localhost"
	}
	// Every start but the first finds a prepared deployment: it needs no password hashed.
	if empty, err := bootstrapNeeded(ctx, s.store, email); err != nil || !empty {
		return nil, err
	}
	res := &BootstrapResult{AdminEmail: strings.ToLower(email)}
	if pw == "" {
		pw = password.Generate()
		res.GeneratedPassword = pw
	}
	w, err := s.newWorkspace(WorkspaceInput{Name: "Default", Slug: "default"})
	if err != nil {
		return nil, fmt.Errorf("bootstrap workspace: %w", err)
	}
	admin := UserInput{Email: email, Password: pw, Operator: true, WorkspaceID: w.ID, Role: keyplane.RoleOwner}
	email, hash, err := s.checkUser(admin)
	if err != nil {
		return nil, fmt.Errorf("bootstrap admin: %w", err)
	}
	sys := keyplane.System("bootstrap")
	made := false
	err = s.change(ctx, sys, store.OperatorChain, func(tx store.Tx, now time.Time) (*outcome, error) {
		made = false // fn may run again
		if empty, err := bootstrapNeeded(ctx, tx, email); err != nil || !empty {
			return nil, err
		}
		created, err := insertWorkspace(ctx, tx, w, now)
		if err != nil {
			return nil, fmt.Errorf("bootstrap workspace: %w", err)
		}
		// The workspace's chain begins here without its lock: no other transaction can see the
		// workspace, let alone write to its chain, before this one commits.
		if err := s.appendAudit(ctx, tx, sys, w.ID, now, created.audit); err != nil {
			return nil, err
		}
		u, out, err := upsertUser(ctx, tx, admin, email, hash, now)
		if err != nil {
			return nil, fmt.Errorf("bootstrap admin: %w", err)
		}
		// The account is audited in the operator's chain (out), the membership in the workspace's.
		if err := tx.UpsertMember(ctx, &keyplane.Member{WorkspaceID: w.ID, UserID: u.ID, Role: admin.Role, Status: keyplane.MemberActive, CreatedAt: now}); err != nil {
			return nil, fmt.Errorf("bootstrap admin: %w", err)
		}
		if err := s.appendAudit(ctx, tx, sys, w.ID, now, &keyplane.AuditRecord{Action: "member.added", Target: keyplane.Target{Type: "user", ID: u.ID},
			Changes: map[string]keyplane.Change{"role": {From: nil, To: admin.Role}, "email": {From: nil, To: u.Email}}}); err != nil {
			return nil, err
		}
		made = true
		return out, nil
	})
	if err != nil || !made {
		return nil, err
	}
	res.Workspace = w
	return res, nil
}

// bootstrapNeeded reports whether the deployment is empty: no workspace, and no account for the
// admin's email.
func bootstrapNeeded(ctx context.Context, q store.Queries, email string) (bool, error) {
	ws, _, err := q.ListWorkspaces(ctx, 1, "")
	if err != nil {
		return false, fmt.Errorf("bootstrap: %w", err)
	}
	if len(ws) > 0 {
		return false, nil
	}
	_, err = q.GetUserByEmail(ctx, email)
	switch {
	case err == nil:
		return false, nil
	case errors.Is(err, store.ErrNotFound):
		return true, nil
	}
	return false, fmt.Errorf("bootstrap: %w", err)
}
