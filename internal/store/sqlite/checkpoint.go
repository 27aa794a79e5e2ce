package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// checkpointer copies the request log's WAL back into its file from a connection of its own, so that
// the log's writer does not: a checkpoint of a log of a few GiB copies tens of MiB of pages into a
// file larger than the page cache keeps, and syncs it, and while the writer did that (SQLite runs the
// automatic checkpoint in the connection that commits) the 10-minute soak's buffer of entries
// overflowed (docs/performance.md). Here the writer goes on committing meanwhile.
//
// A PASSIVE checkpoint neither waits for nor blocks the writer or the readers, but the WAL starts over
// from its beginning only once a checkpoint has copied all of it before the writer's next
// transaction: each tick runs them until one finds nothing new, which the pauses between the
// writer's batches allow. Should the writer never pause, the WAL would grow until the writer's own
// automatic checkpoint, kept far above (logWriterPragmas), copies the rest and starts it over.
type checkpointer struct {
	db    *sql.DB
	every time.Duration
	stop  chan struct{}
	done  chan struct{}
}

// Checkpoint cadence and bounds. Under load the log's writer commits a batch every few tens of
// milliseconds, a few hundred frames each: a checkpoint a second copies each page that every batch
// changes (the newest of the log, the current hour's rollups) once a second, however often it
// changed, as the writer's automatic checkpoint every 10,000 frames did before.
const (
	checkpointEvery = time.Second
	// catchUps bounds the PASSIVE checkpoints of one tick: each copies what the writer added during
	// the one before, less each time, until one finishes with nothing new.
	catchUps = 8
)

// startCheckpointer opens a connection to the log's file at path and checkpoints it every every
// until Close.
func startCheckpointer(ctx context.Context, path string, every time.Duration) (*checkpointer, error) {
	db, err := sql.Open("sqlite", path+"?"+logPragmas)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, err
	}
	c := &checkpointer{db: db, every: every, stop: make(chan struct{}), done: make(chan struct{})}
	go c.loop()
	return c, nil
}

func (c *checkpointer) loop() {
	defer close(c.done)
	t := time.NewTicker(c.every)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			// An error (the file busy past busy_timeout, say) is tried again at the next tick; the
			// writer's automatic checkpoint stands behind it.
			_, _ = c.checkpoint(context.Background())
		}
	}
}

// walState is what PRAGMA wal_checkpoint reports: the WAL's frames, and how many of them are in the
// database file now.
type walState struct{ frames, copied int64 }

// checkpoint runs PASSIVE checkpoints until one has copied the whole WAL, or catchUps of them ran.
func (c *checkpointer) checkpoint(ctx context.Context) (walState, error) {
	var st walState
	var err error
	for range catchUps {
		if st, err = c.passive(ctx); err != nil || st.copied >= st.frames {
			break
		}
	}
	return st, err
}

func (c *checkpointer) passive(ctx context.Context) (walState, error) {
	var busy int
	var st walState
	if err := c.db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &st.frames, &st.copied); err != nil {
		return st, fmt.Errorf("checkpoint the request log: %w", err)
	}
	return st, nil
}

// Close stops the loop and closes the connection.
func (c *checkpointer) Close() error {
	close(c.stop)
	<-c.done
	return c.db.Close()
}
