package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keyplane/keyplane/internal/testkit"
)

// TestUsageAfterSIGTERM: the usage counts and last-used times are written every
// --usage-flush-interval, not with the log's batches, and a clean stop (SIGTERM to the real binary)
// writes the last entries and then every count, so that afterwards each key's usage equals its raw
// log exactly, per code, and the raw log holds every verification answered.
//
// The usage interval is a minute, longer than the test: the counts that reach the store are the ones
// the stop writes.
func TestUsageAfterSIGTERM(t *testing.T) {
	bin := buildKeyplaneBinary(t)
	eachDriver(t, func(t *testing.T, driver string) {
		t.Parallel() // each driver has its own data and processes
		env := maps.Clone(crashEnv)
		env["KEYPLANE_USAGE_FLUSH_INTERVAL"] = "1m"
		c := newCrashNode(t, bin, driver, env)
		c.startServe()
		began := time.Now()
		ws := c.workspace("usage", nil)
		u := newUsageLoad(c, ws)
		client := &http.Client{Timeout: 30 * time.Second}

		// A burst over the keys from 8 clients at once.
		answered := tally{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for i := range 60 {
					v := u.variants[(g*7+i)%len(u.variants)]
					code, err := u.verify(client, c.url, v)
					if err != nil {
						t.Errorf("verify %s: %v", v.name, err)
						return
					}
					mu.Lock()
					answered.add(v.keyID, code, 1)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		if len(answered.codes()) < 5 {
			t.Fatalf("the burst's answers hold codes %v, want at least five", answered.codes())
		}

		// The log is written within its flush interval; the counts wait for theirs (a minute).
		total := answered.total()
		testkit.EventuallyNil(t, 60*time.Second, func() error {
			waiting, logged := c.metric("keyplane_request_log_waiting_entries"), c.logTally(ws).total()
			if waiting != 0 || logged != total {
				return fmt.Errorf("the log holds %d of %d entries (%v waiting)", logged, total, waiting)
			}
			return nil
		})
		if time.Since(began) < 45*time.Second { // else the usage interval (from the start) may have come
			if n := c.metric("keyplane_usage_uncounted_requests"); n != float64(total) {
				t.Errorf("keyplane_usage_uncounted_requests = %v with the log written and no usage write yet, want %d", n, total)
			}
			if got := c.usageTally(ws, u.keyIDs()).total(); got != 0 {
				t.Errorf("usage counts %d requests before the usage interval or a stop: counts must not go with every batch", got)
			}
		}

		c.termServe()
		c.startServe()
		logged, counted := c.logTally(ws), c.usageTally(ws, u.keyIDs())
		if !logged.equal(answered) {
			t.Errorf("the raw log after SIGTERM:\n%v\nthe answers:\n%v", logged, answered)
		}
		if !counted.equal(logged) {
			t.Errorf("usage after SIGTERM:\n%v\nthe raw log:\n%v", counted, logged)
		}
		// The workspace's usage is the sum of its keys' rollups (the dashboard's chart): it equals
		// the workspace's whole log.
		if w, l := counted.total(), logged.total(); w != l || l != total {
			t.Errorf("workspace usage %d, log %d, answered %d", w, l, total)
		}
		for _, id := range u.keyIDs() {
			if lu := c.must(200, req{method: "GET", path: "/v1/api-keys/" + id, cred: c.admin, ws: ws}).data()["lastUsedAt"]; lu == nil {
				t.Errorf("key %s: no lastUsedAt after SIGTERM", id)
			}
		}
		t.Logf("%s: %d verifications over %d keys, codes %v: usage equals the log after SIGTERM", driver, total, len(u.keyIDs()), answered.codes())
	})
}

// tally counts requests per key and code.
type tally map[string]map[string]int64

func (t tally) add(key, code string, n int64) {
	if t[key] == nil {
		t[key] = map[string]int64{}
	}
	t[key][code] += n
}

func (t tally) total() int64 {
	var n int64
	for _, codes := range t {
		for _, v := range codes {
			n += v
		}
	}
	return n
}

func (t tally) codes() []string {
	seen := map[string]bool{}
	for _, codes := range t {
		for c := range codes {
			seen[c] = true
		}
	}
	var out []string
	for c := range seen {
		out = append(out, c)
	}
	return out
}

// equal ignores zero counts.
func (t tally) equal(o tally) bool {
	return t.within(o) && o.within(t)
}

// within reports whether every count of t is at most o's.
func (t tally) within(o tally) bool {
	for k, codes := range t {
		for c, n := range codes {
			if n > o[k][c] {
				return false
			}
		}
	}
	return true
}

func (t tally) String() string {
	var b strings.Builder
	for k, codes := range t {
		fmt.Fprintf(&b, "  %s: %v\n", k, codes)
	}
	return b.String()
}

// usageVariant is a verification whose code is known: a key and what is asked of it.
type usageVariant struct {
	name, keyID string
	body        map[string]any
}

// usageLoad is a workspace's keys made to answer verifications with several codes.
type usageLoad struct {
	c        *crashNode
	variants []usageVariant
}

// newUsageLoad makes keys in ws: with a permission, with an IP allow-list, with a small rate limit,
// and disabled; between them their verifications answer VALID, INSUFFICIENT_PERMISSIONS, FORBIDDEN,
// RATE_LIMITED and DISABLED.
func newUsageLoad(c *crashNode, ws string) *usageLoad {
	u := &usageLoad{c: c}
	mk := func(name string, body map[string]any) (string, string) {
		body["name"], body["keyType"] = name, "secret"
		k := c.key(ws, body)
		return k["id"].(string), k["keyValue"].(string)
	}
	permID, perm := mk("usage perm", map[string]any{"permissions": []string{"orders:read"}})
	ipID, ip := mk("usage ip", map[string]any{"ipAllowlist": []string{"203.0.113.0/24"}})
	limitID, limited := mk("usage limited", map[string]any{"rateLimit": map[string]any{"limit": 20, "windowMs": 3_600_000}})
	offID, off := mk("usage disabled", map[string]any{})
	c.must(200, req{method: "PATCH", path: "/v1/api-keys/" + offID, cred: c.admin, ws: ws, body: map[string]any{"enabled": false}})
	u.variants = []usageVariant{
		{"perm valid", permID, map[string]any{"key": perm, "permissions": []string{"orders:read"}}},
		{"perm missing", permID, map[string]any{"key": perm, "permissions": []string{"orders:write"}}},
		{"ip valid", ipID, map[string]any{"key": ip, "ip": "203.0.113.9"}},
		{"ip forbidden", ipID, map[string]any{"key": ip, "ip": "198.51.100.7"}},
		{"limited", limitID, map[string]any{"key": limited}},
		{"disabled", offID, map[string]any{"key": off}},
	}
	return u
}

func (u *usageLoad) keyIDs() []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range u.variants {
		if !seen[v.keyID] {
			seen[v.keyID] = true
			out = append(out, v.keyID)
		}
	}
	return out
}

// verify asks the process at base to verify v without the OpenAPI check (quick, as a busy client),
// and returns the code; an error when no answer or not a 200 came.
func (u *usageLoad) verify(client *http.Client, base string, v usageVariant) (string, error) {
	j, _ := json.Marshal(v.body)
	return quickVerify(client, base, u.c.verifier, j)
}

// quickVerify asks POST /v1/verify at base with body, as root, without the OpenAPI check (quick, as
// a busy client), and returns the code; an error when no answer or not a 200 with a code came.
func quickVerify(client *http.Client, base, root string, body []byte) (string, error) {
	hr, err := http.NewRequest("POST", base+"/v1/verify", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	hr.Header.Set("Authorization", "Bearer "+root)
	hr.Header.Set("Content-Type", "application/json")
	res, err := client.Do(hr)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return "", err
	}
	var out struct {
		Data struct {
			Code string `json:"code"`
		} `json:"data"`
	}
	if res.StatusCode != 200 || json.Unmarshal(raw, &out) != nil || out.Data.Code == "" {
		return "", fmt.Errorf("%d %s", res.StatusCode, raw)
	}
	return out.Data.Code, nil
}

// plainGet reads path as the admin root key acting on ws, without the OpenAPI check: quick over
// thousands of entries.
func (c *crashNode) plainGet(path, ws string) map[string]any {
	c.t.Helper()
	hr, err := http.NewRequest("GET", c.url+path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	hr.Header.Set("Authorization", "Bearer "+c.admin)
	hr.Header.Set("X-Workspace-Id", ws)
	res, err := (&http.Client{Timeout: 30 * time.Second}).Do(hr)
	if err != nil {
		c.t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var body map[string]any
	if res.StatusCode != 200 || json.Unmarshal(raw, &body) != nil {
		c.t.Fatalf("GET %s: %d %s", path, res.StatusCode, raw)
	}
	return body
}

// logTally counts the workspace's raw log of verifications, read page by page (GET /v1/logs).
func (c *crashNode) logTally(ws string) tally {
	c.t.Helper()
	out := tally{}
	for cursor := ""; ; {
		p := "/v1/logs?source=verify&limit=100"
		if cursor != "" {
			p += "&cursor=" + url.QueryEscape(cursor)
		}
		body := c.plainGet(p, ws)
		list, _ := body["data"].([]any)
		for _, x := range list {
			e := x.(map[string]any)
			out.add(e["keyId"].(string), e["code"].(string), 1)
		}
		next, _ := body["nextCursor"].(string)
		if next == "" {
			return out
		}
		cursor = next
	}
}

// usageTally sums the keys' usage (GET /v1/api-keys/{id}/usage, by day over the last 30 days).
func (c *crashNode) usageTally(ws string, keyIDs []string) tally {
	c.t.Helper()
	out := tally{}
	for _, id := range keyIDs {
		list, _ := c.plainGet("/v1/api-keys/"+id+"/usage?granularity=day", ws)["data"].([]any)
		for _, x := range list {
			for code, n := range x.(map[string]any)["codes"].(map[string]any) {
				out.add(id, code, int64(n.(float64)))
			}
		}
	}
	return out
}

// metrics scrapes the running process's /metrics, once, for unlabelled values.
func (c *crashNode) metrics(names ...string) map[string]float64 {
	c.t.Helper()
	res, err := (&http.Client{Timeout: 30 * time.Second}).Get(c.url + "/metrics")
	if err != nil {
		c.t.Fatalf("/metrics: %v", err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := map[string]float64{}
	for _, line := range strings.Split(string(raw), "\n") {
		for _, name := range names {
			if v, ok := strings.CutPrefix(line, name+" "); ok {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					c.t.Fatalf("/metrics: %s", line)
				}
				out[name] = f
			}
		}
	}
	for _, name := range names {
		if _, ok := out[name]; !ok {
			c.t.Fatalf("/metrics has no %s", name)
		}
	}
	return out
}

func (c *crashNode) metric(name string) float64 {
	c.t.Helper()
	return c.metrics(name)[name]
}

// termServe stops the running process as an orchestrator does, with SIGTERM, and waits for it to
// exit, which it must do cleanly.
func (c *crashNode) termServe() {
	c.t.Helper()
	p := c.proc
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		c.t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-p.exited:
	case <-time.After(90 * time.Second):
		c.t.Fatalf("keyplane serve did not exit within 90s of SIGTERM\nstderr:\n%s", tail(p.stderr.String(), 4000))
	}
	if !p.cmd.ProcessState.Success() {
		c.t.Fatalf("keyplane serve exited %v after SIGTERM\nstderr:\n%s", p.cmd.ProcessState, tail(p.stderr.String(), 4000))
	}
}
