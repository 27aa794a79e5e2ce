package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/store"
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
)

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

// scanAuditBatch is how many audit entries ScanAudit reads per query. Reading in batches keeps no
// result set open while fn runs, so fn may itself query (a transaction's connection can serve one
// statement at a time) and a long scan holds no read snapshot.
const scanAuditBatch = 500

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
	if err := checkLimit(op, f.Limit); err != nil {
		return nil, "", err
	}
	l := newListSQL(sqlListAudit, chain)
	if f.Action != "" {
		l.add(sqlAuditAction, f.Action)
	}
	if f.ActorID != "" {
		l.add(sqlAuditActor, f.ActorID)
	}
	if f.TargetID != "" {
		l.add(sqlAuditTarget, f.TargetID)
	}
	if f.Since != nil {
		l.add(sqlAuditSince, micros(*f.Since))
	}
	if f.Until != nil {
		l.add(sqlAuditUntil, micros(*f.Until))
	}
	if f.Cursor != "" {
		// The audit log's cursor is a sequence number, not an id.
		before, err := decodeSeqCursor(f.Cursor)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", op, err)
		}
		l.add(sqlAuditBefore, before)
	}
	l.add(sqlListAuditEnd)
	return listPage(ctx, q, op, l.b.String(), f.Limit, values(scanAudit), func(e *keyplane.AuditEntry) string {
		return encodeCursor(cursorAudit, strconv.FormatInt(e.Seq, 10))
	}, l.args...)
}

func (q *queries) ScanAudit(ctx context.Context, chain string, fn func(*keyplane.AuditEntry) error) error {
	var after int64
	for {
		batch, err := list(ctx, q, "scan audit entries", sqlScanAudit, scanAudit, chain, after, scanAuditBatch)
		if err != nil {
			return err
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
	return list(ctx, q, "audit chains", sqlAuditChains, func(s scanner) (string, error) {
		var c string
		err := s.Scan(&c)
		return c, err
	})
}

func (t *tx) InsertAudit(ctx context.Context, e *keyplane.AuditEntry) error {
	// The body is stored as the exact bytes given: its hash was computed over them.
	return t.insert(ctx, "insert audit entry", sqlInsertAudit, e.WorkspaceID, e.Seq, e.ID,
		micros(e.Timestamp), e.Action, e.ActorID, e.TargetID, string(e.Body), e.Hash)
}
