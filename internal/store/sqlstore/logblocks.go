package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/id"
	"github.com/keyplane/keyplane/internal/logblock"
	"github.com/keyplane/keyplane/internal/store"
)

// The request log is stored in blocks (log migration 3 of SQLite, 18 of PostgreSQL): a batch is one
// row of request_log_blocks per workspace and UTC minute, its entries encoded by package logblock,
// and one row of request_log_keys per key in the block.

const (
	// logBlockColumns are in the order of LogBlock.Values; logKeyColumns, of a key row's values.
	logBlockColumns    = `workspace_id, last_id, first_id, entries, data`
	sqlInsertLogBlocks = `INSERT INTO request_log_blocks (` + logBlockColumns + `) VALUES `
	sqlLogBlockRow     = `(?, ?, ?, ?, ?)`
	logBlockWidth      = 5
	logKeyColumns      = `workspace_id, key_id, last_id`
	sqlInsertLogKeys   = `INSERT INTO request_log_keys (` + logKeyColumns + `) VALUES `
	sqlLogKeyRow       = `(?, ?, ?)`
	logKeyWidth        = 3
	blockWindow        = time.Minute
	blockWindowMicros  = int64(blockWindow / time.Microsecond)
)

// LogBlock is one row of request_log_blocks, with the keys of its entries (its rows of
// request_log_keys).
type LogBlock struct {
	WorkspaceID     string
	FirstID, LastID string
	Entries         int
	Data            []byte
	Keys            []string
}

// LogBlockColumns and LogKeyColumns are the tables' columns in the order Values gives them: for a
// driver that inserts rows its own way (PostgreSQL's COPY).
func LogBlockColumns() []string { return columns(logBlockColumns) }
func LogKeyColumns() []string   { return columns(logKeyColumns) }

// Values returns b's row of request_log_blocks.
func (b *LogBlock) Values() []any {
	return []any{b.WorkspaceID, b.LastID, b.FirstID, int64(b.Entries), b.Data}
}

// LogBlocks returns the blocks that hold entries: a block per workspace and UTC minute, its entries in
// the order of their ids.
func LogBlocks(entries []keyplane.RequestLog) []LogBlock {
	order := make([]int, len(entries))
	minutes := make([]int64, len(entries))
	for i := range order {
		order[i] = i
		// By the id's millisecond, which reads bound by (an entry's id is made from its time; one
		// that is not an id of the log's kind goes by its time).
		t, ok := id.Time(id.Request, entries[i].ID)
		if !ok {
			t = entries[i].Timestamp
		}
		minutes[i] = floorMicros(micros(t), blockWindowMicros)
	}
	slices.SortFunc(order, func(a, b int) int {
		x, y := &entries[a], &entries[b]
		return cmp.Or(strings.Compare(x.WorkspaceID, y.WorkspaceID), cmp.Compare(minutes[a], minutes[b]), strings.Compare(x.ID, y.ID))
	})
	var enc logblock.Encoder
	var out []LogBlock
	block := make([]keyplane.RequestLog, 0, len(entries))
	keys := map[string]struct{}{}
	for start := 0; start < len(order); {
		first := &entries[order[start]]
		end := start + 1
		for end < len(order) {
			if entries[order[end]].WorkspaceID != first.WorkspaceID || minutes[order[end]] != minutes[order[start]] {
				break
			}
			end++
		}
		block = block[:0]
		clear(keys)
		for _, i := range order[start:end] {
			block = append(block, entries[i])
			keys[entries[i].KeyID] = struct{}{}
		}
		b := LogBlock{WorkspaceID: first.WorkspaceID, FirstID: block[0].ID, LastID: block[len(block)-1].ID,
			Entries: len(block), Data: enc.Encode(nil, block), Keys: make([]string, 0, len(keys))}
		for k := range keys {
			b.Keys = append(b.Keys, k)
		}
		slices.Sort(b.Keys)
		out = append(out, b)
		start = end
	}
	return out
}

// floorMicros returns the start of the width-wide period (microseconds, aligned on the epoch) that m,
// in unix microseconds, falls in.
func floorMicros(m, width int64) int64 {
	return m - ((m%width)+width)%width
}

// sqlLogBlocks lists a workspace's blocks, newest first (then sqlLogBlocksEnd), and sqlKeyLogBlocks
// those that hold entries of one key (then sqlKeyLogBlocksEnd), each with its bounds between.
const (
	sqlLogBlocks    = `SELECT last_id, first_id, data FROM request_log_blocks WHERE workspace_id = ?`
	sqlKeyLogBlocks = `SELECT b.last_id, b.first_id, b.data FROM request_log_keys k
		JOIN request_log_blocks b ON b.workspace_id = k.workspace_id AND b.last_id = k.last_id
		WHERE k.workspace_id = ? AND k.key_id = ?`
	sqlLogBlocksEnd    = ` ORDER BY last_id DESC`
	sqlKeyLogBlocksEnd = ` ORDER BY k.last_id DESC`
	// logBlockRound is how many blocks one query of a list reads.
	logBlockRound = 16
)

// listRequestLogs reads the blocks that may hold the page's entries, newest first, and merges their
// entries by id: blocks may overlap, but a block's newest entry is its last_id, so once a block is
// read no block still to come holds an entry at or after its last_id, and those entries are final.
func (q *queries) listRequestLogs(ctx context.Context, workspaceID string, f store.LogFilter) ([]keyplane.RequestLog, string, error) {
	const op = "list request logs"
	if err := checkLimit(op, f.Limit); err != nil {
		return nil, "", err
	}
	// before is the first id past the page (exclusive), from the cursor and until; from the first
	// id the page may hold, from since. Times are checked exactly on each entry.
	var before, from string
	if f.Cursor != "" {
		c, err := decodeCursor(cursorRequestLog, f.Cursor)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", op, err)
		}
		before = c
	}
	if f.Until != nil {
		// Entries of until's own millisecond have ids at or after its floor: bound by the next one.
		if u := id.Floor(id.Request, f.Until.Add(time.Millisecond)); before == "" || u < before {
			before = u
		}
	}
	if f.Since != nil {
		from = id.Floor(id.Request, *f.Since)
	}
	// The key's blocks are bounded by its rows of request_log_keys (k), which hold their last_id, and
	// by the blocks' (b) first_id.
	query, args, key, block, end := sqlLogBlocks, []any{workspaceID}, "", "", sqlLogBlocksEnd
	if f.KeyID != "" {
		query, args, key, block, end = sqlKeyLogBlocks, []any{workspaceID, f.KeyID}, "k.", "b.", sqlKeyLogBlocksEnd
	}
	if before != "" {
		// A block's entries are of one minute: one that holds an entry before `before` ends within a
		// minute of it, and begins before it.
		t, ok := id.Time(id.Request, before)
		if !ok {
			return nil, "", fmt.Errorf("%s: %w", op, store.ErrBadCursor)
		}
		query += ` AND ` + key + `last_id < ? AND ` + block + `first_id < ?`
		args = append(args, id.Floor(id.Request, t.Add(blockWindow)), before)
	}
	if from != "" {
		query += ` AND ` + key + `last_id >= ?`
		args = append(args, from)
	}
	keep := func(e *keyplane.RequestLog) bool {
		return (before == "" || e.ID < before) && (from == "" || e.ID >= from) &&
			(f.KeyID == "" || e.KeyID == f.KeyID) && (f.Code == "" || e.Code == f.Code) &&
			(f.Source == "" || e.Source == f.Source) && (f.Tag == "" || slices.Contains(e.Tags, f.Tag)) &&
			(f.Since == nil || !e.Timestamp.Before(*f.Since)) && (f.Until == nil || e.Timestamp.Before(*f.Until))
	}
	out, pending := []keyplane.RequestLog{}, []keyplane.RequestLog{}
	newestFirst := func(a, b keyplane.RequestLog) int { return strings.Compare(b.ID, a.ID) }
	// The blocks are read a round of logBlockRound at a time, each query after the last block of the
	// one before: a query whose rows were not all read would still send them all (PostgreSQL's
	// protocol reads a result to its end), and a page needs only its newest blocks.
	var seen string
	for done := false; !done && len(out) <= f.Limit; {
		roundQuery, roundArgs := query, slices.Clip(args)
		if seen != "" {
			roundQuery += ` AND ` + key + `last_id < ?`
			roundArgs = append(roundArgs, seen)
		}
		rows, err := q.query(ctx, roundQuery+end+` LIMIT ?`, append(roundArgs, logBlockRound)...)
		if err != nil {
			return nil, "", q.fail(op, err)
		}
		n := 0
		for rows.Next() {
			n++
			var first string
			var data sql.RawBytes
			if err := rows.Scan(&seen, &first, &data); err != nil {
				rows.Close()
				return nil, "", q.fail(op, err)
			}
			err := logblock.Decode(data, workspaceID, func(e keyplane.RequestLog) bool {
				if keep(&e) {
					pending = append(pending, e)
				}
				return true
			})
			if err != nil {
				rows.Close()
				return nil, "", fmt.Errorf("%s: block %s of %s: %w", op, seen, workspaceID, err)
			}
			slices.SortFunc(pending, newestFirst)
			final := 0
			for final < len(pending) && pending[final].ID >= seen {
				final++
			}
			out = append(out, pending[:final]...)
			pending = slices.Delete(pending, 0, final)
		}
		if err := rows.Err(); err != nil {
			return nil, "", q.fail(op, err)
		}
		done = n < logBlockRound
	}
	out = append(out, pending...) // every block was read, or the page is full already
	out = out[:min(len(out), f.Limit+1)]
	out, next := page(out, f.Limit, func(e *keyplane.RequestLog) string { return encodeCursor(cursorRequestLog, e.ID) })
	return out, next, nil
}

const (
	// sqlOldLogBlocks finds blocks whose every entry is older than a cutoff (their last_id is before
	// it), by a range scan of each workspace's part of the blocks' primary key. sqlOldLogBlocksApart is
	// the same for a log in a database of its own, without the workspaces: they are found by skipping
	// from one to the next in that key.
	sqlOldLogBlocks = `SELECT b.workspace_id, b.last_id, b.entries FROM workspaces w
		JOIN request_log_blocks b ON b.workspace_id = w.id WHERE b.last_id < ? LIMIT ?`
	sqlOldLogBlocksApart = `WITH RECURSIVE w(id) AS (
			SELECT MIN(workspace_id) FROM request_log_blocks
			UNION ALL
			SELECT (SELECT MIN(workspace_id) FROM request_log_blocks WHERE workspace_id > w.id) FROM w WHERE w.id IS NOT NULL
		)
		SELECT b.workspace_id, b.last_id, b.entries FROM w JOIN request_log_blocks b ON b.workspace_id = w.id
		WHERE w.id IS NOT NULL AND b.last_id < ? LIMIT ?`
	sqlLogBlockData = `SELECT data FROM request_log_blocks WHERE workspace_id = ? AND last_id = ?`
	// sqlDeleteLogKeys is followed by batchRows("?", n) and a parenthesis: n keys of one block.
	sqlDeleteLogKeys   = `DELETE FROM request_log_keys WHERE workspace_id = ? AND last_id = ? AND key_id IN (`
	sqlDeleteLogBlock  = `DELETE FROM request_log_blocks WHERE workspace_id = ? AND last_id = ?`
	maxPrunedLogBlocks = 256
)

// PruneRequestLogs deletes blocks whose every entry is older than before (an entry of a block that
// also holds newer ones stays until they are all old: at most a minute more), with their rows of
// request_log_keys, and says how many entries went. It deletes whole blocks, in transactions of at
// most maxPrunedLogBlocks, until limit entries or more went or none is left: fewer than limit means
// none is left.
func (db *DB) PruneRequestLogs(ctx context.Context, before time.Time, limit int) (int64, error) {
	const op = "prune request logs"
	if err := checkLimit(op, limit); err != nil {
		return 0, err
	}
	var n int64
	for n < int64(limit) {
		deleted, found, err := db.pruneLogBlocks(ctx, op, id.Floor(id.Request, before), int64(limit)-n)
		if n += deleted; err != nil || found < maxPrunedLogBlocks {
			return n, err
		}
	}
	return n, nil
}

// pruneLogBlocks deletes, in one transaction, blocks older than cutoff (by last_id) until want entries
// or more went, and says how many entries went and how many blocks the search found (at most
// maxPrunedLogBlocks, and at most want: a block holds an entry at least).
func (db *DB) pruneLogBlocks(ctx context.Context, op, cutoff string, want int64) (deleted int64, found int, err error) {
	logs := db.logs
	query := sqlOldLogBlocks
	if logs != db {
		query = sqlOldLogBlocksApart
	}
	type block struct {
		workspaceID, lastID string
		entries             int64
	}
	blocks, err := list(ctx, &logs.queries, op, query, func(s scanner) (block, error) {
		var b block
		err := s.Scan(&b.workspaceID, &b.lastID, &b.entries)
		return b, err
	}, cutoff, min(want, maxPrunedLogBlocks))
	if err != nil || len(blocks) == 0 {
		return 0, len(blocks), err
	}
	take := 0
	for take < len(blocks) && deleted < want {
		deleted += blocks[take].entries
		take++
	}
	err = logs.inTx(ctx, nil, func(stx store.Tx) error {
		t := stx.(*tx)
		for _, b := range blocks[:take] {
			var data []byte
			if err := t.queryRow(ctx, sqlLogBlockData, b.workspaceID, b.lastID).Scan(&data); err != nil {
				return t.fail(op, err)
			}
			// A block that does not decode goes too, its rows of request_log_keys left (they find no
			// block, and cost a few bytes), rather than stopping every prune after it.
			seen := map[string]bool{}
			var keys []any
			if err := logblock.Decode(data, b.workspaceID, func(e keyplane.RequestLog) bool {
				if !seen[e.KeyID] {
					seen[e.KeyID] = true
					keys = append(keys, e.KeyID)
				}
				return true
			}); err != nil {
				keys = nil
			}
			for len(keys) > 0 {
				n := min(len(keys), maxBatchRows)
				query := sqlDeleteLogKeys + batchRows("?", n) + `)`
				if _, err := t.exec(ctx, query, append([]any{b.workspaceID, b.lastID}, keys[:n]...)...); err != nil {
					return t.fail(op, err)
				}
				keys = keys[n:]
			}
			if _, err := t.exec(ctx, sqlDeleteLogBlock, b.workspaceID, b.lastID); err != nil {
				return t.fail(op, err)
			}
		}
		return nil
	})
	if err != nil {
		return 0, len(blocks), err
	}
	return deleted, len(blocks), nil
}

// blockWrite is what inserts blocks: the blocks, their key rows in order (each block's keys, sorted),
// and the multi-row statements prepared for both (prepareChunks) where the driver would parse them
// every time.
type blockWrite struct {
	blocks               []LogBlock
	keys                 []blockKey
	blockStmts, keyStmts map[int]*sql.Stmt
}

type blockKey struct{ block, key int }

func blockSQL(n int) string { return sqlInsertLogBlocks + batchRows(sqlLogBlockRow, n) }
func keySQL(n int) string   { return sqlInsertLogKeys + batchRows(sqlLogKeyRow, n) }

// prepareLogBlocks prepares the write of blocks, outside a transaction (SQLite's writer has one
// connection, which a transaction holds).
func (db *DB) prepareLogBlocks(ctx context.Context, blocks []LogBlock) (*blockWrite, error) {
	w := newBlockWrite(blocks)
	var err error
	if w.blockStmts, err = db.prepareChunks(ctx, len(blocks), blockSQL); err != nil {
		return nil, err
	}
	if w.keyStmts, err = db.prepareChunks(ctx, len(w.keys), keySQL); err != nil {
		return nil, err
	}
	return w, nil
}

// newBlockWrite returns the write of blocks, without prepared statements.
func newBlockWrite(blocks []LogBlock) *blockWrite {
	w := &blockWrite{blocks: blocks}
	for b := range blocks {
		for k := range blocks[b].Keys {
			w.keys = append(w.keys, blockKey{b, k})
		}
	}
	return w
}

// insertLogBlocks inserts the blocks and their key rows by multi-row INSERTs.
func (t *tx) insertLogBlocks(ctx context.Context, w *blockWrite) error {
	err := t.insertChunks(ctx, w.blockStmts, blockSQL, len(w.blocks), logBlockWidth, func(args []any, i int) ([]any, error) {
		return append(args, w.blocks[i].Values()...), nil
	})
	if err != nil {
		return err
	}
	return t.insertChunks(ctx, w.keyStmts, keySQL, len(w.keys), logKeyWidth, func(args []any, i int) ([]any, error) {
		b := &w.blocks[w.keys[i].block]
		return append(args, b.WorkspaceID, b.Keys[w.keys[i].key], b.LastID), nil
	})
}

const (
	// sqlOldLogRows reads the entries of the table that held one row per entry, before blocks, in the
	// order of its primary key, from the start or (sqlOldLogRowsAfter) after the last moved.
	sqlOldLogRows = `SELECT id, workspace_id, key_id, ts, code, source, method, path, ip, user_agent, latency_us,
		identity_id, credits_spent, tags FROM request_logs`
	sqlOldLogRowsAfter = ` WHERE (workspace_id, id) > (?, ?)`
	sqlOldLogRowsEnd   = ` ORDER BY workspace_id, id LIMIT ?`
	sqlDropOldLog      = `DROP TABLE request_logs`
	// oldLogChunk is how many old entries a transaction moves.
	oldLogChunk = 5000
	// moveChain serializes the moves of several nodes opening one database at once (Dialect.LockChain).
	moveChain = "request_logs"
)

// MoveLogRows moves the entries of the log's table of a row per entry (request_logs), which an older
// version wrote, into blocks, a chunk of oldLogChunk entries per transaction, each deleting the rows
// it moved (by id: a row written meanwhile by an older node is left for the next chunk), so that a
// move cut short goes on where it stopped and no entry is moved twice; then it drops the table, in a
// transaction that finds it empty. Opening a store calls it; with no such table it does nothing.
// Several PostgreSQL nodes opening at once take turns (the chain lock), and one that finds the table
// gone is done.
func (db *DB) MoveLogRows(ctx context.Context) error {
	const op = "move the request log into blocks"
	logs := db.logs
	// Read first, outside a transaction: a store opened beside a running one (the CLI beside serve)
	// must not wait for the log's write lock when there is nothing to move.
	var n int
	if err := logs.queryRow(ctx, logs.d.HasTable, "request_logs").Scan(&n); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	chain := moveChain
	var afterWS, afterID string
	for done := n == 0; !done; {
		// The statements are not prepared: this runs once, at start.
		err := logs.inTx(ctx, &chain, func(stx store.Tx) error {
			t := stx.(*tx)
			var n int
			if err := t.queryRow(ctx, logs.d.HasTable, "request_logs").Scan(&n); err != nil {
				return t.fail(op, err)
			}
			if n == 0 {
				done = true
				return nil
			}
			query, args := sqlOldLogRows, []any{}
			if afterWS != "" {
				query, args = query+sqlOldLogRowsAfter, append(args, afterWS, afterID)
			}
			rows, err := t.query(ctx, query+sqlOldLogRowsEnd, append(args, oldLogChunk)...)
			if err != nil {
				return t.fail(op, err)
			}
			entries, err := collect(rows, scanOldLogRow)
			if err != nil {
				return t.fail(op, err)
			}
			if len(entries) == 0 {
				// Past the last row moved: from the start again. A read from the start that finds
				// nothing, under the lock, finds the table empty: it goes.
				if afterWS != "" {
					afterWS, afterID = "", ""
					return nil
				}
				if _, err := t.exec(ctx, sqlDropOldLog); err != nil {
					return t.fail(op, err)
				}
				done = true
				return nil
			}
			if err := t.insertLogBlocks(ctx, newBlockWrite(LogBlocks(entries))); err != nil {
				return t.fail(op, err)
			}
			if err := t.deleteOldLogRows(ctx, entries); err != nil {
				return t.fail(op, err)
			}
			last := &entries[len(entries)-1]
			afterWS, afterID = last.WorkspaceID, last.ID
			return nil
		})
		if err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	return nil
}

// deleteOldLogRows deletes the rows of request_logs of entries (in the order of its primary key), by
// workspace and id, a few hundred ids a statement.
func (t *tx) deleteOldLogRows(ctx context.Context, entries []keyplane.RequestLog) error {
	for start := 0; start < len(entries); {
		end := start + 1
		for end < len(entries) && end-start < maxBatchRows && entries[end].WorkspaceID == entries[start].WorkspaceID {
			end++
		}
		args := []any{entries[start].WorkspaceID}
		for i := start; i < end; i++ {
			args = append(args, entries[i].ID)
		}
		query := `DELETE FROM request_logs WHERE workspace_id = ? AND id IN (` + batchRows("?", end-start) + `)`
		if _, err := t.exec(ctx, query, args...); err != nil {
			return err
		}
		start = end
	}
	return nil
}

// scanOldLogRow reads a row of sqlOldLogRows.
func scanOldLogRow(s scanner) (keyplane.RequestLog, error) {
	var e keyplane.RequestLog
	var ts int64
	var code, source, tags string
	if err := s.Scan(&e.ID, &e.WorkspaceID, &e.KeyID, &ts, &code, &source, &e.Method, &e.Path, &e.IP,
		&e.UserAgent, &e.LatencyMicros, &e.IdentityID, &e.CreditsSpent, &tags); err != nil {
		return e, err
	}
	e.Timestamp, e.Code, e.Source = fromMicros(ts), keyplane.VerifyCode(code), keyplane.LogSource(source)
	var err error
	if e.Tags, err = decodeTags(tags); err != nil {
		return e, fmt.Errorf("request log %s: tags: %w", e.ID, err)
	}
	return e, nil
}
