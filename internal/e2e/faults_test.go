package e2e

import (
	"database/sql"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the integrity check

	"github.com/keyplane/keyplane/internal/store/storetest"
	"github.com/keyplane/keyplane/internal/testkit"
)

// privatePostgres is a PostgreSQL cluster of the test's own, which it stops and starts without
// disturbing the machine's shared server, that other tests use meanwhile.
type privatePostgres struct {
	t                    *testing.T
	bin, dir, data, sock string
	port                 int
	runAsPostgres        bool
	stopping             bool
}

// startPrivatePostgres runs initdb and starts the cluster on a free port. It fails when PostgreSQL is
// required (KEYPLANE_REQUIRE_POSTGRES) but its server programs cannot be found, and skips otherwise.
func startPrivatePostgres(t *testing.T) *privatePostgres {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if p, err := exec.LookPath("initdb"); err == nil {
		bins = append(bins, p)
	}
	if len(bins) == 0 {
		testkit.Require(t, storetest.RequirePostgres, "initdb not found: a private PostgreSQL cluster cannot be made")
	}
	sort.Strings(bins)
	p := &privatePostgres{t: t, bin: filepath.Dir(bins[len(bins)-1]), runAsPostgres: os.Geteuid() == 0}
	// Not t.TempDir: PostgreSQL refuses to run as root, so the cluster runs as the postgres user, who
	// must be able to reach the directory.
	dir, err := os.MkdirTemp("", "keyplane-pg-")
	if err != nil {
		t.Fatal(err)
	}
	p.dir, p.data, p.sock = dir, filepath.Join(dir, "data"), filepath.Join(dir, "sock")
	t.Cleanup(func() {
		p.stopping = true
		p.ctl("stop", "-m", "immediate")
		os.RemoveAll(dir)
	})
	if err := os.Mkdir(p.sock, 0o755); err != nil {
		t.Fatal(err)
	}
	if p.runAsPostgres {
		if out, err := exec.Command("chown", "-R", "postgres:postgres", dir).CombinedOutput(); err != nil {
			t.Fatalf("chown %s: %v: %s", dir, err, out)
		}
	}
	p.port = freePort(t)
	if out, err := p.command("initdb", "-D", p.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v: %s", err, out)
	}
	p.start()
	return p
}

// freePort returns a loopback TCP port that was free a moment ago, for a server the test starts that
// must be told its port (nginx, PostgreSQL, Redis).
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (p *privatePostgres) command(prog string, args ...string) *exec.Cmd {
	path := filepath.Join(p.bin, prog)
	if p.runAsPostgres {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	}
	return exec.Command(path, args...)
}

func (p *privatePostgres) ctl(args ...string) {
	p.t.Helper()
	out, err := p.command("pg_ctl", append([]string{"-D", p.data, "-w", "-t", "30"}, args...)...).CombinedOutput()
	if err != nil && !p.stopping {
		log, _ := os.ReadFile(filepath.Join(p.dir, "log"))
		p.t.Fatalf("pg_ctl %s: %v: %s\n%s", strings.Join(args, " "), err, out, log)
	}
}

// start starts the cluster and returns when it accepts connections.
func (p *privatePostgres) start() {
	p.t.Helper()
	p.ctl("start", "-l", filepath.Join(p.dir, "log"), "-o",
		fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off", p.port, p.sock))
}

// crash stops the cluster as a power cut would: no checkpoint, every connection dropped.
func (p *privatePostgres) crash() {
	p.t.Helper()
	p.ctl("stop", "-m", "immediate")
}

func (p *privatePostgres) url() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.port)
}

// TestPostgresRestart: PostgreSQL goes away under load and comes back. Two nodes share it: one with
// --cache-stale-if-error, one without. While it is down both answer 503 on /readyz, management calls
// and verifications of keys they never read answer 503 unavailable with Retry-After (never 500),
// the first node keeps verifying the keys it had read (past their cache TTL), and the second refuses
// them with 503. Once it is back both recover without a restart of their own: ready again, changes
// made and seen, and the LISTEN connection re-established.
func TestPostgresRestart(t *testing.T) {
	pg := startPrivatePostgres(t)
	staleEnv := map[string]string{"KEYPLANE_CACHE_TTL": "1s", "KEYPLANE_CACHE_STALE_IF_ERROR": "5m"}
	a := startOn(t, t.TempDir(), pg.url(), staleEnv)
	b := &node{t: t, dataDir: a.dataDir, dbURL: a.dbURL, admin: a.admin, verifier: a.verifier, stdout: &syncBuffer{}, logs: &syncBuffer{}, client: a.client}
	b.serve(map[string]string{"KEYPLANE_CACHE_TTL": "1s"})
	t.Cleanup(func() { b.stop() })

	ws := a.workspace("outage", nil)
	k := a.key(ws, map[string]any{"name": "read before", "keyType": "secret"})
	cached := k["keyValue"].(string)
	unread := a.key(ws, map[string]any{"name": "never read", "keyType": "secret"})["keyValue"].(string)
	for _, n := range []*node{a, b} {
		if c := n.code(cached); c != "VALID" {
			t.Fatalf("before the outage: %s", c)
		}
	}

	// Load on the stale-if-error node through the whole outage: every answer must be VALID.
	var stop atomic.Bool
	var wg sync.WaitGroup
	var answered, bad atomic.Int64
	var firstBad atomic.Value
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				r := a.do(req{method: "POST", path: "/v1/verify", cred: a.verifier, body: map[string]any{"key": cached}})
				answered.Add(1)
				if c, _ := r.data()["code"].(string); r.Status != 200 || c != "VALID" {
					bad.Add(1)
					firstBad.CompareAndSwap(nil, fmt.Sprintf("%d %s", r.Status, r.Raw))
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	t.Cleanup(func() { stop.Store(true); wg.Wait() })

	pg.crash()
	down := time.Now()
	time.Sleep(1500 * time.Millisecond) // past the cache TTL

	unavailable := func(n *node, r req) {
		t.Helper()
		res := n.fails(503, "unavailable", r)
		if res.Header.Get("Retry-After") == "" {
			t.Errorf("%s %s: 503 without Retry-After", r.method, r.path)
		}
	}
	for _, n := range []*node{a, b} {
		if r := n.do(req{method: "GET", path: "/readyz"}); r.Status != 503 {
			t.Errorf("/readyz while PostgreSQL is down: %d %s", r.Status, r.Raw)
		}
		unavailable(n, req{method: "POST", path: "/v1/verify", cred: n.verifier, body: map[string]any{"key": unread}})
		unavailable(n, req{method: "POST", path: "/v1/api-keys", cred: n.admin, ws: ws, body: map[string]any{"name": "during", "keyType": "secret"}})
		unavailable(n, req{method: "GET", path: "/v1/api-keys", cred: n.admin, ws: ws})
	}
	if c := a.code(cached); c != "VALID" {
		t.Fatalf("stale-if-error node, key read before the outage: %s", c)
	}
	unavailable(b, req{method: "POST", path: "/v1/verify", cred: b.verifier, body: map[string]any{"key": cached}})

	pg.start()
	t.Logf("PostgreSQL was down for %s", time.Since(down).Round(time.Millisecond))
	for _, n := range []*node{a, b} {
		if !testkit.Wait(20*time.Second, func() bool { return n.do(req{method: "GET", path: "/readyz"}).Status == 200 }) {
			t.Fatalf("not ready 20 s after PostgreSQL came back:\n%s", tail(n.logs.String(), 3000))
		}
	}
	stop.Store(true)
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d of %d verifications under load on the stale-if-error node were not VALID; first: %v", bad.Load(), answered.Load(), firstBad.Load())
	}
	t.Logf("%d verifications under load during the outage, all VALID", answered.Load())

	// Both nodes work again: a change made on one is seen by the other, which needs its LISTEN
	// connection back (the cache TTL is 1 s, so the wait below is shorter than it).
	made := a.key(ws, map[string]any{"name": "after", "keyType": "secret"})["keyValue"].(string)
	if c := b.code(made); c != "VALID" {
		t.Fatalf("key made after the outage, on the other node: %s", c)
	}
	testkit.Eventually(t, 20*time.Second, "both nodes LISTENing again", func() bool {
		return strings.Contains(b.logs.String(), "listening again") && strings.Contains(a.logs.String(), "listening again")
	})
	if c := b.code(cached); c != "VALID" {
		t.Fatalf("strict node after the outage: %s", c)
	}
	a.must(200, req{method: "DELETE", path: "/v1/api-keys/" + k["id"].(string), cred: a.admin, ws: ws})
	testkit.Eventually(t, 500*time.Millisecond, "a revocation after the outage seen by the other node", func() bool { return b.code(cached) == "REVOKED" })
	if !strings.Contains(a.logs.String(), "not ready: store unreachable") {
		t.Error("the outage was not logged")
	}
}

// TestSQLiteDiskFull: the SQLite data dir is on a small file system that fills up. Changes fail with
// 503 unavailable naming the full disk, as a whole (nothing half-written), while verifications and
// reads go on; once space is freed, changes work again without a restart. Afterwards the database
// passes SQLite's integrity check, holds exactly the acknowledged keys, and its audit chain verifies.
// It needs to mount a tmpfs (root, as in CI); KEYPLANE_REQUIRE_FAULTS makes that a requirement.
func TestSQLiteDiskFull(t *testing.T) {
	dir, err := os.MkdirTemp("", "keyplane-full-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", dir).CombinedOutput(); err != nil {
		testkit.Require(t, "FAULTS", fmt.Sprintf("cannot mount a tmpfs for the full disk (needs root): %v: %s", err, out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	n := startOn(t, dir, "", nil)
	ws := n.workspace("full", map[string]any{"maxKeys": 1000})
	var acked []map[string]any
	for i := range 5 {
		acked = append(acked, n.key(ws, map[string]any{"name": fmt.Sprintf("before %d", i), "keyType": "secret"}))
	}

	// Fill the file system, then make changes until one fails.
	ballast := filepath.Join(dir, "ballast")
	f, err := os.Create(ballast)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			break
		}
	}
	f.Close()
	var refused *resp
	for i := 0; i < 90 && refused == nil; i++ {
		r := n.do(req{method: "POST", path: "/v1/api-keys", cred: n.admin, ws: ws,
			body: map[string]any{"name": fmt.Sprintf("while full %d %s", i, strings.Repeat("x", 80)), "keyType": "secret", "description": strings.Repeat("y", 400), "meta": map[string]any{"pad": strings.Repeat("z", 3000)}}})
		switch r.Status {
		case 201:
			acked = append(acked, r.data())
		case 503:
			refused = r
		default:
			t.Fatalf("a change on a full disk: %d %s", r.Status, r.Raw)
		}
	}
	if refused == nil {
		t.Fatal("90 key creations on a full disk all succeeded")
	}
	if refused.errCode() != "unavailable" || !strings.Contains(string(refused.Raw), "out of disk space") {
		t.Fatalf("a change on a full disk: %s", refused.Raw)
	}
	t.Logf("%d keys acknowledged before the disk was full", len(acked))
	// Reads and verifications still work.
	if c := n.code(acked[0]["keyValue"].(string)); c != "VALID" {
		t.Fatalf("verification on a full disk: %s", c)
	}
	n.must(200, req{method: "GET", path: "/v1/api-keys?limit=1", cred: n.admin, ws: ws})

	// Space comes back: changes work without a restart.
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	acked = append(acked, n.key(ws, map[string]any{"name": "after", "keyType": "secret"}))

	n.stop()
	n.stop = nil
	for _, file := range []string{"keyplane.db", "requestlog.db"} {
		db, err := sql.Open("sqlite", filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		var integrity string
		if err := db.QueryRow("PRAGMA integrity_check").Scan(&integrity); err != nil || integrity != "ok" {
			t.Fatalf("integrity_check of %s: %q %v", file, integrity, err)
		}
		db.Close()
	}

	n.serve(nil)
	listed := map[string]bool{}
	for _, k := range n.must(200, req{method: "GET", path: "/v1/api-keys?limit=100", cred: n.admin, ws: ws}).list() {
		listed[k.(map[string]any)["id"].(string)] = true
	}
	if len(listed) != len(acked) {
		t.Errorf("%d keys stored, %d acknowledged", len(listed), len(acked))
	}
	for _, k := range acked {
		if !listed[k["id"].(string)] {
			t.Errorf("acknowledged key %s is gone", k["id"])
		}
		if c := n.code(k["keyValue"].(string)); c != "VALID" {
			t.Errorf("acknowledged key %s: %s", k["id"], c)
		}
	}
	chain := n.must(200, req{method: "GET", path: "/v1/audit-logs/verify", cred: n.admin, ws: ws}).data()
	if chain["valid"] != true {
		t.Fatalf("audit chain after the full disk: %v", chain)
	}
	if created := n.must(200, req{method: "GET", path: "/v1/audit-logs?action=api_key.created&limit=100", cred: n.admin, ws: ws}).list(); len(created) != len(acked) {
		t.Errorf("%d api_key.created audit entries for %d keys", len(created), len(acked))
	}
}

// TestRedisDown: the Redis that makes rate limits exact across nodes is killed under use and started
// again. Meanwhile verifications go on with each key's limit held by the node alone (never a 5xx),
// and the log says so once; once Redis is back, limits are decided there again, and the log says
// that too.
func TestRedisDown(t *testing.T) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		testkit.Require(t, "REDIS", "redis-server not found")
	}
	port := freePort(t)
	var redis *exec.Cmd
	startRedis := func() {
		t.Helper()
		redis = exec.Command(bin, "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
		if err := redis.Start(); err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, 5*time.Second, "redis-server listening", func() bool {
			c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
			if err == nil {
				c.Close()
			}
			return err == nil
		})
	}
	killRedis := func() {
		redis.Process.Kill()
		redis.Wait()
	}
	startRedis()
	t.Cleanup(killRedis)

	n := start(t, "sqlite", map[string]string{"KEYPLANE_REDIS_URL": fmt.Sprintf("redis://127.0.0.1:%d/0", port)})
	ws := n.workspace("redis", nil)
	// limited checks that a new key with a limit of 3 gets exactly 3 of 5 verifications.
	limited := func(what string) {
		t.Helper()
		value := n.key(ws, map[string]any{"name": what, "keyType": "secret", "rateLimit": map[string]any{"limit": 3, "windowMs": 60000}})["keyValue"].(string)
		var codes []string
		for range 5 {
			codes = append(codes, n.code(value))
		}
		if want := "VALID VALID VALID RATE_LIMITED RATE_LIMITED"; strings.Join(codes, " ") != want {
			t.Fatalf("%s: %v, want %s", what, codes, want)
		}
	}
	limited("redis up")
	killRedis()
	limited("redis down")
	limited("redis still down")
	if c := strings.Count(n.logs.String(), "Redis cannot be reached"); c != 1 {
		t.Errorf("the fallback was logged %d times, want once", c)
	}
	startRedis()
	time.Sleep(300 * time.Millisecond) // past the 250 ms within which a node does not ask a down Redis again
	limited("redis back")
	if !strings.Contains(n.logs.String(), "Redis answers again") {
		t.Errorf("the return of Redis was not logged:\n%s", tail(n.logs.String(), 2000))
	}
}

// TestHostileWebhookEndpoints: three endpoints of one workspace misbehave (one never answers, one
// trickles a byte at a time, one answers an endless body) beside one that answers at once. The good
// endpoint gets its event at once; the hanging and trickling attempts fail when the 15 s attempt
// timeout ends them; the endless answer is cut after the 4 KiB kept, so the attempt succeeds without
// the node reading the rest; and nothing of it stays in the node's memory.
func TestHostileWebhookEndpoints(t *testing.T) {
	t.Parallel() // most of it is waiting for the attempt timeout
	n := start(t, "sqlite", map[string]string{"KEYPLANE_WEBHOOK_ALLOW_PRIVATE": "true", "KEYPLANE_WEBHOOK_RETRY_SCHEDULE": "0s"})
	ws := n.workspace("hostile", nil)
	done := make(chan struct{})
	var endless atomic.Int64 // bytes the endless endpoint managed to write
	servers := map[string]http.HandlerFunc{
		"hang": func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-done:
			}
		},
		"trickle": func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(200)
			for {
				if _, err := w.Write([]byte("x")); err != nil {
					return
				}
				w.(http.Flusher).Flush()
				select {
				case <-r.Context().Done():
					return
				case <-done:
					return
				case <-time.After(200 * time.Millisecond):
				}
			}
		},
		"endless": func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(200)
			chunk := []byte(strings.Repeat("gigabytes ", 6554))
			for {
				k, err := w.Write(chunk)
				endless.Add(int64(k))
				if err != nil {
					return
				}
			}
		},
	}
	good := newReceiver(t, nil)
	endpoints := map[string]string{"good": n.webhook(ws, map[string]any{"url": good.URL + "/hook", "eventTypes": []string{"api_key.created"}})["id"].(string)}
	for name, h := range servers {
		s := httptest.NewServer(h)
		t.Cleanup(s.Close)
		endpoints[name] = n.webhook(ws, map[string]any{"url": s.URL + "/" + name, "eventTypes": []string{"api_key.created"}})["id"].(string)
	}
	t.Cleanup(func() { close(done) })
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	sent := time.Now()
	n.key(ws, map[string]any{"name": "event", "keyType": "secret"})
	good.waitFor(t, 1)
	if d := time.Since(sent); d > 5*time.Second {
		t.Errorf("the good endpoint waited %s behind the hostile ones", d)
	}
	final := func(name string) map[string]any {
		t.Helper()
		var last map[string]any
		testkit.Eventually(t, 40*time.Second, name+": a final attempt", func() bool {
			log := n.deliveries(ws, endpoints[name], "")
			if len(log) > 0 && log[0]["status"] != "pending" {
				last = log[0]
			}
			return last != nil
		})
		return last
	}
	for _, name := range []string{"hang", "trickle"} {
		d := final(name)
		if d["status"] != "failed" || !strings.Contains(fmt.Sprint(d["error"]), "timed out") {
			t.Errorf("%s: %v", name, d)
		}
		if ms, _ := d["durationMs"].(float64); ms < 14000 || ms > 20000 {
			t.Errorf("%s: the attempt took %v ms, want the 15 s timeout", name, d["durationMs"])
		}
	}
	d := final("endless")
	if body, _ := d["responseBody"].(string); d["status"] != "succeeded" || len(body) > 4096 || !strings.HasPrefix(body, "gigabytes") {
		t.Errorf("endless: status %v, %d bytes of body kept", d["status"], len(fmt.Sprint(d["responseBody"])))
	}
	// The server could write what fits in the sockets' buffers, and no more: the rest was not read.
	if w := endless.Load(); w > 64<<20 {
		t.Errorf("the endless endpoint wrote %d MiB: the node read its answer", w>>20)
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapInuse) - int64(before.HeapInuse); grown > 64<<20 {
		t.Errorf("the heap grew by %d MiB during the hostile deliveries", grown>>20)
	}
}
