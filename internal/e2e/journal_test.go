package e2e

import (
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane/internal/keyformat"
	"github.com/keyplane/keyplane/internal/testkit"
)

// TestCLIRevocationReachesRunningBinary: the real binary serves SQLite with a cache TTL of an hour;
// a root key it has used (and cached) is revoked by `keyplane root-keys revoke`, another process,
// and the server refuses it: the change journal brought the revocation, not a TTL. A root key made
// by the CLI after the server started is accepted.
func TestCLIRevocationReachesRunningBinary(t *testing.T) {
	bin, dir, lc := binaryOnEmptyDir(t)
	cli := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, append(args, "--data-dir", dir)...).Output()
		if err != nil {
			t.Fatalf("keyplane %s: %v", strings.Join(args, " "), err)
		}
		return strings.TrimSpace(string(out))
	}
	doomed := cli("root-keys", "create", "--name", "doomed", "--scopes", "admin")
	lc.secret("root key printed by keyplane root-keys create", doomed)
	_, addr, _ := serveBinary(t, lc, bin, dir, "KEYPLANE_CACHE_TTL=1h")
	status := func(cred string) int {
		t.Helper()
		r, _ := http.NewRequest("GET", "http://"+addr+"/v1/workspaces", nil)
		r.Header.Set("Authorization", "Bearer "+cred)
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := status(doomed); s != 200 {
		t.Fatalf("the root key before its revocation: %d", s)
	}
	later := cli("root-keys", "create", "--name", "later", "--scopes", "admin")
	lc.secret("root key printed by keyplane root-keys create", later)
	var id string
	for _, line := range strings.Split(cli("root-keys", "list"), "\n") {
		if f := strings.Fields(line); len(f) >= 5 && f[1] == "doomed" {
			id = f[0]
		}
	}
	if id == "" {
		t.Fatal("no root key named doomed in root-keys list")
	}
	cli("root-keys", "revoke", "--id", id)
	// Within a second by design (the journal is polled every 250 ms, shown by the watcher's test);
	// waited for with a bound generous enough for a busy machine.
	testkit.Eventually(t, 30*time.Second, "the root key revoked by `keyplane root-keys revoke` refused", func() bool { return status(doomed) == 401 })
	if s := status(later); s != 200 {
		t.Fatalf("a root key made by the CLI while the server runs: %d", s)
	}
}

// TestSQLiteKeyChangesAcrossProcesses: two serve processes on one SQLite file (each with its own
// store handles, filter and journal, as two processes have), with a cache TTL of an hour: a key
// made on one verifies on the other once the journal brings its digest to the other's filter, and a
// key revoked or disabled on one is refused by the other, which had it cached.
func TestSQLiteKeyChangesAcrossProcesses(t *testing.T) {
	env := map[string]string{"KEYPLANE_CACHE_TTL": "1h"}
	a := start(t, "sqlite", env)
	b := &node{t: t, dataDir: a.dataDir, admin: a.admin, verifier: a.verifier, stdout: &syncBuffer{}, logs: &syncBuffer{}, client: a.client}
	b.serve(env)
	t.Cleanup(func() { b.stop() })
	ws := a.workspace("two-processes", nil)
	seen := func(what, value, want string) {
		t.Helper()
		testkit.EventuallyNil(t, 30*time.Second, func() error {
			if got := b.code(value); got != want {
				return fmt.Errorf("%s: the other process still answers %s, want %s", what, got, want)
			}
			return nil
		})
	}
	k := a.key(ws, map[string]any{"name": "made on a", "keyType": "secret"})
	seen("create", k["keyValue"].(string), "VALID")
	a.must(200, req{method: "DELETE", path: "/v1/api-keys/" + k["id"].(string), cred: a.admin, ws: ws})
	seen("revoke", k["keyValue"].(string), "REVOKED")
	k = a.key(ws, map[string]any{"name": "disabled on a", "keyType": "secret"})
	seen("create", k["keyValue"].(string), "VALID")
	a.must(200, req{method: "PATCH", path: "/v1/api-keys/" + k["id"].(string), cred: a.admin, ws: ws, body: map[string]any{"enabled": false}})
	seen("disable", k["keyValue"].(string), "DISABLED")
}

// TestCreateThenVerifyOverHTTP: keys made through the API by concurrent clients verify at once on
// the node that made them, while another client floods it with made-up keys: the membership filter
// never answers NOT_FOUND for a key that exists.
func TestCreateThenVerifyOverHTTP(t *testing.T) {
	n := start(t, "sqlite", nil)
	ws := n.workspace("storm", map[string]any{"maxKeys": 200})
	stop := make(chan struct{})
	flooded := make(chan struct{})
	go func() {
		defer close(flooded)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if c := n.code(keyformat.Generate("kp", "sk", "live")); c != "NOT_FOUND" {
				t.Errorf("a made-up key: %s", c)
			}
		}
	}()
	errs := make(chan string, 100)
	var done = make(chan struct{})
	const clients, each = 8, 10
	for c := range clients {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range each {
				k := n.key(ws, map[string]any{"name": "storm", "keyType": "secret"})
				if got := n.code(k["keyValue"].(string)); got != "VALID" {
					errs <- "client " + string(rune('0'+c)) + ", key " + string(rune('0'+i)) + ": " + got
					return
				}
			}
		}()
	}
	for range clients {
		<-done
	}
	close(stop)
	<-flooded
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
