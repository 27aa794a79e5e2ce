package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane/internal/store"
)

// preparingDB is a DB over a SQLite file with the dialect's PrepareBatches, as the sqlite package
// opens its stores, and a table with a second column to read back.
func preparingDB(t *testing.T, group bool) *DB {
	return sqliteDB(t, "CREATE TABLE t (v TEXT PRIMARY KEY, n INTEGER NOT NULL DEFAULT 0)", Dialect{Name: "sqlite",
		GroupCommit: group, PrepareBatches: true, RelaxSync: "PRAGMA synchronous = NORMAL", RestoreSync: "PRAGMA synchronous = FULL"})
}

const (
	sqlTestInsert = "INSERT INTO t (v, n) VALUES (?, ?)"
	sqlTestBump   = "UPDATE t SET n = n + 1 WHERE v = ?"
	sqlTestRead   = "SELECT n FROM t WHERE v = ?"
	sqlTestList   = "SELECT v FROM t ORDER BY v"
)

// prepared reports whether query is held prepared, and whether it waits to be.
func prepared(db *DB, query string) (held, waiting bool) {
	db.stmtMu.Lock()
	defer db.stmtMu.Unlock()
	st, ok := db.stmts[query]
	_, waiting = db.wanted[query]
	return ok && st != nil, waiting
}

// TestTxStatementsPrepared: a statement a transaction runs is prepared before the next one begins,
// and runs prepared from then on, in a grouped, a plain and a relaxed transaction alike, with the
// answers it gave unprepared; writes, reads of one row and of many.
func TestTxStatementsPrepared(t *testing.T) {
	for _, c := range []struct {
		name  string
		group bool
		run   func(db *DB, fn func(store.Tx) error) error
	}{
		{"grouped", true, func(db *DB, fn func(store.Tx) error) error { return db.InTx(context.Background(), "", fn) }},
		{"plain", false, func(db *DB, fn func(store.Tx) error) error { return db.InTx(context.Background(), "", fn) }},
		{"relaxed", false, func(db *DB, fn func(store.Tx) error) error { return db.relaxedTx(context.Background(), fn) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			db := preparingDB(t, c.group)
			ctx := context.Background()
			round := func(i int) (n int, list []string) {
				t.Helper()
				err := c.run(db, func(stx store.Tx) error {
					q := &stx.(*tx).queries
					if _, err := q.exec(ctx, sqlTestInsert, fmt.Sprint("k", i), i); err != nil {
						return err
					}
					if _, err := q.exec(ctx, sqlTestBump, "k0"); err != nil {
						return err
					}
					if err := q.queryRow(ctx, sqlTestRead, "k0").Scan(&n); err != nil {
						return err
					}
					rows, err := q.query(ctx, sqlTestList)
					if err != nil {
						return err
					}
					defer rows.Close()
					for rows.Next() {
						var v string
						if err := rows.Scan(&v); err != nil {
							return err
						}
						list = append(list, v)
					}
					return rows.Err()
				})
				if err != nil {
					t.Fatalf("round %d: %v", i, err)
				}
				return n, list
			}
			if n, list := round(0); n != 1 || !slices.Equal(list, []string{"k0"}) {
				t.Fatalf("first round read n=%d, %q", n, list)
			}
			for _, q := range []string{sqlTestInsert, sqlTestBump, sqlTestRead, sqlTestList} {
				if held, waiting := prepared(db, q); held || !waiting {
					t.Fatalf("after the first transaction %q is held %v, waiting %v: want it waiting", q, held, waiting)
				}
			}
			for i := 1; i <= 3; i++ {
				n, list := round(i)
				if n != i+1 || len(list) != i+1 || list[i] != fmt.Sprint("k", i) {
					t.Fatalf("round %d read n=%d, %q", i, n, list)
				}
				for _, q := range []string{sqlTestInsert, sqlTestBump, sqlTestRead, sqlTestList} {
					if held, waiting := prepared(db, q); !held || waiting {
						t.Fatalf("round %d: %q is held %v, waiting %v: want it held", i, q, held, waiting)
					}
				}
			}
			// A prepared write still answers as it did: a conflict is a conflict.
			err := c.run(db, func(stx store.Tx) error {
				return stx.(*tx).insert(ctx, "insert", sqlTestInsert, "k1", 0)
			})
			// The test's dialect does not name unique violations; the driver's message does.
			if err == nil || !strings.Contains(err.Error(), "UNIQUE constraint failed") {
				t.Fatalf("a duplicate through the prepared insert: %v, want a conflict", err)
			}
		})
	}
}

// TestTxStatementsAfterSchemaChange: a statement prepared before the schema changed runs against the
// new one (SQLite prepares it again), as an upgrade that adds a column while a node runs needs.
func TestTxStatementsAfterSchemaChange(t *testing.T) {
	db := preparingDB(t, true)
	ctx := context.Background()
	list := func() []string {
		var out []string
		err := db.InTx(ctx, "", func(stx store.Tx) error {
			rows, err := stx.(*tx).query(ctx, "SELECT * FROM t ORDER BY v")
			if err != nil {
				return err
			}
			defer rows.Close()
			cols, err := rows.Columns()
			out = cols
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	list()
	if cols := list(); len(cols) != 2 {
		t.Fatalf("columns %q", cols)
	}
	if _, err := db.w.Exec("ALTER TABLE t ADD COLUMN m TEXT"); err != nil {
		t.Fatal(err)
	}
	if cols := list(); !slices.Equal(cols, []string{"v", "n", "m"}) {
		t.Fatalf("after the change the prepared statement read columns %q", cols)
	}
}

// TestTxStatementsBounded: a transaction's statements of ever new text (an IN list of every length)
// stop being prepared at maxTxStmts, and run as they are; one that does not prepare fails where it
// runs, every time, and is not asked for again.
func TestTxStatementsBounded(t *testing.T) {
	db := preparingDB(t, true)
	ctx := context.Background()
	for i := range maxTxStmts + 40 {
		err := db.InTx(ctx, "", func(stx store.Tx) error {
			var n int
			return stx.(*tx).queryRow(ctx, fmt.Sprintf("SELECT count(*) + %d FROM t", i)).Scan(&n)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	db.stmtMu.Lock()
	held, waiting := len(db.stmts), len(db.wanted)
	db.stmtMu.Unlock()
	if held+waiting > maxTxStmts || held < maxTxStmts-1 {
		t.Fatalf("%d statements held and %d waiting after %d distinct ones, want at most %d in all", held, waiting, maxTxStmts+40, maxTxStmts)
	}

	db = preparingDB(t, true)
	const bad = "INSERT INTO missing (v) VALUES (?)"
	for i := range 3 {
		err := db.InTx(ctx, "", func(stx store.Tx) error {
			_, err := stx.(*tx).exec(ctx, bad, "x")
			return err
		})
		if err == nil {
			t.Fatalf("try %d: a statement on a missing table ran", i)
		}
	}
	db.stmtMu.Lock()
	st, ok := db.stmts[bad]
	_, waiting2 := db.wanted[bad]
	db.stmtMu.Unlock()
	if !ok || st != nil || waiting2 {
		t.Fatalf("the bad statement: held %v (%v), waiting %v: want it remembered as not preparing", ok, st, waiting2)
	}

	// A statement whose preparing ended with its caller's context is not held as one that does not
	// prepare: its next run asks for it again.
	db = preparingDB(t, false)
	db.stmtMu.Lock()
	db.wanted[sqlTestRead] = struct{}{}
	db.stmtMu.Unlock()
	gone, cancel := context.WithCancel(ctx)
	cancel()
	db.prepareWanted(gone)
	db.stmtMu.Lock()
	_, marked := db.stmts[sqlTestRead]
	db.stmtMu.Unlock()
	if marked {
		t.Fatal("a statement whose preparing was cancelled is held as not preparing")
	}
}

// TestPrepareWhileTxHoldsWriter: a statement prepared outside a transaction (prepare, as the credit
// takes and the request log's writes do) waits for the writer's one connection, which a transaction
// holds; that transaction's own new statements must not wait for it in turn. They did when prepare
// held stmtMu while it waited: the node's writes stopped for good.
func TestPrepareWhileTxHoldsWriter(t *testing.T) {
	db := preparingDB(t, true)
	ctx := context.Background()
	prepared := make(chan error, 1)
	err := db.InTx(ctx, "", func(stx store.Tx) error {
		waits := db.w.Stats().WaitCount
		go func() {
			_, err := db.prepare(ctx, "SELECT count(*) FROM t")
			prepared <- err
		}()
		// Until the preparer waits for the connection this transaction holds.
		for deadline := time.Now().Add(10 * time.Second); db.w.Stats().WaitCount == waits; {
			if time.Now().After(deadline) {
				return errors.New("the preparer never waited for the writer's connection")
			}
			time.Sleep(time.Millisecond)
		}
		done := make(chan error, 1)
		go func() {
			_, err := stx.(*tx).exec(ctx, sqlTestInsert, "x", 1)
			done <- err
		}()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			// Giving up rolls back and frees the connection, so that nothing stays blocked.
			return errors.New("the transaction's statement waited for the preparer, which waited for the transaction")
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-prepared; err != nil {
		t.Fatalf("prepare after the transaction: %v", err)
	}
}

// TestTxStatementsConcurrent: transactions that run statements never prepared before, grouped and
// apart (the request log's writer and the jobs run theirs beside the group commit), while others
// prepare what the last ones asked for; the race detector watches the statements' maps.
func TestTxStatementsConcurrent(t *testing.T) {
	db := preparingDB(t, true)
	ctx := context.Background()
	errs := make(chan error, 8)
	for g := range 8 {
		go func() {
			var err error
			for i := 0; i < 40 && err == nil; i++ {
				fn := func(stx store.Tx) error {
					var n int
					return stx.(*tx).queryRow(ctx, fmt.Sprintf("SELECT count(*) + %d FROM t", i%10)).Scan(&n)
				}
				if g%2 == 0 {
					err = db.InTx(ctx, "", fn)
				} else {
					err = db.relaxedTx(ctx, fn)
				}
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
