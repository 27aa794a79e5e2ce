package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/store"
)

// insert runs an INSERT … ON CONFLICT DO NOTHING and reports store.ErrConflict when it wrote nothing.
func (t *tx) insert(ctx context.Context, op, query string, args ...any) error {
	return t.execOne(ctx, op, store.ErrConflict, query, args...)
}

// update runs an UPDATE of one row and reports store.ErrNotFound when it matched none.
func (t *tx) update(ctx context.Context, op, query string, args ...any) error {
	return t.execOne(ctx, op, store.ErrNotFound, query, args...)
}

// execOne runs a statement that should touch one row and returns none (wrapped) when it touched none.
func (t *tx) execOne(ctx context.Context, op string, none error, query string, args ...any) error {
	res, err := t.exec(ctx, query, args...)
	if err != nil {
		return t.fail(op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", op, none)
	}
	return nil
}

// taken runs a COUNT query and reports whether it found any row.
func (t *tx) taken(ctx context.Context, op, query string, args ...any) error {
	var n int
	if err := t.queryRow(ctx, query, args...).Scan(&n); err != nil {
		return t.fail(op, err)
	}
	if n > 0 {
		return fmt.Errorf("%s: %w", op, store.ErrConflict)
	}
	return nil
}

func (t *tx) CreateWorkspace(ctx context.Context, w *keyplane.Workspace) error {
	return t.insert(ctx, "create workspace", sqlInsertWorkspace, w.ID, w.Name, w.Slug, w.MaxKeys,
		w.TestKeyTTLSeconds, w.LiveModeEnabled, micros(w.CreatedAt), micros(w.UpdatedAt))
}

func (t *tx) UpdateWorkspace(ctx context.Context, w *keyplane.Workspace) error {
	const op = "update workspace"
	if err := t.taken(ctx, op, sqlWorkspaceSlugTaken, w.Slug, w.ID); err != nil {
		return err
	}
	return t.update(ctx, op, sqlUpdateWorkspace, w.Name, w.Slug, w.MaxKeys, w.TestKeyTTLSeconds,
		w.LiveModeEnabled, micros(w.UpdatedAt), w.ID)
}

// apiKeyJSON encodes the JSON-ish fields of k in column order: permissions, ip allowlist, allowed
// origins, meta.
func apiKeyJSON(k *keyplane.APIKey) (perms, ips, origins, meta string, err error) {
	if perms, err = encodeList(k.Permissions); err != nil {
		return "", "", "", "", fmt.Errorf("permissions: %w", err)
	}
	if ips, err = encodeList(k.IPAllowlist); err != nil {
		return "", "", "", "", fmt.Errorf("ip allowlist: %w", err)
	}
	if origins, err = encodeList(k.AllowedOrigins); err != nil {
		return "", "", "", "", fmt.Errorf("allowed origins: %w", err)
	}
	return perms, ips, origins, jsonObject(k.Meta), nil
}

func rateLimitArgs(r *keyplane.RateLimit) (limit, windowMs any) {
	if r == nil {
		return nil, nil
	}
	return r.Limit, r.WindowMs
}

func (t *tx) InsertAPIKey(ctx context.Context, k *keyplane.APIKey) error {
	const op = "insert api key"
	args, err := appendAPIKeyValues(nil, k)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return t.insert(ctx, op, sqlInsertAPIKey, args...)
}

// appendAPIKeyValues appends k's values in the order of apiKeyInsertColumns.
func appendAPIKeyValues(dst []any, k *keyplane.APIKey) ([]any, error) {
	perms, ips, origins, meta, err := apiKeyJSON(k)
	if err != nil {
		return nil, err
	}
	by, err := json.Marshal(k.CreatedBy)
	if err != nil {
		return nil, fmt.Errorf("created by: %w", err)
	}
	limit, window := rateLimitArgs(k.RateLimit)
	return append(dst, k.ID, k.WorkspaceID, k.Name, k.Description,
		string(k.KeyType), string(k.Environment), k.Prefix, k.Start, k.End, k.Enabled, perms, ips,
		origins, meta, limit, window, k.Recoverable, nullMicros(k.ExpiresAt), nullMicros(k.LastUsedAt),
		micros(k.CreatedAt), micros(k.UpdatedAt), nullMicros(k.DisabledAt), nullMicros(k.RevokedAt),
		string(by)), nil
}

// appendSecretValues appends s's values in the order of secretInsertColumns.
func appendSecretValues(dst []any, s *keyplane.Secret) []any {
	return append(dst, s.Hash, s.KeyID, s.WorkspaceID, nullMicros(s.ExpiresAt), nullBytes(s.Ciphertext), micros(s.CreatedAt))
}

func (t *tx) UpdateAPIKey(ctx context.Context, k *keyplane.APIKey) error {
	const op = "update api key"
	perms, ips, origins, meta, err := apiKeyJSON(k)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	limit, window := rateLimitArgs(k.RateLimit)
	return t.update(ctx, op, sqlUpdateAPIKey, k.Name, k.Description, k.Start, k.End, k.Enabled, perms,
		ips, origins, meta, limit, window, k.Recoverable, nullMicros(k.ExpiresAt),
		micros(k.UpdatedAt), nullMicros(k.DisabledAt), nullMicros(k.RevokedAt),
		k.ID, k.WorkspaceID)
}

func (t *tx) DeleteAPIKey(ctx context.Context, workspaceID, id string) error {
	const op = "delete api key"
	if _, err := t.exec(ctx, sqlDeleteSecretsOfKey, id, workspaceID); err != nil {
		return t.fail(op, err)
	}
	if err := t.update(ctx, op, sqlDeleteAPIKey, id, workspaceID); err != nil {
		return err
	}
	if _, err := t.exec(ctx, sqlDeleteKeyNotices, id); err != nil {
		return t.fail(op, err)
	}
	return nil
}

func (t *tx) InsertSecret(ctx context.Context, s *keyplane.Secret) error {
	return t.insert(ctx, "insert secret", sqlInsertSecret, appendSecretValues(nil, s)...)
}

func (t *tx) SupersedeSecrets(ctx context.Context, keyID string, keep []byte, at time.Time) error {
	a := micros(at)
	var err error
	if len(keep) == 0 {
		// Nothing to keep; and "hash <> NULL" would match no row at all.
		_, err = t.exec(ctx, sqlSupersedeSecrets, a, a, keyID)
	} else {
		_, err = t.exec(ctx, sqlSupersedeSecrets+sqlSecretNotKept, a, a, keyID, keep)
	}
	if err != nil {
		return t.fail("supersede secrets", err)
	}
	return nil
}

func (t *tx) CreateRootKey(ctx context.Context, k *keyplane.RootKey) error {
	const op = "create root key"
	scopes, err := encodeList(k.Scopes)
	if err != nil {
		return fmt.Errorf("%s: scopes: %w", op, err)
	}
	return t.insert(ctx, op, sqlInsertRootKey, k.ID, k.Name, k.Hash, scopes, micros(k.CreatedAt),
		nullMicros(k.RevokedAt))
}

func (t *tx) RevokeRootKey(ctx context.Context, id string, at time.Time) error {
	return t.update(ctx, "revoke root key", sqlRevokeRootKey, micros(at), id)
}

func (t *tx) CreateUser(ctx context.Context, u *keyplane.User) error {
	return t.insert(ctx, "create user", sqlInsertUser, u.ID, strings.ToLower(u.Email), u.PasswordHash,
		u.Operator, micros(u.CreatedAt), micros(u.UpdatedAt))
}

func (t *tx) UpdateUser(ctx context.Context, u *keyplane.User) error {
	const op = "update user"
	email := strings.ToLower(u.Email)
	if err := t.taken(ctx, op, sqlUserEmailTaken, email, u.ID); err != nil {
		return err
	}
	return t.update(ctx, op, sqlUpdateUser, email, u.PasswordHash, micros(u.UpdatedAt), u.ID)
}

func (t *tx) SetUserOperator(ctx context.Context, userID string, operator bool, at time.Time) error {
	return t.update(ctx, "set user operator", sqlSetUserOperator, operator, micros(at), userID)
}

func (t *tx) UpsertMember(ctx context.Context, m *keyplane.Member) error {
	status := m.Status
	if status == "" {
		status = keyplane.MemberActive
	}
	if _, err := t.exec(ctx, sqlUpsertMember, m.WorkspaceID, m.UserID, string(m.Role), string(status),
		micros(m.CreatedAt)); err != nil {
		return t.fail("upsert member", err)
	}
	return nil
}

func (t *tx) DeleteMember(ctx context.Context, workspaceID, userID string) error {
	return t.update(ctx, "delete member", sqlDeleteMember, workspaceID, userID)
}

func (t *tx) CreateSession(ctx context.Context, s *keyplane.Session) error {
	return t.insert(ctx, "create session", sqlInsertSession, s.Hash, s.UserID, micros(s.CreatedAt),
		micros(s.ExpiresAt), micros(s.ReauthAt), s.IP, s.UserAgent, s.ReauthWorkspaceID)
}

func (t *tx) UpdateSession(ctx context.Context, s *keyplane.Session) error {
	return t.update(ctx, "update session", sqlUpdateSession, micros(s.ExpiresAt), micros(s.ReauthAt), s.ReauthWorkspaceID, s.Hash)
}

func (t *tx) DeleteSession(ctx context.Context, hash []byte) error {
	if _, err := t.exec(ctx, sqlDeleteSession, hash); err != nil {
		return t.fail("delete session", err)
	}
	return nil
}

func (t *tx) DeleteExpiredSessions(ctx context.Context, now time.Time) (int64, error) {
	return t.deleteCounted(ctx, "delete expired sessions", sqlDeleteExpiredSessions, micros(now))
}

func (t *tx) DeleteUserSessions(ctx context.Context, userID string) (int64, error) {
	return t.deleteCounted(ctx, "delete a user's sessions", sqlDeleteUserSessions, userID)
}

// deleteCounted runs a DELETE and says how many rows it removed.
func (t *tx) deleteCounted(ctx context.Context, op, query string, args ...any) (int64, error) {
	res, err := t.exec(ctx, query, args...)
	if err != nil {
		return 0, t.fail(op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	return n, nil
}

func (t *tx) InsertAudit(ctx context.Context, e *keyplane.AuditEntry) error {
	// The body is stored as the exact bytes given: its hash was computed over them.
	return t.insert(ctx, "insert audit entry", sqlInsertAudit, e.WorkspaceID, e.Seq, e.ID,
		micros(e.Timestamp), e.Action, e.ActorID, e.TargetID, string(e.Body), e.Hash)
}

func (t *tx) InsertEvent(ctx context.Context, e *keyplane.Event) error {
	return t.insert(ctx, "insert event", sqlInsertEvent, e.ID, e.WorkspaceID, e.Type, jsonObject(e.Data),
		micros(e.CreatedAt))
}
