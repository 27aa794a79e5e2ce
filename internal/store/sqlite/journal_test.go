package sqlite_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/store/sqlite"
	"github.com/keyplane/keyplane/internal/store/sqlstore"
)

func publish(t *testing.T, db *sqlstore.DB, fail bool, hashes ...[]byte) {
	t.Helper()
	errBoom := errors.New("boom")
	err := db.InTx(context.Background(), "", func(tx store.Tx) error {
		if err := tx.Publish(context.Background(), hashes); err != nil {
			return err
		}
		if fail {
			return errBoom
		}
		return nil
	})
	if fail != errors.Is(err, errBoom) {
		t.Fatalf("publish: %v", err)
	}
}

func h(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

// TestJournalSeesOtherHandlesCommits: what one handle on the file publishes (as the CLI's process
// would) is what the journal of another returns at its next poll, committed changes only, in order;
// with no commit since, a poll returns nothing; nothing published before Start is returned.
func TestJournalSeesOtherHandlesCommits(t *testing.T) {
	ctx := context.Background()
	path, writer := openFile(t)
	publish(t, writer, false, h(1))
	j, err := sqlite.OpenJournal(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if _, err := j.Start(ctx); err != nil {
		t.Fatal(err)
	}
	poll := func(want ...[]byte) {
		t.Helper()
		got, err := j.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("poll: %d digests, want %d", len(got), len(want))
		}
		for i := range got {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("poll: digest %d is %x, want %x", i, got[i][:1], want[i][:1])
			}
		}
	}
	poll()
	publish(t, writer, false, h(2), h(3))
	publish(t, writer, true, h(4)) // rolled back
	publish(t, writer, false, h(5))
	poll(h(2), h(3), h(5))
	poll()
	// Another handle, opened later, starts at the journal's end.
	other, err := sqlite.OpenJournal(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if seq, err := other.Start(ctx); err != nil || seq != 4 {
		t.Fatalf("start: %d %v, want 4", seq, err)
	}
}

// TestJournalGap: rows pruned before they were read are reported, and reading goes on after them.
func TestJournalGap(t *testing.T) {
	ctx := context.Background()
	path, writer, j := openJournal(t)
	publish(t, writer, false, h(1), h(2))
	rawExec(t, path, "DELETE FROM changes WHERE seq = 1")
	got, err := j.Poll(ctx)
	if !errors.Is(err, sqlite.ErrJournalGap) || len(got) != 1 || !bytes.Equal(got[0], h(2)) {
		t.Fatalf("poll after a pruned row: %d digests, %v", len(got), err)
	}
	if got, err := j.Poll(ctx); err != nil || len(got) != 0 {
		t.Fatalf("next poll: %d digests, %v", len(got), err)
	}
}

// TestJournalPrunesOldRows: Publish removes rows older than an hour as it adds new ones.
func TestJournalPrunesOldRows(t *testing.T) {
	ctx := context.Background()
	path, writer := openFile(t)
	publish(t, writer, false, h(1), h(2), h(3))
	rawExec(t, path, "UPDATE changes SET at = at - 7200 WHERE seq <= 2")
	publish(t, writer, false, h(4))
	raw := rawDB(t, path)
	var n int
	if err := raw.QueryRowContext(ctx, "SELECT count(*) FROM changes").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("%d journal rows after pruning, want 2 (the two recent)", n)
	}
}

// TestWatchAppliesAndReportsState: Watch polls at its interval, applies what other handles commit,
// and says Up once it has read. The bound of a second on how soon another process's change is
// applied is DefaultWatchEvery plus one poll: checked here as a constant, not timed.
func TestWatchAppliesAndReportsState(t *testing.T) {
	if sqlite.DefaultWatchEvery > 250*time.Millisecond {
		t.Fatalf("DefaultWatchEvery %v: another process's change must be applied within 1 s", sqlite.DefaultWatchEvery)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, writer, j := openJournal(t)
	var mu sync.Mutex
	var applied [][]byte
	up := make(chan struct{}, 10)
	got := make(chan struct{}, 10)
	go j.Watch(ctx, sqlite.WatchOptions{Every: 5 * time.Millisecond, Log: slog.New(slog.DiscardHandler),
		Apply: func(hs ...[]byte) {
			mu.Lock()
			applied = append(applied, hs...)
			mu.Unlock()
			got <- struct{}{}
		},
		Up: func() { up <- struct{}{} }, Down: func() {}, Gap: func() {}})
	<-up
	publish(t, writer, false, h(7))
	select {
	case <-got:
	case <-time.After(time.Minute):
		t.Fatal("the change was not applied within a minute")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(applied) != 1 || !bytes.Equal(applied[0], h(7)) {
		t.Fatalf("applied %d digests", len(applied))
	}
}

// rawDB is a handle on the file of its own, for what the store does not do: pruning by hand.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func rawExec(t *testing.T, path, query string) {
	t.Helper()
	if _, err := rawDB(t, path).Exec(query); err != nil {
		t.Fatal(err)
	}
}

// openFile opens a store on a new file.
func openFile(t *testing.T) (string, *sqlstore.DB) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keyplane.db")
	writer, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { writer.Close() })
	return path, writer
}

// openJournal opens a store on a new file and a journal on it, started.
func openJournal(t *testing.T) (string, *sqlstore.DB, *sqlite.Journal) {
	t.Helper()
	ctx := context.Background()
	path, writer := openFile(t)
	j, err := sqlite.OpenJournal(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	if _, err := j.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return path, writer, j
}
