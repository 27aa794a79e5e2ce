package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/keyplane/keyplane/internal/testkit"
)

// The storm's shape.
const (
	stormWorkers = 8
	stormKills   = 5
	// stormGrace is the expireOldAfterSeconds of the rotations that keep the old value working: longer
	// than the test, so that such a value is still VALID at the end.
	stormGrace = 3600
	// stormStall bounds each wait for the storm to make its acknowledged changes.
	stormStall = 60 * time.Second
)

// stormEnv is crashEnv with management rate limits that the storm never reaches: a 429 is an answer
// it does not plan for.
func stormEnv() map[string]string {
	env := maps.Clone(crashEnv)
	env["KEYPLANE_MANAGEMENT_RATE_LIMIT"] = "1000000/10s"
	env["KEYPLANE_MANAGEMENT_IP_RATE_LIMIT"] = "1000000/10s"
	// Several usage writes per round, so that a kill finds counts written and counts waiting.
	env["KEYPLANE_USAGE_FLUSH_INTERVAL"] = "1s"
	return env
}

// TestCrashConsistency SIGKILLs the real binary five times during a storm of key changes from 8
// clients (creates, updates, disables, enables, rotations with and without a grace period, revokes,
// repeated revokes, permanent deletes), restarting it each time on the same data, and then checks
// that the store never kept half a change:
//
//   - Each client owns its keys, so it knows what each of them must look like: every change answered
//     2xx is there; a change whose answer was lost (the connection died with the process) is read
//     back after the restart and must be there whole or not at all, and the client goes on from
//     what it finds.
//   - After the last restart every key the clients know of is there as they expect (GET, the list,
//     and every value it ever had verifying as it must: the current one VALID or DISABLED, old ones
//     EXPIRED or still in their grace period, all REVOKED after a revoke, all NOT_FOUND after a
//     delete; a recoverable key reveals the value the client holds), and no other key is.
//   - Each key's audit entries are exactly its changes, in order, the last one stamped with the
//     key's updatedAt; the hash chain verifies through the API and `keyplane audit verify`.
//   - A webhook receiver gets every event those changes imply, and none else: the outbox lost none.
//   - Verifications run throughout, in a workspace of their own (see stormUsage): a kill loses at most
//     the request log entries and usage counts that were waiting, and after a last, clean stop the
//     usage counts never exceed the raw log.
func TestCrashConsistency(t *testing.T) {
	bin := buildKeyplaneBinary(t)
	eachDriver(t, func(t *testing.T, driver string) {
		// Safe in parallel, as in TestWebhookCrash: each driver has its own data and processes.
		t.Parallel()
		crashConsistency(t, bin, driver)
	})
}

// stormVerifiers is how many clients verify during the storm, each one request at a time with a
// pause between: a load that leaves the storm's changes most of the machine.
const stormVerifiers = 2

// stormUsage verifies keys of a workspace of its own during the storm, and checks afterwards what the
// kills may have cost the request log and its usage counts.
//
// The bound is counted, not timed, so that a slow machine cannot make it flake: just before each kill
// it reads how many verifications were answered (A), then the process's
// keyplane_usage_uncounted_requests (U: entries logged and not yet in the rollups, an over-count) and
// keyplane_request_log_waiting_entries (W: logged, not yet written), and just after the kill how many
// verifications were started (S). An entry whose answer came before A was read was logged before the
// scrape, so it is in U (and W, if unwritten) or safe; any other entry the killed process logged is of
// a request started before the kill and not answered before A: one of S-A. So, over the kills:
//
//   - the rollups miss at most Σ(U + S - A) entries of the raw log (log - counts), and exceed it
//     never, per key and code;
//   - the log misses at most Σ(W + S - A) of the verifications answered.
//
// U and W are what waited at that moment: the entries of the last log flush interval and the counts
// of the last usage interval (1 s here). After the storm the last process is stopped with SIGTERM,
// which writes everything, so its share is exact.
type stormUsage struct {
	s    *storm
	load *usageLoad
	ws   string

	started, answered atomic.Int64
	mu                sync.Mutex
	// Over the kills: Σ(U + S - A) and Σ(W + S - A).
	countsBound, logBound int64
	sumU, sumW            int64 // Σ U and Σ W: what the bounds would be without requests in flight
	pendingA              int64
	pendingU, pendingW    int64
}

// run verifies until the storm stops, at whichever process runs now; a verification whose answer is
// lost to a kill is one started and not answered. One refused is taken back: S read just after a
// kill may still count it, which only loosens the bound.
func (su *stormUsage) run(rng *rand.Rand) {
	client := &http.Client{Timeout: 30 * time.Second}
	for !su.s.stop.Load() {
		base, _ := su.s.current()
		v := su.load.variants[rng.IntN(len(su.load.variants))]
		su.started.Add(1)
		_, err := su.load.verify(client, base, v)
		switch {
		case err == nil:
			su.answered.Add(1)
		case errors.Is(err, syscall.ECONNREFUSED):
			su.started.Add(-1) // no process took it (between a kill and the restart): it cannot be logged
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (su *stormUsage) beforeKill(c *crashNode) {
	a := su.answered.Load() // before the scrape: see the type's comment
	m := c.metrics("keyplane_usage_uncounted_requests", "keyplane_request_log_waiting_entries")
	su.mu.Lock()
	defer su.mu.Unlock()
	su.pendingA, su.pendingU, su.pendingW = a, int64(m["keyplane_usage_uncounted_requests"]), int64(m["keyplane_request_log_waiting_entries"])
}

func (su *stormUsage) afterKill() {
	s := su.started.Load()
	su.mu.Lock()
	defer su.mu.Unlock()
	su.countsBound += su.pendingU + s - su.pendingA
	su.logBound += su.pendingW + s - su.pendingA
	su.sumU += su.pendingU
	su.sumW += su.pendingW
}

// check stops the last process cleanly, starts another, and compares the raw log with the usage
// counts and the answers.
func (su *stormUsage) check(c *crashNode, driver string) {
	t := c.t
	t.Helper()
	c.termServe()
	c.startServe()
	logged, counted := c.logTally(su.ws), c.usageTally(su.ws, su.load.keyIDs())
	if !counted.within(logged) {
		t.Errorf("usage counts exceed the raw log after the kills:\ncounts:\n%vlog:\n%v", counted, logged)
	}
	started, answered := su.started.Load(), su.answered.Load()
	gap, missing := logged.total()-counted.total(), answered-logged.total()
	if gap > su.countsBound {
		t.Errorf("the usage counts miss %d entries of the raw log; the kills may cost at most %d", gap, su.countsBound)
	}
	if missing > su.logBound || logged.total() > started {
		t.Errorf("the raw log holds %d entries of %d verifications started, %d answered: it may miss at most %d", logged.total(), started, answered, su.logBound)
	}
	if answered == 0 || counted.total() == 0 {
		t.Errorf("%d verifications answered, %d counted: the storm's verifications did not run", answered, counted.total())
	}
	t.Logf("%s: %d verifications started, %d answered; the raw log holds %d, the usage counts %d: %d entries missing from the log (at most %d; %d waited to be written at the kills), %d from the counts (at most %d; %d waited to be counted)",
		driver, started, answered, logged.total(), counted.total(), max(0, missing), su.logBound, su.sumW, gap, su.countsBound, su.sumU)
}

// crashChange is what a change must leave behind: its audit entry's action and its events' types.
type crashChange struct {
	action string
	events []string
}

// keyChange is a change audited as action and announced by an event of the same type.
func keyChange(action string) *crashChange {
	return &crashChange{action: action, events: []string{action}}
}

// oldValue is a value a rotation replaced; expired once a rotation without grace came after it.
type oldValue struct {
	value   string
	expired bool
}

// crashKey is what a storm client knows of one of its keys.
type crashKey struct {
	id, name    string
	recoverable bool
	enabled     bool
	revoked     bool
	deleted     bool
	value       string // current value; "" when it was never learned (a lost answer, not recoverable)
	old         []oldValue
	start, end  string // as last answered or read: a lost rotation happened if they moved
	changes     []*crashChange
}

func (k *crashKey) values() []string {
	var out []string
	if k.value != "" {
		out = append(out, k.value)
	}
	for _, o := range k.old {
		out = append(out, o.value)
	}
	return out
}

// wantCode is how value verifies: old is its entry in k.old, nil for the current value.
func (k *crashKey) wantCode(old *oldValue) string {
	switch {
	case k.deleted:
		return "NOT_FOUND"
	case k.revoked:
		return "REVOKED"
	case old != nil && old.expired:
		return "EXPIRED"
	case !k.enabled:
		return "DISABLED"
	}
	return "VALID"
}

// stormOp is one request of the storm and how to fold it into the model.
type stormOp struct {
	what         string
	k            *crashKey
	create       bool
	method, path string
	body         any
	want         int          // the status of success
	change       *crashChange // what the server records when the op applies; nil: nothing
	// apply folds the op into k, from the answer's data or, for a lost answer, the key read back.
	apply func(d map[string]any)
	// happened tells from the key read back whether the op whose answer was lost applied; an error
	// is a change that applied in part.
	happened func(got map[string]any) (bool, error)
}

// answer is what a storm request got: a status and body, or err when no answer came.
type answer struct {
	status int
	raw    []byte
	body   map[string]any
	err    error
}

func (a answer) data() map[string]any {
	d, _ := a.body["data"].(map[string]any)
	return d
}

// storm is the server as the clients see it: the address of the process that runs now, which
// changes with every restart, and its generation.
type storm struct {
	c  *crashNode
	ws string
	// client does without the node's check of every answer against the OpenAPI document (the
	// final reads have it): the storm's clients stay quick, so that more of their requests are in
	// the server's hands, and more of those in a transaction, when the process is killed.
	client *http.Client
	acked  atomic.Int64 // changes answered 2xx, all rounds
	stop   atomic.Bool  // clients start no new change

	mu   sync.Mutex
	cond *sync.Cond
	url  string
	gen  int
	last bool // no process will follow the current one
}

func newStorm(c *crashNode, ws string) *storm {
	s := &storm{c: c, ws: ws, url: c.url, client: &http.Client{Timeout: 30 * time.Second}}
	s.cond = sync.NewCond(&s.mu)
	return s
}

func (s *storm) current() (string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.url, s.gen
}

// next waits for a process newer than generation gen; false when none will come.
func (s *storm) next(gen int) (string, int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.gen <= gen && !s.last {
		s.cond.Wait()
	}
	if s.gen <= gen {
		return "", 0, false
	}
	return s.url, s.gen, true
}

func (s *storm) restarted(url string) {
	s.mu.Lock()
	s.url, s.gen = url, s.gen+1
	s.mu.Unlock()
	s.cond.Broadcast()
}

// end stops the clients: no new change, and no restart to wait for.
func (s *storm) end() {
	s.stop.Store(true)
	s.mu.Lock()
	s.last = true
	s.mu.Unlock()
	s.cond.Broadcast()
}

// call makes one request as the admin root key (or, with verify, the verify root key) to the
// process at base.
func (s *storm) call(base, method, path string, body any, verify bool) answer {
	var rd io.Reader
	if body != nil {
		j, err := json.Marshal(body)
		if err != nil {
			return answer{err: err}
		}
		rd = bytes.NewReader(j)
	}
	hr, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		return answer{err: err}
	}
	if verify {
		hr.Header.Set("Authorization", "Bearer "+s.c.verifier)
	} else {
		hr.Header.Set("Authorization", "Bearer "+s.c.admin)
		hr.Header.Set("X-Workspace-Id", s.ws)
	}
	if rd != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	res, err := s.client.Do(hr)
	if err != nil {
		return answer{err: err}
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return answer{err: err}
	}
	a := answer{status: res.StatusCode, raw: raw}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

// stormWorker is one client of the storm. It alone changes its keys, one request at a time.
type stormWorker struct {
	s    *storm
	t    *testing.T
	g    int
	rng  *rand.Rand
	keys []*crashKey
	n    int // names made
	url  string
	gen  int
	dead bool

	// lost counts the answers that did not come: refused of those the process never took (it was
	// dead or not yet up), lostApplied of the rest those that applied all the same.
	sent, acked, failed, lost, refused, lostApplied int
	verified                                        int // new values verified during the storm
}

func (w *stormWorker) run() {
	w.url, w.gen = w.s.current()
	for !w.dead && !w.s.stop.Load() {
		w.step()
	}
}

func (w *stormWorker) name(kind string) string {
	w.n++
	return fmt.Sprintf("storm w%d %s%d", w.g, kind, w.n)
}

func (w *stormWorker) live() []*crashKey {
	var out []*crashKey
	for _, k := range w.keys {
		if !k.deleted {
			out = append(out, k)
		}
	}
	return out
}

func (w *stormWorker) step() {
	op := w.pick()
	w.sent++
	a := w.s.call(w.url, op.method, op.path, op.body, false)
	switch {
	case a.err != nil:
		w.lost++
		if errors.Is(a.err, syscall.ECONNREFUSED) {
			w.refused++
		}
		w.resolve(op)
	case a.status == op.want:
		w.acked++
		w.s.acked.Add(1)
		w.fold(op, a.data())
		if op.k.value != "" && (op.create || op.change != nil && op.change.action == "api_key.rotated") {
			w.verifyNew(op)
		}
	default:
		w.failed++
		w.t.Errorf("worker %d: %s: %d %s", w.g, op.what, a.status, a.raw)
	}
}

// verifyNew verifies the value a create or rotation just answered: while the storm goes on, and
// the process dies and comes back, a value is usable as soon as its change was acknowledged. An answer
// lost to a kill tells nothing.
func (w *stormWorker) verifyNew(op *stormOp) {
	a := w.s.call(w.url, "POST", "/v1/verify", map[string]any{"key": op.k.value}, true)
	if a.err != nil {
		return
	}
	w.verified++
	if code, _ := a.data()["code"].(string); a.status != 200 || code != op.k.wantCode(nil) {
		w.t.Errorf("worker %d: after %s, the new value verifies %d %s, want %s", w.g, op.what, a.status, a.raw, op.k.wantCode(nil))
	}
}

func (w *stormWorker) fold(op *stormOp, d map[string]any) {
	op.apply(d)
	if op.create {
		w.keys = append(w.keys, op.k)
	}
	if op.change != nil {
		op.k.changes = append(op.k.changes, op.change)
	}
}

// resolve finds out, once the process has been restarted, whether an op whose answer was lost
// applied, and folds it into the model if it did.
func (w *stormWorker) resolve(op *stormOp) {
	for {
		url, gen, ok := w.s.next(w.gen)
		if !ok {
			w.t.Errorf("worker %d: %s: no answer, and no restart followed", w.g, op.what)
			w.dead = true
			return
		}
		w.url, w.gen = url, gen
		got, err := w.readBack(op)
		if err == errNoAnswer {
			continue // killed again while reading
		}
		if err != nil {
			w.t.Errorf("worker %d: %s, whose answer was lost: %v", w.g, op.what, err)
			w.dead = true
			return
		}
		if op.create && got == nil {
			return
		}
		applied, err := op.happened(got)
		if err != nil {
			w.t.Errorf("worker %d: %s, whose answer was lost: %v", w.g, op.what, err)
			w.dead = true
			return
		}
		if !applied {
			return
		}
		w.lostApplied++
		value := ""
		if op.k.recoverable && got != nil && got["revokedAt"] == nil {
			// The value the lost answer held, if it held one: a recoverable key reveals it.
			a := w.s.call(w.url, "POST", "/v1/api-keys/"+got["id"].(string)+"/reveal", nil, false)
			if a.err != nil {
				continue
			}
			if a.status != 200 {
				w.t.Errorf("worker %d: reveal %s after %s: %d %s", w.g, got["id"], op.what, a.status, a.raw)
			}
			value, _ = a.data()["keyValue"].(string)
		}
		w.fold(op, got)
		if value != "" && op.k.value == "" {
			op.k.value = value
		}
		return
	}
}

var errNoAnswer = fmt.Errorf("no answer")

// readBack reads the op's key as it is now: from the list for a create (by its unique name; nil if
// absent), else by id (nil if 404).
func (w *stormWorker) readBack(op *stormOp) (map[string]any, error) {
	if op.create {
		keys, err := w.listKeys()
		if err != nil {
			return nil, err
		}
		var found map[string]any
		for _, k := range keys {
			if k["name"] == op.k.name {
				if found != nil {
					return nil, fmt.Errorf("two keys named %q", op.k.name)
				}
				found = k
			}
		}
		return found, nil
	}
	a := w.s.call(w.url, "GET", "/v1/api-keys/"+op.k.id, nil, false)
	switch {
	case a.err != nil:
		return nil, errNoAnswer
	case a.status == 404:
		return nil, nil
	case a.status != 200:
		return nil, fmt.Errorf("GET %s: %d %s", op.k.id, a.status, a.raw)
	}
	return a.data(), nil
}

func (w *stormWorker) listKeys() ([]map[string]any, error) {
	var out []map[string]any
	cursor := ""
	for {
		q := "?limit=100"
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		a := w.s.call(w.url, "GET", "/v1/api-keys"+q, nil, false)
		if a.err != nil {
			return nil, errNoAnswer
		}
		if a.status != 200 {
			return nil, fmt.Errorf("list keys: %d %s", a.status, a.raw)
		}
		list, _ := a.body["data"].([]any)
		for _, k := range list {
			out = append(out, k.(map[string]any))
		}
		next, _ := a.body["nextCursor"].(string)
		if next == "" {
			return out, nil
		}
		cursor = next
	}
}

// pick chooses the next change: a create while the client has few keys (and now and then), else a
// change that the key's state allows, so that every answer but a lost one is a success.
func (w *stormWorker) pick() *stormOp {
	live := w.live()
	if len(live) < 3 || (len(live) < 10 && w.rng.IntN(8) == 0) {
		return w.opCreate()
	}
	k := live[w.rng.IntN(len(live))]
	r := w.rng.IntN(12)
	switch {
	case k.revoked:
		if r < 3 {
			return w.opRevoke(k) // again: answers the same, changes nothing
		}
		return w.opDelete(k)
	case !k.enabled:
		switch {
		case r < 3:
			return w.opEnabled(k, true)
		case r < 4:
			return w.opRotate(k, 0)
		case r < 5:
			return w.opRotate(k, stormGrace)
		case r < 7:
			return w.opUpdate(k, false)
		case r < 8:
			return w.opUpdate(k, true)
		case r < 9:
			return w.opRevoke(k)
		}
		return w.opDelete(k)
	}
	switch {
	case r < 3:
		return w.opEnabled(k, false)
	case r < 5:
		return w.opRotate(k, 0)
	case r < 7:
		return w.opRotate(k, stormGrace)
	case r < 9:
		return w.opUpdate(k, false)
	case r < 10:
		return w.opUpdate(k, true)
	}
	return w.opRevoke(k)
}

func (w *stormWorker) opCreate() *stormOp {
	k := &crashKey{name: w.name("c"), enabled: true}
	body := map[string]any{"name": k.name, "meta": map[string]any{"worker": w.g}}
	if w.rng.IntN(6) == 0 {
		body["keyType"] = "publishable"
		k.recoverable = true
	} else {
		body["keyType"] = "secret"
		k.recoverable = w.rng.IntN(2) == 0
		body["recoverable"] = k.recoverable
	}
	return &stormOp{what: "create " + k.name, k: k, create: true, method: "POST", path: "/v1/api-keys", body: body,
		want: 201, change: keyChange("api_key.created"),
		apply: func(d map[string]any) {
			k.id, _ = d["id"].(string)
			k.value, _ = d["keyValue"].(string)
			k.start, _ = d["start"].(string)
			k.end, _ = d["end"].(string)
		},
		happened: func(got map[string]any) (bool, error) { return got != nil, nil },
	}
}

// opUpdate renames the key (the unique name tells whether a lost update applied), with another
// setting changed too; flip also enables or disables it in the same call.
func (w *stormWorker) opUpdate(k *crashKey, flip bool) *stormOp {
	name := w.name("u")
	body := map[string]any{"name": name}
	switch w.rng.IntN(4) {
	case 0:
		body["meta"] = map[string]any{"worker": w.g, "n": w.n}
	case 1:
		body["permissions"] = []string{"orders:read", "orders:write"}[:w.rng.IntN(3)]
	case 2:
		// Beyond the expiry notices' 24 hours, which are events without audit entries.
		body["expiresAt"] = time.Now().Add(30*24*time.Hour + time.Duration(w.n)*time.Minute).UTC().Format(time.RFC3339)
	case 3:
		body["rateLimit"] = map[string]any{"limit": 1000 + w.n, "windowMs": 60000}
	}
	change := keyChange("api_key.updated")
	what := "update " + k.id
	if flip {
		body["enabled"] = !k.enabled
		flipped := "api_key.disabled"
		if !k.enabled {
			flipped = "api_key.enabled"
		}
		change.events = append(change.events, flipped)
		what = "update and " + strings.TrimPrefix(flipped, "api_key.") + " " + k.id
	}
	return &stormOp{what: what, k: k, method: "PATCH", path: "/v1/api-keys/" + k.id, body: body, want: 200, change: change,
		apply: func(map[string]any) {
			k.name = name
			if flip {
				k.enabled = !k.enabled
			}
		},
		happened: func(got map[string]any) (bool, error) {
			if got == nil {
				return false, fmt.Errorf("the key is gone")
			}
			renamed := got["name"] == name
			if !renamed && got["name"] != k.name {
				return false, fmt.Errorf("named %q, neither %q before nor %q after", got["name"], k.name, name)
			}
			if flip && (got["enabled"] != k.enabled) != renamed {
				return false, fmt.Errorf("half applied: renamed %v, enabled %v (was %v)", renamed, got["enabled"], k.enabled)
			}
			return renamed, nil
		},
	}
}

func (w *stormWorker) opEnabled(k *crashKey, enabled bool) *stormOp {
	action := "api_key.disabled"
	if enabled {
		action = "api_key.enabled"
	}
	return &stormOp{what: strings.TrimPrefix(action, "api_key.") + " " + k.id, k: k, method: "PATCH", path: "/v1/api-keys/" + k.id,
		body: map[string]any{"enabled": enabled}, want: 200, change: keyChange(action),
		apply: func(map[string]any) { k.enabled = enabled },
		happened: func(got map[string]any) (bool, error) {
			if got == nil {
				return false, fmt.Errorf("the key is gone")
			}
			return got["enabled"] == enabled, nil
		},
	}
}

func (w *stormWorker) opRotate(k *crashKey, grace int) *stormOp {
	return &stormOp{what: fmt.Sprintf("rotate %s (grace %ds)", k.id, grace), k: k, method: "POST", path: "/v1/api-keys/" + k.id + "/rotate",
		body: map[string]any{"expireOldAfterSeconds": grace}, want: 200, change: keyChange("api_key.rotated"),
		apply: func(d map[string]any) {
			if grace == 0 {
				for i := range k.old {
					k.old[i].expired = true
				}
			}
			if k.value != "" {
				k.old = append(k.old, oldValue{value: k.value, expired: grace == 0})
			}
			k.value, _ = d["keyValue"].(string)
			k.start, _ = d["start"].(string)
			k.end, _ = d["end"].(string)
		},
		happened: func(got map[string]any) (bool, error) {
			if got == nil {
				return false, fmt.Errorf("the key is gone")
			}
			return got["start"] != k.start || got["end"] != k.end, nil
		},
	}
}

// opRevoke revokes the key, or revokes it again, which must answer the same and record nothing.
func (w *stormWorker) opRevoke(k *crashKey) *stormOp {
	op := &stormOp{what: "revoke " + k.id, k: k, method: "DELETE", path: "/v1/api-keys/" + k.id, want: 200,
		apply: func(map[string]any) { k.revoked = true },
		happened: func(got map[string]any) (bool, error) {
			if got == nil {
				return false, fmt.Errorf("the key is gone")
			}
			return got["revokedAt"] != nil, nil
		},
	}
	if k.revoked {
		op.what = "revoke again " + k.id
		op.happened = func(map[string]any) (bool, error) { return false, nil }
	} else {
		op.change = keyChange("api_key.revoked")
	}
	return op
}

func (w *stormWorker) opDelete(k *crashKey) *stormOp {
	return &stormOp{what: "delete " + k.id, k: k, method: "DELETE", path: "/v1/api-keys/" + k.id + "?permanent=true", want: 200,
		change: keyChange("api_key.deleted"),
		apply:  func(map[string]any) { k.deleted = true },
		happened: func(got map[string]any) (bool, error) {
			return got == nil, nil
		},
	}
}

func crashConsistency(t *testing.T, bin, driver string) {
	began := time.Now()
	c := newCrashNode(t, bin, driver, stormEnv())
	c.startServe()
	rc := newCrashReceiver(t)
	rc.mode.Store(rcvUp)
	ws := c.workspace("storm", map[string]any{"maxKeys": 100000})
	ep := c.webhook(ws, map[string]any{"url": rc.URL + "/hooks", "eventTypes": []string{"*"}})
	rc.mu.Lock()
	rc.secret = ep["secret"].(string)
	rc.mu.Unlock()

	s := newStorm(c, ws)
	uws := c.workspace("storm-usage", nil)
	su := &stormUsage{s: s, load: newUsageLoad(c, uws), ws: uws}
	stormBegan := time.Now()
	workers := make([]*stormWorker, stormWorkers)
	var wg sync.WaitGroup
	for g := range workers {
		w := &stormWorker{s: s, t: t, g: g, rng: rand.New(rand.NewPCG(uint64(g), 0x5eed))}
		workers[g] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run()
		}()
	}
	var verifiers sync.WaitGroup
	for g := range stormVerifiers {
		verifiers.Go(func() { su.run(rand.New(rand.NewPCG(uint64(g), 0x0ce))) })
	}
	stopped := false
	defer func() {
		if !stopped {
			s.end()
			wg.Wait()
			verifiers.Wait()
		}
	}()

	// Each round lets the storm make a deterministic-enough number of acknowledged changes, then
	// kills the process and starts another on the same data; the round after the last kill lets
	// the restarted process take changes too.
	rng := rand.New(rand.NewPCG(uint64(len(driver)), 0xc4a54))
	var killedAt []int64
	for round := 0; ; round++ {
		from := s.acked.Load()
		want := from + 30 + int64(rng.IntN(50))
		if !testkit.Wait(stormStall, func() bool { return s.acked.Load() >= want }) {
			t.Fatalf("round %d: the storm made %d acknowledged changes in %s, want %d\nserve's log:\n%s",
				round, s.acked.Load()-from, stormStall, want-from, tail(c.proc.stderr.String(), 4000))
		}
		if round == stormKills {
			break
		}
		su.beforeKill(c)
		c.killServe()
		su.afterKill()
		killedAt = append(killedAt, s.acked.Load())
		c.startServe()
		s.restarted(c.url)
	}
	s.end()
	wg.Wait()
	verifiers.Wait()
	stopped = true
	stormTook := time.Since(stormBegan)
	if t.Failed() {
		return
	}

	var keys []*crashKey
	var sent, acked, failed, lost, refused, lostApplied, stormVerified int
	for _, w := range workers {
		keys = append(keys, w.keys...)
		sent, acked, failed, lost, refused, lostApplied = sent+w.sent, acked+w.acked, failed+w.failed, lost+w.lost, refused+w.refused, lostApplied+w.lostApplied
		stormVerified += w.verified
	}
	if lost == 0 {
		t.Errorf("no answer was lost in %d kills: the kills did not cut the storm", stormKills)
	}

	// The keys: each as its client expects, and no other.
	listed := map[string]map[string]any{}
	for _, k := range c.listAll("/v1/api-keys", ws) {
		listed[k["id"].(string)] = k
	}
	present, values := 0, 0
	updatedAt := map[string]string{}
	for _, k := range keys {
		values += c.checkCrashKey(ws, k, listed[k.id])
		if l := listed[k.id]; l != nil && !k.deleted {
			present++
			updatedAt[k.id], _ = l["updatedAt"].(string)
		}
		delete(listed, k.id)
	}
	for id, k := range listed {
		t.Errorf("key %s (%q) is listed, but no change the clients know of made it", id, k["name"])
	}

	// The audit trail: each key's entries are its changes, in order; the chain verifies.
	entries := c.listAll("/v1/audit-logs", ws)
	slices.Reverse(entries) // oldest first
	byKey := map[string][]map[string]any{}
	for _, e := range entries {
		target, _ := e["target"].(map[string]any)
		action, _ := e["action"].(string)
		if target["type"] != "api_key" || action == "api_key.revealed" {
			continue // a reveal is audited, but changes nothing
		}
		id := target["id"].(string)
		byKey[id] = append(byKey[id], e)
	}
	for _, k := range keys {
		var want, got []string
		for _, ch := range k.changes {
			want = append(want, ch.action)
		}
		for _, e := range byKey[k.id] {
			got = append(got, e["action"].(string))
		}
		if !slices.Equal(want, got) {
			t.Errorf("key %s: audit actions %v, want %v (its changes)", k.id, got, want)
		} else if u, ok := updatedAt[k.id]; ok && !sameTime(u, byKey[k.id][len(got)-1]["timestamp"]) {
			t.Errorf("key %s: updatedAt %s, but its last audit entry is of %v", k.id, u, byKey[k.id][len(got)-1]["timestamp"])
		}
		delete(byKey, k.id)
	}
	for id, es := range byKey {
		t.Errorf("key %s: %d audit entries (the first %v), but no change the clients know of made it", id, len(es), es[0]["action"])
	}
	chain := c.must(200, req{method: "GET", path: "/v1/audit-logs/verify", cred: c.admin, ws: ws}).data()
	if chain["valid"] != true || chain["entries"] != float64(len(entries)) {
		t.Errorf("GET /v1/audit-logs/verify: %v, want valid with %d entries", chain, len(entries))
	}
	if out, err := run(t, c.dataDir, c.dbURL, "", "audit", "verify"); err != nil || !strings.Contains(out, "chains verify") {
		t.Errorf("keyplane audit verify: %v\n%s", err, out)
	}

	// The events: each change's, delivered, and no other. Attempts the killed processes had leased
	// go once their lease lapses.
	want := map[string][]string{} // key id → its events' types, sorted
	nEvents := 0
	for _, k := range keys {
		for _, ch := range k.changes {
			want[k.id] = append(want[k.id], ch.events...)
			nEvents += len(ch.events)
		}
		slices.Sort(want[k.id])
	}
	received := func() map[string][]delivered {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		out := map[string][]delivered{}
		for _, ev := range rc.events {
			if k, _ := ev.Data["apiKey"].(map[string]any); k != nil {
				id := fmt.Sprint(k["id"])
				out[id] = append(out[id], ev)
			}
		}
		return out
	}
	types := func(evs []delivered) []string {
		var out []string
		for _, ev := range evs {
			out = append(out, ev.Type)
		}
		slices.Sort(out)
		return out
	}
	waited := time.Now()
	var got map[string][]delivered
	// The checks below say, key by key, what is missing when the wait runs out.
	testkit.Wait(crashWait, func() bool {
		got = received()
		for id, w := range want {
			if !slices.Equal(types(got[id]), w) {
				return false
			}
		}
		return true
	})
	deliveredIn := time.Since(waited)
	for _, k := range keys {
		evs := got[k.id]
		delete(got, k.id)
		if g := types(evs); !slices.Equal(g, want[k.id]) {
			t.Errorf("key %s: events %v delivered, want %v (its changes')", k.id, g, want[k.id])
			continue
		}
		// The change the key shows now is the one its last event announced.
		if u, ok := updatedAt[k.id]; ok {
			last := k.changes[len(k.changes)-1].events[0]
			if !slices.ContainsFunc(evs, func(ev delivered) bool {
				a, _ := ev.Data["apiKey"].(map[string]any)
				return ev.Type == last && sameTime(u, a["updatedAt"])
			}) {
				t.Errorf("key %s: no %s event shows it as of its updatedAt %s", k.id, last, u)
			}
		}
	}
	for id, evs := range got {
		t.Errorf("key %s: events %v delivered, but no change the clients know of made it", id, types(evs))
	}
	rc.mu.Lock()
	problems := slices.Clone(rc.problems)
	rc.mu.Unlock()
	if len(problems) > 0 {
		t.Errorf("%d requests failed the receiver's checks, the first: %s", len(problems), problems[0])
	}

	su.check(c, driver)
	t.Logf("%s: %d clients sent %d changes over %d kills (after %v acknowledged): %d acknowledged, %d failed, %d answers lost (%d refused, %d cut short, of which %d applied); %d new values verified as they came; storm %s",
		driver, stormWorkers, sent, stormKills, killedAt, acked, failed, lost, refused, lost-refused, lostApplied, stormVerified, stormTook.Round(time.Millisecond))
	t.Logf("%s: %d keys checked (%d there, %d deleted), %d values verified, %d audit entries, %d events all delivered %s after the storm; %s in all",
		driver, len(keys), present, len(keys)-present, values, len(entries), nEvents, deliveredIn.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}

// sameTime reports whether two RFC 3339 times (as the API writes them) are the same instant.
func sameTime(a string, b any) bool {
	bs, _ := b.(string)
	ta, err1 := time.Parse(time.RFC3339Nano, a)
	tb, err2 := time.Parse(time.RFC3339Nano, bs)
	return err1 == nil && err2 == nil && ta.Equal(tb)
}

// listAll reads a whole list of the workspace, following the cursor.
func (c *crashNode) listAll(path, ws string) []map[string]any {
	c.t.Helper()
	var out []map[string]any
	cursor := ""
	for {
		q := "?limit=100"
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		res := c.must(200, req{method: "GET", path: path + q, cred: c.admin, ws: ws})
		for _, d := range res.list() {
			out = append(out, d.(map[string]any))
		}
		next, _ := res.Body["nextCursor"].(string)
		if next == "" {
			return out
		}
		cursor = next
	}
}

// checkCrashKey checks one key against what its client knows of it, and returns how many values it
// verified.
func (c *crashNode) checkCrashKey(ws string, k *crashKey, listed map[string]any) int {
	t := c.t
	t.Helper()
	res := c.do(req{method: "GET", path: "/v1/api-keys/" + k.id, cred: c.admin, ws: ws})
	verified := 0
	check := func(value string, old *oldValue) {
		verified++
		if got := c.code(value); got != k.wantCode(old) {
			kind := "current value"
			if old != nil {
				kind = "old value"
			}
			t.Errorf("key %s (%s): its %s verifies %s, want %s", k.id, k.describe(), kind, got, k.wantCode(old))
		}
	}
	if k.deleted {
		if res.Status != 404 || listed != nil {
			t.Errorf("key %s was deleted, but GET answers %d and the list has it: %v", k.id, res.Status, listed != nil)
		}
		for _, v := range k.values() {
			check(v, nil)
		}
		return verified
	}
	d := res.data()
	if res.Status != 200 || listed == nil {
		t.Errorf("key %s (%s): GET answers %d %s; listed: %v", k.id, k.describe(), res.Status, res.Raw, listed != nil)
		return verified
	}
	status := "active"
	switch {
	case k.revoked:
		status = "revoked"
	case !k.enabled:
		status = "disabled"
	}
	for _, obj := range []map[string]any{d, listed} {
		if obj["name"] != k.name || obj["enabled"] != k.enabled || (obj["revokedAt"] != nil) != k.revoked ||
			obj["status"] != status || obj["updatedAt"] != d["updatedAt"] || obj["start"] != k.start || obj["end"] != k.end {
			t.Errorf("key %s: %s, want %s", k.id, fmtJSON(obj), k.describe())
		}
	}
	if k.value != "" && (!strings.HasPrefix(k.value, k.start) || !strings.HasSuffix(k.value, k.end)) {
		t.Errorf("key %s: start %s and end %s are not its current value's", k.id, k.start, k.end)
	}
	if k.value != "" {
		check(k.value, nil)
	}
	for i := range k.old {
		check(k.old[i].value, &k.old[i])
	}
	if k.recoverable && !k.revoked {
		rev := c.must(200, req{method: "POST", path: "/v1/api-keys/" + k.id + "/reveal", cred: c.admin, ws: ws}).data()
		v, _ := rev["keyValue"].(string)
		switch {
		case k.value != "" && v != k.value:
			t.Errorf("key %s: reveals another value than its last rotation or creation answered", k.id)
		case k.value == "":
			check(v, nil)
		}
	}
	return verified
}

func (k *crashKey) describe() string {
	return fmt.Sprintf("name %q, enabled %v, revoked %v, %d old values, value known %v, changes %d",
		k.name, k.enabled, k.revoked, len(k.old), k.value != "", len(k.changes))
}
