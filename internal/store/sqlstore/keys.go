package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/store"
)

const (
	apiKeyColumns = `k.id, k.workspace_id, k.name, k.description, k.key_type, k.environment, k.prefix,
		k.value_start, k.value_end, k.enabled, k.permissions, k.ip_allowlist, k.allowed_origins, k.meta,
		k.rate_limit, k.rate_window_ms, k.recoverable, k.expires_at, k.last_used_at, k.created_at,
		k.updated_at, k.disabled_at, k.revoked_at, k.created_by, k.rate_limits, k.identity_id,
		k.credits_remaining, k.refill_interval, k.refill_amount, k.refill_day, k.last_refill_at,
		k.next_refill_at, k.credits_epoch, k.exhausted_at, ` + identityColumns
	// keysFrom reads keys with their identity.
	keysFrom      = ` FROM api_keys k LEFT JOIN identities i ON i.id = k.identity_id`
	secretColumns = `s.hash, s.key_id, s.workspace_id, s.expires_at, s.ciphertext, s.created_at`

	sqlGetAPIKey  = `SELECT ` + apiKeyColumns + keysFrom + ` WHERE k.id = ? AND k.workspace_id = ?`
	sqlFindAPIKey = `SELECT ` + apiKeyColumns + keysFrom + ` WHERE k.id = ?`

	// sqlListAPIKeys is followed by the optional filters below, then sqlListAPIKeysEnd.
	sqlListAPIKeys       = `SELECT ` + apiKeyColumns + keysFrom + ` WHERE k.workspace_id = ?`
	sqlKeyIdentity       = ` AND k.identity_id = ?`
	sqlKeyEnvironment    = ` AND k.environment = ?`
	sqlKeyType           = ` AND k.key_type = ?`
	sqlKeyBefore         = ` AND k.id < ?`
	sqlListAPIKeysEnd    = ` ORDER BY k.id DESC LIMIT ?`
	sqlKeyStatusRevoked  = ` AND k.revoked_at IS NOT NULL`
	sqlKeyStatusExpired  = ` AND k.revoked_at IS NULL AND k.expires_at IS NOT NULL AND k.expires_at <= ?`
	sqlKeyStatusDisabled = ` AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > ?) AND NOT k.enabled`
	sqlKeyStatusActive   = ` AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > ?) AND k.enabled`

	// The count the database's triggers keep (migration key_counts); no row: no key yet.
	sqlCountKeys = `SELECT COALESCE(MAX(unrevoked), 0) FROM key_counts WHERE workspace_id = ?`

	sqlLookupSecret = `SELECT ` + apiKeyColumns + `, ` + secretColumns + `
		FROM secrets s JOIN api_keys k ON k.id = s.key_id LEFT JOIN identities i ON i.id = k.identity_id
		WHERE s.hash = ?`
	// verifyKeyColumns are what a verification reads of a key, its identity and its secret:
	// keyplane.Compile's fields, the verification plan's (named limits, credits) and the secret's
	// expiry. The description, start and end, prefix, creator, the timestamps but expiry and
	// revocation, and the secret's sealed value are left out: every column costs each read a name,
	// a declared type and a conversion in the driver, and reads are most of a cold verification
	// (docs/performance.md, "The verification read").
	verifyKeyColumns = `k.id, k.workspace_id, k.name, k.key_type, k.environment, k.enabled, k.permissions,
		k.ip_allowlist, k.allowed_origins, k.meta, k.rate_limit, k.rate_window_ms, k.expires_at, k.revoked_at,
		k.rate_limits, k.identity_id, k.credits_remaining, k.refill_interval, k.refill_amount, k.refill_day,
		k.last_refill_at, k.next_refill_at, k.credits_epoch, k.exhausted_at, ` + identityVerifyColumns + `, s.expires_at`
	sqlVerificationKey = `SELECT ` + verifyKeyColumns + `
		FROM secrets s JOIN api_keys k ON k.id = s.key_id LEFT JOIN identities i ON i.id = k.identity_id
		WHERE s.hash = ?`
	sqlListSecrets = `SELECT ` + secretColumns + ` FROM secrets s WHERE s.key_id = ?
		ORDER BY s.created_at DESC, s.hash DESC`
	sqlNewestPublishableKey = `SELECT ` + apiKeyColumns + `, ` + secretColumns + `
		FROM api_keys k JOIN secrets s ON s.key_id = k.id AND s.expires_at IS NULL
			LEFT JOIN identities i ON i.id = k.identity_id
		WHERE k.workspace_id = ? AND k.environment = ? AND k.key_type = 'publishable'
			AND k.revoked_at IS NULL AND k.enabled AND (k.expires_at IS NULL OR k.expires_at > ?)
		ORDER BY k.id DESC, s.created_at DESC
		LIMIT 1`

	apiKeyInsertColumns = `id, workspace_id, name, description, key_type, environment,
		prefix, value_start, value_end, enabled, permissions, ip_allowlist, allowed_origins, meta,
		rate_limit, rate_window_ms, recoverable, expires_at, last_used_at, created_at, updated_at,
		disabled_at, revoked_at, created_by, rate_limits, identity_id, credits_remaining, refill_interval,
		refill_amount, refill_day, last_refill_at, next_refill_at, credits_epoch, exhausted_at`
	sqlAPIKeyRow = `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,
		?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	// apiKeyWidth is the number of apiKeyInsertColumns.
	apiKeyWidth     = 34
	sqlInsertAPIKey = `INSERT INTO api_keys (` + apiKeyInsertColumns + `) VALUES ` + sqlAPIKeyRow + `
		ON CONFLICT DO NOTHING`
	// sqlImportAPIKeys and sqlImportSecrets are followed by batchRows of their row: bulk inserts
	// without ON CONFLICT, so that a duplicate fails the whole import.
	sqlImportAPIKeys = `INSERT INTO api_keys (` + apiKeyInsertColumns + `) VALUES `
	// sqlUpdateAPIKey leaves alone what never changes after creation (id, workspace, type,
	// environment, prefix, created_at and created_by) and last_used_at, which only the request log
	// moves (sqlTouchKey): a change made from an older read must not set it back. Nor does it write
	// the credits (see store.Tx.SetCredits).
	sqlUpdateAPIKey = `UPDATE api_keys SET name = ?, description = ?, value_start = ?, value_end = ?,
		enabled = ?, permissions = ?, ip_allowlist = ?, allowed_origins = ?, meta = ?, rate_limit = ?,
		rate_window_ms = ?, recoverable = ?, expires_at = ?, updated_at = ?,
		disabled_at = ?, revoked_at = ?, rate_limits = ?, identity_id = ?
		WHERE id = ? AND workspace_id = ?`
	// Secrets go first and explicitly, although the foreign key cascades too: secret material must
	// not outlive its key even on a database opened without foreign key enforcement.
	sqlDeleteSecretsOfKey = `DELETE FROM secrets WHERE key_id = ? AND workspace_id = ?`
	sqlDeleteAPIKey       = `DELETE FROM api_keys WHERE id = ? AND workspace_id = ?`
	secretInsertColumns   = `hash, key_id, workspace_id, expires_at, ciphertext, created_at`
	sqlSecretRow          = `(?, ?, ?, ?, ?, ?)`
	sqlInsertSecret       = `INSERT INTO secrets (` + secretInsertColumns + `) VALUES ` + sqlSecretRow + ` ON CONFLICT DO NOTHING`
	sqlImportSecrets      = `INSERT INTO secrets (` + secretInsertColumns + `) VALUES `
	// CASE rather than LEAST/MIN: the two databases spell the two-argument minimum differently.
	sqlSupersedeSecrets = `UPDATE secrets
		SET expires_at = CASE WHEN expires_at IS NULL OR expires_at > ? THEN ? ELSE expires_at END,
			ciphertext = NULL
		WHERE key_id = ?`
	sqlSecretNotKept = ` AND hash <> ?`
)

// keyStatusClause returns the filter that selects the keys whose Status(now) is s, and whether it
// takes now as its one argument. It mirrors keyplane.APIKey.Status: revoked, else expired
// (expires_at <= now), else disabled, else active.
func keyStatusClause(s keyplane.Status) (clause string, takesNow, ok bool) {
	switch s {
	case keyplane.StatusRevoked:
		return sqlKeyStatusRevoked, false, true
	case keyplane.StatusExpired:
		return sqlKeyStatusExpired, true, true
	case keyplane.StatusDisabled:
		return sqlKeyStatusDisabled, true, true
	case keyplane.StatusActive:
		return sqlKeyStatusActive, true, true
	}
	return "", false, false
}

// apiKeyRow receives the columns of apiKeyColumns.
type apiKeyRow struct {
	k                                            keyplane.APIKey
	keyType, env                                 string
	permissions, ipAllowlist, origins, meta, by  string
	rateLimit, rateWindow                        sql.NullInt64
	expiresAt, lastUsedAt, disabledAt, revokedAt sql.NullInt64
	createdAt, updatedAt                         int64
	rateLimits                                   string
	identityID                                   sql.NullString
	credits                                      creditsRow
	identity                                     identityRow
}

func (r *apiKeyRow) dest() []any {
	k := &r.k
	d := []any{&k.ID, &k.WorkspaceID, &k.Name, &k.Description, &r.keyType, &r.env, &k.Prefix,
		&k.Start, &k.End, &k.Enabled, &r.permissions, &r.ipAllowlist, &r.origins, &r.meta,
		&r.rateLimit, &r.rateWindow, &k.Recoverable, &r.expiresAt, &r.lastUsedAt, &r.createdAt,
		&r.updatedAt, &r.disabledAt, &r.revokedAt, &r.by, &r.rateLimits, &r.identityID}
	return append(append(d, r.credits.dest()...), r.identity.dest()...)
}

// verifyDest is dest for the key's and its identity's part of verifyKeyColumns.
func (r *apiKeyRow) verifyDest() []any {
	k := &r.k
	d := []any{&k.ID, &k.WorkspaceID, &k.Name, &r.keyType, &r.env, &k.Enabled, &r.permissions, &r.ipAllowlist,
		&r.origins, &r.meta, &r.rateLimit, &r.rateWindow, &r.expiresAt, &r.revokedAt, &r.rateLimits, &r.identityID}
	return append(append(d, r.credits.dest()...), r.identity.verifyDest()...)
}

func (r *apiKeyRow) key() (*keyplane.APIKey, error) {
	k, err := r.verificationKey()
	if err != nil {
		return nil, err
	}
	if k.CreatedBy, err = decodeActor(r.by); err != nil {
		return nil, fmt.Errorf("api key %s: created by: %w", k.ID, err)
	}
	k.LastUsedAt, k.DisabledAt = fromNullMicros(r.lastUsedAt), fromNullMicros(r.disabledAt)
	k.CreatedAt, k.UpdatedAt = fromMicros(r.createdAt), fromMicros(r.updatedAt)
	return k, nil
}

// verificationKey converts the columns that verifyDest and dest both receive.
func (r *apiKeyRow) verificationKey() (*keyplane.APIKey, error) {
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
	k.Meta = json.RawMessage(r.meta)
	if r.rateLimit.Valid {
		k.RateLimit = &keyplane.RateLimit{Limit: r.rateLimit.Int64, WindowMs: r.rateWindow.Int64}
	}
	k.ExpiresAt, k.RevokedAt = fromNullMicros(r.expiresAt), fromNullMicros(r.revokedAt)
	if k.RateLimits, err = decodeLimits(r.rateLimits); err != nil {
		return nil, fmt.Errorf("api key %s: rate limits: %w", k.ID, err)
	}
	k.IdentityID = r.identityID.String
	k.Credits = r.credits.credits()
	if k.Identity, err = r.identity.identity(); err != nil {
		return nil, fmt.Errorf("api key %s: %w", k.ID, err)
	}
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

// scanAPIKey reads a row of apiKeyColumns, for collect.
func scanAPIKey(s scanner) (keyplane.APIKey, error) {
	var r apiKeyRow
	if err := s.Scan(r.dest()...); err != nil {
		return keyplane.APIKey{}, err
	}
	k, err := r.key()
	if err != nil {
		return keyplane.APIKey{}, err
	}
	return *k, nil
}

// scanSecret reads a row of secretColumns, for collect.
func scanSecret(s scanner) (keyplane.Secret, error) {
	var r secretRow
	if err := s.Scan(r.dest()...); err != nil {
		return keyplane.Secret{}, err
	}
	return *r.secret(), nil
}

func (q *queries) GetAPIKey(ctx context.Context, workspaceID, id string) (*keyplane.APIKey, error) {
	var r apiKeyRow
	if err := q.queryRow(ctx, sqlGetAPIKey, id, workspaceID).Scan(r.dest()...); err != nil {
		return nil, q.fail("get api key", err)
	}
	k, err := r.key()
	if err != nil {
		return nil, fmt.Errorf("get api key: %w", err)
	}
	if err := q.withLastUsed(ctx, k); err != nil {
		return nil, fmt.Errorf("get api key: %w", err)
	}
	return k, nil
}

// withLastUsed moves the keys' LastUsedAt to their last use as the usage writer keeps it
// (key_last_used, in the log's database), where that is later than what api_keys.last_used_at holds
// (written by versions before key_last_used, and by older nodes of a rolling upgrade). The
// verification reads (LookupSecret, FindAPIKey) leave it out: no answer of theirs shows it.
func (q *queries) withLastUsed(ctx context.Context, keys ...*keyplane.APIKey) error {
	if q.detached {
		ctx = context.WithoutCancel(ctx)
	}
	byID := make(map[string]*keyplane.APIKey, len(keys))
	for _, k := range keys {
		byID[k.ID] = k
	}
	logs := &q.db.logs.queries
	if q.db.logs == q.db {
		// One database (PostgreSQL): read where q reads. A transaction that took a second connection
		// of the pool it holds one of would wait for itself once every connection is a transaction.
		logs = q
	}
	for rest := keys; len(rest) > 0; {
		// Chunks of chunkSize, as the writes': a handful of statements, each prepared once.
		n := chunkSize(len(rest))
		args := make([]any, n)
		for i, k := range rest[:n] {
			args[i] = k.ID
		}
		rest = rest[n:]
		rows, err := logs.query(ctx, sqlLastUsed+"("+batchRows("?", n)+")", args...)
		if err != nil {
			return logs.fail("last uses", err)
		}
		for rows.Next() {
			var id string
			var at int64
			if err := rows.Scan(&id, &at); err != nil {
				rows.Close()
				return fmt.Errorf("last uses: %w", err)
			}
			if k, t := byID[id], fromMicros(at); k != nil && (k.LastUsedAt == nil || k.LastUsedAt.Before(t)) {
				k.LastUsedAt = &t
			}
		}
		if err := rows.Err(); err != nil {
			rows.Close()
			return logs.fail("last uses", err)
		}
		rows.Close()
	}
	return nil
}

// withLastUsedAll is withLastUsed of every key of a list.
func (q *queries) withLastUsedAll(ctx context.Context, keys []keyplane.APIKey) error {
	ptrs := make([]*keyplane.APIKey, len(keys))
	for i := range keys {
		ptrs[i] = &keys[i]
	}
	return q.withLastUsed(ctx, ptrs...)
}

func (q *queries) FindAPIKey(ctx context.Context, id string) (*keyplane.APIKey, error) {
	var r apiKeyRow
	if err := q.queryRow(ctx, sqlFindAPIKey, id).Scan(r.dest()...); err != nil {
		return nil, q.fail("find api key", err)
	}
	k, err := r.key()
	if err != nil {
		return nil, fmt.Errorf("find api key: %w", err)
	}
	k.LastUsedAt = nil // see store.Queries
	return k, nil
}

func (q *queries) ListAPIKeys(ctx context.Context, workspaceID string, f store.KeyFilter) ([]keyplane.APIKey, string, error) {
	const op = "list api keys"
	if err := checkLimit(op, f.Limit); err != nil {
		return nil, "", err
	}
	l := newListSQL(sqlListAPIKeys, workspaceID)
	if f.Environment != "" {
		l.add(sqlKeyEnvironment, string(f.Environment))
	}
	if f.KeyType != "" {
		l.add(sqlKeyType, string(f.KeyType))
	}
	if f.IdentityID != "" {
		l.add(sqlKeyIdentity, f.IdentityID)
	}
	if f.Status != "" {
		clause, takesNow, ok := keyStatusClause(f.Status)
		if !ok {
			return nil, "", fmt.Errorf("%s: unknown status %q", op, f.Status)
		}
		if takesNow {
			l.add(clause, micros(f.Now))
		} else {
			l.add(clause)
		}
	}
	if err := l.after(op, cursorAPIKey, f.Cursor, sqlKeyBefore); err != nil {
		return nil, "", err
	}
	l.add(sqlListAPIKeysEnd)
	keys, next, err := listPage(ctx, q, op, l.b.String(), f.Limit, scanAPIKey,
		func(k *keyplane.APIKey) string { return encodeCursor(cursorAPIKey, k.ID) }, l.args...)
	if err != nil {
		return nil, "", err
	}
	if err := q.withLastUsedAll(ctx, keys); err != nil {
		return nil, "", fmt.Errorf("%s: %w", op, err)
	}
	return keys, next, nil
}

func (q *queries) CountKeys(ctx context.Context, workspaceID string) (int, error) {
	var n int
	if err := q.queryRow(ctx, sqlCountKeys, workspaceID).Scan(&n); err != nil {
		return 0, q.fail("count keys", err)
	}
	return n, nil
}

func (q *queries) LookupSecret(ctx context.Context, hash []byte) (*keyplane.APIKey, *keyplane.Secret, error) {
	k, s, err := scanKeyAndSecret(q.queryRow(ctx, sqlLookupSecret, hash))
	if err != nil {
		return nil, nil, q.fail("lookup secret", err)
	}
	k.LastUsedAt = nil // see store.Queries
	return k, s, nil
}

func (q *queries) VerificationKey(ctx context.Context, hash []byte) (*keyplane.APIKey, *time.Time, error) {
	var kr apiKeyRow
	var expires sql.NullInt64
	if err := q.queryRow(ctx, sqlVerificationKey, hash).Scan(append(kr.verifyDest(), &expires)...); err != nil {
		return nil, nil, q.fail("verification key", err)
	}
	k, err := kr.verificationKey()
	if err != nil {
		return nil, nil, q.fail("verification key", err)
	}
	return k, fromNullMicros(expires), nil
}

func (q *queries) ListSecrets(ctx context.Context, keyID string) ([]keyplane.Secret, error) {
	return list(ctx, q, "list secrets", sqlListSecrets, scanSecret, keyID)
}

func (q *queries) NewestPublishableKey(ctx context.Context, workspaceID string, env keyplane.Environment, now time.Time) (*keyplane.APIKey, *keyplane.Secret, error) {
	k, s, err := scanKeyAndSecret(q.queryRow(ctx, sqlNewestPublishableKey, workspaceID, string(env), micros(now)))
	if err != nil {
		return nil, nil, q.fail("newest publishable key", err)
	}
	if err := q.withLastUsed(ctx, k); err != nil {
		return nil, nil, fmt.Errorf("newest publishable key: %w", err)
	}
	return k, s, nil
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
	limits, err := encodeLimits(k.RateLimits)
	if err != nil {
		return nil, fmt.Errorf("rate limits: %w", err)
	}
	limit, window := rateLimitArgs(k.RateLimit)
	dst = append(dst, k.ID, k.WorkspaceID, k.Name, k.Description,
		string(k.KeyType), string(k.Environment), k.Prefix, k.Start, k.End, k.Enabled, perms, ips,
		origins, meta, limit, window, k.Recoverable, nullMicros(k.ExpiresAt), nullMicros(k.LastUsedAt),
		micros(k.CreatedAt), micros(k.UpdatedAt), nullMicros(k.DisabledAt), nullMicros(k.RevokedAt),
		string(by), limits, nullString(k.IdentityID))
	return append(appendCreditValues(dst, k.Credits), creditEpoch(k.Credits), creditExhausted(k.Credits)), nil
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
	limits, err := encodeLimits(k.RateLimits)
	if err != nil {
		return fmt.Errorf("%s: rate limits: %w", op, err)
	}
	limit, window := rateLimitArgs(k.RateLimit)
	return t.update(ctx, op, sqlUpdateAPIKey, k.Name, k.Description, k.Start, k.End, k.Enabled, perms,
		ips, origins, meta, limit, window, k.Recoverable, nullMicros(k.ExpiresAt),
		micros(k.UpdatedAt), nullMicros(k.DisabledAt), nullMicros(k.RevokedAt), limits, nullString(k.IdentityID),
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
	if _, err := t.exec(ctx, sqlDeleteKeyLeaks, id); err != nil {
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
