package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyplane/keyplane/internal/kptest/leakcheck"
)

// Every test of this package that starts keyplane gets a leak checker: it learns every secret the test
// saw (root keys printed by the CLI, passwords handed to it, keyValue and webhook secrets answered by
// the API, the master key, the metrics token) and, when the test ends, searches everything keyplane
// wrote for every one of them: the nodes' logs at debug level and their stdout, the CLI's output but
// the root key that root-keys create exists to print, every answer with its headers (the fields meant
// to show a secret taken out, so that an error body or a key object that holds one is found),
// /metrics, the request log and audit trail as the API lists them, every byte of the files in the data
// dir, every row of every PostgreSQL table, and keyplane's Redis key names.

// leakChecker is one test's leakcheck.Checker, with the nodes it numbers for its reports.
type leakChecker struct {
	*leakcheck.Checker
	t *testing.T

	mu    sync.Mutex
	nodes int
}

var (
	leakCheckers sync.Map // *testing.T → *leakChecker

	// What the whole run searched, for TestMain's summary line.
	leakStatsMu sync.Mutex
	leakStats   struct {
		tests, nodes, secrets, places, findings int
		bytes                                   int64
		took, harvest                           time.Duration
		kinds                                   map[leakcheck.Kind]int
	}
)

// leaks returns the test's checker, creating it on first use. Its search is a cleanup: cleanups run
// last registered first, so the first call must come after t.TempDir and storetest.PostgresURL made
// the data dir and the database (config does that) and before the node is started, whose stop then
// runs before the search, and the removal of the data and the database after it.
func leaks(t *testing.T) *leakChecker {
	if lc, ok := leakCheckers.Load(t); ok {
		return lc.(*leakChecker)
	}
	lc := &leakChecker{Checker: leakcheck.New(), t: t}
	leakCheckers.Store(t, lc)
	t.Cleanup(func() {
		leakCheckers.Delete(t)
		found, st := lc.Scan()
		for _, err := range st.ReadErrors {
			t.Error(err)
		}
		for _, f := range found {
			t.Error(f)
		}
		t.Logf("leak check: %s: %d found", st, len(found))
		leakStatsMu.Lock()
		defer leakStatsMu.Unlock()
		s := &leakStats
		s.tests++
		lc.mu.Lock()
		s.nodes += lc.nodes
		lc.mu.Unlock()
		s.secrets += st.Secrets
		s.places += len(st.Places)
		s.findings += len(found)
		s.bytes += st.Bytes
		s.took += st.Took
		if s.kinds == nil {
			s.kinds = map[leakcheck.Kind]int{}
		}
		for k, n := range st.Kinds {
			s.kinds[k] += n
		}
	})
	return lc
}

// secret adds a value whose kind its shape tells (a key, a webhook secret) or else a password.
func (lc *leakChecker) secret(what, value string) { lc.Secret(leakcheck.Password, what, value) }

// env adds the secrets of a node's environment.
func (lc *leakChecker) env(getenv func(string) string) {
	lc.secret("KEYPLANE_ADMIN_PASSWORD", getenv("KEYPLANE_ADMIN_PASSWORD"))
	lc.Secret(leakcheck.Token, "KEYPLANE_METRICS_TOKEN", getenv("KEYPLANE_METRICS_TOKEN"))
	if k := getenv("KEYPLANE_MASTER_KEY"); k != "" {
		lc.MasterKey("KEYPLANE_MASTER_KEY", k)
	}
	for _, name := range []string{"KEYPLANE_DATABASE_URL", "KEYPLANE_REDIS_URL"} {
		if u, err := url.Parse(getenv(name)); err == nil && u.User != nil {
			if pw, ok := u.User.Password(); ok {
				lc.secret("the password in "+name, pw)
			}
		}
	}
}

// node numbers a node of the test and adds its output: its log (every level) and its stdout.
func (lc *leakChecker) node(logs, stdout *syncBuffer) string {
	lc.mu.Lock()
	lc.nodes++
	name := fmt.Sprintf("node %d", lc.nodes)
	lc.mu.Unlock()
	lc.Output(name+"'s log", logs)
	lc.Output(name+"'s stdout", stdout)
	return name
}

// shownOnce are the answer fields that are meant to hold a secret: the contract shows a key's value
// and a webhook's signing secret on creation, rotation and reveal.
var shownOnce = map[string]bool{"keyValue": true, "secret": true}

// recording is the transport of every node's client: it learns the secrets the answers show, and
// keeps each answer, with those fields taken out, as a place to search; a 4xx or 5xx body that
// echoes a credential, or a key object that holds a value, is then a finding.
type recording struct {
	lc   *leakChecker
	base http.RoundTripper
}

func (lc *leakChecker) recording(base http.RoundTripper) http.RoundTripper {
	return &recording{lc: lc, base: base}
}

func (r *recording) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil && req.Body != http.NoBody {
		body, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		r.lc.learnRequest(body)
	}
	resp, err := r.base.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	name := fmt.Sprintf("the answer to %s %s (status %d)", req.Method, req.URL.Path, resp.StatusCode)
	var head bytes.Buffer
	resp.Header.Write(&head)
	r.lc.Text(name, append(head.Bytes(), r.lc.learnAnswer(req.Method+" "+req.URL.Path, body)...))
	return resp, nil
}

// learnRequest registers the passwords a request carries (none of the API's calls takes one today;
// a call that does is covered from the start).
func (lc *leakChecker) learnRequest(body []byte) {
	var v any
	if json.Unmarshal(body, &v) != nil {
		return
	}
	walkJSON(v, func(m map[string]any, k string) {
		if s, ok := m[k].(string); ok && strings.Contains(strings.ToLower(k), "password") {
			lc.secret("password sent in a request's "+k, s)
		}
	})
}

// learnAnswer registers the secrets an answer shows and returns the answer without them.
func (lc *leakChecker) learnAnswer(call string, body []byte) []byte {
	var v any
	if json.Unmarshal(body, &v) != nil {
		return body
	}
	found := false
	walkJSON(v, func(m map[string]any, k string) {
		if s, ok := m[k].(string); ok && shownOnce[k] {
			lc.secret(k+" answered by "+call, s)
			delete(m, k)
			found = true
		}
		// A portal link's URL holds its one-time token, which must reach no log nor page but the
		// browser's.
		if s, ok := m[k].(string); ok && k == "url" {
			if _, token, ok := strings.Cut(s, "/portal/"); ok && strings.HasPrefix(token, "kp_portal_") {
				lc.Secret(leakcheck.Token, "portal link answered by "+call, token)
				delete(m, k)
				found = true
			}
		}
	})
	if !found {
		return body
	}
	out, err := json.Marshal(v)
	if err != nil {
		return body
	}
	return out
}

func walkJSON(v any, f func(m map[string]any, k string)) {
	switch v := v.(type) {
	case map[string]any:
		for k := range v {
			f(v, k)
		}
		for _, e := range v {
			walkJSON(e, f)
		}
	case []any:
		for _, e := range v {
			walkJSON(e, f)
		}
	}
}

// harvest reads, from a running node, what it shows of itself: /metrics, and the audit trail and
// request log of every workspace as the API lists them. It goes around the validating transport,
// which counts the operations the tests exercised. What it cannot read fails the test, naming it: a
// place left out of the search would pass for one without leaks. The one exception is a node whose
// test spent the management API's rate limits on purpose (node.limitsSpent): its management API
// answers 429, which is logged; the database, searched as well, holds the same rows.
func (n *node) harvest(name string) {
	lc := leaks(n.t)
	began := time.Now()
	defer func() {
		leakStatsMu.Lock()
		leakStats.harvest += time.Since(began)
		leakStatsMu.Unlock()
	}()
	c := &http.Client{Timeout: 10 * time.Second}
	cannot := func(path string, err error) {
		n.t.Helper()
		n.t.Errorf("leak check: cannot read GET %s from %s: %v", path, name, err)
	}
	get := func(path, ws, token string) ([]byte, bool) {
		req, err := http.NewRequest("GET", n.url+path, nil)
		if err != nil {
			cannot(path, err)
			return nil, false
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if ws != "" {
			req.Header.Set("X-Workspace-Id", ws)
		}
		res, err := c.Do(req)
		if err != nil {
			cannot(path, err)
			return nil, false
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		switch {
		case err != nil:
			cannot(path, err)
			return nil, false
		case res.StatusCode == http.StatusTooManyRequests && n.limitsSpent != "":
			n.t.Logf("leak check: GET %s from %s: status 429, as expected: %s", path, name, n.limitsSpent)
			return nil, false
		case res.StatusCode != 200:
			cannot(path, fmt.Errorf("status %d: %s", res.StatusCode, b))
			return nil, false
		}
		return b, true
	}
	if b, ok := get("/metrics", "", n.env["KEYPLANE_METRICS_TOKEN"]); ok {
		lc.Text("/metrics of "+name, b)
	}
	if n.admin == "" {
		return
	}
	// pages follows a listing's cursor and keeps every page.
	pages := func(what, path, ws string) ([]map[string]any, bool) {
		var items []map[string]any
		cursor := ""
		for {
			p := path + "?limit=100"
			if cursor != "" {
				p += "&cursor=" + cursor
			}
			b, ok := get(p, ws, n.admin)
			if !ok {
				return items, false
			}
			lc.Text(what+" of "+name, b)
			var page struct {
				Data       []map[string]any `json:"data"`
				NextCursor string           `json:"nextCursor"`
			}
			if err := json.Unmarshal(b, &page); err != nil {
				cannot(p, err)
				return items, false
			}
			items = append(items, page.Data...)
			if page.NextCursor == "" {
				return items, true
			}
			cursor = page.NextCursor
		}
	}
	wss, ok := pages("the workspaces (API)", "/v1/workspaces", "")
	for _, w := range wss {
		id, _ := w["id"].(string)
		if !ok {
			break
		}
		if _, ok = pages("the audit trail of "+id+" (API)", "/v1/audit-logs", id); ok {
			_, ok = pages("the request log of "+id+" (API)", "/v1/logs", id)
		}
	}
}

// leakSummary is TestMain's line on what the run searched.
func leakSummary() string {
	leakStatsMu.Lock()
	defer leakStatsMu.Unlock()
	s := &leakStats
	if s.tests == 0 {
		return ""
	}
	return fmt.Sprintf("leak check: %d tests, %d nodes: %s searched for in %d places (%.1f MB) in %.1fs, and %.1fs reading nodes' API; %d found",
		s.tests, s.nodes, leakcheck.DescribeKinds(s.secrets, s.kinds), s.places, float64(s.bytes)/1e6, s.took.Seconds(), s.harvest.Seconds(), s.findings)
}
