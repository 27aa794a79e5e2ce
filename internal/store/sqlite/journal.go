package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Journal follows the change journal of a database file (the changes table, which Publish writes in
// each change's transaction), so that a process serving the file learns of changes other processes
// commit: the CLI's `root-keys revoke` beside a running `keyplane serve`.
//
// It holds one connection of its own and asks it, at every poll, for PRAGMA data_version, which
// moves whenever another connection commits to the file: only then does it read the journal's rows
// after the last one it saw, by primary key. An idle poll is one pragma on a connection already
// open, no read of any table.
type Journal struct {
	db      *sql.DB
	conn    *sql.Conn
	last    int64 // seq of the last row read
	version int64 // data_version when last read; -1: read at the next poll
}

// journalBatch bounds the rows one read takes; Poll reads until it has them all.
const journalBatch = 1000

// OpenJournal opens a read-only connection on the database file at path, which Open has migrated.
func OpenJournal(ctx context.Context, path string) (*Journal, error) {
	db, err := openReader(ctx, path, pragmas, 1)
	if err != nil {
		return nil, fmt.Errorf("open change journal: %w", err)
	}
	j := &Journal{db: db, version: -1}
	if err := j.connect(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return j, nil
}

func (j *Journal) connect(ctx context.Context) error {
	if j.conn != nil {
		j.conn.Close()
	}
	c, err := j.db.Conn(ctx)
	if err != nil {
		j.conn = nil
		return fmt.Errorf("change journal: %w", err)
	}
	j.conn, j.version = c, -1
	return nil
}

// Close closes the connection.
func (j *Journal) Close() error {
	if j.conn != nil {
		j.conn.Close()
	}
	return j.db.Close()
}

// Start makes the journal's current end the point Poll reads after, and returns it: call it before
// reading the state the journal's later rows change (the digests a filter starts with, say), so that
// nothing committed in between is missed.
func (j *Journal) Start(ctx context.Context) (int64, error) {
	// sqlite_sequence keeps the largest seq ever given, even once its row is pruned; it has no row
	// before the journal's first.
	err := j.conn.QueryRowContext(ctx, "SELECT seq FROM sqlite_sequence WHERE name = 'changes'").Scan(&j.last)
	if errors.Is(err, sql.ErrNoRows) {
		j.last, err = 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("change journal: %w", err)
	}
	j.version = -1
	return j.last, nil
}

// ErrJournalGap: rows after the last one read were pruned before they were read (a reader that did
// not read for longer than the journal keeps rows): changes were missed.
var ErrJournalGap = errors.New("change journal: rows were pruned before they were read")

// Poll returns the digests of the rows committed since the last Poll (or Start), in order, without
// reading the journal when nothing was committed. On ErrJournalGap it has moved past the gap; the
// digests it returns with it are still to be applied.
func (j *Journal) Poll(ctx context.Context) ([][]byte, error) {
	if j.conn == nil {
		if err := j.connect(ctx); err != nil {
			return nil, err
		}
	}
	var v int64
	if err := j.conn.QueryRowContext(ctx, "PRAGMA data_version").Scan(&v); err != nil {
		j.connect(ctx) // data_version is per connection: a new one reads again
		return nil, fmt.Errorf("change journal: %w", err)
	}
	if v == j.version {
		return nil, nil
	}
	var out [][]byte
	var gap error
	from := j.last
	for {
		n, err := j.read(ctx, &out, &gap)
		if err != nil {
			j.last = from // what was read is not returned: the next poll reads it again
			return nil, err
		}
		if n < journalBatch {
			break
		}
	}
	j.version = v
	return out, gap
}

func (j *Journal) read(ctx context.Context, out *[][]byte, gap *error) (int, error) {
	rows, err := j.conn.QueryContext(ctx, "SELECT seq, hash FROM changes WHERE seq > ? ORDER BY seq LIMIT ?", j.last, journalBatch)
	if err != nil {
		return 0, fmt.Errorf("change journal: %w", err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var seq int64
		var h []byte
		if err := rows.Scan(&seq, &h); err != nil {
			return 0, fmt.Errorf("change journal: %w", err)
		}
		if seq != j.last+1 {
			*gap = ErrJournalGap
		}
		j.last = seq
		*out = append(*out, h)
		n++
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("change journal: %w", err)
	}
	return n, nil
}

// WatchOptions say what Watch does with what it reads.
type WatchOptions struct {
	// Every is the time between polls: another process's change is applied within about that, plus
	// the time of a poll.
	Every time.Duration
	Log   *slog.Logger
	// Apply is called with the digests of every change committed since the last poll.
	Apply func(hashes ...[]byte)
	// Up is called after the first poll that succeeds, and after each one that succeeds after a
	// failure: every change since Start has then been applied. Down is called when a poll fails:
	// changes may now go unseen until one succeeds.
	Up, Down func()
	// Gap is called when rows were pruned before they were read (ErrJournalGap): whatever was
	// learned from the journal before may be wrong, and whatever needs every change must give up.
	Gap func()
}

// DefaultWatchEvery is the poll interval of Watch: another process's change is applied within a
// quarter second, well inside the second the contract allows, for a pragma four times a second.
const DefaultWatchEvery = 250 * time.Millisecond

// Watch polls the journal until ctx ends.
func (j *Journal) Watch(ctx context.Context, o WatchOptions) {
	if o.Every <= 0 {
		o.Every = DefaultWatchEvery
	}
	t := time.NewTicker(o.Every)
	defer t.Stop()
	up := false
	for {
		hashes, err := j.Poll(ctx)
		if errors.Is(err, ErrJournalGap) {
			o.Log.Warn("cache invalidation: the change journal was pruned past what this node had read; the cache was cleared")
			o.Gap()
			err = nil
		}
		switch {
		case err != nil && ctx.Err() == nil:
			if up {
				o.Log.Warn("cache invalidation: the change journal cannot be read; changes made by other processes are seen after the cache TTL until it can", "err", err)
				o.Down()
			}
			up = false
		case err == nil:
			if len(hashes) > 0 {
				o.Apply(hashes...)
			}
			if !up {
				o.Up()
			}
			up = true
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
