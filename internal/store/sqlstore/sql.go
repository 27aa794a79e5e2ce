package sqlstore

import "github.com/keyplane/keyplane"

// Every statement of the store, written once with ? placeholders; DB.Rebind turns them into $n for
// PostgreSQL. The list queries are assembled from the fragments below and nothing else, so the set of
// distinct statements (and of rebound copies cached) is small and fixed. Values never go into SQL text.
//
// Times are unix microseconds; JSON-ish fields are TEXT; see the migrations for the schema.
//
// Inserts say ON CONFLICT DO NOTHING and report a conflict when no row was written, and updates that
// could break a unique constraint check for it first, because a unique violation aborts the whole
// transaction on PostgreSQL but not on SQLite: this way a caller that gets store.ErrConflict can go on
// with its transaction on both. (Two transactions of different chains racing for the same value can
// still hit the constraint itself; that is reported as ErrConflict too.)

const (
	workspaceColumns = `id, name, slug, max_keys, test_key_ttl_seconds, live_mode_enabled, created_at, updated_at`

	sqlGetWorkspace       = `SELECT ` + workspaceColumns + ` FROM workspaces WHERE id = ?`
	sqlGetWorkspaceBySlug = `SELECT ` + workspaceColumns + ` FROM workspaces WHERE slug = ?`
	sqlListWorkspaces     = `SELECT ` + workspaceColumns + ` FROM workspaces ORDER BY id DESC LIMIT ?`
	sqlListWorkspacesFrom = `SELECT ` + workspaceColumns + ` FROM workspaces WHERE id < ? ORDER BY id DESC LIMIT ?`
	sqlInsertWorkspace    = `INSERT INTO workspaces (` + workspaceColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT DO NOTHING`
	sqlWorkspaceSlugTaken = `SELECT COUNT(*) FROM workspaces WHERE slug = ? AND id <> ?`
	sqlUpdateWorkspace    = `UPDATE workspaces SET name = ?, slug = ?, max_keys = ?, test_key_ttl_seconds = ?,
		live_mode_enabled = ?, updated_at = ? WHERE id = ?`
)

const (
	apiKeyColumns = `k.id, k.workspace_id, k.name, k.description, k.key_type, k.environment, k.prefix,
		k.value_start, k.value_end, k.enabled, k.permissions, k.ip_allowlist, k.allowed_origins, k.meta,
		k.rate_limit, k.rate_window_ms, k.recoverable, k.expires_at, k.last_used_at, k.created_at,
		k.updated_at, k.disabled_at, k.revoked_at, k.created_by`
	secretColumns = `s.hash, s.key_id, s.workspace_id, s.expires_at, s.ciphertext, s.created_at`

	sqlGetAPIKey  = `SELECT ` + apiKeyColumns + ` FROM api_keys k WHERE k.id = ? AND k.workspace_id = ?`
	sqlFindAPIKey = `SELECT ` + apiKeyColumns + ` FROM api_keys k WHERE k.id = ?`

	// sqlListAPIKeys is followed by the optional filters below, then sqlListAPIKeysEnd.
	sqlListAPIKeys       = `SELECT ` + apiKeyColumns + ` FROM api_keys k WHERE k.workspace_id = ?`
	sqlKeyEnvironment    = ` AND k.environment = ?`
	sqlKeyType           = ` AND k.key_type = ?`
	sqlKeyBefore         = ` AND k.id < ?`
	sqlListAPIKeysEnd    = ` ORDER BY k.id DESC LIMIT ?`
	sqlKeyStatusRevoked  = ` AND k.revoked_at IS NOT NULL`
	sqlKeyStatusExpired  = ` AND k.revoked_at IS NULL AND k.expires_at IS NOT NULL AND k.expires_at <= ?`
	sqlKeyStatusDisabled = ` AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > ?) AND NOT k.enabled`
	sqlKeyStatusActive   = ` AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > ?) AND k.enabled`

	sqlCountKeys = `SELECT COUNT(*) FROM api_keys WHERE workspace_id = ? AND revoked_at IS NULL`

	sqlLookupSecret = `SELECT ` + apiKeyColumns + `, ` + secretColumns + `
		FROM secrets s JOIN api_keys k ON k.id = s.key_id
		WHERE s.hash = ?`
	sqlListSecrets = `SELECT ` + secretColumns + ` FROM secrets s WHERE s.key_id = ?
		ORDER BY s.created_at DESC, s.hash DESC`
	sqlNewestPublishableKey = `SELECT ` + apiKeyColumns + `, ` + secretColumns + `
		FROM api_keys k JOIN secrets s ON s.key_id = k.id AND s.expires_at IS NULL
		WHERE k.workspace_id = ? AND k.environment = ? AND k.key_type = 'publishable'
			AND k.revoked_at IS NULL AND k.enabled AND (k.expires_at IS NULL OR k.expires_at > ?)
		ORDER BY k.id DESC, s.created_at DESC
		LIMIT 1`

	apiKeyInsertColumns = `id, workspace_id, name, description, key_type, environment,
		prefix, value_start, value_end, enabled, permissions, ip_allowlist, allowed_origins, meta,
		rate_limit, rate_window_ms, recoverable, expires_at, last_used_at, created_at, updated_at,
		disabled_at, revoked_at, created_by`
	sqlAPIKeyRow    = `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	sqlInsertAPIKey = `INSERT INTO api_keys (` + apiKeyInsertColumns + `) VALUES ` + sqlAPIKeyRow + `
		ON CONFLICT DO NOTHING`
	// sqlImportAPIKeys and sqlImportSecrets are followed by batchRows of their row: bulk inserts
	// without ON CONFLICT, so that a duplicate fails the whole import.
	sqlImportAPIKeys = `INSERT INTO api_keys (` + apiKeyInsertColumns + `) VALUES `
	// sqlUpdateAPIKey leaves alone what never changes after creation (id, workspace, type,
	// environment, prefix, created_at and created_by) and last_used_at, which only the request log
	// moves (sqlTouchKey): a change made from an older read must not set it back.
	sqlUpdateAPIKey = `UPDATE api_keys SET name = ?, description = ?, value_start = ?, value_end = ?,
		enabled = ?, permissions = ?, ip_allowlist = ?, allowed_origins = ?, meta = ?, rate_limit = ?,
		rate_window_ms = ?, recoverable = ?, expires_at = ?, updated_at = ?,
		disabled_at = ?, revoked_at = ?
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

const (
	rootKeyColumns = `id, name, hash, scopes, created_at, revoked_at`

	sqlGetRootKeyByHash = `SELECT ` + rootKeyColumns + ` FROM root_keys WHERE hash = ?`
	sqlGetRootKey       = `SELECT ` + rootKeyColumns + ` FROM root_keys WHERE id = ?`
	sqlListRootKeys     = `SELECT ` + rootKeyColumns + ` FROM root_keys ORDER BY id`
	sqlRevokeRootKey    = `UPDATE root_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`
	sqlInsertRootKey    = `INSERT INTO root_keys (` + rootKeyColumns + `) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT DO NOTHING`
)

const (
	userColumns = `id, email, password_hash, operator, created_at, updated_at`

	sqlGetUser        = `SELECT ` + userColumns + ` FROM users WHERE id = ?`
	sqlGetUserByEmail = `SELECT ` + userColumns + ` FROM users WHERE email = ?`
	sqlInsertUser     = `INSERT INTO users (` + userColumns + `) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT DO NOTHING`
	sqlUserEmailTaken  = `SELECT COUNT(*) FROM users WHERE email = ? AND id <> ?`
	sqlUpdateUser      = `UPDATE users SET email = ?, password_hash = ?, updated_at = ? WHERE id = ?`
	sqlSetUserOperator = `UPDATE users SET operator = ?, updated_at = ? WHERE id = ?`

	sqlListMembers = `SELECT m.workspace_id, m.user_id, u.email, m.role, m.status, m.created_at
		FROM members m JOIN users u ON u.id = m.user_id
		WHERE m.workspace_id = ?
		ORDER BY m.created_at, m.user_id`
	// The workspaces of a user in one status: active ones are the memberships, invited ones the
	// invitations.
	sqlListMemberships = `SELECT w.id, w.name, w.slug, w.max_keys, w.test_key_ttl_seconds, w.live_mode_enabled,
		w.created_at, w.updated_at, m.role
		FROM members m JOIN workspaces w ON w.id = m.workspace_id
		WHERE m.user_id = ? AND m.status = ?
		ORDER BY w.name, w.id`
	sqlUpsertMember = `INSERT INTO members (workspace_id, user_id, role, status, created_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (workspace_id, user_id) DO UPDATE SET role = excluded.role, status = excluded.status`
	sqlDeleteMember = `DELETE FROM members WHERE workspace_id = ? AND user_id = ?`
)

const (
	sessionColumns = `hash, user_id, created_at, expires_at, reauth_at, ip, user_agent, reauth_workspace_id`

	sqlGetSession    = `SELECT ` + sessionColumns + ` FROM sessions WHERE hash = ?`
	sqlInsertSession = `INSERT INTO sessions (` + sessionColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT DO NOTHING`
	sqlUpdateSession         = `UPDATE sessions SET expires_at = ?, reauth_at = ?, reauth_workspace_id = ? WHERE hash = ?`
	sqlDeleteSession         = `DELETE FROM sessions WHERE hash = ?`
	sqlDeleteExpiredSessions = `DELETE FROM sessions WHERE expires_at < ?`
	sqlDeleteUserSessions    = `DELETE FROM sessions WHERE user_id = ?`
)

const (
	auditColumns = `chain, seq, id, ts, action, actor_id, target_id, body, hash`

	sqlLastAudit = `SELECT seq, hash FROM audit_entries WHERE chain = ? ORDER BY seq DESC LIMIT 1`

	// sqlListAudit is followed by the optional filters below, then sqlListAuditEnd.
	sqlListAudit    = `SELECT ` + auditColumns + ` FROM audit_entries WHERE chain = ?`
	sqlAuditAction  = ` AND action = ?`
	sqlAuditActor   = ` AND actor_id = ?`
	sqlAuditTarget  = ` AND target_id = ?`
	sqlAuditSince   = ` AND ts >= ?`
	sqlAuditUntil   = ` AND ts < ?`
	sqlAuditBefore  = ` AND seq < ?`
	sqlListAuditEnd = ` ORDER BY seq DESC LIMIT ?`

	sqlScanAudit = `SELECT ` + auditColumns + ` FROM audit_entries WHERE chain = ? AND seq > ?
		ORDER BY seq LIMIT ?`
	// A loose index scan: one primary key probe per chain, where DISTINCT would read every entry.
	sqlAuditChains = `WITH RECURSIVE c (chain) AS (
			SELECT MIN(chain) FROM audit_entries
			UNION ALL
			SELECT (SELECT MIN(chain) FROM audit_entries WHERE chain > c.chain) FROM c WHERE c.chain IS NOT NULL
		)
		SELECT chain FROM c WHERE chain IS NOT NULL ORDER BY chain`
	sqlInsertAudit = `INSERT INTO audit_entries (` + auditColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT DO NOTHING`

	sqlInsertEvent = `INSERT INTO events (id, workspace_id, type, data, created_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT DO NOTHING`
)

const (
	requestLogColumns = `id, workspace_id, key_id, ts, code, source, method, path, ip, user_agent, latency_us`

	// sqlInsertRequestLogs is followed by batchRows(sqlRequestLogRow, n): one statement writes n
	// entries. No ON CONFLICT: ids are fresh, and a batch either goes in whole, rollups included, or not.
	sqlInsertRequestLogs = `INSERT INTO request_logs (` + requestLogColumns + `) VALUES `
	sqlRequestLogRow     = `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

	// sqlListRequestLogs is followed by the optional filters below, then sqlListRequestLogsEnd. A time
	// bound is given twice: as an id bound (ids begin with their millisecond), which the indexes
	// serve, and on ts, which is exact to the microsecond.
	sqlListRequestLogs    = `SELECT ` + requestLogColumns + ` FROM request_logs`
	sqlLogWorkspace       = ` WHERE workspace_id = ?`
	sqlLogKey             = ` AND key_id = ?`
	sqlLogCode            = ` AND code = ?`
	sqlLogSource          = ` AND source = ?`
	sqlLogSince           = ` AND id >= ? AND ts >= ?`
	sqlLogUntil           = ` AND id < ? AND ts < ?`
	sqlLogBefore          = ` AND id < ?`
	sqlListRequestLogsEnd = ` ORDER BY id DESC LIMIT ?`

	// sqlAddUsage is followed by batchRows(sqlUsageRow, n), then sqlAddUsageEnd. A batch holds each
	// row once: PostgreSQL refuses to update one row twice in a statement. The hour leads the primary
	// key, so that the rows written are the current hour's, together at the end of the table.
	sqlAddUsage    = `INSERT INTO key_usage (hour, workspace_id, key_id, code, requests) VALUES `
	sqlUsageRow    = `(?, ?, ?, ?, ?)`
	sqlAddUsageEnd = ` ON CONFLICT (hour, workspace_id, key_id, code) DO UPDATE SET requests = key_usage.requests + excluded.requests`

	// sqlTouchKey moves a key's last use forward only: nodes and batches may write out of order.
	sqlTouchKey = `UPDATE api_keys SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)`

	// sqlUsageHours lists the hours from the first argument (an hour's start, unix microseconds) to
	// before the second. The rollups are read by a seek per hour to its (hour, workspace[, key]) part
	// of the primary key, which then serves both reads without an index of its own: CROSS JOIN keeps
	// the hours the outer loop on SQLite, and on PostgreSQL a nested loop over the primary key is what
	// a few thousand hours cost least with.
	sqlUsageHours = `WITH RECURSIVE h(hour) AS (
			SELECT CAST(? AS BIGINT)
			UNION ALL
			SELECT hour + 3600000000 FROM h WHERE hour + 3600000000 < ?
		)`
	// sqlKeyUsage sums a key's hourly rollups into buckets of the third argument's width
	// (microseconds; a multiple of an hour), aligned on the epoch. CAST: PostgreSQL's SUM of bigint is
	// numeric.
	sqlKeyUsage = sqlUsageHours + `
		SELECT u.hour - (u.hour % ?) AS bucket, u.code, CAST(SUM(u.requests) AS BIGINT)
		FROM h CROSS JOIN key_usage u
		WHERE u.hour = h.hour AND u.workspace_id = ? AND u.key_id = ?
		GROUP BY 1, 2
		ORDER BY 1, 2`
	// sqlWorkspaceUsage is sqlKeyUsage over every key of a workspace.
	sqlWorkspaceUsage = sqlUsageHours + `
		SELECT u.hour - (u.hour % ?) AS bucket, u.code, CAST(SUM(u.requests) AS BIGINT)
		FROM h CROSS JOIN key_usage u
		WHERE u.hour = h.hour AND u.workspace_id = ?
		GROUP BY 1, 2
		ORDER BY 1, 2`

	// Pruning deletes a bounded number of rows per statement, oldest first, so that no transaction
	// holds the writer (SQLite) or many row locks (PostgreSQL) for long.
	// The log's primary key leads with the workspace: the rows to prune are found by a range scan of
	// each workspace's part of it.
	sqlPruneRequestLogs = `DELETE FROM request_logs WHERE (workspace_id, id) IN (
		SELECT l.workspace_id, l.id FROM workspaces w JOIN request_logs l ON l.workspace_id = w.id
		WHERE l.id < ? LIMIT ?)`
	// sqlPruneRequestLogsApart is sqlPruneRequestLogs for a log in a database of its own, without the
	// workspaces: they are found by skipping from one to the next in the log's primary key. (On
	// PostgreSQL, which knows how many workspaces there are, the join above is planned as a range scan
	// per workspace; this one, whose count it cannot guess, as a scan of the whole table.)
	sqlPruneRequestLogsApart = `DELETE FROM request_logs WHERE (workspace_id, id) IN (
		WITH RECURSIVE w(id) AS (
			SELECT MIN(workspace_id) FROM request_logs
			UNION ALL
			SELECT (SELECT MIN(workspace_id) FROM request_logs WHERE workspace_id > w.id) FROM w WHERE w.id IS NOT NULL
		)
		SELECT l.workspace_id, l.id FROM w JOIN request_logs l ON l.workspace_id = w.id
		WHERE w.id IS NOT NULL AND l.id < ? LIMIT ?)`
	// The hour leads the rollups' primary key: the oldest rows are its first ones.
	sqlPruneUsage = `DELETE FROM key_usage WHERE (hour, workspace_id, key_id, code) IN (
		SELECT hour, workspace_id, key_id, code FROM key_usage WHERE hour < ? ORDER BY hour LIMIT ?)`
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
