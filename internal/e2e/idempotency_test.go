package e2e

import (
	"database/sql"
	"fmt"
	"sync"
	"testing"
)

// TestIdempotencyKeyLeakCheck: a key created with an Idempotency-Key, then replayed, on the real
// binary. The replay is the first answer, keyValue and all, with its own X-Request-Id; the answer
// kept for it is in the database (the replay proves it), and the test's leak checker, which searches
// every byte of the data dir's files and every row of every PostgreSQL table for the keyValue it
// learned from the answers, proves it is kept sealed. On PostgreSQL the kept row is counted too, so
// that the search is known to have passed over it.
func TestIdempotencyKeyLeakCheck(t *testing.T) {
	eachDriver(t, func(t *testing.T, driver string) {
		n := start(t, driver, nil)
		ws := n.workspace("idem", nil)
		create := req{method: "POST", path: "/v1/api-keys", cred: n.admin, ws: ws, body: map[string]any{"name": "retried", "keyType": "secret"},
			headers: map[string]string{"Idempotency-Key": "e2e-create-1"}}
		first := n.must(201, create)
		again := n.must(201, create)
		value, _ := first.data()["keyValue"].(string)
		if value == "" || again.data()["keyValue"] != value || string(again.Raw) != string(first.Raw) {
			t.Fatalf("the replay is not the first answer:\n%s\n%s", first.Raw, again.Raw)
		}
		if first.Header.Get("Idempotent-Replayed") != "" || again.Header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("Idempotent-Replayed: %q then %q, want none then true", first.Header.Get("Idempotent-Replayed"), again.Header.Get("Idempotent-Replayed"))
		}
		if id := again.Header.Get("X-Request-Id"); id == "" || id == first.Header.Get("X-Request-Id") {
			t.Errorf("the replay's X-Request-Id %q is not its own", id)
		}
		if list := n.must(200, req{method: "GET", path: "/v1/api-keys", cred: n.admin, ws: ws}).list(); len(list) != 1 {
			t.Errorf("%d keys, want 1", len(list))
		}
		n.fails(422, "idempotency_key_reused", req{method: "POST", path: "/v1/api-keys", cred: n.admin, ws: ws,
			body: map[string]any{"name": "another", "keyType": "secret"}, headers: map[string]string{"Idempotency-Key": "e2e-create-1"}})
		// Also a rotation's answer, which holds the new value.
		id := first.data()["id"].(string)
		rot := req{method: "POST", path: "/v1/api-keys/" + id + "/rotate", cred: n.admin, ws: ws, headers: map[string]string{"Idempotency-Key": "e2e-rotate-1"}}
		r1, r2 := n.must(200, rot), n.must(200, rot)
		if r1.data()["keyValue"] == nil || r2.data()["keyValue"] != r1.data()["keyValue"] {
			t.Errorf("rotation replay: %s then %s", r1.Raw, r2.Raw)
		}
		if driver == "postgres" {
			db, err := sql.Open("pgx", n.dbURL)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var kept int
			if err := db.QueryRow(`SELECT count(*) FROM idempotency_keys WHERE answer IS NOT NULL AND state = 'done'`).Scan(&kept); err != nil || kept != 2 {
				t.Errorf("kept answers: %d, %v; want 2", kept, err)
			}
		}
	})
}

// TestIdempotencyAcrossNodes: two nodes on one PostgreSQL take 20 concurrent requests with one
// Idempotency-Key, alternately: exactly one key is created, and every other answer is its replay or
// 409 idempotency_key_in_use.
func TestIdempotencyAcrossNodes(t *testing.T) {
	a := start(t, "postgres", nil)
	b := &node{t: t, dataDir: a.dataDir, dbURL: a.dbURL, admin: a.admin, verifier: a.verifier, stdout: &syncBuffer{}, logs: &syncBuffer{}, client: a.client}
	b.serve(nil)
	t.Cleanup(func() { b.stop() })
	ws := a.workspace("idem-nodes", nil)
	const n = 20
	answers := make([]*resp, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			on := a
			if i%2 == 1 {
				on = b
			}
			answers[i] = on.do(req{method: "POST", path: "/v1/api-keys", cred: a.admin, ws: ws, body: map[string]any{"name": "storm", "keyType": "secret"},
				headers: map[string]string{"Idempotency-Key": "storm"}})
		}()
	}
	wg.Wait()
	values := map[string]bool{}
	fresh, inUse := 0, 0
	for _, r := range answers {
		switch {
		case r.Status == 201:
			values[fmt.Sprint(r.data()["keyValue"])] = true
			if r.Header.Get("Idempotent-Replayed") == "" {
				fresh++
			}
		case r.Status == 409 && r.errCode() == "idempotency_key_in_use":
			inUse++
		default:
			t.Errorf("answer %d %s, want 201 or 409 idempotency_key_in_use", r.Status, r.Raw)
		}
	}
	if fresh != 1 || len(values) != 1 {
		t.Errorf("%d fresh answers, %d key values; want 1 and 1", fresh, len(values))
	}
	if list := a.must(200, req{method: "GET", path: "/v1/api-keys", cred: a.admin, ws: ws}).list(); len(list) != 1 {
		t.Errorf("%d keys created by 20 requests with one Idempotency-Key across two nodes, want 1", len(list))
	}
	t.Logf("20 requests on two nodes: 1 ran, %d replayed, %d in use", n-1-inUse, inUse)
}
