package sqlstore

import (
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/store"
)

// Times are stored as unix microseconds, so a time truncated to microseconds round-trips exactly and
// comes back in UTC.

func micros(t time.Time) int64 { return t.UnixMicro() }

func nullMicros(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixMicro()
}

func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

func fromNullMicros(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMicros(v.Int64)
	return &t
}

// nullBytes makes a nil slice NULL: drivers differ on whether they bind it as NULL or as empty.
func nullBytes(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

// encodeList stores a list as a JSON array, [] when empty.
func encodeList(v []string) (string, error) {
	if len(v) == 0 {
		return "[]", nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// decodeList returns a non-nil slice, so that an empty list reads back as [] rather than null.
func decodeList(s string) ([]string, error) {
	var v []string
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil, err
	}
	if v == nil {
		v = []string{}
	}
	return v, nil
}

// jsonObject stores raw JSON as given, {} when empty.
func jsonObject(b json.RawMessage) string {
	if len(b) == 0 {
		return "{}"
	}
	return string(b)
}

// Cursors are opaque to callers: base64url of a kind byte and the last row's id (or audit seq). The
// kind byte makes a cursor of one list useless for another.
const (
	cursorWorkspace  = 'w'
	cursorAPIKey     = 'k'
	cursorAudit      = 'a'
	cursorRequestLog = 'r'
	maxCursorValue   = 64
)

func encodeCursor(kind byte, v string) string {
	return base64.RawURLEncoding.EncodeToString(append([]byte{kind}, v...))
}

// decodeCursor returns the value of a cursor of the given kind, or an error wrapping
// store.ErrBadCursor.
func decodeCursor(kind byte, c string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) < 2 || len(b) > 1+maxCursorValue || b[0] != kind {
		return "", store.ErrBadCursor
	}
	for _, c := range b[1:] {
		// Ids and numbers only: printable ASCII without spaces or quotes.
		if c <= ' ' || c > '~' || c == '\'' || c == '"' {
			return "", store.ErrBadCursor
		}
	}
	return string(b[1:]), nil
}

func decodeSeqCursor(c string) (int64, error) {
	v, err := decodeCursor(cursorAudit, c)
	if err != nil {
		return 0, err
	}
	seq, err := strconv.ParseInt(v, 10, 64)
	if err != nil || seq < 1 {
		return 0, store.ErrBadCursor
	}
	return seq, nil
}

// scanner is *sql.Row or *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

func scanWorkspace(s scanner) (*keyplane.Workspace, error) {
	var w keyplane.Workspace
	var created, updated int64
	if err := s.Scan(&w.ID, &w.Name, &w.Slug, &w.MaxKeys, &w.TestKeyTTLSeconds, &w.LiveModeEnabled,
		&created, &updated); err != nil {
		return nil, err
	}
	w.CreatedAt, w.UpdatedAt = fromMicros(created), fromMicros(updated)
	return &w, nil
}

// apiKeyRow receives the columns of apiKeyColumns.
type apiKeyRow struct {
	k                                            keyplane.APIKey
	keyType, env                                 string
	permissions, ipAllowlist, origins, meta, by  string
	rateLimit, rateWindow                        sql.NullInt64
	expiresAt, lastUsedAt, disabledAt, revokedAt sql.NullInt64
	createdAt, updatedAt                         int64
}

func (r *apiKeyRow) dest() []any {
	k := &r.k
	return []any{&k.ID, &k.WorkspaceID, &k.Name, &k.Description, &r.keyType, &r.env, &k.Prefix,
		&k.Start, &k.End, &k.Enabled, &r.permissions, &r.ipAllowlist, &r.origins, &r.meta,
		&r.rateLimit, &r.rateWindow, &k.Recoverable, &r.expiresAt, &r.lastUsedAt, &r.createdAt,
		&r.updatedAt, &r.disabledAt, &r.revokedAt, &r.by}
}

func (r *apiKeyRow) key() (*keyplane.APIKey, error) {
	k := r.k
	k.KeyType, k.Environment = keyplane.KeyType(r.keyType), keyplane.Environment(r.env)
	var err error
	if k.Permissions, err = decodeList(r.permissions); err != nil {
		return nil, fmt.Errorf("api key %s: permissions: %w", k.ID, err)
	}
	if k.IPAllowlist, err = decodeList(r.ipAllowlist); err != nil {
		return nil, fmt.Errorf("api key %s: ip allowlist: %w", k.ID, err)
	}
	if k.AllowedOrigins, err = decodeList(r.origins); err != nil {
		return nil, fmt.Errorf("api key %s: allowed origins: %w", k.ID, err)
	}
	if err := json.Unmarshal([]byte(r.by), &k.CreatedBy); err != nil {
		return nil, fmt.Errorf("api key %s: created by: %w", k.ID, err)
	}
	k.Meta = json.RawMessage(r.meta)
	if r.rateLimit.Valid {
		k.RateLimit = &keyplane.RateLimit{Limit: r.rateLimit.Int64, WindowMs: r.rateWindow.Int64}
	}
	k.ExpiresAt, k.LastUsedAt = fromNullMicros(r.expiresAt), fromNullMicros(r.lastUsedAt)
	k.DisabledAt, k.RevokedAt = fromNullMicros(r.disabledAt), fromNullMicros(r.revokedAt)
	k.CreatedAt, k.UpdatedAt = fromMicros(r.createdAt), fromMicros(r.updatedAt)
	return &k, nil
}

// secretRow receives the columns of secretColumns.
type secretRow struct {
	s         keyplane.Secret
	expiresAt sql.NullInt64
	createdAt int64
}

func (r *secretRow) dest() []any {
	return []any{&r.s.Hash, &r.s.KeyID, &r.s.WorkspaceID, &r.expiresAt, &r.s.Ciphertext, &r.createdAt}
}

func (r *secretRow) secret() *keyplane.Secret {
	s := r.s
	s.ExpiresAt, s.CreatedAt = fromNullMicros(r.expiresAt), fromMicros(r.createdAt)
	return &s
}

// scanKeyAndSecret reads a row of apiKeyColumns followed by secretColumns.
func scanKeyAndSecret(s scanner) (*keyplane.APIKey, *keyplane.Secret, error) {
	var kr apiKeyRow
	var sr secretRow
	if err := s.Scan(append(kr.dest(), sr.dest()...)...); err != nil {
		return nil, nil, err
	}
	k, err := kr.key()
	if err != nil {
		return nil, nil, err
	}
	return k, sr.secret(), nil
}

func scanRootKey(s scanner) (*keyplane.RootKey, error) {
	var k keyplane.RootKey
	var scopes string
	var created int64
	var revoked sql.NullInt64
	if err := s.Scan(&k.ID, &k.Name, &k.Hash, &scopes, &created, &revoked); err != nil {
		return nil, err
	}
	var err error
	if k.Scopes, err = decodeList(scopes); err != nil {
		return nil, fmt.Errorf("root key %s: scopes: %w", k.ID, err)
	}
	k.CreatedAt, k.RevokedAt = fromMicros(created), fromNullMicros(revoked)
	return &k, nil
}

func scanUser(s scanner) (*keyplane.User, error) {
	var u keyplane.User
	var created, updated int64
	if err := s.Scan(&u.ID, &u.Email, &u.PasswordHash, &u.Operator, &created, &updated); err != nil {
		return nil, err
	}
	u.CreatedAt, u.UpdatedAt = fromMicros(created), fromMicros(updated)
	return &u, nil
}

func scanAudit(s scanner) (*keyplane.AuditEntry, error) {
	var e keyplane.AuditEntry
	var ts int64
	var body string
	if err := s.Scan(&e.WorkspaceID, &e.Seq, &e.ID, &ts, &e.Action, &e.ActorID, &e.TargetID, &body,
		&e.Hash); err != nil {
		return nil, err
	}
	e.Timestamp, e.Body = fromMicros(ts), json.RawMessage(body)
	return &e, nil
}
