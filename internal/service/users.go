package service

import (
	"context"
	"errors"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/id"
	"github.com/keyplane/keyplane/internal/password"
	"github.com/keyplane/keyplane/internal/store"
)

// UserInput creates a person's account or sets its password.
type UserInput struct {
	Email       string
	Password    string
	Operator    bool
	WorkspaceID string // with Role: make them a member
	Role        keyplane.Role
}

// CreateUser creates (or, when the email exists, sets the password of) an account, and either gives it
// the operator flag or makes it an active member of in.WorkspaceID: directly, the
// operator acting, with no invitation. It never takes the flag away: SetOperator does, explicitly.
func (s *Service) CreateUser(ctx context.Context, c *keyplane.Caller, in UserInput) (*keyplane.User, error) {
	if err := c.RequireOperator(); err != nil {
		return nil, err
	}
	if in.Operator && in.WorkspaceID != "" {
		// Operator powers and a membership are two decisions, each with its own audit entry; the CLI
		// asks for them in two commands, and so does the service.
		return nil, keyplane.Errorf(keyplane.CodeInvalidRequest, "make an operator and a workspace member in two steps")
	}
	email, hash, err := s.checkUser(in)
	if err != nil {
		return nil, err
	}
	if in.WorkspaceID != "" {
		if _, err := s.store.GetWorkspace(ctx, in.WorkspaceID); err != nil {
			return nil, notFound(err, "workspace")
		}
	}
	// The account (its email, password and operator flag, and the sessions a new password ends) is
	// the person's, audited in the operator's chain; a workspace's chain gets the membership alone,
	// under that workspace's lock, which keeps the last owner rule race-free. Two transactions, each
	// whole with its entry: a process dying between them leaves an account that is no member yet,
	// which running the command again completes.
	var u *keyplane.User
	err = s.change(ctx, c, store.OperatorChain, func(tx store.Tx, now time.Time) (*outcome, error) {
		var out *outcome
		var err error
		u, out, err = upsertUser(ctx, tx, in, email, hash, now)
		return out, err
	})
	if err != nil || in.WorkspaceID == "" {
		return u, err
	}
	err = s.change(ctx, c, in.WorkspaceID, func(tx store.Tx, now time.Time) (*outcome, error) {
		members, err := tx.ListMembers(ctx, in.WorkspaceID)
		if err != nil {
			return nil, err
		}
		role := keyplane.Change{To: in.Role}
		m := &keyplane.Member{WorkspaceID: in.WorkspaceID, UserID: u.ID, Role: in.Role, Status: keyplane.MemberActive, CreatedAt: now}
		if old := findMember(members, u.ID); old != nil {
			if old.Role == in.Role && old.Status == keyplane.MemberActive {
				return nil, nil
			}
			if old.Role != in.Role {
				if err := keepsAnOwner(members, old); err != nil {
					return nil, err
				}
				role.From = old.Role
			}
			m.CreatedAt = old.CreatedAt
		}
		if err := tx.UpsertMember(ctx, m); err != nil {
			return nil, err
		}
		return &outcome{audit: &keyplane.AuditRecord{Action: "member.added", Target: keyplane.Target{Type: "user", ID: u.ID},
			Changes: map[string]keyplane.Change{"role": role, "email": {From: nil, To: u.Email}}}}, nil
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// checkUser validates in and returns its normalized email and its password's hash.
func (s *Service) checkUser(in UserInput) (email, hash string, err error) {
	var v keyplane.Validation
	email = normalizeEmail(&v, in.Email)
	if n := utf8.RuneCountInString(in.Password); n < password.MinLength || len(in.Password) > password.MaxLength {
		v.Add("password", "must be %d to %d characters", password.MinLength, password.MaxLength)
	}
	if in.WorkspaceID != "" && !in.Role.Valid() {
		v.Add("role", "must be one of owner, admin, developer, viewer")
	}
	if err := v.Err(); err != nil {
		return "", "", err
	}
	return email, password.HashWith(in.Password, s.pwParams), nil
}

// upsertUser creates the account of email, or sets its password hash and, when asked, its operator
// flag, and returns it with the audit record of the change.
func upsertUser(ctx context.Context, tx store.Tx, in UserInput, email, hash string, now time.Time) (*keyplane.User, *outcome, error) {
	action := "user.updated"
	var ended int64
	u, err := tx.GetUserByEmail(ctx, email)
	switch {
	case errors.Is(err, store.ErrNotFound):
		action = "user.created"
		u = &keyplane.User{ID: id.NewAt(id.User, now), Email: email, PasswordHash: hash, Operator: in.Operator, CreatedAt: now, UpdatedAt: now}
		err = tx.CreateUser(ctx, u)
	case err == nil:
		u.PasswordHash, u.UpdatedAt = hash, now
		err = tx.UpdateUser(ctx, u)
		if err == nil && in.Operator && !u.Operator {
			u.Operator = true
			err = tx.SetUserOperator(ctx, u.ID, true, now)
		}
		if err == nil {
			// A new password ends every session made with the old one: a password is reset because
			// it may be known to someone else, who may be signed in with it.
			ended, err = tx.DeleteUserSessions(ctx, u.ID)
		}
	}
	if err != nil {
		return nil, nil, err
	}
	changes := map[string]keyplane.Change{"email": {To: u.Email}, "operator": {To: u.Operator}, "password": {To: "(set)"}}
	if ended > 0 {
		changes["sessions"] = keyplane.Change{From: ended, To: 0}
	}
	return u, &outcome{audit: &keyplane.AuditRecord{Action: action, Target: keyplane.Target{Type: "user", ID: u.ID}, Changes: changes}}, nil
}

// normalizeEmail checks an address and returns it lower-cased.
func normalizeEmail(v *keyplane.Validation, email string) string {
	email = strings.TrimSpace(email)
	a, err := mail.ParseAddress(email)
	if err != nil || a.Address != email || len(email) > 254 || !strings.Contains(email[strings.LastIndexByte(email, '@'):], ".") && !strings.HasSuffix(email, "@localhost") {
		v.Add("email", "must be an email address such as ana@example.com")
		return ""
	}
	return strings.ToLower(email)
}

// SetOperator gives or takes a person's operator powers (every workspace, as an owner). Taking them
// works at once on every node: a session's person is read from the store on every request. Recorded
// in the operator's chain.
func (s *Service) SetOperator(ctx context.Context, c *keyplane.Caller, email string, operator bool) (*keyplane.User, error) {
	if err := c.RequireOperator(); err != nil {
		return nil, err
	}
	var v keyplane.Validation
	email = normalizeEmail(&v, email)
	if err := v.Err(); err != nil {
		return nil, err
	}
	var u *keyplane.User
	err := s.change(ctx, c, store.OperatorChain, func(tx store.Tx, now time.Time) (*outcome, error) {
		var err error
		if u, err = tx.GetUserByEmail(ctx, email); err != nil {
			return nil, notFound(err, "user")
		}
		if u.Operator == operator {
			return nil, nil
		}
		from := u.Operator
		u.Operator, u.UpdatedAt = operator, now
		if err := tx.SetUserOperator(ctx, u.ID, operator, now); err != nil {
			return nil, notFound(err, "user")
		}
		return &outcome{audit: &keyplane.AuditRecord{Action: "user.updated", Target: keyplane.Target{Type: "user", ID: u.ID},
			Changes: map[string]keyplane.Change{"email": {To: u.Email}, "operator": {From: from, To: operator}}}}, nil
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}
