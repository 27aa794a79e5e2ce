package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", to reach the listeners' backends

	"github.com/keyplane/keyplane/internal/testkit"
)

// TestMultiNodeInvalidation: two nodes on one PostgreSQL, with a cache TTL of an hour so that only
// the notifications can make the second node see a change: a key revoked, disabled or rotated on one
// node is refused by the other within a second, also after the LISTEN connections were killed.
func TestMultiNodeInvalidation(t *testing.T) {
	env := map[string]string{"KEYPLANE_CACHE_TTL": "1h"}
	a := start(t, "postgres", env)
	b := &node{t: t, dataDir: a.dataDir, dbURL: a.dbURL, admin: a.admin, verifier: a.verifier, stdout: &syncBuffer{}, logs: &syncBuffer{}, client: a.client}
	b.serve(env)
	t.Cleanup(func() { b.stop() })
	ws := a.workspace("two-nodes", nil)

	// seenWithin waits until node b answers want for value, and fails past a second.
	seenWithin := func(what, value, want string) {
		t.Helper()
		start := time.Now()
		testkit.EventuallyNil(t, time.Second, func() error {
			if got := b.code(value); got != want {
				return fmt.Errorf("%s: the other node still answers %s, want %s", what, got, want)
			}
			return nil
		})
		t.Logf("%s: seen by the other node after %s", what, time.Since(start).Round(time.Millisecond))
	}
	key := func(name string) (string, string) {
		k := a.key(ws, map[string]any{"name": name, "keyType": "secret"})
		id, value := k["id"].(string), k["keyValue"].(string)
		if c := b.code(value); c != "VALID" { // now cached on b
			t.Fatalf("%s on the other node: %s", name, c)
		}
		return id, value
	}
	id, value := key("revoked")
	a.must(200, req{method: "DELETE", path: "/v1/api-keys/" + id, cred: a.admin, ws: ws})
	seenWithin("revoke", value, "REVOKED")

	id, value = key("disabled")
	a.must(200, req{method: "PATCH", path: "/v1/api-keys/" + id, cred: a.admin, ws: ws, body: map[string]any{"enabled": false}})
	seenWithin("disable", value, "DISABLED")

	id, value = key("rotated")
	a.must(200, req{method: "POST", path: "/v1/api-keys/" + id + "/rotate", cred: a.admin, ws: ws})
	seenWithin("rotate", value, "EXPIRED")

	// Kill every LISTEN connection: the nodes connect again, clear their caches, and changes made
	// meanwhile are seen all the same.
	id, value = key("after reconnect")
	db, err := sql.Open("pgx", a.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var killed int
	if err := db.QueryRowContext(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND query LIKE 'LISTEN keyplane_invalidate%' AND pid <> pg_backend_pid()`).Scan(&killed); err != nil {
		t.Fatal(err)
	}
	if killed < 2 {
		t.Fatalf("killed %d LISTEN connections, want the two nodes'", killed)
	}
	a.must(200, req{method: "PATCH", path: "/v1/api-keys/" + id, cred: a.admin, ws: ws, body: map[string]any{"enabled": false}})
	if !testkit.Wait(10*time.Second, func() bool { return strings.Contains(b.logs.String(), "listening again") }) {
		t.Fatalf("the other node did not listen again:\n%s", b.logs.String())
	}
	seenWithin("a change made while the connection was down", value, "DISABLED")
	id, value = key("after the reconnection")
	a.must(200, req{method: "DELETE", path: "/v1/api-keys/" + id, cred: a.admin, ws: ws})
	seenWithin("a revoke after the reconnection", value, "REVOKED")
}
