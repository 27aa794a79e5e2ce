package service

import (
	"context"
	"errors"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/id"
	"github.com/keyplane/keyplane/internal/store"
)

// WorkspaceInput creates a workspace; absent settings take the contract's defaults.
type WorkspaceInput struct {
	Name              string
	Slug              string
	MaxKeys           keyplane.Optional[int]
	TestKeyTTLSeconds keyplane.Optional[int64]
	LiveModeEnabled   keyplane.Optional[bool]
	LeakPolicy        keyplane.Optional[keyplane.LeakPolicy]
	Branding          keyplane.Optional[BrandingInput]
}

// WorkspacePatch changes a workspace; absent fields are left alone.
type WorkspacePatch struct {
	Name              keyplane.Optional[string]
	Slug              keyplane.Optional[string]
	MaxKeys           keyplane.Optional[int]
	TestKeyTTLSeconds keyplane.Optional[int64]
	LiveModeEnabled   keyplane.Optional[bool]
	LeakPolicy        keyplane.Optional[keyplane.LeakPolicy]
	// Branding replaces the portal's look whole; null clears it.
	Branding keyplane.Optional[BrandingInput]
}

// BrandingInput is a workspace's branding as a PATCH gives it: each field absent or null is none
// (the portal falls back to the workspace's name and keyplane's look).
type BrandingInput struct {
	Name        keyplane.Optional[string] `json:"name"`
	AccentColor keyplane.Optional[string] `json:"accentColor"`
	LogoURL     keyplane.Optional[string] `json:"logoUrl"`
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

// checkLeakPolicy validates a workspace's leakPolicy setting.
func checkLeakPolicy(v *keyplane.Validation, p keyplane.Optional[keyplane.LeakPolicy]) {
	if p.Set && (p.Null || !p.Value.Valid()) {
		v.Add("leakPolicy", "must be revoke, disable or notify")
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
	checkLeakPolicy(&v, in.LeakPolicy)
	var branding keyplane.Branding
	if in.Branding.Set && !in.Branding.Null {
		branding = checkBranding(&v, in.Branding.Value)
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	now := s.clock()
	w := &keyplane.Workspace{
		ID: id.NewAt(id.Workspace, now), Name: name, Slug: in.Slug,
		MaxKeys: keyplane.DefaultMaxKeys, TestKeyTTLSeconds: keyplane.DefaultTestKeyTTLSeconds, LiveModeEnabled: true,
		LeakPolicy: keyplane.DefaultLeakPolicy, Branding: branding,
	}
	applySettings(w, in.MaxKeys, in.TestKeyTTLSeconds, in.LiveModeEnabled)
	if in.LeakPolicy.Set {
		w.LeakPolicy = in.LeakPolicy.Value
	}
	return w, nil
}

// insertWorkspace stores w and returns the audit record of its creation, which belongs to w's chain.
func insertWorkspace(ctx context.Context, tx store.Tx, w *keyplane.Workspace, now time.Time) (*outcome, error) {
	w.CreatedAt, w.UpdatedAt = now, now
	if err := tx.CreateWorkspace(ctx, w); err != nil {
		return nil, slugTaken(err)
	}
	ignore := []string{"id", "createdAt", "updatedAt"}
	if w.Branding == (keyplane.Branding{}) {
		ignore = append(ignore, "branding") // none: not a setting the entry need name
	}
	return &outcome{audit: &keyplane.AuditRecord{
		Action: "workspace.created", Target: keyplane.Target{Type: "workspace", ID: w.ID},
		Changes: diff(nil, w.View(), ignore...),
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
	if !mayOpenWorkspace(c, wsID) {
		return nil, keyplane.NotFound("workspace")
	}
	w, err := s.store.GetWorkspace(ctx, wsID)
	return w, notFound(err, "workspace")
}

// mayOpenWorkspace tells whether c may look wsID up at all: an operator any well-formed id, a
// workspace's caller its own. The others are answered as a workspace that does not exist.
func mayOpenWorkspace(c *keyplane.Caller, wsID string) bool {
	return (c.Operator || wsID == c.WorkspaceID) && id.Valid(id.Workspace, wsID)
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
	checkLeakPolicy(&v, p.LeakPolicy)
	var branding keyplane.Branding
	if p.Branding.Set && !p.Branding.Null {
		branding = checkBranding(&v, p.Branding.Value)
	}
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
		if p.LeakPolicy.Set {
			w.LeakPolicy = p.LeakPolicy.Value
		}
		if p.Branding.Set {
			w.Branding = branding
		}
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
