package service

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/id"
	"github.com/keyplane/keyplane/internal/keyformat"
	"github.com/keyplane/keyplane/internal/password"
	"github.com/keyplane/keyplane/internal/store"
)

// WorkspaceInput creates a workspace; absent settings take the contract's defaults.
type WorkspaceInput struct {
	Name              string
	Slug              string
	MaxKeys           keyplane.Optional[int]
	TestKeyTTLSeconds keyplane.Optional[int64]
	LiveModeEnabled   keyplane.Optional[bool]
}

// WorkspacePatch changes a workspace; absent fields are left alone.
type WorkspacePatch struct {
	Name              keyplane.Optional[string]
	Slug              keyplane.Optional[string]
	MaxKeys           keyplane.Optional[int]
	TestKeyTTLSeconds keyplane.Optional[int64]
	LiveModeEnabled   keyplane.Optional[bool]
}

// checkName validates a human-readable name or description: trimmed, 1 to max characters, no
// control characters (descriptions may break lines), no bidi controls or zero-width characters. It is
// the one check of every name and description: keys, webhooks, workspaces, root keys.
func checkName(v *keyplane.Validation, field, s string, max int, required bool) string {
	s = strings.TrimSpace(s)
	n := utf8.RuneCountInString(s)
	switch {
	case !utf8.ValidString(s):
		v.Add(field, "must be valid UTF-8")
	case n == 0 && required:
		v.Add(field, "is required")
	case n > max:
		v.Add(field, "must be at most %d characters", max)
	case strings.IndexFunc(s, func(r rune) bool {
		return unicode.IsControl(r) && !(field == "description" && (r == '\n' || r == '\t'))
	}) >= 0:
		v.Add(field, "must not contain control characters")
	case strings.IndexFunc(s, invisible) >= 0:
		v.Add(field, "must not contain bidirectional controls or zero-width characters")
	}
	return s
}

// invisible reports the bidi controls and zero-width characters that make text read other than it
// is, in the dashboard, the audit trail or a terminal: "Pay\u202Elap" shows as "Paypal".
func invisible(r rune) bool {
	switch {
	case r >= '\u202A' && r <= '\u202E', r >= '\u2066' && r <= '\u2069', r >= '\u200B' && r <= '\u200F':
		return true // embeddings and overrides, isolates, zero-width space, non-joiner, joiner, LRM, RLM
	}
	return r == '\u061C' || r == '\u2060' || r == '\uFEFF' // Arabic letter mark, word joiner, BOM
}

func checkSettings(v *keyplane.Validation, maxKeys keyplane.Optional[int], ttl keyplane.Optional[int64], live keyplane.Optional[bool]) {
	if maxKeys.Set && (maxKeys.Null || maxKeys.Value < 1 || maxKeys.Value > keyplane.MaxMaxKeys) {
		v.Add("maxKeys", "must be a whole number from 1 to %d", keyplane.MaxMaxKeys)
	}
	if ttl.Set && (ttl.Null || ttl.Value < keyplane.MinTestKeyTTLSeconds || ttl.Value > keyplane.MaxTestKeyTTLSeconds) {
		v.Add("testKeyTtlSeconds", "must be a whole number of seconds from %d to %d", keyplane.MinTestKeyTTLSeconds, keyplane.MaxTestKeyTTLSeconds)
	}
	if live.Set && live.Null {
		v.Add("liveModeEnabled", "must be true or false")
	}
}

// applySettings sets the settings that are present; checkSettings has validated them.
func applySettings(w *keyplane.Workspace, maxKeys keyplane.Optional[int], ttl keyplane.Optional[int64], live keyplane.Optional[bool]) {
	if maxKeys.Set {
		w.MaxKeys = maxKeys.Value
	}
	if ttl.Set {
		w.TestKeyTTLSeconds = ttl.Value
	}
	if live.Set {
		w.LiveModeEnabled = live.Value
	}
}

// CreateWorkspace makes a workspace. Operator only.
func (s *Service) CreateWorkspace(ctx context.Context, c *keyplane.Caller, in WorkspaceInput) (*keyplane.Workspace, error) {
	if err := c.RequireOperator(); err != nil {
		return nil, err
	}
	w, err := s.newWorkspace(in)
	if err != nil {
		return nil, err
	}
	err = s.change(ctx, c, w.ID, func(tx store.Tx, now time.Time) (*outcome, error) {
		return insertWorkspace(ctx, tx, w, now)
	})
	if err != nil {
		return nil, err
	}
	return w, nil
}

// newWorkspace validates in and returns the workspace it describes, not yet stored.
func (s *Service) newWorkspace(in WorkspaceInput) (*keyplane.Workspace, error) {
	var v keyplane.Validation
	name := checkName(&v, "name", in.Name, keyplane.MaxNameLen, true)
	if !keyplane.ValidSlug(in.Slug) {
		v.Add("slug", "must be 1–63 lower-case letters, digits and dashes, starting and ending with a letter or digit")
	}
	checkSettings(&v, in.MaxKeys, in.TestKeyTTLSeconds, in.LiveModeEnabled)
	if err := v.Err(); err != nil {
		return nil, err
	}
	now := s.clock()
	w := &keyplane.Workspace{
		ID: id.NewAt(id.Workspace, now), Name: name, Slug: in.Slug,
		MaxKeys: keyplane.DefaultMaxKeys, TestKeyTTLSeconds: keyplane.DefaultTestKeyTTLSeconds, LiveModeEnabled: true,
	}
	applySettings(w, in.MaxKeys, in.TestKeyTTLSeconds, in.LiveModeEnabled)
	return w, nil
}

// insertWorkspace stores w and returns the audit record of its creation, which belongs to w's chain.
func insertWorkspace(ctx context.Context, tx store.Tx, w *keyplane.Workspace, now time.Time) (*outcome, error) {
	w.CreatedAt, w.UpdatedAt = now, now
	if err := tx.CreateWorkspace(ctx, w); err != nil {
		return nil, slugTaken(err)
	}
	return &outcome{audit: &keyplane.AuditRecord{
		Action: "workspace.created", Target: keyplane.Target{Type: "workspace", ID: w.ID},
		Changes: diff(nil, w.View(), "id", "createdAt", "updatedAt"),
	}}, nil
}

func slugTaken(err error) error {
	if errors.Is(err, store.ErrConflict) {
		return &keyplane.Error{Code: keyplane.CodeInvalidRequest, Message: "invalid slug: already used by another workspace",
			Details: []keyplane.FieldError{{Field: "slug", Message: "is already used by another workspace"}}}
	}
	return err
}

// ListWorkspaces lists every workspace for the operator, or the caller's own.
func (s *Service) ListWorkspaces(ctx context.Context, c *keyplane.Caller, limit int, cursor string) ([]keyplane.Workspace, string, error) {
	if !c.Operator {
		w, err := s.GetWorkspace(ctx, c, c.WorkspaceID)
		if err != nil {
			return nil, "", err
		}
		return []keyplane.Workspace{*w}, "", nil
	}
	ws, next, err := s.store.ListWorkspaces(ctx, limit, cursor)
	return ws, next, badCursor(err)
}

func badCursor(err error) error {
	if errors.Is(err, store.ErrBadCursor) {
		return &keyplane.Error{Code: keyplane.CodeInvalidRequest, Message: "invalid cursor: it was not made by this list",
			Details: []keyplane.FieldError{{Field: "cursor", Message: "was not made by this list"}}}
	}
	return err
}

// GetWorkspace returns a workspace the caller may see.
func (s *Service) GetWorkspace(ctx context.Context, c *keyplane.Caller, wsID string) (*keyplane.Workspace, error) {
	if !c.Operator && wsID != c.WorkspaceID {
		return nil, keyplane.NotFound("workspace")
	}
	if !id.Valid(id.Workspace, wsID) {
		return nil, keyplane.NotFound("workspace")
	}
	w, err := s.store.GetWorkspace(ctx, wsID)
	return w, notFound(err, "workspace")
}

// GetWorkspaceBySlug returns a workspace by its slug, if the caller may see it.
func (s *Service) GetWorkspaceBySlug(ctx context.Context, c *keyplane.Caller, slug string) (*keyplane.Workspace, error) {
	if !keyplane.ValidSlug(slug) {
		return nil, keyplane.NotFound("workspace")
	}
	w, err := s.store.GetWorkspaceBySlug(ctx, slug)
	if err != nil {
		return nil, notFound(err, "workspace")
	}
	if !c.Operator && w.ID != c.WorkspaceID {
		return nil, keyplane.NotFound("workspace")
	}
	return w, nil
}

// UpdateWorkspace changes a workspace's name, slug or settings. Operator only: a workspace's own keys
// may not raise their own limits.
func (s *Service) UpdateWorkspace(ctx context.Context, c *keyplane.Caller, wsID string, p WorkspacePatch) (*keyplane.Workspace, error) {
	if _, err := s.GetWorkspace(ctx, c, wsID); err != nil {
		return nil, err
	}
	if err := c.RequireOperator(); err != nil {
		return nil, err
	}
	var v keyplane.Validation
	var name string
	if p.Name.Set {
		if p.Name.Null {
			v.Add("name", "is required")
		} else {
			name = checkName(&v, "name", p.Name.Value, keyplane.MaxNameLen, true)
		}
	}
	if p.Slug.Set && (p.Slug.Null || !keyplane.ValidSlug(p.Slug.Value)) {
		v.Add("slug", "must be 1–63 lower-case letters, digits and dashes, starting and ending with a letter or digit")
	}
	checkSettings(&v, p.MaxKeys, p.TestKeyTTLSeconds, p.LiveModeEnabled)
	if err := v.Err(); err != nil {
		return nil, err
	}
	var w *keyplane.Workspace
	err := s.change(ctx, c, wsID, func(tx store.Tx, now time.Time) (*outcome, error) {
		var err error
		if w, err = tx.GetWorkspace(ctx, wsID); err != nil {
			return nil, notFound(err, "workspace")
		}
		before := w.View()
		if p.Name.Set {
			w.Name = name
		}
		if p.Slug.Set {
			w.Slug = p.Slug.Value
		}
		applySettings(w, p.MaxKeys, p.TestKeyTTLSeconds, p.LiveModeEnabled)
		changes := diff(before, w.View(), "updatedAt")
		if len(changes) == 0 {
			return nil, nil
		}
		w.UpdatedAt = now
		if err := tx.UpdateWorkspace(ctx, w); err != nil {
			return nil, slugTaken(err)
		}
		return &outcome{audit: &keyplane.AuditRecord{Action: "workspace.updated", Target: keyplane.Target{Type: "workspace", ID: w.ID}, Changes: changes}}, nil
	})
	if err != nil {
		return nil, err
	}
	return w, nil
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

// CreateRootKey makes an operator credential and returns its value, which is never shown again.
func (s *Service) CreateRootKey(ctx context.Context, c *keyplane.Caller, name string, scopes []string) (*keyplane.RootKey, string, error) {
	if err := c.RequireOperator(); err != nil {
		return nil, "", err
	}
	var v keyplane.Validation
	name = checkName(&v, "name", name, keyplane.MaxNameLen, true)
	seen := map[string]bool{}
	var clean []string
	for _, sc := range scopes {
		sc = strings.TrimSpace(sc)
		if sc != keyplane.ScopeAdmin && sc != keyplane.ScopeVerify {
			v.Add("scopes", "%q is not a scope; use admin and/or verify", sc)
			continue
		}
		if !seen[sc] {
			seen[sc] = true
			clean = append(clean, sc)
		}
	}
	if len(clean) == 0 && len(scopes) == 0 {
		v.Add("scopes", "at least one of admin, verify is required")
	}
	if err := v.Err(); err != nil {
		return nil, "", err
	}
	value := keyformat.GenerateRoot(s.prefix)
	h := keyformat.Hash(value)
	rk := &keyplane.RootKey{Name: name, Hash: h[:], Scopes: clean}
	err := s.change(ctx, c, store.OperatorChain, func(tx store.Tx, now time.Time) (*outcome, error) {
		rk.ID, rk.CreatedAt = id.NewAt(id.RootKey, now), now
		if err := tx.CreateRootKey(ctx, rk); err != nil {
			return nil, err
		}
		return &outcome{audit: &keyplane.AuditRecord{Action: "root_key.created", Target: keyplane.Target{Type: "root_key", ID: rk.ID},
			Changes: map[string]keyplane.Change{"name": {To: rk.Name}, "scopes": {To: rk.Scopes}}},
			// a cached "unknown" for this value, however unlikely, must go, on every node
			forget: [][]byte{rk.Hash}}, nil
	})
	if err != nil {
		return nil, "", err
	}
	return rk, value, nil
}

// ListRootKeys returns every root key, revoked ones included, oldest first; never their values.
func (s *Service) ListRootKeys(ctx context.Context, c *keyplane.Caller) ([]keyplane.RootKey, error) {
	if err := c.RequireOperator(); err != nil {
		return nil, err
	}
	return s.store.ListRootKeys(ctx)
}

// RevokeRootKey ends a root key for good. Every node refuses it once the change is published: at
// once on this node and, within a second, on the others: PostgreSQL's nodes by NOTIFY, a SQLite
// serve process beside this CLI by the change journal.
func (s *Service) RevokeRootKey(ctx context.Context, c *keyplane.Caller, keyID string) (*keyplane.RootKey, error) {
	if err := c.RequireOperator(); err != nil {
		return nil, err
	}
	var rk *keyplane.RootKey
	err := s.change(ctx, c, store.OperatorChain, func(tx store.Tx, now time.Time) (*outcome, error) {
		var err error
		if rk, err = tx.GetRootKey(ctx, keyID); err != nil {
			return nil, notFound(err, "root key")
		}
		if rk.RevokedAt != nil {
			return nil, keyplane.Errorf(keyplane.CodeKeyRevoked, "the root key was revoked at %s", rk.RevokedAt.UTC().Format(time.RFC3339))
		}
		if err := tx.RevokeRootKey(ctx, keyID, now); err != nil {
			return nil, err
		}
		rk.RevokedAt = &now
		return &outcome{
			audit: &keyplane.AuditRecord{Action: "root_key.revoked", Target: keyplane.Target{Type: "root_key", ID: rk.ID},
				Changes: map[string]keyplane.Change{"revokedAt": {To: now}}},
			forget: [][]byte{rk.Hash},
		}, nil
	})
	if err != nil {
		return nil, err
	}
	return rk, nil
}

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
	email, hash, err := checkUser(in)
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
func checkUser(in UserInput) (email, hash string, err error) {
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
	return email, password.Hash(in.Password), nil
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
	email, hash, err := checkUser(admin)
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
