package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/store"
)

const (
	// sqlAddUsage is followed by batchRows(sqlUsageRow, n), then sqlAddUsageEnd. A batch holds each
	// row once: PostgreSQL refuses to update one row twice in a statement. The hour leads the primary
	// key, so that the rows written are the current hour's, together at the end of the table.
	sqlAddUsage    = `INSERT INTO key_usage (hour, workspace_id, key_id, code, identity_id, requests, credits_spent) VALUES `
	sqlUsageRow    = `(?, ?, ?, ?, ?, ?, ?)`
	sqlAddUsageEnd = ` ON CONFLICT (hour, workspace_id, key_id, code, identity_id) DO UPDATE
		SET requests = key_usage.requests + excluded.requests, credits_spent = key_usage.credits_spent + excluded.credits_spent`

	// sqlTouchKeys is followed by batchRows(sqlTouchRow, n), then sqlTouchKeysEnd: it moves keys'
	// last uses forward only, as nodes and batches may write out of order. A batch holds each key once.
	sqlTouchKeys    = `INSERT INTO key_last_used (key_id, last_used_at) VALUES `
	sqlTouchRow     = `(?, ?)`
	sqlTouchKeysEnd = ` ON CONFLICT (key_id) DO UPDATE SET last_used_at = excluded.last_used_at
		WHERE key_last_used.last_used_at < excluded.last_used_at`
	// sqlLastUsed is followed by n placeholders in parentheses: the last uses of keys, as the usage
	// writer keeps them (see withLastUsed).
	sqlLastUsed = `SELECT key_id, last_used_at FROM key_last_used WHERE key_id IN `

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
	// The hour leads the rollups' primary key: the oldest rows are its first ones.
	sqlPruneUsage = `DELETE FROM key_usage WHERE (hour, workspace_id, key_id, code, identity_id) IN (
		SELECT hour, workspace_id, key_id, code, identity_id FROM key_usage WHERE hour < ? ORDER BY hour LIMIT ?)`
)

// maxBatchRows bounds the rows of one multi-row INSERT. A batch is written in chunks whose sizes are
// powers of two up to it, so that only a handful of distinct statements ever exist (each prepared and
// cached once), and a chunk's placeholders (14 per log row, 34 per key) stay far below both databases' limits.
const maxBatchRows = 128

// chunkSize returns the largest power of two that is at most n and maxBatchRows.
func chunkSize(n int) int {
	c := 1
	for c*2 <= n && c*2 <= maxBatchRows {
		c *= 2
	}
	return c
}

// batchRows returns n copies of a row's placeholders, comma-separated.
func batchRows(row string, n int) string {
	var b strings.Builder
	b.Grow(n * (len(row) + 2))
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row)
	}
	return b.String()
}

// hourOf returns the start of the UTC hour of t, in unix microseconds.
func hourOf(t time.Time) int64 {
	return floorMicros(micros(t), int64(time.Hour/time.Microsecond))
}

// usageRow is one hourly rollup row: its key, the fields of key_usage's primary key in their order,
// and what it adds up.
type usageRow struct {
	hour        int64
	workspaceID string
	keyID       string
	code        string
	identityID  string
	requests    int64
	credits     int64
}

// compareUsageRows orders rows by key_usage's primary key. It compares a field only when the ones
// before it are equal: a node serving 100,000 keys sorts tens of thousands of rows every few seconds.
func compareUsageRows(a, b *usageRow) int {
	if c := cmp.Compare(a.hour, b.hour); c != 0 {
		return c
	}
	if c := strings.Compare(a.workspaceID, b.workspaceID); c != 0 {
		return c
	}
	if c := strings.Compare(a.keyID, b.keyID); c != 0 {
		return c
	}
	if c := strings.Compare(a.code, b.code); c != 0 {
		return c
	}
	return strings.Compare(a.identityID, b.identityID)
}

// decodeTags returns nil for none, as entries without tags are written.
func decodeTags(s string) ([]string, error) {
	var v []string
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil, err
	}
	if len(v) == 0 {
		return nil, nil
	}
	return v, nil
}

// Statement is a statement, written with ?, and its arguments.
type Statement struct {
	Query string
	Args  []any
}

// UsageStatements returns what adds counts to their keys' hourly rollups, to run in one
// transaction. Counts are summed here, once per (hour, workspace, key, code), and rows are locked in
// the order of key_usage's primary key, so that two nodes writing at once cannot deadlock.
func UsageStatements(counts []store.UsageCount) []Statement {
	rows := make([]usageRow, len(counts))
	for i, c := range counts {
		rows[i] = usageRow{hourOf(c.Hour), c.WorkspaceID, c.KeyID, string(c.Code), c.IdentityID, c.Requests, c.CreditsSpent}
	}
	// Sorted, the counts of one row are next to each other: they are summed in place, without a map.
	slices.SortFunc(rows, func(a, b usageRow) int { return compareUsageRows(&a, &b) })
	n := 0
	for i := range rows {
		if n > 0 && compareUsageRows(&rows[n-1], &rows[i]) == 0 {
			rows[n-1].requests += rows[i].requests
			rows[n-1].credits += rows[i].credits
			continue
		}
		rows[n] = rows[i]
		n++
	}
	return chunkStatements(rows[:n], sqlAddUsage, sqlUsageRow, sqlAddUsageEnd, func(args []any, u usageRow) []any {
		return append(args, u.hour, u.workspaceID, u.keyID, u.code, u.identityID, u.requests, u.credits)
	})
}

// chunkStatements returns the multi-row statements that write rows in order, chunkSize rows each:
// head, the chunk's rows (row's placeholders, appendRow adding a row's values), then tail. Chunks of
// one size share their query's string, made once.
func chunkStatements[T any](rows []T, head, row, tail string, appendRow func([]any, T) []any) []Statement {
	var out []Statement
	queries := map[int]string{}
	perRow := strings.Count(row, "?")
	for rest := rows; len(rest) > 0; {
		n := chunkSize(len(rest))
		q, ok := queries[n]
		if !ok {
			q = head + batchRows(row, n) + tail
			queries[n] = q
		}
		args := make([]any, 0, n*perRow)
		for _, r := range rest[:n] {
			args = appendRow(args, r)
		}
		out = append(out, Statement{q, args})
		rest = rest[n:]
	}
	return out
}

// TouchStatements returns what moves the touched keys' last uses forward (key_last_used), in the
// order of their ids (the order their rows are locked in), by multi-row upserts.
func TouchStatements(touched map[string]time.Time) []Statement {
	return chunkStatements(slices.Sorted(maps.Keys(touched)), sqlTouchKeys, sqlTouchRow, sqlTouchKeysEnd,
		func(args []any, id string) []any { return append(args, id, micros(touched[id])) })
}

// WriteRequestLogs writes the entries as blocks (LogBlocks), with the key rows this node has not
// written yet (LogKeysSeen), in one transaction of the log's database, without a chain lock, and with
// the dialect's relaxed durability, by multi-row INSERTs.
func (db *DB) WriteRequestLogs(ctx context.Context, entries []keyplane.RequestLog) error {
	return db.logs.writeRequestLogs(ctx, entries)
}

func (db *DB) writeRequestLogs(ctx context.Context, entries []keyplane.RequestLog) error {
	if len(entries) == 0 {
		return nil
	}
	blocks := LogBlocks(entries)
	return db.logKeys.Write(blocks, func(keys []LogKeyRow) error {
		w, err := db.prepareLogBlocks(ctx, blocks, keys)
		if err != nil {
			return fmt.Errorf("insert request logs: %w", err)
		}
		return db.relaxedTx(ctx, func(stx store.Tx) error {
			t := stx.(*tx)
			if err := t.insertLogBlocks(ctx, w); err != nil {
				return t.fail("insert request logs", err)
			}
			return nil
		})
	})
}

// AddUsage adds the counts and moves the last-used times in one transaction of the log's database,
// with the dialect's relaxed durability and without a chain lock: both live there (key_last_used), so
// that they never take the write lock, or wait for the fsync, of keys, audit entries and events.
func (db *DB) AddUsage(ctx context.Context, counts []store.UsageCount, touched map[string]time.Time) error {
	if len(counts) == 0 && len(touched) == 0 {
		return nil
	}
	return db.logs.execAll(ctx, append(UsageStatements(counts), TouchStatements(touched)...))
}

// execAll runs stmts in order in one relaxed transaction (relaxedTx), each prepared once where the
// driver would parse it every time (writeStmt): the statements are of a handful of chunk sizes, which
// SQLite would take about as long to parse as to run.
func (db *DB) execAll(ctx context.Context, stmts []Statement) error {
	prepared := make(map[string]*sql.Stmt, 2)
	for _, st := range stmts {
		if _, ok := prepared[st.Query]; ok {
			continue
		}
		p, err := db.writeStmt(ctx, st.Query)
		if err != nil {
			return fmt.Errorf("usage and last use: %w", err)
		}
		prepared[st.Query] = p
	}
	return db.relaxedTx(ctx, func(stx store.Tx) error {
		t := stx.(*tx)
		for _, st := range stmts {
			if _, err := t.execStmt(ctx, prepared[st.Query], st.Query, st.Args...); err != nil {
				return t.fail("usage and last use", err)
			}
		}
		return nil
	})
}

// prepareChunks prepares the statement of every chunk size that writing rows rows takes, by size; nil
// when the dialect does not prepare batches.
func (db *DB) prepareChunks(ctx context.Context, rows int, query func(n int) string) (map[int]*sql.Stmt, error) {
	if !db.d.PrepareBatches {
		return nil, nil
	}
	out := map[int]*sql.Stmt{}
	for rows > 0 {
		n := chunkSize(rows)
		if out[n] == nil {
			st, err := db.prepare(ctx, query(n))
			if err != nil {
				return nil, err
			}
			out[n] = st
		}
		rows -= n
	}
	return out, nil
}

// insertChunks writes rows rows by multi-row statements of query's chunk sizes (stmts prepared by
// prepareChunks, or nil; run by execStmt), appendRow adding row i's width values to args.
func (t *tx) insertChunks(ctx context.Context, stmts map[int]*sql.Stmt, query func(n int) string, rows, width int,
	appendRow func(args []any, i int) ([]any, error)) error {
	for done := 0; done < rows; {
		n := chunkSize(rows - done)
		args := make([]any, 0, n*width)
		for i := done; i < done+n; i++ {
			var err error
			if args, err = appendRow(args, i); err != nil {
				return err
			}
		}
		if _, err := t.execStmt(ctx, stmts[n], query(n), args...); err != nil {
			return err
		}
		done += n
	}
	return nil
}

// PruneUsage deletes up to limit rollups of hours that ended by before: the hour before falls in
// holds requests that are not that old yet.
func (db *DB) PruneUsage(ctx context.Context, before time.Time, limit int) (int64, error) {
	return db.logs.prune(ctx, "prune usage", sqlPruneUsage, hourOf(before), limit)
}

func (db *DB) prune(ctx context.Context, op, query string, before any, limit int) (int64, error) {
	if err := checkLimit(op, limit); err != nil {
		return 0, err
	}
	var n int64
	err := db.inTx(ctx, nil, func(stx store.Tx) error {
		t := stx.(*tx)
		res, err := t.exec(ctx, query, before, limit)
		if err != nil {
			return t.fail(op, err)
		}
		if n, err = res.RowsAffected(); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		return nil
	})
	return n, err
}

// ListRequestLogs reads the log's database, outside any transaction.
func (db *DB) ListRequestLogs(ctx context.Context, workspaceID string, f store.LogFilter) ([]keyplane.RequestLog, string, error) {
	return db.logs.queries.listRequestLogs(ctx, workspaceID, f)
}

// Usage reads the log's database, outside any transaction.
func (db *DB) Usage(ctx context.Context, workspaceID, keyID string, f store.UsageFilter) ([]keyplane.UsageBucket, error) {
	return db.logs.queries.usage(ctx, workspaceID, keyID, f)
}

func (q *queries) usage(ctx context.Context, workspaceID, keyID string, f store.UsageFilter) ([]keyplane.UsageBucket, error) {
	const op = "usage"
	if f.Bucket < time.Hour || f.Bucket%time.Hour != 0 {
		return nil, fmt.Errorf("%s: bucket %s is not a whole number of hours", op, f.Bucket)
	}
	// The rollups are read hour by hour (see sqlUsageHours): the first hour at or after since, then
	// every hour before until.
	const hour = int64(time.Hour / time.Microsecond)
	first, until := hourOf(f.Since), micros(f.Until)
	if first < micros(f.Since) {
		first += hour
	}
	if first >= until {
		return []keyplane.UsageBucket{}, nil
	}
	query, args := sqlKeyUsage, []any{first, until, f.Bucket.Microseconds(), workspaceID, keyID}
	if keyID == "" {
		query, args = sqlWorkspaceUsage, []any{first, until, f.Bucket.Microseconds(), workspaceID}
	}
	rows, err := q.query(ctx, query, args...)
	if err != nil {
		return nil, q.fail(op, err)
	}
	type row struct {
		start int64
		code  string
		n     int64
	}
	rs, err := collect(rows, func(s scanner) (row, error) {
		var r row
		err := s.Scan(&r.start, &r.code, &r.n)
		return r, err
	})
	if err != nil {
		return nil, q.fail(op, err)
	}
	out := []keyplane.UsageBucket{}
	for _, r := range rs {
		if len(out) == 0 || micros(out[len(out)-1].Start) != r.start {
			out = append(out, keyplane.UsageBucket{Start: fromMicros(r.start), Codes: map[keyplane.VerifyCode]int64{}})
		}
		out[len(out)-1].Add(keyplane.VerifyCode(r.code), r.n)
	}
	return out, nil
}
