package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/testkit"
)

// groupDB is a DB over a SQLite file with one table, grouping commits, as the sqlite package opens
// it (one writer connection).
func groupDB(t *testing.T) *DB {
	return sqliteDB(t, "CREATE TABLE t (v TEXT PRIMARY KEY)", Dialect{Name: "sqlite", GroupCommit: true})
}

// sqliteDB is a DB of dialect d over a new SQLite file with one writer connection, as the sqlite
// package opens it, and the schema made by ddl.
func sqliteDB(t *testing.T, ddl string, d Dialect) *DB {
	t.Helper()
	w, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "g.db")+"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	w.SetMaxOpenConns(1)
	if _, err := w.Exec(ddl); err != nil {
		t.Fatal(err)
	}
	db := New(d, w, nil)
	t.Cleanup(func() { db.Close() })
	return db
}

func insert(v string) func(store.Tx) error {
	return func(stx store.Tx) error {
		_, err := stx.(*tx).exec(context.Background(), "INSERT INTO t (v) VALUES (?)", v)
		return err
	}
}

func stored(t *testing.T, db *DB) []string {
	t.Helper()
	rows, err := db.w.Query("SELECT v FROM t ORDER BY v")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		rows.Scan(&v)
		out = append(out, v)
	}
	return out
}

// TestRunBatch: in one batch, each transaction commits or not on its own. One that fails, panics, or
// whose caller gave up leaves nothing and gets its own answer; the others commit, those that ran
// after a failed one included, and see the writes of those before them.
func TestRunBatch(t *testing.T) {
	db := groupDB(t)
	ctx := context.Background()
	gone, cancel := context.WithCancel(ctx)
	cancel()
	errNo := errors.New("no")
	var sawA bool
	batch := []*pendingTx{
		{ctx: ctx, fn: insert("a")},
		{ctx: ctx, fn: func(stx store.Tx) error {
			if err := insert("b")(stx); err != nil {
				return err
			}
			return errNo
		}},
		{ctx: ctx, fn: func(stx store.Tx) error {
			insert("c")(stx)
			panic("boom")
		}},
		{ctx: gone, fn: insert("d")},
		{ctx: ctx, fn: insert("a")}, // a unique violation: this one alone fails
		{ctx: ctx, fn: func(stx store.Tx) error {
			var n int
			err := stx.(*tx).queryRow(ctx, "SELECT count(*) FROM t WHERE v = 'a'").Scan(&n)
			sawA = n == 1
			if err != nil {
				return err
			}
			return insert("e")(stx)
		}},
	}
	db.runBatch(batch)
	if got := stored(t, db); !slices.Equal(got, []string{"a", "e"}) {
		t.Errorf("stored %q, want a and e", got)
	}
	if !sawA {
		t.Error("a transaction did not see the one committed before it in the batch")
	}
	want := []struct {
		err      error
		panicked any
	}{{nil, nil}, {errNo, nil}, {nil, "boom"}, {context.Canceled, nil}, {nil, nil}, {nil, nil}}
	for i, p := range batch {
		if !p.done {
			t.Errorf("%d: not done", i)
		}
		if p.panicked != want[i].panicked {
			t.Errorf("%d: panicked with %v, want %v", i, p.panicked, want[i].panicked)
		}
		switch {
		case i == 4:
			if p.err == nil {
				t.Errorf("%d: a duplicate committed", i)
			}
		case want[i].err == nil && p.err != nil, want[i].err != nil && !errors.Is(p.err, want[i].err):
			t.Errorf("%d: err %v, want %v", i, p.err, want[i].err)
		}
	}
}

// TestGroupTx runs many transactions at once through InTx: each commits or not as it returns, a panic
// reaches its own caller, and writers queued behind a slow one share batches.
func TestGroupTx(t *testing.T) {
	db := groupDB(t)
	ctx := context.Background()
	const n = 60
	var wg sync.WaitGroup
	errs := make([]error, n)
	panics := make([]any, n)
	for i := range n {
		wg.Go(func() {
			defer func() { panics[i] = recover() }()
			errs[i] = db.InTx(ctx, "chain", func(stx store.Tx) error {
				if err := insert(fmt.Sprintf("%02d", i))(stx); err != nil {
					return err
				}
				switch i % 10 {
				case 3:
					return fmt.Errorf("fail %d", i)
				case 7:
					panic(i)
				}
				return nil
			})
		})
	}
	wg.Wait()
	var want []string
	for i := range n {
		switch i % 10 {
		case 3:
			if errs[i] == nil || errs[i].Error() != fmt.Sprintf("fail %d", i) {
				t.Errorf("%d: err %v", i, errs[i])
			}
		case 7:
			if panics[i] != i {
				t.Errorf("%d: panic %v", i, panics[i])
			}
		default:
			if errs[i] != nil || panics[i] != nil {
				t.Errorf("%d: err %v, panic %v", i, errs[i], panics[i])
			}
			want = append(want, fmt.Sprintf("%02d", i))
		}
	}
	if got := stored(t, db); !slices.Equal(got, want) {
		t.Errorf("stored %q\nwant %q", got, want)
	}
}

// TestGroupTxShares: transactions that queue while a batch runs commit together in the next one. The
// WAL shows it: thirty commits of a row each would append thirty frames of the table's page; one
// commit of thirty rows appends one.
func TestGroupTxShares(t *testing.T) {
	db := groupDB(t)
	if _, err := db.w.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		t.Fatal(err)
	}
	const n = 30
	db.group.leader.Lock() // a batch under way
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = db.InTx(context.Background(), "chain", insert(fmt.Sprintf("%02d", i))) })
	}
	testkit.EventuallyNil(t, time.Minute, func() error {
		db.group.mu.Lock()
		queued := len(db.group.queue)
		db.group.mu.Unlock()
		if queued < n {
			return fmt.Errorf("%d of %d transactions queued", queued, n)
		}
		return nil
	})
	db.group.leader.Unlock()
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("%d: %v", i, err)
		}
	}
	if got := stored(t, db); len(got) != n {
		t.Fatalf("%d rows stored, want %d", len(got), n)
	}
	var busy, frames, done int
	if err := db.w.QueryRow("PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &done); err != nil {
		t.Fatal(err)
	}
	if frames > 3 {
		t.Errorf("%d transactions appended %d WAL frames: they did not share a commit", n, frames)
	}
}
