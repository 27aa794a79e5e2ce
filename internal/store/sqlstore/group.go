package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"sync"

	"github.com/keyplane/keyplane/internal/store"
)

// groupCommit lets InTx's transactions share commits (Dialect.GroupCommit). A transaction joins the
// queue, then takes the leader's lock; whoever holds it runs everything queued so far, its own
// transaction among them, in one database transaction with a savepoint each, and commits once. Those
// that arrive meanwhile queue for the next batch. Alone, a transaction runs as it would without.
type groupCommit struct {
	leader sync.Mutex // held while a batch runs

	mu    sync.Mutex // guards queue
	queue []*pendingTx
}

// pendingTx is one InTx call waiting for, or done by, a batch. Its result fields are written by the
// batch's runner under the leader's lock, and read by its caller after taking that lock.
type pendingTx struct {
	ctx      context.Context
	chain    string
	fn       func(tx store.Tx) error
	done     bool
	err      error
	panicked any
}

// groupTx is InTx under Dialect.GroupCommit.
func (db *DB) groupTx(ctx context.Context, chain string, fn func(tx store.Tx) error) error {
	p := &pendingTx{ctx: ctx, chain: chain, fn: fn}
	g := &db.group
	g.mu.Lock()
	g.queue = append(g.queue, p)
	g.mu.Unlock()

	g.leader.Lock()
	if !p.done {
		// No one has taken p: it is still queued, so the batch taken now holds it.
		g.mu.Lock()
		batch := g.queue
		g.queue = nil
		g.mu.Unlock()
		db.runBatch(batch)
	}
	g.leader.Unlock()
	if p.panicked != nil {
		panic(p.panicked)
	}
	return p.err
}

// runBatch runs batch's transactions and records each one's result; it never panics.
func (db *DB) runBatch(batch []*pendingTx) {
	defer func() {
		for _, p := range batch {
			p.done = true
		}
	}()
	if len(batch) == 1 {
		p := batch[0]
		p.panicked, p.err = catch(func() error { return db.runTx(p.ctx, &p.chain, false, p.fn) })
		return
	}
	// The batch's transaction belongs to no caller: one that gives up must not end the others' work.
	// For the same reason its statements run detached from their callers' contexts (see queries):
	// SQLite's answer to a cancelled statement inside a transaction is to roll all of it back.
	db.prepareWanted(context.Background())
	stx, err := db.w.BeginTx(context.Background(), db.d.TxOptions)
	if err != nil {
		for _, p := range batch {
			p.err = fmt.Errorf("begin transaction: %w", err)
		}
		return
	}
	defer func() { _ = stx.Rollback() }() // a no-op after the commit
	var ran []*pendingTx                  // those whose work is in the transaction
	var broken error
	for _, p := range batch {
		if err := p.ctx.Err(); err != nil {
			p.err = fmt.Errorf("begin transaction: %w", err)
			continue
		}
		if broken = savepoint(stx, "SAVEPOINT tx"); broken != nil {
			break
		}
		panicked, err := catch(func() error { return p.fn(&tx{queries{db: db, q: stx, detached: true}}) })
		if err != nil || panicked != nil {
			p.err, p.panicked = db.full(err), panicked
			// Undo p's work alone. Should that fail, the transaction is in no state to go on.
			if broken = savepoint(stx, "ROLLBACK TO tx"); broken != nil {
				break
			}
			if broken = savepoint(stx, "RELEASE tx"); broken != nil {
				break
			}
			continue
		}
		ran = append(ran, p)
		if broken = savepoint(stx, "RELEASE tx"); broken != nil {
			break
		}
	}
	if broken != nil {
		// Nothing commits: every transaction not already answered gets the failure.
		broken = db.full(fmt.Errorf("group commit: %w", broken))
		for _, p := range batch {
			if p.err == nil && p.panicked == nil {
				p.err = broken
			}
		}
		return
	}
	if err := stx.Commit(); err != nil {
		err = db.full(fmt.Errorf("commit: %w", err))
		for _, p := range ran {
			p.err = err
		}
	}
}

func savepoint(stx *sql.Tx, stmt string) error {
	_, err := stx.ExecContext(context.Background(), stmt)
	return err
}

// catch runs fn and returns its error, or what it panicked with.
func catch(fn func() error) (panicked any, err error) {
	defer func() {
		if r := recover(); r != nil {
			panicked, err = r, nil
		}
	}()
	return nil, fn()
}

// full marks err as store.ErrFull when the dialect says it means a full disk, as runTx does.
func (db *DB) full(err error) error {
	if err != nil && db.d.IsFull != nil && db.d.IsFull(err) {
		return fmt.Errorf("%w: %w", store.ErrFull, err)
	}
	return err
}
