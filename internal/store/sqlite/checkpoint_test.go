package sqlite

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// walFile opens a WAL database at a new path with the log's pragmas and no automatic checkpoint,
// with a table to write to, and returns its writer and path.
func walFile(t *testing.T) (*sql.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "log.db")
	w, err := openWriter(t.Context(), path, logPragmas+"&_pragma=wal_autocheckpoint(0)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	if _, err := w.ExecContext(t.Context(), `CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	return w, path
}

// write commits n transactions of one 2 KiB row each, pausing between them for pause.
func write(t *testing.T, w *sql.DB, n int, pause time.Duration) {
	t.Helper()
	v := strings.Repeat("x", 2048)
	for range n {
		if _, err := w.ExecContext(t.Context(), `INSERT INTO t (v) VALUES (?)`, v); err != nil {
			t.Fatal(err)
		}
		if pause > 0 {
			time.Sleep(pause)
		}
	}
}

func walSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestCheckpointerKeepsTheWALSmall: with the writer checkpointing nothing itself, the checkpointer's
// PASSIVE checkpoints copy the WAL into the file and let the writer start it over, so that the WAL
// stays a fraction of what was written; and after the last one, all of it is in the file.
func TestCheckpointerKeepsTheWALSmall(t *testing.T) {
	w, path := walFile(t)
	c, err := startCheckpointer(t.Context(), path, 5*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// One 4 KiB page at least each, with a pause between them, as the log's writer has between
	// batches: 1.6 MiB and more without a checkpoint.
	const commits = 400
	write(t, w, commits, 5*time.Millisecond)
	size := walSize(t, path)
	t.Logf("WAL: %d bytes after %d commits", size, commits)
	if size > commits*4096/3 {
		t.Errorf("WAL of %d bytes after %d commits: the checkpointer did not let it start over", size, commits)
	}
	st, err := c.checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.copied != st.frames {
		t.Errorf("after the writes, a checkpoint copied %d of %d frames", st.copied, st.frames)
	}
}
