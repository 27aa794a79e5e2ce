package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/store"
)

var _ store.Queries = (*queries)(nil)

// scanAuditBatch is how many audit entries ScanAudit reads per query. Reading in batches keeps no
// result set open while fn runs, so fn may itself query (a transaction's connection can serve one
// statement at a time) and a long scan holds no read snapshot.
const scanAuditBatch = 500

func (q *queries) GetWorkspace(ctx context.Context, id string) (*keyplane.Workspace, error) {
	w, err := scanWorkspace(q.queryRow(ctx, sqlGetWorkspace, id))
	if err != nil {
		return nil, q.fail("get workspace", err)
	}
	return w, nil
}

func (q *queries) GetWorkspaceBySlug(ctx context.Context, slug string) (*keyplane.Workspace, error) {
	w, err := scanWorkspace(q.queryRow(ctx, sqlGetWorkspaceBySlug, slug))
	if err != nil {
		return nil, q.fail("get workspace by slug", err)
	}
	return w, nil
}

func (q *queries) ListWorkspaces(ctx context.Context, limit int, cursor string) ([]keyplane.Workspace, string, error) {
	const op = "list workspaces"
	if limit < 1 {
		return nil, "", fmt.Errorf("%s: limit %d is not positive", op, limit)
	}
	var rows *sql.Rows
	var err error
	if cursor == "" {
		rows, err = q.query(ctx, sqlListWorkspaces, limit+1)
	} else {
		after, cerr := decodeCursor(cursorWorkspace, cursor)
		if cerr != nil {
			return nil, "", fmt.Errorf("%s: %w", op, cerr)
		}
		rows, err = q.query(ctx, sqlListWorkspacesFrom, after, limit+1)
	}
	if err != nil {
		return nil, "", q.fail(op, err)
	}
	out, err := collect(rows, func(s scanner) (keyplane.Workspace, error) {
		w, err := scanWorkspace(s)
		if err != nil {
			return keyplane.Workspace{}, err
		}
		return *w, nil
	})
	if err != nil {
		return nil, "", q.fail(op, err)
	}
	out, next := page(out, limit, func(w *keyplane.Workspace) string { return encodeCursor(cursorWorkspace, w.ID) })
	return out, next, nil
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
	return k, nil
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
	return k, nil
}

func (q *queries) ListAPIKeys(ctx context.Context, workspaceID string, f store.KeyFilter) ([]keyplane.APIKey, string, error) {
	const op = "list api keys"
	if f.Limit < 1 {
		return nil, "", fmt.Errorf("%s: limit %d is not positive", op, f.Limit)
	}
	var b strings.Builder
	b.WriteString(sqlListAPIKeys)
	args := []any{workspaceID}
	if f.Environment != "" {
		b.WriteString(sqlKeyEnvironment)
		args = append(args, string(f.Environment))
	}
	if f.KeyType != "" {
		b.WriteString(sqlKeyType)
		args = append(args, string(f.KeyType))
	}
	if f.Status != "" {
		clause, takesNow, ok := keyStatusClause(f.Status)
		if !ok {
			return nil, "", fmt.Errorf("%s: unknown status %q", op, f.Status)
		}
		b.WriteString(clause)
		if takesNow {
			args = append(args, micros(f.Now))
		}
	}
	if f.Cursor != "" {
		after, err := decodeCursor(cursorAPIKey, f.Cursor)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", op, err)
		}
		b.WriteString(sqlKeyBefore)
		args = append(args, after)
	}
	b.WriteString(sqlListAPIKeysEnd)
	args = append(args, f.Limit+1)

	rows, err := q.query(ctx, b.String(), args...)
	if err != nil {
		return nil, "", q.fail(op, err)
	}
	out, err := collect(rows, scanAPIKey)
	if err != nil {
		return nil, "", q.fail(op, err)
	}
	out, next := page(out, f.Limit, func(k *keyplane.APIKey) string { return encodeCursor(cursorAPIKey, k.ID) })
	return out, next, nil
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
	return k, s, nil
}

func (q *queries) ListSecrets(ctx context.Context, keyID string) ([]keyplane.Secret, error) {
	rows, err := q.query(ctx, sqlListSecrets, keyID)
	if err != nil {
		return nil, q.fail("list secrets", err)
	}
	out, err := collect(rows, scanSecret)
	if err != nil {
		return nil, q.fail("list secrets", err)
	}
	return out, nil
}

func (q *queries) NewestPublishableKey(ctx context.Context, workspaceID string, env keyplane.Environment, now time.Time) (*keyplane.APIKey, *keyplane.Secret, error) {
	k, s, err := scanKeyAndSecret(q.queryRow(ctx, sqlNewestPublishableKey, workspaceID, string(env), micros(now)))
	if err != nil {
		return nil, nil, q.fail("newest publishable key", err)
	}
	return k, s, nil
}

func (q *queries) GetRootKeyByHash(ctx context.Context, hash []byte) (*keyplane.RootKey, error) {
	k, err := scanRootKey(q.queryRow(ctx, sqlGetRootKeyByHash, hash))
	if err != nil {
		return nil, q.fail("get root key", err)
	}
	return k, nil
}

func (q *queries) GetRootKey(ctx context.Context, id string) (*keyplane.RootKey, error) {
	k, err := scanRootKey(q.queryRow(ctx, sqlGetRootKey, id))
	if err != nil {
		return nil, q.fail("get root key", err)
	}
	return k, nil
}

func (q *queries) ListRootKeys(ctx context.Context) ([]keyplane.RootKey, error) {
	rows, err := q.query(ctx, sqlListRootKeys)
	if err != nil {
		return nil, q.fail("list root keys", err)
	}
	out, err := collect(rows, func(s scanner) (keyplane.RootKey, error) {
		k, err := scanRootKey(s)
		if err != nil {
			return keyplane.RootKey{}, err
		}
		return *k, nil
	})
	if err != nil {
		return nil, q.fail("list root keys", err)
	}
	return out, nil
}

func (q *queries) GetUser(ctx context.Context, id string) (*keyplane.User, error) {
	u, err := scanUser(q.queryRow(ctx, sqlGetUser, id))
	if err != nil {
		return nil, q.fail("get user", err)
	}
	return u, nil
}

func (q *queries) GetUserByEmail(ctx context.Context, email string) (*keyplane.User, error) {
	u, err := scanUser(q.queryRow(ctx, sqlGetUserByEmail, strings.ToLower(email)))
	if err != nil {
		return nil, q.fail("get user by email", err)
	}
	return u, nil
}

func (q *queries) ListMembers(ctx context.Context, workspaceID string) ([]keyplane.Member, error) {
	rows, err := q.query(ctx, sqlListMembers, workspaceID)
	if err != nil {
		return nil, q.fail("list members", err)
	}
	out, err := collect(rows, func(s scanner) (keyplane.Member, error) {
		var m keyplane.Member
		var role, status string
		var created int64
		if err := s.Scan(&m.WorkspaceID, &m.UserID, &m.Email, &role, &status, &created); err != nil {
			return m, err
		}
		m.Role, m.Status, m.CreatedAt = keyplane.Role(role), keyplane.MemberStatus(status), fromMicros(created)
		return m, nil
	})
	if err != nil {
		return nil, q.fail("list members", err)
	}
	return out, nil
}

func (q *queries) ListMemberships(ctx context.Context, userID string) ([]keyplane.Membership, error) {
	return q.listMemberships(ctx, "list memberships", userID, keyplane.MemberActive)
}

func (q *queries) ListInvitations(ctx context.Context, userID string) ([]keyplane.Membership, error) {
	return q.listMemberships(ctx, "list invitations", userID, keyplane.MemberInvited)
}

func (q *queries) listMemberships(ctx context.Context, op, userID string, status keyplane.MemberStatus) ([]keyplane.Membership, error) {
	rows, err := q.query(ctx, sqlListMemberships, userID, string(status))
	if err != nil {
		return nil, q.fail(op, err)
	}
	out, err := collect(rows, func(s scanner) (keyplane.Membership, error) {
		var m keyplane.Membership
		var role string
		var created, updated int64
		w := &m.Workspace
		if err := s.Scan(&w.ID, &w.Name, &w.Slug, &w.MaxKeys, &w.TestKeyTTLSeconds, &w.LiveModeEnabled, &created, &updated, &role); err != nil {
			return m, err
		}
		w.CreatedAt, w.UpdatedAt, m.Role = fromMicros(created), fromMicros(updated), keyplane.Role(role)
		return m, nil
	})
	if err != nil {
		return nil, q.fail(op, err)
	}
	return out, nil
}

func (q *queries) GetSession(ctx context.Context, hash []byte) (*keyplane.Session, error) {
	var s keyplane.Session
	var created, expires, reauth int64
	err := q.queryRow(ctx, sqlGetSession, hash).Scan(&s.Hash, &s.UserID, &created, &expires, &reauth, &s.IP, &s.UserAgent, &s.ReauthWorkspaceID)
	if err != nil {
		return nil, q.fail("get session", err)
	}
	s.CreatedAt, s.ExpiresAt, s.ReauthAt = fromMicros(created), fromMicros(expires), fromMicros(reauth)
	return &s, nil
}

func (q *queries) LastAudit(ctx context.Context, chain string) (int64, string, error) {
	var seq int64
	var hash string
	err := q.queryRow(ctx, sqlLastAudit, chain).Scan(&seq, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, "", nil
	}
	if err != nil {
		return 0, "", q.fail("last audit entry", err)
	}
	return seq, hash, nil
}

func (q *queries) ListAudit(ctx context.Context, chain string, f store.AuditFilter) ([]keyplane.AuditEntry, string, error) {
	const op = "list audit entries"
	if f.Limit < 1 {
		return nil, "", fmt.Errorf("%s: limit %d is not positive", op, f.Limit)
	}
	var b strings.Builder
	b.WriteString(sqlListAudit)
	args := []any{chain}
	if f.Action != "" {
		b.WriteString(sqlAuditAction)
		args = append(args, f.Action)
	}
	if f.ActorID != "" {
		b.WriteString(sqlAuditActor)
		args = append(args, f.ActorID)
	}
	if f.TargetID != "" {
		b.WriteString(sqlAuditTarget)
		args = append(args, f.TargetID)
	}
	if f.Since != nil {
		b.WriteString(sqlAuditSince)
		args = append(args, micros(*f.Since))
	}
	if f.Until != nil {
		b.WriteString(sqlAuditUntil)
		args = append(args, micros(*f.Until))
	}
	if f.Cursor != "" {
		before, err := decodeSeqCursor(f.Cursor)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", op, err)
		}
		b.WriteString(sqlAuditBefore)
		args = append(args, before)
	}
	b.WriteString(sqlListAuditEnd)
	args = append(args, f.Limit+1)

	rows, err := q.query(ctx, b.String(), args...)
	if err != nil {
		return nil, "", q.fail(op, err)
	}
	out, err := collect(rows, func(s scanner) (keyplane.AuditEntry, error) {
		e, err := scanAudit(s)
		if err != nil {
			return keyplane.AuditEntry{}, err
		}
		return *e, nil
	})
	if err != nil {
		return nil, "", q.fail(op, err)
	}
	out, next := page(out, f.Limit, func(e *keyplane.AuditEntry) string {
		return encodeCursor(cursorAudit, strconv.FormatInt(e.Seq, 10))
	})
	return out, next, nil
}

func (q *queries) ScanAudit(ctx context.Context, chain string, fn func(*keyplane.AuditEntry) error) error {
	var after int64
	for {
		rows, err := q.query(ctx, sqlScanAudit, chain, after, scanAuditBatch)
		if err != nil {
			return q.fail("scan audit entries", err)
		}
		batch, err := collect(rows, scanAudit)
		if err != nil {
			return q.fail("scan audit entries", err)
		}
		for _, e := range batch {
			if err := fn(e); err != nil {
				return err
			}
		}
		if len(batch) < scanAuditBatch {
			return nil
		}
		after = batch[len(batch)-1].Seq
	}
}

func (q *queries) AuditChains(ctx context.Context) ([]string, error) {
	rows, err := q.query(ctx, sqlAuditChains)
	if err != nil {
		return nil, q.fail("audit chains", err)
	}
	out, err := collect(rows, func(s scanner) (string, error) {
		var c string
		err := s.Scan(&c)
		return c, err
	})
	if err != nil {
		return nil, q.fail("audit chains", err)
	}
	return out, nil
}

// collect reads every row with scan and closes rows. It returns a non-nil slice, so that an empty
// list encodes as [] rather than null.
func collect[T any](rows *sql.Rows, scan func(scanner) (T, error)) ([]T, error) {
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// page trims a list fetched with limit+1 rows to limit and returns the cursor of the next page: the
// last row kept, or "" when the extra row was not there.
func page[T any](rows []T, limit int, cursor func(*T) string) ([]T, string) {
	if len(rows) <= limit {
		return rows, ""
	}
	rows = rows[:limit]
	return rows, cursor(&rows[limit-1])
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
