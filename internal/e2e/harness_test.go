// Package e2e drives the real keyplane program over HTTP: every call and every error code of the
// contract, on SQLite and on PostgreSQL, with every answer checked against the OpenAPI document.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane/internal/cli"
	"github.com/keyplane/keyplane/internal/kptest"
	"github.com/keyplane/keyplane/internal/password"
	"github.com/keyplane/keyplane/internal/store/storetest"
	"github.com/keyplane/keyplane/internal/webhook"
)

// node is a running keyplane serve with an admin root key and a verify root key.
type node struct {
	t        *testing.T
	url      string
	dataDir  string
	dbURL    string
	admin    string // root key, admin scope
	verifier string // root key, verify scope
	stdout   *syncBuffer
	logs     *syncBuffer
	client   *http.Client
	stop     func()
	env      map[string]string // the extra environment serve last ran with
	name     string            // in the leak checker's reports; set by its first serve
	guard    *webhook.Guard    // keeps the running serve's webhooks on this machine
	// limitsSpent, when set, says why the test used up the management API's rate limits: the leak
	// check's harvest then expects 429 from it, instead of failing the test.
	limitsSpent string
}

// syncBuffer collects a node's output while tests read it.
type syncBuffer = kptest.SyncBuffer

// config returns a fresh data dir and, for PostgreSQL, a fresh database's URL. Both are searched for
// the test's secrets when the test ends, after its nodes stopped and before they are removed.
func config(t *testing.T, driver string) (dataDir, dbURL string) {
	dataDir = t.TempDir()
	if driver == "postgres" {
		dbURL = storetest.PostgresURL(t)
	}
	leaks(t).Store(dataDir, dbURL)
	return dataDir, dbURL
}

// run runs one keyplane command to completion and returns its stdout. Here and in serve (startOn),
// password hashes are password.Cheap(): a default one takes seconds under the race detector. The
// tests of the real cost (TestSignInMemoryBound) run the built binary.
func run(t *testing.T, dataDir, dbURL, stdin string, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	p := &cli.Program{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb, Getenv: getenv(dataDir, dbURL, nil),
		WebhookGuard: kptest.Guard(t), PasswordParams: password.Cheap()}
	err := p.Run(context.Background(), args)
	lc := leaks(t)
	cmd := "keyplane " + strings.Join(args, " ")
	if len(args) >= 2 && args[0] == "users" && args[1] == "create" {
		lc.secret("password given to "+cmd, strings.TrimSpace(stdin))
	}
	// root-keys create prints the new key, alone, on stdout: that is its job. The rest of what any
	// command prints is searched.
	if len(args) >= 2 && args[0] == "root-keys" && args[1] == "create" && err == nil {
		lc.secret("root key printed by "+cmd, strings.TrimSpace(out.String()))
	} else {
		lc.Text("the stdout of "+cmd, bytes.Clone(out.Bytes()))
	}
	lc.Text("the stderr of "+cmd, bytes.Clone(errb.Bytes()))
	if err != nil {
		return out.String() + errb.String(), err
	}
	return out.String(), nil
}

func getenv(dataDir, dbURL string, extra map[string]string) func(string) string {
	return func(k string) string {
		switch k {
		case "KEYPLANE_DATA_DIR":
			return dataDir
		case "KEYPLANE_DATABASE_URL":
			return dbURL
		case "KEYPLANE_ADMIN_PASSWORD":
			if v, ok := extra[k]; ok {
				return v
			}
			return "correct horse battery staple"
		case "KEYPLANE_LOG_LEVEL":
			return "debug"
		}
		return extra[k]
	}
}

// start creates the root keys with the CLI, then runs serve in process on a free port.
func start(t *testing.T, driver string, extraEnv map[string]string) *node {
	t.Helper()
	dataDir, dbURL := config(t, driver)
	return startOn(t, dataDir, dbURL, extraEnv)
}

// startOn is start on a given data dir and database (empty: SQLite in the data dir).
func startOn(t *testing.T, dataDir, dbURL string, extraEnv map[string]string) *node {
	t.Helper()
	n := &node{t: t, dataDir: dataDir, dbURL: dbURL, stdout: &syncBuffer{}, logs: &syncBuffer{}}
	var err error
	if n.admin, err = run(t, dataDir, dbURL, "", "root-keys", "create", "--name", "e2e admin", "--scopes", "admin"); err != nil {
		t.Fatalf("root-keys create: %v: %s", err, n.admin)
	}
	if n.verifier, err = run(t, dataDir, dbURL, "", "root-keys", "create", "--name", "e2e verify", "--scopes", "verify"); err != nil {
		t.Fatalf("root-keys create: %v", err)
	}
	n.admin, n.verifier = strings.TrimSpace(n.admin), strings.TrimSpace(n.verifier)
	n.client = &http.Client{Transport: validating(t), Timeout: 30 * time.Second}
	leaks(t).env(getenv(dataDir, dbURL, extraEnv))
	n.serve(extraEnv)
	t.Cleanup(func() {
		if n.stop != nil {
			n.stop()
		}
	})
	return n
}

// serve runs keyplane serve on the node's data, on a free port, and sets url and stop.
func (n *node) serve(extraEnv map[string]string) {
	t := n.t
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	n.env = extraEnv
	if n.name == "" {
		lc := leaks(t)
		n.name = lc.node(n.logs, n.stdout)
		if u := extraEnv["KEYPLANE_REDIS_URL"]; u != "" {
			lc.Redis(u)
		}
	}
	n.guard = kptest.Guard(t)
	p := &cli.Program{Stdin: strings.NewReader(""), Stdout: n.stdout, Stderr: n.logs, Getenv: getenv(n.dataDir, n.dbURL, extraEnv), Ready: func(a string) { ready <- a },
		WebhookGuard: n.guard, PasswordParams: password.Cheap()}
	go func() { done <- p.Run(ctx, []string{"serve", "--addr", "127.0.0.1:0"}) }()
	select {
	case a := <-ready:
		n.url = "http://" + a
	case err := <-done:
		cancel()
		t.Fatalf("serve exited before listening: %v\n%s", err, n.logs.String())
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("serve did not listen within 30s")
	}
	n.stop = func() {
		n.harvest(n.name)
		leaks(t).ReadMasterKeys(n.dataDir) // before a master-key rotate moves it aside
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve returned %v", err)
		}
	}
}

// restart stops serve as SIGTERM would (requests in flight finish, buffers such as the request log's
// are flushed) and starts it again on the same data, on a new port.
func (n *node) restart(extraEnv map[string]string) {
	n.t.Helper()
	n.stop()
	n.stop = nil
	n.serve(extraEnv)
}

// resp is a decoded answer.
type resp struct {
	Status int
	Header http.Header
	Raw    []byte
	Body   map[string]any
}

func (r *resp) data() map[string]any {
	d, _ := r.Body["data"].(map[string]any)
	return d
}

func (r *resp) list() []any {
	d, _ := r.Body["data"].([]any)
	return d
}

func (r *resp) errCode() string {
	e, _ := r.Body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func (r *resp) detailFields() []string {
	e, _ := r.Body["error"].(map[string]any)
	ds, _ := e["details"].([]any)
	var out []string
	for _, d := range ds {
		f, _ := d.(map[string]any)["field"].(string)
		out = append(out, f)
	}
	return out
}

// req is a request to make: who, what, where.
type req struct {
	method  string
	path    string
	cred    string // Authorization: Bearer cred; "" for none
	ws      string // X-Workspace-Id
	body    any    // marshalled to JSON unless string or []byte (sent as is)
	ctype   string // Content-Type; default application/json when there is a body
	headers map[string]string
}

func (n *node) do(r req) *resp {
	n.t.Helper()
	var body io.Reader
	switch b := r.body.(type) {
	case nil:
	case string:
		body = strings.NewReader(b)
	case []byte:
		body = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			n.t.Fatal(err)
		}
		body = bytes.NewReader(j)
	}
	hr, err := http.NewRequest(r.method, n.url+r.path, body)
	if err != nil {
		n.t.Fatal(err)
	}
	if r.cred != "" {
		hr.Header.Set("Authorization", "Bearer "+r.cred)
	}
	if r.ws != "" {
		hr.Header.Set("X-Workspace-Id", r.ws)
	}
	if body != nil {
		ct := r.ctype
		if ct == "" {
			ct = "application/json"
		}
		hr.Header.Set("Content-Type", ct)
	}
	for k, v := range r.headers {
		hr.Header.Set(k, v)
	}
	hres, err := n.client.Do(hr)
	if err != nil {
		n.t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	defer hres.Body.Close()
	raw, _ := io.ReadAll(hres.Body)
	out := &resp{Status: hres.StatusCode, Header: hres.Header, Raw: raw}
	_ = json.Unmarshal(raw, &out.Body)
	if hres.Header.Get("X-Request-Id") == "" {
		n.t.Errorf("%s %s: no X-Request-Id", r.method, r.path)
	}
	return out
}

// must makes a request and fails the test unless it answers status.
func (n *node) must(status int, r req) *resp {
	n.t.Helper()
	res := n.do(r)
	if res.Status != status {
		n.t.Fatalf("%s %s: status %d, want %d: %s", r.method, r.path, res.Status, status, res.Raw)
	}
	return res
}

// fails makes a request and checks the error status and code.
func (n *node) fails(status int, code string, r req) *resp {
	n.t.Helper()
	res := n.do(r)
	if res.Status != status || res.errCode() != code || res.Body["success"] != false {
		n.t.Fatalf("%s %s: got %d %q, want %d %q: %s", r.method, r.path, res.Status, res.errCode(), status, code, res.Raw)
	}
	if e, _ := res.Body["error"].(map[string]any); e["requestId"] != res.Header.Get("X-Request-Id") {
		n.t.Errorf("%s %s: error.requestId %v differs from X-Request-Id %s", r.method, r.path, e["requestId"], res.Header.Get("X-Request-Id"))
	}
	return res
}

// workspace creates a workspace and returns its id.
func (n *node) workspace(slug string, settings map[string]any) string {
	n.t.Helper()
	body := map[string]any{"name": "Workspace " + slug, "slug": slug}
	for k, v := range settings {
		body[k] = v
	}
	return n.must(201, req{method: "POST", path: "/v1/workspaces", cred: n.admin, body: body}).data()["id"].(string)
}

// key creates a key in ws as the admin root key and returns the answer's data.
func (n *node) key(ws string, body map[string]any) map[string]any {
	n.t.Helper()
	return n.must(201, req{method: "POST", path: "/v1/api-keys", cred: n.admin, ws: ws, body: body}).data()
}

// verify asks POST /v1/verify and returns data.
func (n *node) verify(body map[string]any) map[string]any {
	n.t.Helper()
	return n.must(200, req{method: "POST", path: "/v1/verify", cred: n.verifier, body: body}).data()
}

func (n *node) code(key string, extra ...any) string {
	n.t.Helper()
	body := map[string]any{"key": key}
	for i := 0; i+1 < len(extra); i += 2 {
		body[extra[i].(string)] = extra[i+1]
	}
	c, _ := n.verify(body)["code"].(string)
	return c
}

// eachDriver runs f as a subtest on SQLite and on PostgreSQL.
func eachDriver(t *testing.T, f func(t *testing.T, driver string)) {
	for _, d := range storetest.Drivers() {
		t.Run(d, func(t *testing.T) { f(t, d) })
	}
}

func fmtJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
