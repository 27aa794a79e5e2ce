package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
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
// and a row of request_log_keys per key and key span of five minutes (logkeys.go).

const (
	// logBlockColumns are in the order of LogBlock.Values; logKeyColumns, of LogKeyRow.Values.
	logBlockColumns     = `workspace_id, last_id, first_id, entries, data`
	sqlInsertLogBlocks  = `INSERT INTO request_log_blocks (` + logBlockColumns + `) VALUES `
	sqlLogBlockRow      = `(?, ?, ?, ?, ?)`
	logBlockWidth       = 5
	logFilterColumns    = `workspace_id, last_id, first_id, key_filter`
	sqlInsertLogFilters = `INSERT INTO request_log_filters (` + logFilterColumns + `) VALUES `
	sqlLogFilterRow     = `(?, ?, ?, ?)`
	logFilterWidth      = 4
	logKeyColumns       = `workspace_id, key_id, last_id`
	sqlInsertLogKeys    = `INSERT INTO request_log_keys (` + logKeyColumns + `) VALUES `
	sqlLogKeyRow        = `(?, ?, ?)`
	sqlLogKeysEnd       = ` ON CONFLICT DO NOTHING`
	logKeyWidth         = 3
	blockWindow         = time.Minute
	blockWindowMicros   = int64(blockWindow / time.Microsecond)
	// keySpan is the time a row of request_log_keys covers (logkeys.go), a whole number of block
	// windows aligned on the epoch.
	keySpan       = 5 * time.Minute
	keySpanMicros = int64(keySpan / time.Microsecond)
)

// LogBlock is one row of request_log_blocks, with the keys of its entries and its key span: its rows of
// request_log_keys (LogKeysSeen.LogKeyRows).
type LogBlock struct {
	WorkspaceID     string
	FirstID, LastID string
	Entries         int
	Data            []byte
	Keys            []string
	// KeyFilter is the filter of Keys (logblock.KeyFilter), its row of request_log_filters.
	KeyFilter []byte
	// Span is the start of the block's key span (keySpan), in unix µs, and SpanID its floor id
	// (id.Floor): the last_id of its keys' rows of request_log_keys.
	Span   int64
	SpanID string
}

// LogBlockColumns and LogFilterColumns are the tables' columns in the order Values and FilterValues
// give them: for a driver that inserts rows its own way (PostgreSQL's COPY).
func LogBlockColumns() []string  { return columns(logBlockColumns) }
func LogFilterColumns() []string { return columns(logFilterColumns) }

// FilterValues returns b's row of request_log_filters.
func (b *LogBlock) FilterValues() []any {
	return []any{b.WorkspaceID, b.LastID, b.FirstID, b.KeyFilter}
}

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
		// Field by field, stopping at the first that differs (cmp.Or would compare all three).
		x, y := &entries[a], &entries[b]
		if c := strings.Compare(x.WorkspaceID, y.WorkspaceID); c != 0 {
			return c
		}
		if c := cmp.Compare(minutes[a], minutes[b]); c != 0 {
			return c
		}
		return strings.Compare(x.ID, y.ID)
	})
	var enc logblock.Encoder
	var out []LogBlock
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
		// The block's entries are encoded where they are, in the batch: a copy of them would be
		// the log's largest allocation, a few hundred bytes an entry.
		block := order[start:end]
		clear(keys)
		for _, i := range block {
			keys[entries[i].KeyID] = struct{}{}
		}
		span := floorMicros(minutes[order[start]], keySpanMicros)
		b := LogBlock{WorkspaceID: first.WorkspaceID, FirstID: first.ID, LastID: entries[block[len(block)-1]].ID,
			Entries: len(block), Data: enc.EncodeOrder(nil, entries, block), Keys: make([]string, 0, len(keys)),
			Span: span, SpanID: minuteID(span)}
		for k := range keys {
			b.Keys = append(b.Keys, k)
		}
		slices.Sort(b.Keys)
		b.KeyFilter = logblock.KeyFilter(b.Keys)
		out = append(out, b)
		start = end
	}
	return out
}

// minuteID is the floor id (id.Floor) of the minute (or key span) that starts at m, in unix µs.
func minuteID(m int64) string { return id.Floor(id.Request, fromMicros(m)) }

// spanIDs returns the range of ids, [lo, hi), of the key span that t falls in: the last_id of its
// rows of request_log_keys is lo, and its blocks' last_id is in the range.
func spanIDs(t time.Time) (lo, hi string) {
	m := floorMicros(micros(t), keySpanMicros)
	return minuteID(m), minuteID(m + keySpanMicros)
}

// floorMicros returns the start of the width-wide period (microseconds, aligned on the epoch) that m,
// in unix microseconds, falls in.
func floorMicros(m, width int64) int64 {
	return m - ((m%width)+width)%width
}

// sqlLogBlocks lists a workspace's blocks, newest first (then sqlLogBlocksEnd), with bounds between,
// and sqlLogBlockFilters their key filters instead of their entries (columns named as b.last_id;
// none for a block written before filters); sqlLogKeyMinutes lists the key spans a key has entries in,
// newest first, by their rows of request_log_keys (then sqlLogKeyMinutesEnd).
const (
	sqlLogBlocks       = `SELECT last_id, first_id, data FROM request_log_blocks WHERE workspace_id = ?`
	sqlLogBlockFilters = `SELECT b.last_id, b.first_id, f.key_filter FROM request_log_blocks b
		LEFT JOIN request_log_filters f ON f.workspace_id = b.workspace_id AND f.last_id = b.last_id AND f.first_id = b.first_id
		WHERE b.workspace_id = ?`
	sqlLogBlocksEnd     = `last_id DESC LIMIT ?`
	sqlLogKeyMinutes    = `SELECT last_id FROM request_log_keys WHERE workspace_id = ? AND key_id = ?`
	sqlLogKeyMinutesEnd = ` ORDER BY last_id DESC LIMIT ?`
	// logBlockRound is how many blocks one query of a list reads, logFilterRound how many blocks' key
	// filters (a few KiB at most each), and logMinuteRound how many key rows.
	logBlockRound  = 16
	logFilterRound = 256
	logMinuteRound = 64
)

// listRequestLogs reads the blocks that may hold the page's entries, newest first, and merges their
// entries by id: blocks may overlap, but a block's newest entry is its last_id, so once a block is
// read no block still to come holds an entry at or after its last_id, and those entries are final.
// One key's entries are in the blocks of the key spans its rows of request_log_keys name, which are
// read a span at a time.
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
	// The blocks' last_id is in [from, upTo): a block's entries are of one minute, so one that holds
	// an entry before `before` ends within a minute of it.
	var upTo string
	if before != "" {
		t, ok := id.Time(id.Request, before)
		if !ok {
			return nil, "", fmt.Errorf("%s: %w", op, store.ErrBadCursor)
		}
		upTo = id.Floor(id.Request, t.Add(blockWindow))
	}
	keep := func(e *keyplane.RequestLog) bool {
		return (before == "" || e.ID < before) && (from == "" || e.ID >= from) &&
			(f.KeyID == "" || e.KeyID == f.KeyID) && (f.Code == "" || e.Code == f.Code) &&
			(f.Source == "" || e.Source == f.Source) && (f.Tag == "" || slices.Contains(e.Tags, f.Tag)) &&
			(f.Since == nil || !e.Timestamp.Before(*f.Since)) && (f.Until == nil || e.Timestamp.Before(*f.Until))
	}
	out, pending := []keyplane.RequestLog{}, []keyplane.RequestLog{}
	newestFirst := func(a, b keyplane.RequestLog) int { return strings.Compare(b.ID, a.ID) }
	full := func() bool { return len(out) > f.Limit }
	// take decodes a block's entries that the page keeps into pending (none when data is nil: a
	// block that holds none), then moves to out those that are final once the block whose last_id is
	// last has been read.
	take := func(last string, data []byte) error {
		if data != nil {
			err := logblock.Decode(data, workspaceID, func(e keyplane.RequestLog) bool {
				if keep(&e) {
					pending = append(pending, e)
				}
				return true
			})
			if err != nil {
				return fmt.Errorf("%s: block %s of %s: %w", op, last, workspaceID, err)
			}
			slices.SortFunc(pending, newestFirst)
		}
		final := 0
		for final < len(pending) && pending[final].ID >= last {
			final++
		}
		out = append(out, pending[:final]...)
		pending = slices.Delete(pending, 0, final)
		return nil
	}
	// blocks reads the blocks whose last_id is in [lo, hi) ("": unbounded), a round of logBlockRound
	// (or logFilterRound) at a time, each query after the last block of the one before (a query whose rows were not all
	// read would still send them all: PostgreSQL's protocol reads a result to its end), until the
	// page is full or none is left. For one key's page, a round reads the blocks' key filters, and
	// then the data of those that may hold the key only.
	blocks := func(lo, hi string) error {
		query, args, b, size := sqlLogBlocks, []any{workspaceID}, "", logBlockRound
		if f.KeyID != "" {
			query, b, size = sqlLogBlockFilters, "b.", logFilterRound
		}
		if lo != "" {
			query, args = query+` AND `+b+`last_id >= ?`, append(args, lo)
		}
		if before != "" {
			query, args = query+` AND `+b+`first_id < ?`, append(args, before)
		}
		type filtered struct {
			last   string
			filter []byte
		}
		var round []filtered
		for !full() {
			roundQuery, roundArgs := query, slices.Clip(args)
			if hi != "" {
				roundQuery, roundArgs = roundQuery+` AND `+b+`last_id < ?`, append(roundArgs, hi)
			}
			rows, err := q.query(ctx, roundQuery+` ORDER BY `+b+sqlLogBlocksEnd, append(roundArgs, size)...)
			if err != nil {
				return q.fail(op, err)
			}
			n := 0
			round = round[:0]
			for rows.Next() {
				n++
				var first string
				var raw sql.RawBytes
				if err := rows.Scan(&hi, &first, &raw); err != nil {
					rows.Close()
					return q.fail(op, err)
				}
				if f.KeyID != "" {
					round = append(round, filtered{hi, slices.Clone([]byte(raw))})
				} else if err := take(hi, raw); err != nil {
					rows.Close()
					return err
				}
			}
			if err := rows.Err(); err != nil {
				return q.fail(op, err)
			}
			for _, blk := range round {
				if full() {
					return nil
				}
				var data []byte
				if logblock.MayHold(blk.filter, f.KeyID) {
					// A block pruned since its filter was read holds nothing the page may show.
					err := q.queryRow(ctx, sqlLogBlockData, workspaceID, blk.last).Scan(&data)
					if err != nil && !errors.Is(err, sql.ErrNoRows) {
						return q.fail(op, err)
					}
				}
				if err := take(blk.last, data); err != nil {
					return err
				}
			}
			if n < size {
				return nil
			}
		}
		return nil
	}
	if f.KeyID == "" {
		if err := blocks(from, upTo); err != nil {
			return nil, "", err
		}
	} else if err := q.keySpans(ctx, workspaceID, f.KeyID, from, upTo, full, func(lo, hi string) error {
		return blocks(max(lo, from), minID(hi, upTo))
	}); err != nil {
		return nil, "", err
	}
	out = append(out, pending...) // every block was read, or the page is full already
	out = out[:min(len(out), f.Limit+1)]
	out, next := page(out, f.Limit, func(e *keyplane.RequestLog) string { return encodeCursor(cursorRequestLog, e.ID) })
	return out, next, nil
}

// minID is the smaller of two upper bounds, "" being none.
func minID(a, b string) string {
	if a == "" || (b != "" && b < a) {
		return b
	}
	return a
}

// keySpans calls each with the range of last_id, [lo, hi), of the blocks of every key span the key
// has entries in (by its rows of request_log_keys), newest first, from the span of from (when set)
// and before upTo (when set), until done reports true or none is left. A row of an older version
// names a minute (or a block) of a span: its span is read whole, once.
func (q *queries) keySpans(ctx context.Context, workspaceID, keyID, from, upTo string, done func() bool, each func(lo, hi string) error) error {
	query, args := sqlLogKeyMinutes, []any{workspaceID, keyID}
	if from != "" {
		t, _ := id.Time(id.Request, from)
		lo, _ := spanIDs(t)
		query, args = query+` AND last_id >= ?`, append(args, lo)
	}
	for hi := upTo; !done(); {
		roundQuery, roundArgs := query, slices.Clip(args)
		if hi != "" {
			roundQuery, roundArgs = roundQuery+` AND last_id < ?`, append(roundArgs, hi)
		}
		ids, err := list(ctx, q, "list request logs: a key's spans", roundQuery+sqlLogKeyMinutesEnd, func(s scanner) (string, error) {
			var v string
			return v, s.Scan(&v)
		}, append(roundArgs, logMinuteRound)...)
		if err != nil {
			return err
		}
		for _, v := range ids {
			if hi != "" && v >= hi {
				continue // a row of a span already read (rows of old versions are any id of it)
			}
			t, ok := id.Time(id.Request, v)
			if !ok {
				continue // not written by keyplane: it names no span, and must not stop the key's log
			}
			lo, spanEnd := spanIDs(t)
			if err := each(lo, spanEnd); err != nil {
				return err
			}
			if hi = lo; done() {
				return nil
			}
		}
		if len(ids) < logMinuteRound {
			return nil
		}
		// The next round goes on after this one's oldest row, whether it named a span or not.
		hi = minID(hi, ids[len(ids)-1])
	}
	return nil
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
	// sqlDeleteLogKeys is followed by batchRows("?", n) and a parenthesis: n keys of one block, whose
	// rows of its key span go.
	sqlDeleteLogKeys   = `DELETE FROM request_log_keys WHERE workspace_id = ? AND last_id >= ? AND last_id < ? AND key_id IN (`
	sqlDeleteLogBlock  = `DELETE FROM request_log_blocks WHERE workspace_id = ? AND last_id = ?`
	sqlDeleteLogFilter = `DELETE FROM request_log_filters WHERE workspace_id = ? AND last_id = ?`
	maxPrunedLogBlocks = 256
)

// PruneRequestLogs deletes the blocks of the key spans that end by before's span (an entry stays until
// before reaches the end of its span: less than five minutes more), with their keys' rows of
// request_log_keys, and says how many entries went. A key's row of a span goes with the first of the
// span's blocks that holds the key: the span's other blocks are as old, and go in this call or the
// next; a span's blocks never outlive its rows by more than that, nor its rows its blocks. It
// deletes whole blocks, in transactions of at most maxPrunedLogBlocks, until limit entries or more
// went or none is left: fewer than limit means none is left.
func (db *DB) PruneRequestLogs(ctx context.Context, before time.Time, limit int) (int64, error) {
	const op = "prune request logs"
	if err := checkLimit(op, limit); err != nil {
		return 0, err
	}
	var n int64
	for n < int64(limit) {
		cutoff, _ := spanIDs(before)
		deleted, found, err := db.pruneLogBlocks(ctx, op, cutoff, int64(limit)-n)
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
			// The rows of the block's key span: by its last_id, an id of it (as every row's is).
			var lo, hi string
			if t, ok := id.Time(id.Request, b.lastID); ok {
				lo, hi = spanIDs(t)
			} else {
				keys = nil
			}
			for len(keys) > 0 {
				n := min(len(keys), maxBatchRows)
				query := sqlDeleteLogKeys + batchRows("?", n) + `)`
				if _, err := t.exec(ctx, query, append([]any{b.workspaceID, lo, hi}, keys[:n]...)...); err != nil {
					return t.fail(op, err)
				}
				keys = keys[n:]
			}
			for _, del := range []string{sqlDeleteLogFilter, sqlDeleteLogBlock} {
				if _, err := t.exec(ctx, del, b.workspaceID, b.lastID); err != nil {
					return t.fail(op, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return 0, len(blocks), err
	}
	return deleted, len(blocks), nil
}

// blockWrite is what inserts blocks: the blocks, the key rows to write, and the multi-row statements
// prepared for both (prepareChunks) where the driver would parse them every time.
type blockWrite struct {
	blocks                            []LogBlock
	keys                              []LogKeyRow
	blockStmts, filterStmts, keyStmts map[int]*sql.Stmt
}

func blockSQL(n int) string { return sqlInsertLogBlocks + batchRows(sqlLogBlockRow, n) }
func keySQL(n int) string   { return sqlInsertLogKeys + batchRows(sqlLogKeyRow, n) + sqlLogKeysEnd }
func filterSQL(n int) string {
	return sqlInsertLogFilters + batchRows(sqlLogFilterRow, n)
}

// prepareLogBlocks prepares the write of blocks and key rows, outside a transaction (SQLite's writer
// has one connection, which a transaction holds).
func (db *DB) prepareLogBlocks(ctx context.Context, blocks []LogBlock, keys []LogKeyRow) (*blockWrite, error) {
	w := &blockWrite{blocks: blocks, keys: keys}
	var err error
	if w.blockStmts, err = db.prepareChunks(ctx, len(blocks), blockSQL); err != nil {
		return nil, err
	}
	if w.filterStmts, err = db.prepareChunks(ctx, len(blocks), filterSQL); err != nil {
		return nil, err
	}
	if w.keyStmts, err = db.prepareChunks(ctx, len(w.keys), keySQL); err != nil {
		return nil, err
	}
	return w, nil
}

// insertLogBlocks inserts the blocks, their key filters and the key rows by multi-row INSERTs.
func (t *tx) insertLogBlocks(ctx context.Context, w *blockWrite) error {
	err := t.insertChunks(ctx, w.blockStmts, blockSQL, len(w.blocks), logBlockWidth, func(args []any, i int) ([]any, error) {
		return append(args, w.blocks[i].Values()...), nil
	})
	if err != nil {
		return err
	}
	err = t.insertChunks(ctx, w.filterStmts, filterSQL, len(w.blocks), logFilterWidth, func(args []any, i int) ([]any, error) {
		return append(args, w.blocks[i].FilterValues()...), nil
	})
	if err != nil {
		return err
	}
	return t.insertChunks(ctx, w.keyStmts, keySQL, len(w.keys), logKeyWidth, func(args []any, i int) ([]any, error) {
		return append(args, w.keys[i].Values()...), nil
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
			blocks := LogBlocks(entries)
			if err := t.insertLogBlocks(ctx, &blockWrite{blocks: blocks, keys: (*LogKeysSeen)(nil).LogKeyRows(blocks)}); err != nil {
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
