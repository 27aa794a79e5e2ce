package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyplane/keyplane/internal/testkit"
)

// crashEnv is the configuration of the crashed nodes: every attempt's failure is retried 200 ms later,
// nine times, and a killed node's leases lapse after 20 s (the least --webhook-lease takes).
var crashEnv = map[string]string{
	"KEYPLANE_ADMIN_PASSWORD":         "correct horse battery staple",
	"KEYPLANE_WEBHOOK_ALLOW_PRIVATE":  "true",
	"KEYPLANE_WEBHOOK_RETRY_SCHEDULE": "0s,200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms",
	"KEYPLANE_WEBHOOK_LEASE":          "20s",
	"KEYPLANE_CONFIG":                 "../../examples/keyplane.json", // declares order.created
}

// crashWait bounds each wait for the deliveries that follow a restart: a lease (20 s), the workers'
// poll and the retries, with room for a loaded machine.
const crashWait = 90 * time.Second

// TestWebhookCrash kills the real binary (SIGKILL: no shutdown, no deferred work) while webhook
// attempts are pending and while they are in flight, restarts it on the same data, and checks that
// every event still reaches the receiver: at least once on the wire, exactly once after deduplication
// by webhook-id, each request signed per Standard Webhooks, and the deliveries log ending every
// event with its one succeeded attempt.
//
//  1. The receiver is down (503 after 200 ms, so that attempts are in flight at any moment) while 40
//     events are created, API key creations and custom events mixed; the node is killed during the
//     retries, the receiver comes up, the node restarts. Attempts that were due but not leased go at
//     once; those the dead node held (in flight or queued behind the endpoint's bound) go once their
//     lease lapses.
//  2. The receiver is up but slow (300 ms an answer) while 20 more events are created; the node is
//     killed with requests in flight, whose bodies the receiver has, and restarts: those attempts are
//     made again after their lease, and the receiver dedupes.
func TestWebhookCrash(t *testing.T) {
	bin := buildKeyplaneBinary(t)
	eachDriver(t, func(t *testing.T, driver string) {
		// Safe in parallel: each driver has its own data dir or database, its own processes on
		// ports of their own, and its own receiver. Most of the time is spent waiting for leases.
		t.Parallel()
		crashScenario(t, bin, driver)
	})
}

// buildKeyplaneBinary returns cmd/keyplane built once for the package (keyplaneBinary: one build
// shared with the load harness's tests, instead of a build and a link for each test). The test is
// skipped only when no go toolchain can be run, and fails then too when KEYPLANE_REQUIRE_FAULTS is
// set (the crash tests are fault tests); a build that fails is a failure.
func buildKeyplaneBinary(t *testing.T) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err == nil {
		err = exec.Command(gobin, "env", "GOROOT").Run()
	}
	if err != nil {
		testkit.Require(t, "FAULTS", fmt.Sprintf("the go toolchain cannot be run to build the keyplane binary: %v", err))
	}
	return keyplaneBinary(t)
}

// kpProcess is a keyplane serve process.
type kpProcess struct {
	name   string // in the leak checker's reports
	cmd    *exec.Cmd
	url    string
	stdout *syncBuffer
	stderr *syncBuffer
	exited chan struct{}
}

// kpEnviron is the process environment: this one's without any KEYPLANE_ variable, plus vars.
func kpEnviron(vars map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KEYPLANE_") {
			env = append(env, kv)
		}
	}
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	return env
}

var listeningRE = regexp.MustCompile(`listening on http://(\S+)\s`)

// startKeyplaneServe runs `keyplane serve --addr 127.0.0.1:0` and waits for the address it prints.
// The process is killed when the test ends, if it still runs.
func startKeyplaneServe(t *testing.T, bin string, vars map[string]string) *kpProcess {
	t.Helper()
	p := &kpProcess{stdout: &syncBuffer{}, stderr: &syncBuffer{}, exited: make(chan struct{})}
	p.name = leaks(t).node(p.stderr, p.stdout)
	p.cmd = exec.Command(bin, "serve", "--addr", "127.0.0.1:0")
	p.cmd.Env = kpEnviron(vars)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start keyplane serve: %v", err)
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() { p.kill(t) })
	if !testkit.Wait(30*time.Second, func() bool {
		if m := listeningRE.FindStringSubmatch(p.stdout.String()); m != nil {
			p.url = "http://" + m[1]
			return true
		}
		select {
		case <-p.exited:
			t.Fatalf("keyplane serve exited before listening: %v\nstdout:\n%s\nstderr:\n%s", p.cmd.ProcessState, p.stdout.String(), p.stderr.String())
		default:
		}
		return false
	}) {
		t.Fatalf("keyplane serve printed no address within 30s\nstderr:\n%s", p.stderr.String())
	}
	return p
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *kpProcess) kill(t *testing.T) {
	select {
	case <-p.exited:
		return
	default:
	}
	if err := p.cmd.Process.Kill(); err != nil {
		t.Logf("kill keyplane serve: %v", err)
	}
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Errorf("keyplane serve (pid %d) did not exit within 10s of SIGKILL", p.cmd.Process.Pid)
	}
}

// Receiver modes.
const (
	rcvDown = iota // 503 after 200 ms
	rcvUp          // 200 at once
	rcvSlow        // 200 after 300 ms
)

// crashReceiver is a tenant's endpoint that dedupes by webhook-id. Every request's signature is
// checked with the endpoint's secret; what went wrong is kept for the test to report.
type crashReceiver struct {
	*httptest.Server
	mode     atomic.Int32
	inFlight atomic.Int32

	mu       sync.Mutex
	secret   string
	problems []string
	requests int                  // all requests
	refused  int                  // answered 503
	wire     map[string]int       // webhook-id → requests answered 2xx
	keyEvent map[string]string    // api_key.created: the key's id → the event's id
	events   map[string]delivered // webhook-id → the body first delivered with it
}

func newCrashReceiver(t *testing.T) *crashReceiver {
	rc := &crashReceiver{wire: map[string]int{}, keyEvent: map[string]string{}, events: map[string]delivered{}}
	rc.Server = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *crashReceiver) serve(w http.ResponseWriter, r *http.Request) {
	rc.inFlight.Add(1)
	defer rc.inFlight.Add(-1)
	body, err := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.requests++
	secret := rc.secret
	rc.mu.Unlock()
	if err != nil {
		// The sender died mid-body: nothing was delivered.
		return
	}
	id := r.Header.Get("webhook-id")
	var problem string
	var ev delivered
	if _, err := verifySignature(r.Header, body, secret); err != nil {
		problem = fmt.Sprintf("webhook-id %s: signature: %v", id, err)
	} else if err := json.Unmarshal(body, &ev); err != nil || ev.ID != id {
		problem = fmt.Sprintf("webhook-id %s: body %s (%v)", id, body, err)
	}
	mode := rc.mode.Load()
	rc.mu.Lock()
	if problem != "" {
		rc.problems = append(rc.problems, problem)
	}
	if mode != rcvDown && problem == "" {
		// Delivered: a receiver acts on the body it read whether or not the sender is still there
		// to hear the answer.
		rc.wire[id]++
		if _, ok := rc.events[id]; !ok {
			rc.events[id] = ev
		}
		if k, _ := ev.Data["apiKey"].(map[string]any); ev.Type == "api_key.created" && k != nil {
			rc.keyEvent[fmt.Sprint(k["id"])] = id
		}
	}
	if mode == rcvDown {
		rc.refused++
	}
	rc.mu.Unlock()
	switch mode {
	case rcvDown:
		sleepOrDone(r, 200*time.Millisecond)
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "down")
	case rcvSlow:
		time.Sleep(300 * time.Millisecond) // even if the sender is gone: the receiver works on
		w.WriteHeader(http.StatusOK)
	default:
		w.WriteHeader(http.StatusOK)
	}
}

func sleepOrDone(r *http.Request, d time.Duration) {
	select {
	case <-time.After(d):
	case <-r.Context().Done():
	}
}

// missing returns the ids of want that were not delivered.
func (rc *crashReceiver) missing(want map[string]bool) []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []string
	for id := range want {
		if rc.wire[id] == 0 {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// counts returns all requests, those refused, and those delivered (duplicates included).
func (rc *crashReceiver) counts() (requests, refused, wire int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, n := range rc.wire {
		wire += n
	}
	return rc.requests, rc.refused, wire
}

// crashNode is the API client side of one data dir or database across restarts.
type crashNode struct {
	*node
	bin  string
	vars map[string]string
	proc *kpProcess
}

func (c *crashNode) startServe() {
	c.t.Helper()
	p := startKeyplaneServe(c.t, c.bin, c.vars)
	c.proc, c.url = p, p.url
	// Registered after the process's kill, so run before it: a process that is still up when the test
	// ends shows its /metrics, audit trail and request log to the leak checker first.
	c.t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			c.node.harvest(p.name)
		}
	})
}

func (c *crashNode) killServe() {
	c.t.Helper()
	select {
	case <-c.proc.exited:
		c.t.Fatalf("keyplane serve exited on its own before it was killed: %v\nstderr:\n%s", c.proc.cmd.ProcessState, tail(c.proc.stderr.String(), 4000))
	default:
	}
	c.proc.kill(c.t)
	if c.proc.cmd.ProcessState == nil || c.proc.cmd.ProcessState.Success() {
		c.t.Fatalf("keyplane serve was not killed: %v", c.proc.cmd.ProcessState)
	}
}

// createEvents creates n events, alternately API keys (their events' ids are learned from the
// deliveries log and the receiver) and custom order.created events (whose ids the API answers). It
// returns the custom events' ids and the keys' ids.
func (c *crashNode) createEvents(ws string, from, n int) (custom, keys []string) {
	c.t.Helper()
	for i := from; i < from+n; i++ {
		if i%2 == 0 {
			k := c.key(ws, map[string]any{"name": fmt.Sprintf("crash %d", i), "keyType": "secret"})
			keys = append(keys, k["id"].(string))
			continue
		}
		d := c.must(202, req{method: "POST", path: "/v1/events", cred: c.admin, ws: ws,
			body: map[string]any{"type": "order.created", "data": map[string]any{"n": i}}}).data()
		if d["endpoints"] != float64(1) {
			c.t.Fatalf("event %d queued for %v endpoints, want 1", i, d["endpoints"])
		}
		custom = append(custom, d["id"].(string))
	}
	return custom, keys
}

// deliveryLog reads an endpoint's whole deliveries log, following the cursor.
func (c *crashNode) deliveryLog(ws, endpoint string) []map[string]any {
	c.t.Helper()
	return c.listAll("/v1/webhooks/"+endpoint+"/deliveries", ws)
}

// waitDelivered polls the receiver until every id of want was delivered, or fails after d, showing
// what the deliveries log says of the missing ones.
func (c *crashNode) waitDelivered(rc *crashReceiver, ws, endpoint string, want map[string]bool, d time.Duration, what string) time.Duration {
	c.t.Helper()
	start := time.Now()
	var miss []string
	if testkit.Wait(d, func() bool { miss = rc.missing(want); return len(miss) == 0 }) {
		return time.Since(start)
	}
	byEvent := map[string][]string{}
	for _, a := range c.deliveryLog(ws, endpoint) {
		id := a["eventId"].(string)
		byEvent[id] = append(byEvent[id], fmt.Sprintf("#%v %v %v", a["attempt"], a["status"], a["error"]))
	}
	var lines []string
	for _, id := range miss {
		lines = append(lines, fmt.Sprintf("  %s: %v", id, byEvent[id]))
	}
	c.t.Fatalf("%s: %d of %d events not delivered within %s; their attempts, newest first:\n%s\nserve's log:\n%s",
		what, len(miss), len(want), d, strings.Join(lines, "\n"), tail(c.proc.stderr.String(), 4000))
	return 0
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// newCrashNode prepares a fresh data dir (and, on PostgreSQL, a fresh database) for keyplane serve
// processes run with env, and makes its root keys with the binary itself, as an operator would: one
// with the admin scope, one with the verify scope. It starts no process.
func newCrashNode(t *testing.T, bin, driver string, env map[string]string) *crashNode {
	t.Helper()
	dataDir, dbURL := config(t, driver)
	vars := map[string]string{"KEYPLANE_DATA_DIR": dataDir}
	if dbURL != "" {
		vars["KEYPLANE_DATABASE_URL"] = dbURL
	}
	maps.Copy(vars, env)
	leaks(t).env(func(k string) string { return vars[k] })
	c := &crashNode{node: &node{t: t, dataDir: dataDir, dbURL: dbURL,
		client: &http.Client{Transport: validating(t), Timeout: 30 * time.Second}}, bin: bin, vars: vars}
	c.admin = c.rootKey("crash admin", "admin")
	c.verifier = c.rootKey("crash verify", "verify")
	return c
}

// rootKey runs `keyplane root-keys create` on the node's data and returns the key it prints.
func (c *crashNode) rootKey(name, scopes string) string {
	c.t.Helper()
	cmd := exec.Command(c.bin, "root-keys", "create", "--name", name, "--scopes", scopes)
	cmd.Env = kpEnviron(c.vars)
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		c.t.Fatalf("keyplane root-keys create: %v\n%s", err, stderr)
	}
	key := strings.TrimSpace(string(out))
	leaks(c.t).secret("root key printed by keyplane root-keys create", key)
	return key
}

func crashScenario(t *testing.T, bin, driver string) {
	began := time.Now()
	c := newCrashNode(t, bin, driver, crashEnv)
	c.startServe()

	rc := newCrashReceiver(t)
	rc.mode.Store(rcvDown)
	ws := c.workspace("crash", map[string]any{"maxKeys": 1000})
	ep := c.webhook(ws, map[string]any{"url": rc.URL + "/hooks", "eventTypes": []string{"*"}})
	epID := ep["id"].(string)
	rc.mu.Lock()
	rc.secret = ep["secret"].(string)
	rc.mu.Unlock()

	// 1. Down receiver, killed during the retries.
	const phase1, phase2 = 40, 20
	created := time.Now()
	custom, keys := c.createEvents(ws, 0, phase1)
	createdIn := time.Since(created)
	// Kill after two rounds of the endpoint's 8 attempts at once, well before the schedule could run
	// out for any event: 10 attempts of at least 200 ms each with 200 ms between them, 8 at a time.
	const refusals = 16
	testkit.EventuallyNil(t, 10*time.Second, func() error {
		if _, refused, _ := rc.counts(); refused < refusals {
			return fmt.Errorf("the down receiver got %d requests, want %d", refused, refusals)
		}
		return nil
	})
	inFlightAtKill := rc.inFlight.Load()
	c.killServe()
	_, refusedAtKill, _ := rc.counts()
	rc.mode.Store(rcvUp)
	c.startServe()
	// The key creations' event ids: from the deliveries log, which holds every event's attempts.
	want := map[string]bool{}
	for _, id := range custom {
		want[id] = true
	}
	keyEvents := map[string]bool{}
	for _, a := range c.deliveryLog(ws, epID) {
		if a["eventType"] == "api_key.created" {
			keyEvents[a["eventId"].(string)] = true
		}
	}
	if len(keyEvents) != len(keys) {
		t.Fatalf("the deliveries log holds %d api_key.created events, want %d (one per key created)", len(keyEvents), len(keys))
	}
	for id := range keyEvents {
		want[id] = true
	}
	took1 := c.waitDelivered(rc, ws, epID, want, crashWait, "after the kill during retries")
	t.Logf("%s: %d events created in %s; killed after %d refused attempts (%d in flight); all delivered %s after the restart",
		driver, phase1, createdIn.Round(time.Millisecond), refusedAtKill, inFlightAtKill, took1.Round(time.Millisecond))

	// 2. Slow receiver, killed with requests in flight.
	rc.mode.Store(rcvSlow)
	custom2, keys2 := c.createEvents(ws, phase1, phase2)
	testkit.EventuallyNil(t, 10*time.Second, func() error {
		if n := rc.inFlight.Load(); n < 4 {
			return fmt.Errorf("the slow receiver never had 4 requests in flight (it has %d)", n)
		}
		return nil
	})
	inFlightAtKill = rc.inFlight.Load()
	c.killServe()
	c.startServe()
	restarted := time.Now()
	for _, id := range custom2 {
		want[id] = true
	}
	keyEvents2 := map[string]bool{}
	for _, a := range c.deliveryLog(ws, epID) {
		if id := a["eventId"].(string); a["eventType"] == "api_key.created" && !keyEvents[id] {
			keyEvents2[id] = true
		}
	}
	if len(keyEvents2) != len(keys2) {
		t.Fatalf("the deliveries log holds %d new api_key.created events, want %d", len(keyEvents2), len(keys2))
	}
	for id := range keyEvents2 {
		want[id] = true
	}
	took2 := c.waitDelivered(rc, ws, epID, want, crashWait, "after the kill during delivery")

	// The receiver: every event once after dedupe, at least once on the wire, nothing else, every
	// request signed.
	rc.mu.Lock()
	if len(rc.problems) > 0 {
		t.Errorf("%d requests failed the receiver's checks, the first: %s", len(rc.problems), rc.problems[0])
	}
	var extra []string
	for id := range rc.wire {
		if !want[id] {
			extra = append(extra, id)
		}
	}
	for _, k := range append(slices.Clone(keys), keys2...) {
		if id, ok := rc.keyEvent[k]; !ok || !want[id] {
			t.Errorf("no api_key.created event of key %s was delivered (got event %q)", k, id)
		}
	}
	unique := len(rc.wire)
	rc.mu.Unlock()
	if len(extra) > 0 {
		t.Errorf("the receiver got events no API call made: %v", extra)
	}
	if unique != len(want) || len(want) != phase1+phase2 {
		t.Errorf("the receiver got %d distinct events, want %d (%d made)", unique, len(want), phase1+phase2)
	}

	// The deliveries log: no attempt left pending, and every event's attempts end with its one
	// success. The attempts that were in flight at the second kill reached the receiver before it,
	// so the wait above may be over while they are still leased to the dead node: poll until they
	// have been made again and recorded.
	var log []map[string]any
	pending := 0
	if !testkit.Wait(crashWait, func() bool {
		log, pending = c.deliveryLog(ws, epID), 0
		for _, a := range log {
			if a["status"] == "pending" {
				pending++
			}
		}
		return pending == 0
	}) {
		t.Fatalf("%d attempts still pending %s after every event arrived\nserve's log:\n%s", pending, crashWait, tail(c.proc.stderr.String(), 4000))
	}
	t.Logf("%s: killed with %d requests in flight at the slow receiver; all received %s and all recorded %s after the restart",
		driver, inFlightAtKill, took2.Round(time.Millisecond), time.Since(restarted).Round(time.Millisecond))
	byEvent := map[string][]map[string]any{}
	for _, a := range log {
		id := a["eventId"].(string)
		byEvent[id] = append(byEvent[id], a)
	}
	for id := range want {
		attempts := byEvent[id]
		if len(attempts) == 0 {
			t.Errorf("event %s: no attempt in the deliveries log", id)
			continue
		}
		// Newest first by id; the attempt numbers must agree.
		last := attempts[0]
		succeeded := 0
		for _, a := range attempts {
			if a["attempt"].(float64) > last["attempt"].(float64) {
				t.Errorf("event %s: attempt %v is listed after attempt %v", id, a["attempt"], last["attempt"])
			}
			if a["status"] == "succeeded" {
				succeeded++
			}
		}
		if last["status"] != "succeeded" || last["statusCode"] != float64(200) || succeeded != 1 {
			t.Errorf("event %s: the last of %d attempts is %v (%v), with %d succeeded; want it the one success", id, len(attempts), last["status"], last["error"], succeeded)
		}
	}
	for id := range byEvent {
		if !want[id] {
			t.Errorf("the deliveries log holds attempts of event %s, which no API call made", id)
		}
	}
	// The requests the second kill cut short reached the receiver and were made again once their
	// lease lapsed: duplicates on the wire, which the receiver deduped.
	requests, refused, wire := rc.counts()
	dups := wire - unique
	if dups < 1 {
		t.Errorf("no event reached the receiver twice, though the second kill cut %d requests short: they were not made again", inFlightAtKill)
	}
	t.Logf("%s: %d events, %d requests (%d refused while down, %d delivered: %d duplicates after the kills), %d attempts logged; %s in all",
		driver, len(want), requests, refused, wire, dups, len(log), time.Since(began).Round(time.Millisecond))
}
