package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/keyplane/keyplane/internal/masterkey"
)

// The contract says secrets never appear in the audit trail, the request log, or the server's own
// logs, and that only digests (or, for recoverable values, ciphertexts) are stored. A test that looks
// for one leak where it expects it proves little: a new debug line or a new column leaks in a place
// nobody thought of. So every test of this package that starts keyplane gets a leakChecker: it learns
// every secret the test saw (root keys printed by the CLI, passwords handed to it, keyValue and
// webhook secrets answered by the API, the master key) and, when the test ends, searches everything
// keyplane wrote for every one of them: its logs at debug level, its stdout, the CLI's output, every
// answer (with the fields that are meant to show a secret taken out), /metrics, the request log and
// audit trail as the API lists them, every byte of the SQLite files in the data dir, every row of
// every PostgreSQL table, and the names of keyplane's Redis keys. Digests and ciphertexts cannot
// match: they do not contain the plaintext.

// leakChecker collects one test's secrets and the places where none of them may be found.
type leakChecker struct {
	t *testing.T

	mu       sync.Mutex
	secrets  map[string]*secret // by value
	forgiven map[string]bool    // planted on purpose by a test of the checker itself
	places   []place
	dataDirs []string
	dbURLs   []string
	redis    []string
	nodes    int
}

// secret is one value and the forms in which a leak of it could show, in groups: each group's last
// form lies inside every other of the group (a key's random part inside its whole value), so a place
// without it holds none of the group, and the report names the largest form that is there.
type secret struct {
	kind   string
	what   string // where it came from, for the report; never the value
	value  string
	groups [][]form
}

type form struct {
	name string
	b    []byte
}

// place is something keyplane wrote, read when the test ends (logs still grow until the node stops).
type place struct {
	name string
	read func() ([]byte, error)
}

// finding is one secret found in one place.
type finding struct {
	s                   *secret
	secret, form, place string
	context             string // around the hit, every known secret form redacted
}

func (f finding) String() string {
	return fmt.Sprintf("leak: %s (%s) found in %s: %s", f.secret, f.form, f.place, f.context)
}

var (
	leakCheckers sync.Map // *testing.T → *leakChecker

	// What the whole run searched, for TestMain's summary line.
	leakStatsMu sync.Mutex
	leakStats   struct {
		tests, nodes, secrets, places, findings int
		bytes                                   int64
		took                                    time.Duration
		kinds                                   map[string]int
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
	lc := newLeakChecker(t)
	leakCheckers.Store(t, lc)
	t.Cleanup(func() {
		leakCheckers.Delete(t)
		began := time.Now()
		found, st := lc.scan()
		for _, f := range found {
			t.Error(f)
		}
		took := time.Since(began)
		t.Logf("leak check: %s searched for in %d places (%.1f MB) in %s: %d found", st.describeSecrets(), st.places, float64(st.bytes)/1e6, took.Round(time.Millisecond), len(found))
		leakStatsMu.Lock()
		defer leakStatsMu.Unlock()
		s := &leakStats
		s.tests++
		s.nodes += st.nodes
		s.secrets += st.secrets
		s.places += st.places
		s.findings += len(found)
		s.bytes += st.bytes
		s.took += took
		if s.kinds == nil {
			s.kinds = map[string]int{}
		}
		for k, n := range st.kinds {
			s.kinds[k] += n
		}
	})
	return lc
}

func newLeakChecker(t *testing.T) *leakChecker {
	return &leakChecker{t: t, secrets: map[string]*secret{}, forgiven: map[string]bool{}}
}

// scanStats is what one scan covered.
type scanStats struct {
	nodes, secrets, places int
	bytes                  int64
	kinds                  map[string]int
	placeNames             []string
}

func (st scanStats) describeSecrets() string {
	return describeKinds(st.secrets, st.kinds)
}

// describeKinds is "12 secrets (2 root keys, 9 API keys, 1 password)".
func describeKinds(n int, kinds map[string]int) string {
	var parts []string
	for _, k := range []string{kindRoot, kindAPIKey, kindWebhook, kindPassword, kindMaster, kindToken} {
		if kinds[k] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", kinds[k], k))
		}
	}
	return fmt.Sprintf("%d secrets (%s)", n, strings.Join(parts, ", "))
}

// The kinds of secrets, as the summaries count them.
const (
	kindRoot     = "root keys"
	kindAPIKey   = "API keys"
	kindWebhook  = "webhook secrets"
	kindPassword = "passwords"
	kindMaster   = "master keys"
	kindToken    = "other credentials"
)

var keyValueRE = regexp.MustCompile(`^[a-z][a-z0-9]*_(root|sk_live|sk_test|pk_live|pk_test)_[0-9A-Za-z]{38}$`)

// minSecretLen keeps values too short to be told from ordinary text out of the search: a password the
// CLI must refuse as too short would otherwise be "found" in its own error message.
const minSecretLen = 8

// secret registers value as a secret. Key values are also searched for their random part alone (32
// base62 characters, found inside the secret part and the whole value alike): logging a key without
// its prefix leaks it just the same. Webhook secrets are searched for their base64 part and the bytes
// it decodes to, the HMAC key itself.
func (lc *leakChecker) secret(what, value string) {
	lc.secretOf(kindPassword, what, value)
}

// token registers a credential that is neither a key nor a password, such as the metrics token.
func (lc *leakChecker) token(what, value string) {
	lc.secretOf(kindToken, what, value)
}

func (lc *leakChecker) secretOf(kind, what, value string) {
	if len(value) < minSecretLen {
		return
	}
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if _, ok := lc.secrets[value]; ok {
		return
	}
	s := &secret{kind: kind, what: what, value: value}
	switch {
	case keyValueRE.MatchString(value):
		s.kind = kindAPIKey
		if strings.Contains(value, "_root_") {
			s.kind = kindRoot
		}
		n := len(value)
		// The hex of a value holds the hex of its random part: one hex form covers the three.
		s.groups = [][]form{
			{{"whole value", []byte(value)}, {"secret part", []byte(value[n-38:])}, {"random part", []byte(value[n-38 : n-6])}},
			hexForm("random part", []byte(value[n-38:n-6])),
		}
	case strings.HasPrefix(value, "whsec_"):
		s.kind = kindWebhook
		b64 := strings.TrimPrefix(value, "whsec_")
		s.groups = [][]form{{{"whole value", []byte(value)}, {"base64 part", []byte(b64)}}, hexForm("base64 part", []byte(b64))}
		if raw, err := base64.StdEncoding.DecodeString(b64); err == nil && len(raw) >= 16 {
			s.groups = append(s.groups, []form{{"decoded HMAC key", raw}}, hexForm("decoded HMAC key", raw))
		}
	default:
		s.groups = [][]form{{{"whole value", []byte(value)}}, hexForm("whole value", []byte(value))}
	}
	lc.secrets[value] = s
}

// hexForm is b as hex, the way PostgreSQL writes bytea as text and %x writes bytes.
func hexForm(name string, b []byte) []form {
	return []form{{name + " in hex", []byte(hex.EncodeToString(b))}}
}

// masterKey registers the base64 master key held in a file and the 32 bytes it decodes to.
func (lc *leakChecker) masterKey(what, b64 string) {
	b64 = strings.TrimSpace(b64)
	raw, err := masterkey.Parse(b64)
	if err != nil {
		return
	}
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if _, ok := lc.secrets[b64]; ok {
		return
	}
	s := &secret{kind: kindMaster, what: what, value: b64}
	s.groups = [][]form{{{"base64", []byte(b64)}}, {{"raw bytes", raw}}, hexForm("raw bytes", raw)}
	lc.secrets[b64] = s
}

// env registers the secrets of a node's environment.
func (lc *leakChecker) env(getenv func(string) string) {
	lc.secret("KEYPLANE_ADMIN_PASSWORD", getenv("KEYPLANE_ADMIN_PASSWORD"))
	lc.token("KEYPLANE_METRICS_TOKEN", getenv("KEYPLANE_METRICS_TOKEN"))
	for _, name := range []string{"KEYPLANE_DATABASE_URL", "KEYPLANE_REDIS_URL"} {
		if u, err := url.Parse(getenv(name)); err == nil && u.User != nil {
			if pw, ok := u.User.Password(); ok {
				lc.secret("the password in "+name, pw)
			}
		}
	}
	if k := getenv("KEYPLANE_MASTER_KEY"); k != "" {
		lc.masterKey("KEYPLANE_MASTER_KEY", k)
	}
}

// readMasterKeys registers the master keys in a data dir: the node generates one there on first start,
// and `master-key rotate` moves it aside.
func (lc *leakChecker) readMasterKeys(dir string) {
	for _, name := range []string{masterkey.FileName, masterkey.PreviousFileName} {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err == nil {
			lc.masterKey("master key ("+name+")", string(b))
		}
	}
}

// forgive takes values out of the search, for a test that plants them on purpose.
func (lc *leakChecker) forgive(values ...string) {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	for _, v := range values {
		lc.forgiven[v] = true
	}
}

func (lc *leakChecker) place(name string, read func() ([]byte, error)) {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	lc.places = append(lc.places, place{name, read})
}

// text adds what was written once and will not change, such as an answer.
func (lc *leakChecker) text(name string, b []byte) {
	lc.place(name, func() ([]byte, error) { return b, nil })
}

// output adds a buffer that keeps growing while the node runs.
func (lc *leakChecker) output(name string, b *syncBuffer) {
	lc.place(name, func() ([]byte, error) { return []byte(b.String()), nil })
}

// node numbers a node of the test and adds its output: its log (every level) and its stdout.
func (lc *leakChecker) node(logs, stdout *syncBuffer) string {
	lc.mu.Lock()
	lc.nodes++
	name := fmt.Sprintf("node %d", lc.nodes)
	lc.mu.Unlock()
	lc.output(name+"'s log", logs)
	lc.output(name+"'s stdout", stdout)
	return name
}

// store adds a data dir and, for PostgreSQL, a database, searched when the test ends.
func (lc *leakChecker) store(dataDir, dbURL string) {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	lc.dataDirs = append(lc.dataDirs, dataDir)
	if dbURL != "" {
		lc.dbURLs = append(lc.dbURLs, dbURL)
	}
}

func (lc *leakChecker) redisURL(u string) {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	lc.redis = append(lc.redis, u)
}

// scan searches every place for every secret. It reads the places now: nodes should have stopped, so
// that what they buffer (the request log) has reached the database.
func (lc *leakChecker) scan() ([]finding, scanStats) {
	for _, d := range lc.dataDirs {
		lc.readMasterKeys(d)
	}
	lc.mu.Lock()
	places := append([]place(nil), lc.places...)
	for _, d := range lc.dataDirs {
		places = append(places, dataDirPlaces(d)...)
	}
	for _, u := range lc.dbURLs {
		places = append(places, postgresPlaces(u)...)
	}
	for _, u := range lc.redis {
		places = append(places, redisPlace(u))
	}
	var secrets []*secret
	for v, s := range lc.secrets {
		if !lc.forgiven[v] {
			secrets = append(secrets, s)
		}
	}
	nodes := lc.nodes
	lc.mu.Unlock()
	sort.Slice(secrets, func(i, j int) bool { return secrets[i].what < secrets[j].what })

	var out []finding
	st := scanStats{nodes: nodes, secrets: len(secrets), places: len(places), kinds: map[string]int{}}
	for _, s := range secrets {
		st.kinds[s.kind]++
	}
	for _, p := range places {
		st.placeNames = append(st.placeNames, p.name)
		b, err := p.read()
		if err != nil {
			lc.t.Errorf("leak check: reading %s: %v", p.name, err)
			continue
		}
		st.bytes += int64(len(b))
		for _, s := range secrets {
		groups:
			for _, g := range s.groups {
				if !bytes.Contains(b, g[len(g)-1].b) {
					continue
				}
				for _, f := range g {
					if i := bytes.Index(b, f.b); i >= 0 {
						out = append(out, finding{s: s, secret: s.describe(), form: f.name, place: p.name, context: redactedContext(b, i, len(f.b), secrets)})
						break groups // one finding per secret and place is enough to act on
					}
				}
			}
		}
	}
	return out, st
}

func (s *secret) forms() []form {
	var out []form
	for _, g := range s.groups {
		out = append(out, g...)
	}
	return out
}

// describe names a secret by where it came from and its first few characters, never the whole of it.
func (s *secret) describe() string {
	show := 3
	switch {
	case keyValueRE.MatchString(s.value):
		show = len(s.value) - 38 + 2 // the head, which the key object shows anyway, and two characters
	case strings.HasPrefix(s.value, "whsec_"):
		show = len("whsec_") + 2
	}
	return fmt.Sprintf("%s %q (%d characters)", s.what, s.value[:show]+"…", len(s.value))
}

// redactedContext is up to 60 bytes either side of a hit, quoted, with every form of every secret in
// it (the hit's own and any neighbour's, cut or not) replaced, so that the report shows where the
// secret was without showing it.
func redactedContext(b []byte, at, n int, secrets []*secret) string {
	const side, margin = 60, 80 // margin: a neighbour cut by the window is still recognized
	lo, hi := max(0, at-side-margin), min(len(b), at+n+side+margin)
	w := append([]byte(nil), b[lo:hi]...)
	mask := make([]bool, len(w))
	for i := at - lo; i < at-lo+n; i++ {
		mask[i] = true
	}
	for _, s := range secrets {
		for _, f := range s.forms() {
			for off := 0; ; {
				i := bytes.Index(w[off:], f.b)
				if i < 0 {
					break
				}
				for j := off + i; j < off+i+len(f.b); j++ {
					mask[j] = true
				}
				off += i + 1
			}
		}
	}
	var out []byte
	from, to := max(0, at-side)-lo, min(len(b), at+n+side)-lo
	for i := from; i < to; i++ {
		if !mask[i] {
			out = append(out, w[i])
		} else if i == from || !mask[i-1] {
			out = append(out, "[SECRET]"...)
		}
	}
	return fmt.Sprintf("%q", out)
}

// dataDirPlaces is every file in a data dir but the master key's own: the SQLite database with its
// -wal and -shm files, read as raw bytes, so that free pages and the log hold nothing either.
func dataDirPlaces(dir string) []place {
	var out []place
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), masterkey.FileName) {
			return nil
		}
		rel, _ := filepath.Rel(dir, path)
		out = append(out, place{"data dir file " + rel, func() ([]byte, error) { return os.ReadFile(path) }})
		return nil
	})
	return out
}

// postgresPlaces is every row of every table of the database as PostgreSQL writes a row as text
// (bytea as hex, which the hex forms cover), one place per table.
func postgresPlaces(dbURL string) []place {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fail := func(err error) []place {
		return []place{{"PostgreSQL", func() ([]byte, error) { return nil, err }}}
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return fail(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `SELECT table_schema, table_name FROM information_schema.tables
		WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')
		ORDER BY 1, 2`)
	if err != nil {
		return fail(err)
	}
	tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (pgx.Identifier, error) {
		var schema, name string
		err := r.Scan(&schema, &name)
		return pgx.Identifier{schema, name}, err
	})
	if err != nil {
		return fail(err)
	}
	if len(tables) == 0 {
		return fail(fmt.Errorf("no tables: the search would find nothing"))
	}
	var out []place
	for _, tb := range tables {
		var buf bytes.Buffer
		var row string
		rows, err := conn.Query(ctx, "SELECT t::text FROM "+tb.Sanitize()+" t")
		if err == nil {
			_, err = pgx.ForEachRow(rows, []any{&row}, func() error {
				buf.WriteString(row)
				buf.WriteByte('\n')
				return nil
			})
		}
		b := buf.Bytes()
		out = append(out, place{"PostgreSQL table " + strings.Join(tb, "."), func() ([]byte, error) { return b, err }})
	}
	return out
}

// redisPlace is the names of keyplane's keys in Redis: the rate limits are kept under ids, and a
// key value in a name would stay there for a window.
func redisPlace(u string) place {
	return place{"Redis key names", func() ([]byte, error) {
		opt, err := redis.ParseURL(u)
		if err != nil {
			return nil, err
		}
		c := redis.NewClient(opt)
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var buf bytes.Buffer
		it := c.Scan(ctx, 0, "keyplane:*", 1000).Iterator()
		for it.Next(ctx) {
			buf.WriteString(it.Val())
			buf.WriteByte('\n')
		}
		return buf.Bytes(), it.Err()
	}}
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
	r.lc.text(name, append(head.Bytes(), r.lc.learnAnswer(req.Method+" "+req.URL.Path, body)...))
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
// which counts the operations the tests exercised, and it gives up quietly on a node whose management
// API refuses it (a test that used up the rate limit): the database holds the same rows.
func (n *node) harvest(name string) {
	lc := leaks(n.t)
	c := &http.Client{Timeout: 10 * time.Second}
	get := func(path, ws, token string) ([]byte, bool) {
		req, err := http.NewRequest("GET", n.url+path, nil)
		if err != nil {
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
			n.t.Logf("leak check: GET %s from %s: %v", path, name, err)
			return nil, false
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != 200 {
			n.t.Logf("leak check: GET %s from %s: status %d", path, name, res.StatusCode)
			return nil, false
		}
		return b, true
	}
	if b, ok := get("/metrics", "", n.env["KEYPLANE_METRICS_TOKEN"]); ok {
		lc.text("/metrics of "+name, b)
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
			lc.text(what+" of "+name, b)
			var page struct {
				Data       []map[string]any `json:"data"`
				NextCursor string           `json:"nextCursor"`
			}
			if json.Unmarshal(b, &page) != nil {
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
	return fmt.Sprintf("leak check: %d tests, %d nodes: %s searched for in %d places (%.1f MB) in %.1fs; %d found",
		s.tests, s.nodes, describeKinds(s.secrets, s.kinds), s.places, float64(s.bytes)/1e6, s.took.Seconds(), s.findings)
}
