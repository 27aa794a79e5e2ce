package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/id"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/store/postgres"
	"github.com/keyplane/keyplane/internal/store/storetest"
	"github.com/keyplane/keyplane/internal/store/storetest/upgradecheck"
	"github.com/keyplane/keyplane/internal/testkit"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return storetest.Open(t, "postgres") })
}

// TestConcurrentOpen starts two nodes on one empty database at once: the migration lock lets one
// migrate while the other waits, and both come up.
func TestConcurrentOpen(t *testing.T) {
	url := storetest.PostgresURL(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	const nodes = 3
	dbs := make([]*postgres.DB, nodes)
	errs := make([]error, nodes)
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Go(func() { dbs[i], errs[i] = postgres.Open(ctx, url) })
	}
	wg.Wait()
	for i := range nodes {
		if errs[i] != nil {
			t.Errorf("node %d: Open: %v", i, errs[i])
			continue
		}
		defer dbs[i].Close()
	}
	if t.Failed() {
		return
	}
	var applied int
	err := dbs[0].Pool().QueryRow(ctx, "SELECT count(*) FROM goose_db_version WHERE version_id = 1").Scan(&applied)
	if err != nil || applied != 1 {
		t.Errorf("migration 1 recorded %d times (%v), want once", applied, err)
	}
	if dbs[0].Driver() != "postgres" {
		t.Errorf("Driver() = %q", dbs[0].Driver())
	}
}

// TestRetry checks that InTx runs fn again after a serialization failure or a deadlock, up to three
// more times, and never after another error.
func TestRetry(t *testing.T) {
	s := storetest.Open(t, "postgres")
	ctx := t.Context()
	retryable := func(code string) error {
		return fmt.Errorf("some write: %w", &pgconn.PgError{Code: code, Message: "simulated"})
	}
	for _, c := range []struct {
		name      string
		failures  int // how many attempts fail
		err       func() error
		wantCalls int
		wantErr   bool
	}{
		{"SerializationOnce", 1, func() error { return retryable("40001") }, 2, false},
		{"DeadlockThrice", 3, func() error { return retryable("40P01") }, 4, false},
		{"GivesUp", 100, func() error { return retryable("40001") }, 4, true},
		{"OtherError", 100, func() error { return errors.New("no") }, 1, true},
		{"UniqueViolation", 100, func() error { return retryable("23505") }, 1, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			slug := fmt.Sprintf("retry-%d", time.Now().UnixNano())
			calls := 0
			err := s.InTx(ctx, "ws_retry", func(tx store.Tx) error {
				calls++
				// Each attempt writes; only the one that commits may leave a trace.
				w := &keyplane.Workspace{ID: fmt.Sprintf("ws_%s_%d", slug, calls), Slug: fmt.Sprintf("%s-%d", slug, calls)}
				if err := tx.CreateWorkspace(ctx, w); err != nil {
					return err
				}
				if calls <= c.failures {
					return c.err()
				}
				return nil
			})
			if calls != c.wantCalls {
				t.Errorf("fn ran %d times, want %d", calls, c.wantCalls)
			}
			if (err != nil) != c.wantErr {
				t.Errorf("InTx = %v, want error: %v", err, c.wantErr)
			}
			for i := 1; i <= calls; i++ {
				_, err := s.GetWorkspaceBySlug(ctx, fmt.Sprintf("%s-%d", slug, i))
				committed := err == nil
				if want := !c.wantErr && i == calls; committed != want {
					t.Errorf("attempt %d committed: %v, want %v", i, committed, want)
				}
			}
		})
	}
}

func TestOpenBadURL(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err := postgres.Open(ctx, "postgres://user:s3cret@[::1")
	if err == nil {
		t.Fatal("Open of a malformed URL succeeded")
	}
	if got := err.Error(); strings.Contains(got, "s3cret") {
		t.Errorf("error quotes the password: %s", got)
	}
}

// TestRunExclusiveAcrossNodes: two nodes on one database; while one runs a job the other skips it,
// and when the first node's connection dies in the middle of the job, the lock goes with it and the
// other node runs the job at its next turn.
func TestRunExclusiveAcrossNodes(t *testing.T) {
	url := storetest.PostgresURL(t)
	ctx := t.Context()
	a, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	inside, release := make(chan int32, 1), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := a.RunExclusive(ctx, "expiry-notices", func(ctx context.Context) error {
			var pid int32
			// The session that holds the lock: the one whose advisory lock is in pg_locks.
			err := a.Pool().QueryRow(ctx, `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
				AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) LIMIT 1`).Scan(&pid)
			inside <- pid
			<-release
			return err
		})
		done <- err
	}()
	pid := <-inside
	if ran, err := b.RunExclusive(ctx, "expiry-notices", func(context.Context) error { return nil }); err != nil || ran {
		t.Fatalf("node b ran the job while node a held it: %v, %v", ran, err)
	}
	// Node a's connection dies with the job under way.
	if _, err := b.Pool().Exec(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "the lock of a dead connection given up", func() bool {
		ran, err := b.RunExclusive(ctx, "expiry-notices", func(context.Context) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		return ran
	})
	close(release)
	<-done
	// Node a runs jobs again afterwards, on a fresh connection.
	if ran, err := a.RunExclusive(ctx, "expiry-notices", func(context.Context) error { return nil }); err != nil || !ran {
		t.Errorf("node a after its connection died: %v, %v", ran, err)
	}
}

// TestSynchronousCommit reads, from inside each transaction, the synchronous_commit its commit has:
// only the request log's batches run with it off; keys, audit entries, events and the webhook
// bookkeeping wait for the flush. Triggers record current_setting as each row goes in, so a setting
// made for every connection (the connection string's options, an AfterConnect) shows as well as one
// made in the code. The database's own default is set on first, so that a server configured with
// synchronous_commit off does not fail the test for the wrong reason.
func TestSynchronousCommit(t *testing.T) {
	ctx := t.Context()
	url := storetest.PostgresURL(t)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET synchronous_commit = on', current_database()); END $$")
	conn.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	db, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p := db.Pool()
	stmts := []string{
		"CREATE TABLE seen (n bigserial PRIMARY KEY, tbl text NOT NULL, level text NOT NULL)",
		`CREATE FUNCTION seen() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN
				INSERT INTO seen (tbl, level) VALUES (TG_TABLE_NAME, current_setting('synchronous_commit'));
				RETURN NULL;
			END $$`,
	}
	for _, tbl := range storetest.DurabilityTables {
		stmts = append(stmts, fmt.Sprintf("CREATE TRIGGER seen AFTER INSERT OR UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION seen()", tbl))
	}
	for _, s := range stmts {
		if _, err := p.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	seen := func() map[string][]string {
		t.Helper()
		rows, err := p.Query(ctx, "DELETE FROM seen RETURNING tbl, level")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		got := map[string][]string{}
		for rows.Next() {
			var tbl, level string
			if err := rows.Scan(&tbl, &level); err != nil {
				t.Fatal(err)
			}
			got[tbl] = append(got[tbl], level)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return got
	}
	storetest.CheckDurability(t, db, storetest.Durability{Full: "on", Log: "off", Hooks: "on"}, seen)
}

// TestNoOverspendAcrossNodes: two nodes on one database take credits of one balance at once without
// ever taking more than it held.
func TestNoOverspendAcrossNodes(t *testing.T) {
	var nodes []store.Store
	for _, db := range openNodes(t, 2) {
		nodes = append(nodes, db)
	}
	storetest.CheckNoOverspend(t, nodes...)
}

// openNodes opens n stores on the test database, as n nodes would, closed when the test ends.
func openNodes(t *testing.T, n int) []*postgres.DB {
	url := storetest.PostgresURL(t)
	var nodes []*postgres.DB
	for range n {
		db, err := postgres.Open(t.Context(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		nodes = append(nodes, db)
	}
	return nodes
}

// TestLogKeyRowsAcrossNodes: two nodes log one key in the same minutes, their batches interleaved in
// time; the second node's rows of request_log_keys are there already (ignored, not an error), and
// either node lists every entry of the key, in order, a page at a time.
func TestLogKeyRowsAcrossNodes(t *testing.T) {
	nodes := openNodes(t, 2)
	ws := id.New(id.Workspace)
	start := time.Now().UTC().Truncate(time.Minute).Add(-10 * time.Minute)
	var want []string
	for i := range 12 {
		var batch []keyplane.RequestLog
		for j := range 5 {
			// Node i%2 writes entries 2 ms apart, offset by its number: the two nodes' blocks of one
			// minute overlap in time.
			ts := start.Add(time.Duration(i/4)*time.Minute + time.Duration(i%4)*time.Second + time.Duration(2*j+i%2)*time.Millisecond)
			e := keyplane.RequestLog{ID: id.NewAt(id.Request, ts), WorkspaceID: ws, KeyID: []string{"apk_a", "apk_b"}[j%2],
				Code: keyplane.VerifyValid, Source: keyplane.SourceVerify, Timestamp: ts}
			batch = append(batch, e)
			if e.KeyID == "apk_a" {
				want = append(want, e.ID)
			}
		}
		if err := nodes[i%2].WriteRequestLogs(t.Context(), batch); err != nil {
			t.Fatalf("batch %d on node %d: %v", i, i%2, err)
		}
	}
	slices.Sort(want)
	slices.Reverse(want)
	for n, node := range nodes {
		for _, limit := range []int{1, 4, 100} {
			if got := upgradecheck.KeyLogIDs(t.Context(), t, node, ws, "apk_a", limit); !slices.Equal(got, want) {
				t.Errorf("node %d, %d a page: %d entries %v, want %d %v", n, limit, len(got), got, len(want), want)
			}
		}
	}
}

// TestKeyReadsInEveryConnection: with every connection of the pool a transaction, each reads a key
// whole, last use included (which lives in a table of its own): the read goes through the
// transaction, not through a second connection that no one would free.
func TestKeyReadsInEveryConnection(t *testing.T) {
	const conns = 2
	db, err := postgres.Open(t.Context(), storetest.PostgresURL(t)+"&pool_max_conns="+strconv.Itoa(conns))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Now().UTC().Truncate(time.Microsecond)
	ws := &keyplane.Workspace{ID: id.New(id.Workspace), Name: "Pool", Slug: "pool", MaxKeys: 10,
		TestKeyTTLSeconds: keyplane.DefaultTestKeyTTLSeconds, LeakPolicy: keyplane.DefaultLeakPolicy, CreatedAt: now, UpdatedAt: now}
	k := &keyplane.APIKey{ID: id.New(id.APIKey), WorkspaceID: ws.ID, Name: "k", KeyType: keyplane.KeyTypeSecret,
		Environment: keyplane.EnvLive, Prefix: "kp_sk_live_", Start: "kp_sk_live_AbC4", End: "x9Qz", Enabled: true,
		Permissions: []string{}, IPAllowlist: []string{}, AllowedOrigins: []string{}, Meta: []byte(`{}`),
		CreatedAt: now, UpdatedAt: now, CreatedBy: keyplane.Actor{Type: keyplane.ActorSystem, ID: "test"}}
	if err := db.InTx(t.Context(), ws.ID, func(tx store.Tx) error {
		if err := tx.CreateWorkspace(t.Context(), ws); err != nil {
			return err
		}
		return tx.InsertAPIKey(t.Context(), k)
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.AddUsage(t.Context(), nil, map[string]time.Time{k.ID: now}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var began sync.WaitGroup
	began.Add(conns)
	errs := make(chan error, conns)
	for range conns {
		go func() {
			// Chains of their own: transactions of one chain would wait for each other's lock.
			errs <- db.InTx(ctx, id.New(id.Workspace), func(tx store.Tx) error {
				began.Done()
				began.Wait()
				got, err := tx.GetAPIKey(ctx, ws.ID, k.ID)
				if err == nil && (got.LastUsedAt == nil || !got.LastUsedAt.Equal(now)) {
					err = fmt.Errorf("last use %v, want %v", got.LastUsedAt, now)
				}
				return err
			})
		}()
	}
	for range conns {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
